"""Which route a batch model's jobs take: the one place that decides (ADR 0012).

Today by the model's transport (gcs.py: its ``transport`` setting, var
``gemini_batch_transport``, else ``gcs`` on ``global`` and ``bigquery`` elsewhere). A new
route adds its class and its case here; ``ModelRun`` does not change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gemini_batch.routes.bigquery_tables import BigQueryTablesRoute
from gemini_batch.routes.gcs import GcsRoute, workspace_staging

if TYPE_CHECKING:
    from gemini_batch.build.workspace import Workspace
    from gemini_batch.routes.base import Route
    from gemini_batch.rules.config import BatchModel


def route_for(ws: Workspace, model: BatchModel, location: str) -> Route:
    """The route of ``model``'s jobs in ``location``, with the workspace's services
    (ConfigError for a transport or staging setting that cannot work)."""
    staging = workspace_staging(ws, model, location)
    if staging is not None:
        return GcsRoute(model, location, ws.warehouse, ws.vertex, staging)
    return BigQueryTablesRoute(model, location, ws.warehouse, ws.vertex)


__all__ = ["route_for"]
