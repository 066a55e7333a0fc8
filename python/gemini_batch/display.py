"""Everything the user sees: progress while jobs run, and the tables commands print.

While a build waits, on a terminal: a rich progress line per job (model, job, state,
done/failed of its requests, elapsed). Elsewhere (a pipe, CI): one plain log line per
change, so logs stay readable. Both reporters are safe to call from the threads that
wait on jobs. Then the tables: the build's closing summary, `plan`, and the ledger's
jobs (`status`, `jobs`). Talks to no service.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from gemini_batch.build.plan import ModelPlan
from gemini_batch.build.summary import ModelSummary, Reporter, counted
from gemini_batch.clients.polling import Progress as JobProgress
from gemini_batch.clients.vertex import JobStatus
from gemini_batch.exit_codes import ExitCode
from gemini_batch.state.ledger import LedgerEntry

# Off a terminal rich assumes 80 columns and would cut the numbers of a wide table.
LOG_WIDTH = 200


def _short(job_name: str) -> str:
    return job_name.rsplit("/", 1)[-1]


def _counts(status: JobStatus, requests: int) -> str:
    return f"{status.succeeded:,}/{requests:,} done, {status.failed:,} failed"


class PlainReporter:
    """Timestamped log lines, one per change: for CI logs and pipes."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._lock = threading.Lock()
        self._seen: dict[str, JobProgress] = {}
        self._requests: dict[str, int] = {}
        self._started: dict[str, float] = {}

    def _line(self, model: str, text: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        with self._lock:
            self.console.print(f"{stamp} {model}: {text}", highlight=False, markup=False,
                               soft_wrap=True)

    def message(self, model: str, text: str) -> None:
        self._line(model, text)

    def job_started(
        self, model: str, job_name: str, requests: int, *, resumed: bool = False
    ) -> None:
        self._requests[job_name] = requests
        self._started[job_name] = time.monotonic()
        if resumed:
            text = f"resumed ({counted(requests, 'request')}, submitted by an earlier build)"
        else:
            text = f"submitted ({counted(requests, 'request')})"
        self._line(model, f"job {_short(job_name)} {text}")

    def job_update(self, model: str, status: JobStatus) -> None:
        if self._seen.get(status.name) == status.progress:
            return
        self._seen[status.name] = status.progress
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

    def job_started(
        self, model: str, job_name: str, requests: int, *, resumed: bool = False
    ) -> None:
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


def print_table(console: Console, table: Table) -> None:
    """``table`` on ``console``, or in LOG_WIDTH columns where it is not a terminal."""
    (console if console.is_terminal else Console(width=LOG_WIDTH)).print(table)


def _money(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def summary_table(summaries: list[ModelSummary]) -> Table:
    """The closing table: one row per batch model of the build."""
    table = Table(title="gemini-batch summary", title_justify="left")
    for name in ("model", "requests", "cached", "reused", "submitted", "succeeded", "failed",
                 "tokens", "est. cost", "cost", "wall time"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for summary in summaries:
        table.add_row(
            summary.model,
            f"{summary.requests:,}",
            f"{summary.cached:,}",
            f"{summary.reused:,}",
            f"{summary.submitted:,}",
            f"{summary.succeeded:,}",
            f"{summary.failed:,}",
            f"{summary.tokens:,}",
            _money(summary.estimated_cost_usd),
            _money(summary.cost_usd),
            f"{summary.wall_seconds:.1f}s",
        )
    return table


def _reasons(reasons: dict[str, int]) -> str:
    return ", ".join(f"{count:,} {reason}" for reason, count in reasons.items())


def print_summary(console: Console, summaries: list[ModelSummary]) -> None:
    """The closing table of a build and the notes under it (`gemini-batch build|run`,
    the Airflow operator's log)."""
    if not summaries:
        return
    print_table(console, summary_table(summaries))
    for summary in summaries:
        for note in summary_notes(summary):
            console.print(note, highlight=False, markup=False, soft_wrap=True)


def summary_notes(summary: ModelSummary) -> list[str]:
    """Sentences under the table: what a number alone does not say."""
    notes = []
    if summary.error:
        notes.append(f"{summary.model}: {summary.error}")
    elif summary.all_cached and not summary.outside_sample:
        answerable = summary.requests - summary.failed
        were = "was" if answerable == 1 else "were"
        notes.append(f"{summary.model}: all {counted(answerable, 'answerable request')} "
                     f"{were} cached; no job submitted.")
    if summary.route:
        how = {"ai_generate": "AI.GENERATE in its dbt run", "batch": "batch jobs",
               "ai_generate+batch": "AI.GENERATE in its dbt run, then batch jobs for the rest"}
        statements = (f" ({counted(summary.ai_generate_statements, 'AI.GENERATE statement')})"
                      if summary.ai_generate_statements else "")
        notes.append(f"{summary.model}: route {summary.route}: sent by "
                     f"{how[summary.route]}{statements}.")
    if summary.reused:
        notes.append(f"{summary.model}: {counted(summary.reused, 'answer')} copied from "
                     "another dataset (var gemini_batch_answers_from), not sent: they cost "
                     "nothing.")
    notes.extend(f"{summary.model}: {warning}; the requests were sent all the same."
                 for warning in summary.warnings)
    if summary.resumed:
        notes.append(f"{summary.model}: resumed {counted(summary.resumed, 'request')} from an "
                     "earlier build's jobs.")
    if summary.invalid:
        were = "was" if summary.invalid == 1 else "were"
        examples = f": {'; '.join(summary.invalid_examples)}" if summary.invalid_examples \
            else ""
        notes.append(f"{summary.model}: {counted(summary.invalid, 'invalid request')} {were} "
                     f"not submitted (batch_state = 'failed', see last_error){examples}.")
    if summary.failure_reasons:
        notes.append(f"{summary.model}: failed for good: {_reasons(summary.failure_reasons)} "
                     "(last_error in the model's view says why; docs: Troubleshooting).")
    notes.extend(f"{summary.model}: {cancel.describe()}" for cancel in summary.queue_cancelled)
    notes.extend(f"{summary.model}: job {job}" for job in summary.failed_jobs)
    if summary.canary_stopped:
        notes.append(summary.canary_stopped)
    if summary.in_flight_jobs:
        notes.append(f"{summary.model}: {counted(len(summary.in_flight_jobs), 'job')} in flight "
                     f"({counted(summary.pending, 'request')} without an answer yet); the next "
                     "`gemini-batch build` collects them, `gemini-batch wait` waits for them.")
    elif summary.outside_sample and not summary.error:
        were = "was" if summary.outside_sample == 1 else "were"
        notes.append(f"{summary.model}: {counted(summary.outside_sample, 'pending request')} "
                     f"outside the sample {were} not sent; `gemini-batch build` without "
                     "--sample sends them.")
    elif summary.pending and not summary.error and not summary.canary_stopped:
        are = "is" if summary.pending == 1 else "are"
        notes.append(f"{summary.model}: {counted(summary.pending, 'request')} {are} still pending; "
                     "run `gemini-batch build` again.")
    return notes


def plan_table(plans: list[ModelPlan]) -> Table:
    """`gemini-batch plan`: one row per batch model."""
    table = Table(title="gemini-batch plan", title_justify="left")
    columns = ("model", "requests", "cached", "pending", "failed", "invalid", "in flight",
               "shards", "input tokens", "thinking tokens", "answer tokens", "est. cost",
               "worst case", "cap", "route")
    for name in columns:
        table.add_column(name, justify="left" if name == "model" else "right")
    for item in plans:
        config = item.model.config
        # Which figure the cap is checked against (max_cost_mode).
        cap = "-" if config.max_cost_usd is None else (
            f"{_money(config.max_cost_usd)} on {config.max_cost_mode.replace('_', ' ')}")
        counts, estimate = item.counts, item.estimate
        if counts is None or estimate is None:
            table.add_row(item.model.name, *["-"] * (len(columns) - 3), cap,
                          item.model.config.route)
            continue
        table.add_row(
            item.model.name, f"{counts.unique:,}", f"{counts.cached:,}", f"{counts.pending:,}",
            f"{counts.failed:,}", f"{counts.invalid:,}", f"{counts.in_flight:,}",
            f"{item.shards:,}", f"{estimate.input_tokens:,}", f"{estimate.thinking_tokens:,}",
            f"{estimate.answer_tokens:,}", _money(estimate.usd),
            _money(estimate.worst_case_usd), cap, item.route,
        )
    return table


def _unanswered(count: int | None) -> str:
    if count is None:
        return "not built yet"
    return f"{count:,} request{'' if count == 1 else 's'} without an answer yet"


def plan_notes(plans: list[ModelPlan]) -> list[str]:
    """Sentences under the plan table."""
    notes = []
    for item in plans:
        name = item.model.name
        if item.waits_on:
            waits = ", ".join(f"{upstream} ({_unanswered(count)})"
                              for upstream, count in item.waits_on.items())
            notes.append(f"{name}: waits on the answers of {waits}: its requests are final "
                         "only after them (`gemini-batch build` answers them first)"
                         + ("." if item.counts is None else "; the figures are of its "
                            "requests as they stand now."))
        if item.missing_inputs:
            missing = [table for table in item.missing_inputs
                       if table.rsplit(".", 1)[-1] not in item.waits_on]
            if missing:
                notes.append(f"{name}: {item.from_sql}, and its inputs {', '.join(missing)} "
                             "do not exist: build them first (a plain `dbt run --select "
                             f"+{name}` sends nothing), then plan again.")
            continue
        if item.counts is None:
            notes.append(f"{name}: {item.model.requests_table} is not built yet; "
                         "run `gemini-batch build` (or `dbt run`) first.")
            continue
        if item.from_sql:
            notes.append(f"{name}: {item.from_sql}: the figures are read from its SQL now.")
        if item.model_problem:
            notes.append(f"{name}: {item.model_problem}")
        if item.route != "batch" and item.counts.pending and item.estimate is not None:
            rows = item.model.config.ai_generate_max_rows
            notes.append(
                f"{name}: route {item.model.config.route}: "
                f"{counted(min(item.counts.pending, rows), 'request')} through AI.GENERATE in "
                "the model's dbt run"
                + (f", the other {item.counts.pending - rows:,} by batch job"
                   if item.route == "ai_generate+batch" else "")
                + f"; the estimate includes ${item.estimate.processing_usd:,.6f} of "
                "BigQuery ML data processing.")
        if item.over_budget:
            notes.append(f"{name}: {item.over_budget}")
        if item.estimate is not None and item.estimate.thinking_trap:
            notes.append(f"{name}: warning: {item.estimate.thinking_trap}")
        if item.canary:
            notes.append(f"{name}: {item.canary}.")
        if item.failure_reasons:
            notes.append(f"{name}: failed for good, not sent again: "
                         f"{_reasons(item.failure_reasons)}.")
        if item.live_jobs:
            are = "is" if item.live_jobs == 1 else "are"
            notes.append(f"{name}: {counted(item.live_jobs, 'job')} of an earlier build {are} "
                         "live; `build` resumes them first.")
        notes.extend(f"{name}: {warning}" for warning in item.reuse_warnings)
        for source, requests in item.reusable.items():
            notes.append(f"{name}: {counted(requests, 'pending request')} "
                         f"{'has' if requests == 1 else 'have'} an answer in {source}: "
                         "`build` copies them instead of sending them.")
        if item.reuse_saves_usd is not None:
            notes.append(f"{name}: answers reused save {_money(item.reuse_saves_usd)} "
                         "(est.; the estimate above still counts them).")
        if item.sample is not None:
            notes.append(f"{name}: --sample {item.sample:,}: {item.sampled or 0:,} of the "
                         f"{counted(item.counts.pending, 'pending request')} would be sent; "
                         "the estimate is theirs.")
        if item.counts.pending == 0 and not item.waits_on:
            notes.append(f"{name}: nothing to submit (all cached or failed for good).")
    return notes


def jobs_table(
    title: str, entries: list[LedgerEntry], service: dict[str, JobStatus] | None = None
) -> Table:
    """Ledger rows, one per job; with ``service`` (job name -> what Vertex AI says now),
    a state the ledger has not caught up with is shown beside the ledger's."""
    table = Table(title=title, title_justify="left")
    numbers = ("requests", "succeeded", "failed", "tokens", "cost")
    for name in ("job", "model", "state", *numbers, "submitted", "ended", "merged"):
        table.add_column(name, justify="right" if name in numbers else "left")
    for entry in entries:
        status = (service or {}).get(entry.job_name)
        state = entry.state if status is None or status.state == entry.state else (
            f"{status.state} (ledger: {entry.state})"
        )
        succeeded = entry.succeeded_count if status is None else max(
            status.succeeded, entry.succeeded_count or 0)
        failed = entry.failed_count if status is None else max(
            status.failed, entry.failed_count or 0)
        table.add_row(
            entry.job_id or _short(entry.job_name),
            entry.model_name,
            state,
            f"{entry.request_count:,}",
            "-" if succeeded is None else f"{succeeded:,}",
            "-" if failed is None else f"{failed:,}",
            "-" if entry.total_tokens is None else f"{entry.total_tokens:,}",
            _money(entry.actual_cost_usd),
            f"{entry.submitted_at:%Y-%m-%d %H:%M:%S}" if entry.submitted_at else "-",
            f"{entry.ended_at:%H:%M:%S}" if entry.ended_at else "-",
            "yes" if entry.merged_at else "no",
        )
    return table


# --------------------------------------------------------------------------- --json
#
# One JSON document on stdout per command, for orchestrators (the human output goes to
# stderr then): docs/cli.md describes the fields.


def _plain(value: Any) -> Any:
    """``value`` as JSON can hold it: dataclasses as objects, datetimes in ISO 8601."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def job_document(entry: LedgerEntry, status: JobStatus | None = None) -> dict[str, Any]:
    """One job: its ledger row, with what the service says now when known."""
    document = _plain(entry)
    if status is not None:
        document.update(state=status.state, succeeded_count=status.succeeded,
                        failed_count=status.failed, error=status.error or entry.error)
    return document


def build_document(command: str, exit_code: ExitCode, summaries: list[ModelSummary],
                   errors: list[str], jobs: list[LedgerEntry], *,
                   exit_reason: str | None = None, message: str | None = None
                   ) -> dict[str, Any]:
    """`build --json` / `run --json`, whatever ended the build: ``exit_reason`` says
    more than the code when it was stopped (``dbt_failed``, ``config_error``...) and
    ``message`` why; ``summaries`` are the batch models that ran before."""
    return {
        "command": command,
        "exit_code": int(exit_code),
        "exit_reason": exit_reason or exit_code.reason,
        "message": message,
        "models": [
            {**_plain(summary), "estimated_cost_usd": summary.estimated_cost_usd,
             "actual_cost_usd": summary.cost_usd}
            for summary in summaries
        ],
        "jobs": [job_document(entry) for entry in jobs],
        "errors": errors,
    }


def plan_document(plans: list[ModelPlan]) -> dict[str, Any]:
    """`plan --json`."""
    return {
        "command": "plan",
        "models": [
            {**_plain(item), "model": item.model.name, "unique_id": item.model.unique_id,
             "config": item.model.config.model_dump(mode="json")}
            for item in plans
        ],
    }


def jobs_document(command: str, exit_code: ExitCode, jobs: list[LedgerEntry],
                  service: dict[str, JobStatus] | None = None,
                  recent: list[LedgerEntry] | None = None, *,
                  exit_reason: str | None = None, message: str | None = None
                  ) -> dict[str, Any]:
    """`status --json` (live and recent jobs) and `wait --json` (the jobs waited on)."""
    document = {
        "command": command,
        "exit_code": int(exit_code),
        "exit_reason": exit_reason or exit_code.reason,
        "message": message,
        "jobs": [job_document(entry, (service or {}).get(entry.job_name)) for entry in jobs],
    }
    if recent is not None:
        document["recent_jobs"] = [job_document(entry) for entry in recent]
    return document


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=False, default=str)
