"""The local Vertex AI batch prediction emulator.

An HTTP server for the ``batchPredictionJobs`` REST API that reads each job's BigQuery
input table, answers every row's GenerateContentRequest with an engine (``simulate`` or
``openai``) and writes the output table through the BigQuery API, as the service does.
Run it with ``python -m gemini_batch.local.vertex --help``; see docs/vertex-emulator.md.
"""

from gemini_batch.local.vertex.server import EmulatorConfig, create_app

__all__ = ["EmulatorConfig", "create_app"]
