"""What a build shows while jobs run, and the closing table per batch model.

On a terminal: a rich progress line per job (model, job, state, done/failed of its
requests, elapsed). Elsewhere (a pipe, CI): one plain log line per change, so logs stay
readable. Both reporters are safe to call from the threads that wait on jobs.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from gemini_batch.jobs import JobStatus


@dataclass
class ModelSummary:
    """One batch model's outcome in one build: the row of the closing table."""

    model: str  # dbt model name
    requests: int = 0  # distinct requests in <model>__requests
    cached: int = 0  # answered before this build started submitting
    submitted: int = 0  # requests sent in new jobs by this build
    resumed: int = 0  # requests in jobs of an earlier build this one waited on
    succeeded: int = 0  # answered by this build's (or resumed) jobs
    failed: int = 0  # rows that end failed (retries used up, or invalid)
    invalid: int = 0  # subset of failed: never submitted, the request is not valid
    pending: int = 0  # still without an answer at the end (e.g. a job failed)
    jobs: int = 0
    failed_jobs: list[str] = field(default_factory=list)  # "job id: state: error"
    tokens: int = 0
    cost_usd: float = 0.0
    estimated_cost_usd: float | None = None
    wall_seconds: float = 0.0
    error: str | None = None  # why the model stopped early (budget, config, service)

    @property
    def all_cached(self) -> bool:
        return self.error is None and self.submitted == 0 and self.resumed == 0


class Reporter(Protocol):
    def message(self, model: str, text: str) -> None: ...

    def job_started(self, model: str, job_name: str, requests: int) -> None: ...

    def job_update(self, model: str, status: JobStatus) -> None: ...

    def job_finished(self, model: str, status: JobStatus, note: str) -> None: ...

    def close(self) -> None: ...


def _short(job_name: str) -> str:
    return job_name.rsplit("/", 1)[-1]


def _counts(status: JobStatus, requests: int) -> str:
    return f"{status.succeeded:,}/{requests:,} done, {status.failed:,} failed"


class PlainReporter:
    """Timestamped log lines, one per change: for CI logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[str, int, int]] = {}
        self._requests: dict[str, int] = {}
        self._started: dict[str, float] = {}

    def _line(self, model: str, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        with self._lock:
            self.console.print(f"{stamp} {model}: {text}", highlight=False, markup=False,
                               soft_wrap=True)

    def message(self, model: str, text: str) -> None:
        self._line(model, text)

    def job_started(self, model: str, job_name: str, requests: int) -> None:
        self._requests[job_name] = requests
        self._started[job_name] = time.monotonic()
        self._line(model, f"job {_short(job_name)} submitted ({requests:,} requests)")

    def job_update(self, model: str, status: JobStatus) -> None:
        key = (status.state, status.succeeded, status.failed)
        if self._seen.get(status.name) == key:
            return
        self._seen[status.name] = key
        elapsed = time.monotonic() - self._started.get(status.name, time.monotonic())
        requests = self._requests.get(status.name, 0)
        self._line(
            model,
            f"job {_short(status.name)} {status.state} "
            f"({_counts(status, requests)}, {elapsed:.0f}s)",
        )

    def job_finished(self, model: str, status: JobStatus, note: str) -> None:
        self.job_update(model, status)
        self._line(model, f"job {_short(status.name)} {note}")

    def close(self) -> None:
        pass


class RichReporter:
    """A live progress line per job on a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]{task.fields[model]}[/] {task.fields[job]}"),
            TextColumn("{task.fields[state]:<20}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} done"),
            TextColumn("[red]{task.fields[failed]:,} failed"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, TaskID] = {}
        self.progress.start()

    def message(self, model: str, text: str) -> None:
        self.progress.console.print(f"[bold]{model}[/]: {text}", highlight=False)

    def job_started(self, model: str, job_name: str, requests: int) -> None:
        self._tasks[job_name] = self.progress.add_task(
            "", total=max(requests, 1), model=model, job=_short(job_name),
            state="QUEUED", failed=0,
        )

    def job_update(self, model: str, status: JobStatus) -> None:
        task = self._tasks.get(status.name)
        if task is None:  # a resumed job: started by an earlier build
            self.job_started(model, status.name, status.succeeded + status.failed
                             + status.incomplete)
            task = self._tasks[status.name]
        self.progress.update(
            task, completed=status.succeeded + status.failed, state=status.state,
            failed=status.failed,
        )

    def job_finished(self, model: str, status: JobStatus, note: str) -> None:
        self.job_update(model, status)
        self.progress.stop_task(self._tasks[status.name])  # freezes its elapsed time
        self.message(model, f"job {_short(status.name)} {note}")

    def close(self) -> None:
        self.progress.stop()


def make_reporter(console: Console, *, plain: bool | None = None) -> Reporter:
    """Rich progress on an interactive terminal; plain lines in CI or a pipe."""
    if plain is None:
        plain = not console.is_terminal or bool(os.environ.get("CI"))
    return PlainReporter(console) if plain else RichReporter(console)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def summary_table(summaries: list[ModelSummary]) -> Table:
    """The closing table: one row per batch model of the build."""
    table = Table(title="gemini-batch summary", title_justify="left")
    for name in ("model", "requests", "cached", "submitted", "succeeded", "failed", "tokens",
                 "cost", "wall time"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for summary in summaries:
        table.add_row(
            summary.model,
            f"{summary.requests:,}",
            f"{summary.cached:,}",
            f"{summary.submitted:,}",
            f"{summary.succeeded:,}",
            f"{summary.failed:,}",
            f"{summary.tokens:,}",
            _money(summary.cost_usd),
            f"{summary.wall_seconds:.1f}s",
        )
    return table


def summary_notes(summary: ModelSummary) -> list[str]:
    """Sentences under the table: what a number alone does not say."""
    notes = []
    if summary.error:
        notes.append(f"{summary.model}: {summary.error}")
    elif summary.all_cached:
        notes.append(
            f"{summary.model}: all {summary.requests - summary.failed:,} answerable "
            "requests were cached; no job submitted."
        )
    if summary.resumed:
        notes.append(f"{summary.model}: resumed {summary.resumed:,} requests from an "
                     "earlier build's jobs.")
    if summary.invalid:
        notes.append(f"{summary.model}: {summary.invalid:,} invalid requests were not "
                     "submitted (batch_state = 'failed', see last_error).")
    notes.extend(f"{summary.model}: job {job}" for job in summary.failed_jobs)
    if summary.pending and not summary.error:
        notes.append(f"{summary.model}: {summary.pending:,} requests are still pending; "
                     "run `gemini-batch build` again.")
    return notes
