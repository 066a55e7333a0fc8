"""What `gemini-batch status|jobs|cancel|collect|reset|retry` do with the ledger and the jobs.

Reads and updates the ledger (BigQuery) and asks or cancels Vertex AI jobs, all through
one workspace; the CLI asks for confirmation and prints the tables.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gemini_batch.build.dbt_project import DbtProject
from gemini_batch.build.estimate import estimate as estimate_cost
from gemini_batch.build.summary import counted
from gemini_batch.build.workspace import Workspace
from gemini_batch.clients.polling import Backoff, watch_jobs
from gemini_batch.clients.vertex import JobStatus
from gemini_batch.errors import GeminiBatchError
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.ledger import LedgerEntry, LedgerUpdates, LockOwner
from gemini_batch.state.retries import Retries, RetryChoice

if TYPE_CHECKING:
    from gemini_batch.build.summary import ModelSummary, Reporter


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


def collect_job(ws: Workspace, project: DbtProject, what: str, reporter: Reporter
                ) -> ModelSummary:
    """Merge the ended, unmerged job ``what`` (id or full name) of a batch model, under
    the model's lock, as a build would: its answers into ``<model>__responses``, the
    ledger, the clean-up. A job whose output still cannot be read stays unmerged (the
    summary's failed_jobs says where it looked)."""
    from gemini_batch.build.context import BatchContext, BatchSettings
    from gemini_batch.build.model_run import ModelRun

    known = [entry for entry in ws.ledger.entries(limit=1000) if what in _names(entry)]
    if not known:
        raise GeminiBatchError(f"No job {what} in the ledger ({ws.ledger.table}): "
                               "`gemini-batch jobs` lists them.")
    entry = known[0]
    if not entry.is_live:
        raise GeminiBatchError(f"Job {what} is merged already ({entry.merged_at}).")
    status = ws.vertex(entry.location).get(entry.job_name) if entry.is_created else None
    if status is None or not status.terminal:
        raise GeminiBatchError(
            f"Job {what} is still running ({status.state if status else entry.state}): "
            "`gemini-batch wait` waits for it; the build that resumes it merges it.")
    model = project.find_model(entry.dbt_model)
    owner = LockOwner.current()
    ctx = BatchContext(workspace=ws, owner=owner, settings=BatchSettings(),
                       invocation_id=entry.invocation_id or "collect", reporter=reporter)
    ws.ledger.lock(model, owner)
    try:
        return ModelRun(ctx, model).collect(entry)
    finally:
        ws.ledger.unlock(model, owner)


def check_resettable(ws: Workspace, model: BatchModel, doing: str = "reset") -> None:
    """Refuse a reset (or a retry) while the model has live jobs: their answers would
    land in a table that no longer holds the others, or be lost (a retry: their failed
    rows would be merged after it is asked)."""
    if not ws.ledger.exists():
        return
    live = ws.ledger.live_jobs(model.unique_id)
    if live:
        raise GeminiBatchError(
            f"Cannot {doing} {model.name}: it has {counted(len(live), 'live job')}; let a "
            f"build merge them (`gemini-batch build`), or cancel them first "
            f"(`gemini-batch cancel {model.name}`)."
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


@dataclass(frozen=True)
class RetryPlan:
    """What `gemini-batch retry` would ask for again, before it does."""

    choice: RetryChoice
    estimated_usd: float | None  # None: no price known for the Gemini model


@contextlib.contextmanager
def plan_retry(ws: Workspace, model: BatchModel, prefix: str) -> Iterator[RetryPlan]:
    """The failed requests of ``model`` whose last_error starts with ``prefix`` and the
    estimate of sending them again, under the model's lock (no build merges or submits
    meanwhile); :func:`retry_requests` marks them within the block. Refused while the
    model has live jobs."""
    from gemini_batch.build.model_run import new_run_id

    ws.warehouse.check_tables(model)  # made by an older package: says what to run
    check_resettable(ws, model, doing="retry")
    owner = LockOwner.current()
    ws.ledger.ensure()
    ws.ledger.lock(model, owner)
    try:
        run_id = new_run_id()
        with Retries(ws.bq).choose(model, prefix, run_id) as choice:
            usd = None
            if choice.requests:
                usd = estimate_cost(
                    ws.warehouse, model, prices=ws.prices, pending_snapshot=choice.table,
                    observed=ws.ledger.observed_tokens(model.config.gemini_model),
                ).usd
            yield RetryPlan(choice=choice, estimated_usd=usd)
    finally:
        ws.ledger.unlock(model, owner)


def retry_requests(ws: Workspace, model: BatchModel, plan: RetryPlan) -> int:
    """Mark the requests of ``plan`` as asked again: the next build sends them. How many."""
    return Retries(ws.bq).ask_again(model, plan.choice)


__all__ = [
    "RetryPlan",
    "plan_retry",
    "retry_requests",
    "wait_for_jobs",
    "cancel_jobs",
    "collect_job",
    "check_resettable",
    "jobs_to_cancel",
    "reset_answers",
    "service_statuses",
]
