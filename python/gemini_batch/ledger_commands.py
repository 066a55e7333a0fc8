"""What `gemini-batch status|jobs|cancel|reset` do with the ledger and the jobs.

Reads and updates the ledger (BigQuery) and asks or cancels Vertex AI jobs, all through
one workspace; the CLI asks for confirmation and prints the tables.
"""

from __future__ import annotations

from gemini_batch.config import BatchModel
from gemini_batch.dbt_project import DbtProject
from gemini_batch.errors import GeminiBatchError
from gemini_batch.jobs import JobStatus
from gemini_batch.ledger import LedgerEntry, LockOwner
from gemini_batch.workspace import Workspace


def service_statuses(ws: Workspace, entries: list[LedgerEntry]) -> dict[str, JobStatus]:
    """What Vertex AI says now of each of ``entries``, by job name."""
    return {entry.job_name: ws.vertex(entry.location).get(entry.job_name) for entry in entries}


def _names(entry: LedgerEntry) -> tuple[str, ...]:
    return (entry.job_name, entry.job_id or "", entry.job_name.rsplit("/", 1)[-1])


def jobs_to_cancel(ws: Workspace, project: DbtProject, what: str | None) -> list[LedgerEntry]:
    """The running jobs ``what`` names: a job (id or full name), a batch model (name or
    unique_id), or, for None, every running job. A job that already ended, or a name
    that is neither, is a GeminiBatchError saying so."""
    running = [entry for entry in ws.ledger.live_jobs() if not entry.is_terminal]
    if what is None:
        return running
    chosen = [entry for entry in running if what in _names(entry)]
    if chosen:
        return chosen
    ended = [entry for entry in ws.ledger.entries(limit=1000) if what in _names(entry)]
    if ended:
        raise GeminiBatchError(f"Job {what} is not live (state {ended[0].state}).")
    model = project.find_model(what)
    return [entry for entry in running if entry.dbt_model == model.unique_id]


def cancel_jobs(ws: Workspace, entries: list[LedgerEntry]) -> list[tuple[LedgerEntry, JobStatus]]:
    """Ask Vertex AI to cancel each job; the ledger records the state it answers with.
    What the jobs answered before they stopped is merged by the next build."""
    cancelled = []
    for entry in entries:
        status = ws.vertex(entry.location).cancel(entry.job_name)
        ws.ledger.update(entry.job_name, state=status.state)
        cancelled.append((entry, status))
    return cancelled


def check_resettable(ws: Workspace, model: BatchModel) -> None:
    """Refuse a reset while the model has live jobs: their answers would land in a table
    that no longer holds the others, or be lost."""
    if not ws.ledger.exists():
        return
    live = ws.ledger.live_jobs(model.unique_id)
    if live:
        raise GeminiBatchError(
            f"{model.name} has {len(live)} live job(s); cancel them first "
            f"(`gemini-batch cancel {model.name}`) and let a build merge them."
        )


def reset_answers(ws: Workspace, model: BatchModel) -> None:
    """Drop ``<model>__responses`` under the model's lock (no build may merge meanwhile)."""
    owner = LockOwner.current()
    ws.ledger.ensure()
    ws.ledger.lock(model, owner)
    try:
        ws.bq.drop_tables([model.responses_table])
    finally:
        ws.ledger.unlock(model, owner)


__all__ = [
    "cancel_jobs",
    "check_resettable",
    "jobs_to_cancel",
    "reset_answers",
    "service_statuses",
]
