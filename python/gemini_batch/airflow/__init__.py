"""Airflow 3 integration (extra ``airflow``): a deferrable operator and its trigger.

``GeminiBatchBuildOperator`` runs `gemini-batch build` in the worker and defers to
``GeminiBatchJobTrigger`` while the Vertex AI batch jobs run. See docs/airflow.md.
"""

from gemini_batch.airflow.operators import GeminiBatchBuildOperator
from gemini_batch.airflow.triggers import GeminiBatchJobTrigger

__all__ = ["GeminiBatchBuildOperator", "GeminiBatchJobTrigger"]
