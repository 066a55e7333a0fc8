"""What `gemini-batch status|jobs|cancel|reset` do with the ledger and the jobs.

Reads and updates the ledger (BigQuery) and asks or cancels Vertex AI jobs, all through
one workspace; the CLI asks for confirmation and prints the tables.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gemini_batch.build.dbt_project import DbtProject
from gemini_batch.build.workspace import Workspace
from gemini_batch.clients.polling import Backoff, watch_jobs
from gemini_batch.clients.vertex import JobStatus
from gemini_batch.errors import GeminiBatchError
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.ledger import LedgerEntry, LedgerUpdates, LockOwner


def service_statuses(ws: Workspace, entries: list[LedgerEntry]) -> dict[str, JobStatus]:
    """What Vertex AI says now of each of ``entries``, by job name (a submit row whose
    job is still being created has no job to ask about)."""
    return {entry.job_name: ws.vertex(entry.location).get(entry.job_name)
            for entry in entries if entry.is_created}


def _names(entry: LedgerEntry) -> tuple[str, ...]:
    return (entry.job_name, entry.job_id or "", entry.job_name.rsplit("/", 1)[-1])


def _running(ws: Workspace) -> list[LedgerEntry]:
    """Jobs of the ledger that run (batch models' and submits'), created ones only."""
    return [entry for entry in ws.ledger.live_jobs()
            if not entry.is_terminal and entry.is_created]


def jobs_to_cancel(ws: Workspace, project: DbtProject, what: str | None) -> list[LedgerEntry]:
    """The running jobs ``what`` names: a job (id or full name), a batch model (name or
    unique_id), or, for None, every running job. A job that already ended, or a name
    that is neither, is a GeminiBatchError saying so."""
    running = _running(ws)
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


def wait_for_jobs(
    ws: Workspace,
    *,
    timeout: float | None = None,
    poll_initial: float = 1.0,
    poll_max: float = 60.0,
    on_status: Callable[[LedgerEntry, JobStatus], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[list[LedgerEntry], dict[str, JobStatus]]:
    """Wait until every running job of the ledger has ended, or ``timeout`` seconds.

    Polls Vertex AI with backoff and writes states and counts to the ledger (batched);
    merging is the next build's (it knows the models). Returns the jobs it watched and
    what the service said last of each; a job still running is in flight.
    """
    watched = _running(ws)
    entries = {entry.job_name: entry for entry in watched}
    updates = LedgerUpdates(ws.ledger)

    def changed(name: str, status: JobStatus) -> None:
        updates.set(name, state=status.state,
                    succeeded_count=status.succeeded, failed_count=status.failed)
        if on_status:
            on_status(entries[name], status)

    try:
        statuses = watch_jobs(
            entries, lambda name: ws.vertex(entries[name].location).get(name),
            backoff=Backoff(poll_initial, poll_max), on_change=changed,
            after_round=updates.flush_if_due, sleep=(stop or threading.Event()).wait,
            deadline=None if timeout is None else time.monotonic() + timeout,
        )
    finally:
        updates.flush()
    return watched, statuses


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
    "wait_for_jobs",
    "cancel_jobs",
    "check_resettable",
    "jobs_to_cancel",
    "reset_answers",
    "service_statuses",
]
