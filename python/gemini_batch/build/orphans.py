"""Jobs of a batch model the ledger does not know: found, recorded, then waited on.

A build killed between creating a job and writing its ledger row leaves one; its
requests are in no live shard of the ledger, so they would be sent again, and if it
ended, its answers (paid for) are in its output table. Found by the labels every job
gets and the model's shard table prefix, among the jobs of ORPHAN_WINDOW; ``ModelRun``
waits on the ones recorded here and merges them as its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gemini_batch.build.summary import counted
from gemini_batch.clients.bigquery import quote_table
from gemini_batch.clients.vertex import TOOL_LABEL, label_value
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.ledger import LedgerEntry

if TYPE_CHECKING:
    from gemini_batch.build.workspace import Workspace
    from gemini_batch.routes.base import Route

# How far back a build looks for jobs a dead build made but never recorded.
ORPHAN_WINDOW = timedelta(days=30)


def record_orphans(ws: Workspace, model: BatchModel, route: Route,
                   say: Callable[[str], None]) -> list[LedgerEntry]:
    """The model's unrecorded jobs that are running or left something to merge, each
    written to the ledger now (and said); [] when there is none."""
    prefix = f"{model.view}__shard_"
    labelled = [
        job for job in route.labelled_jobs(
            {"tool": TOOL_LABEL, "dbt_model": label_value(model.name)},
            created_after=datetime.now(UTC) - ORPHAN_WINDOW)
        if route.shard_of(job).startswith(prefix)
    ]
    if not labelled:
        return []
    known = {entry.job_name for entry in ws.ledger.entries(
        model.unique_id, limit=len(labelled) + 1000)}
    orphans = [
        job for job in labelled if job.name not in known
        and (not job.terminal or job.succeeded or route.has_output(job))
    ]
    adopted = []
    for job in orphans:
        shard = route.shard_of(job)
        if ws.bq.table_exists(shard):
            requests = int(ws.bq.query(f"SELECT COUNT(*) AS n FROM {quote_table(shard)}")[0]["n"])
        else:  # the shard is gone: the service's own counts
            requests = job.succeeded + job.failed + job.incomplete
        entry = LedgerEntry(
            job_name=job.name, job_id=job.job_id, dbt_model=model.unique_id,
            model_relation=model.view, invocation_id=job.labels.get("dbt_invocation_id"),
            shard_table=shard, output_table=route.output_of(job),
            gemini_model=model.config.gemini_model, location=route.location,
            state=job.state, request_count=requests, submitted_at=job.create_time,
        )
        ws.ledger.record_submitted(entry)
        adopted.append(entry)
        say(f"adopting job {job.job_id} ({counted(entry.request_count, 'request')}): "
            "created by a build that died before recording it")
    return adopted


__all__ = ["ORPHAN_WINDOW", "record_orphans"]
