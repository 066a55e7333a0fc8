"""dbt-gemini-batch: batch generation with Gemini for dbt on BigQuery."""

from gemini_batch.errors import GeminiBatchError

__version__ = "0.1.0"

__all__ = ["GeminiBatchError", "__version__"]
