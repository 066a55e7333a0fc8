"""Which route a batch model's jobs take: the one place that decides (ADR 0012).

The batch jobs' route, for what is still pending after the model's dbt stage, by the
model's transport (gcs.py: its ``transport`` setting, var ``gemini_batch_transport``,
else ``gcs`` on ``global`` and ``bigquery`` elsewhere). A new route adds its class and
its case here; ``ModelRun`` does not change. Which requests AI.GENERATE answers (route
``ai_generate``, ``auto``) is decided in the materialization, where AI.GENERATE runs,
alike in a plain `dbt run`: :func:`planned_route` says what it will decide, for `plan`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gemini_batch.routes.bigquery_tables import BigQueryTablesRoute
from gemini_batch.routes.gcs import GcsRoute, workspace_staging

if TYPE_CHECKING:
    from gemini_batch.build.workspace import Workspace
    from gemini_batch.routes.base import Route
    from gemini_batch.rules.config import BatchModel, BatchModelConfig


def planned_route(config: BatchModelConfig, pending: int) -> str:
    """The route ``pending`` requests of a model take in `gemini-batch build`:
    ``ai_generate``, ``batch``, or ``ai_generate+batch`` (route ``ai_generate`` with
    more than ``ai_generate_max_rows``: the rest go by batch job after the dbt stage).
    ``auto`` is ``ai_generate`` up to ``ai_generate_max_rows``, else ``batch`` (as
    _gemini_batch_answer_with_ai_generate decides). Requests AI.GENERATE cannot express
    go by batch job on both; which they are is known to the materialization only."""
    if config.route == "batch":
        return "batch"
    if pending <= config.ai_generate_max_rows:
        return "ai_generate"
    return "batch" if config.route == "auto" else "ai_generate+batch"


def route_for(ws: Workspace, model: BatchModel, location: str) -> Route:
    """The route of ``model``'s jobs in ``location``, with the workspace's services
    (ConfigError for a transport or staging setting that cannot work)."""
    staging = workspace_staging(ws, model, location)
    if staging is not None:
        return GcsRoute(model, location, ws.warehouse, ws.vertex, staging)
    return BigQueryTablesRoute(model, location, ws.warehouse, ws.vertex)


__all__ = ["planned_route", "route_for"]
