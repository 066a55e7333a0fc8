"""``GeminiBatchBuildOperator``: `gemini-batch build` as a deferrable Airflow task.

In the worker it runs the submit step in this process (``gemini_batch.build.stages.build`` with
``wait=False``, what `gemini-batch build --no-wait` does): dbt stages, then the pending
requests of the first batch models submitted (ledger first) and every ended job merged.
While jobs run it defers to ``GeminiBatchJobTrigger`` (the worker slot is free), then
resumes in ``execute_complete`` and runs the same step again, which merges, submits a
retry round (and defers again) or goes on downstream. The ledger carries the build from
one step to the next, so a task killed anywhere resumes without sending anything twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

try:  # Airflow 3.1+: the Task SDK's own
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 3.0
    from airflow.exceptions import AirflowException, AirflowFailException

from gemini_batch.airflow.triggers import GeminiBatchJobTrigger
from gemini_batch.clients.endpoints import VERTEX_ENDPOINT_ENV
from gemini_batch.clients.polling import Backoff
from gemini_batch.errors import ConfigError, GeminiBatchError
from gemini_batch.exit_codes import ExitCode

if TYPE_CHECKING:
    from gemini_batch.build.dbt_options import DbtOptions
    from gemini_batch.build.stages import BuildResult
    from gemini_batch.build.workspace import Workspace
    from gemini_batch.rules.config import BatchModel

Selection = str | Sequence[str]


class GeminiBatchBuildOperator(BaseOperator):
    """`gemini-batch build` (or `run`) of a dbt project, deferring while the Vertex AI
    batch jobs run.

    The arguments are the CLI's: ``project_dir``, ``profiles_dir``, ``target``,
    ``profile``, ``select`` / ``exclude`` (a string as on the command line, or a list),
    ``selector``, ``vars`` (a mapping or a YAML string), ``full_refresh``, ``threads``,
    ``dbt_args`` (passed to dbt as they are). ``select``, ``exclude``, ``selector``,
    ``vars`` and ``target`` are templated.

    Outcome: every request answered, the task succeeds and returns the `build --json`
    document (XCom) with ``deferrals``, the number of times it deferred. Rows failed
    for good (exit 3) fail the task without retries (a retry would send nothing new;
    a job that ended without answers fails it with retries, since its requests stay
    pending); ``fail_on_failed_rows=False`` accepts failed rows (default: each model's
    ``fail_on_failed_rows`` config, true unless set). Any other error fails the task
    with gemini-batch's message.

    ``poll_interval`` / ``max_poll_interval``: the trigger's polls of the jobs (seconds,
    growing). ``cancel_on_kill``: a killed task cancels the build's jobs; by default
    they keep running and the next run of the task collects them from the ledger.
    """

    template_fields: Sequence[str] = ("select", "exclude", "selector", "vars", "target")
    template_fields_renderers = {"vars": "json"}
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        project_dir: str | os.PathLike[str],
        profiles_dir: str | os.PathLike[str] | None = None,
        target: str | None = None,
        profile: str | None = None,
        select: Selection = (),
        exclude: Selection = (),
        selector: str | None = None,
        vars: Mapping[str, Any] | str | None = None,
        command: Literal["build", "run"] = "build",
        full_refresh: bool = False,
        threads: int | None = None,
        dbt_args: Sequence[str] = (),
        fail_on_failed_rows: bool | None = None,
        poll_interval: float = 30.0,
        max_poll_interval: float = 600.0,
        cancel_on_kill: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if command not in ("build", "run"):
            raise ConfigError(f"command must be 'build' or 'run', not {command!r}")
        if threads is not None and threads < 1:
            raise ConfigError(f"threads must be at least 1, not {threads}")
        Backoff(poll_interval, max_poll_interval)  # refuses impossible intervals at parse
        self.project_dir = os.fspath(project_dir)
        self.profiles_dir = os.fspath(profiles_dir) if profiles_dir is not None else None
        self.target = target
        self.profile = profile
        self.select = select
        self.exclude = exclude
        self.selector = selector
        self.vars = vars
        self.command = command
        self.full_refresh = full_refresh
        self.threads = threads
        self.dbt_args = tuple(dbt_args)
        self.fail_on_failed_rows = fail_on_failed_rows
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)
        self.cancel_on_kill = cancel_on_kill
        # Set while a build step runs in this process (for on_kill).
        self._running: tuple[Workspace, Sequence[BatchModel]] | None = None

    # -- the steps -------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        return self._step(deferrals=0)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        """Back from the trigger: the jobs ended, or one is queued past its model's
        max_queue_hours (this step's build cancels it), or one could not be read."""
        if event.get("status") == "queue_deadline":
            self.log.info("%s: a build step cancels it and sends its requests again",
                          event.get("message"))
        elif event.get("status") != "ended":
            raise AirflowException(event.get("message") or f"trigger failed: {event!r}")
        return self._step(deferrals=int(event.get("deferral", 1)),
                          past_deadline=event.get("past_deadline") or ())

    def _step(self, *, deferrals: int, past_deadline: Sequence[str] = ()) -> dict[str, Any]:
        """One no-wait build; defers while jobs are in flight, else the outcome.
        ``past_deadline``: jobs the trigger found queued past their deadline, which this
        build was to cancel: not watched for it again (a cancel the service refused
        would bring the trigger straight back)."""
        result = self._build()
        document = self._document(result, deferrals)
        if result.exit_code == ExitCode.IN_FLIGHT:
            in_flight = [name for s in result.summaries for name in s.in_flight_jobs]
            deadlines = {name: s.max_queue_hours for s in result.summaries
                         if s.max_queue_hours is not None
                         for name in s.in_flight_jobs if name not in past_deadline}
            self.log.info(
                "%d Vertex AI job(s) in flight; deferring until they end (deferral %d). "
                "Nothing is lost if this task is killed: the next run collects them.",
                len(in_flight), deferrals + 1,
            )
            self.defer(
                trigger=GeminiBatchJobTrigger(
                    job_names=in_flight,
                    endpoint=os.environ.get(VERTEX_ENDPOINT_ENV),
                    poll_interval=self.poll_interval,
                    max_poll_interval=self.max_poll_interval,
                    cancel_on_kill=self.cancel_on_kill,
                    deferral=deferrals + 1,
                    queue_deadlines=deadlines,
                ),
                method_name="execute_complete",
            )
        if result.exit_code == ExitCode.OK:
            return document
        if result.exit_code == ExitCode.FAILED_ROWS:
            if any(summary.failed_jobs for summary in result.summaries):
                # Their requests stay pending: a retry of the task submits them again.
                raise AirflowException(_failed_rows_message(result))
            raise AirflowFailException(_failed_rows_message(result))
        raise AirflowException("; ".join(result.errors) or
                               f"gemini-batch {self.command} exited {int(result.exit_code)}")

    def _build(self) -> BuildResult:
        from rich.console import Console

        from gemini_batch.build.context import BatchSettings
        from gemini_batch.build.stages import build
        from gemini_batch.display import make_reporter, print_summary
        from gemini_batch.errors import service_errors

        console = Console(highlight=False, soft_wrap=True)
        settings = BatchSettings(fail_on_failed_rows=self.fail_on_failed_rows, wait=False)
        try:
            with service_errors():
                result = build(
                    self.dbt_options(), command=self.command,
                    reporter_factory=lambda: make_reporter(console, plain=True),
                    settings=settings, on_locked=self._locked,
                )
        except GeminiBatchError as exc:
            raise AirflowException(str(exc)) from exc
        finally:
            self._running = None
        print_summary(console, result.summaries)
        return result

    def _locked(self, workspace: Workspace, models: Sequence[BatchModel]) -> None:
        self._running = (workspace, models)

    def dbt_options(self) -> DbtOptions:
        """The dbt arguments of the build, as `gemini-batch build` would get them."""
        from gemini_batch.build.dbt_options import DbtOptions, run_flags, split_selection

        extra = run_flags(self.dbt_args, full_refresh=self.full_refresh, threads=self.threads)
        return DbtOptions(
            project_dir=self.project_dir,
            profiles_dir=self.profiles_dir,
            target=self.target or None,
            profile=self.profile,
            vars=_vars_text(self.vars),
            select=split_selection(_as_tuple(self.select)),
            exclude=split_selection(_as_tuple(self.exclude)),
            selector=self.selector or None,
            extra=extra,
        )

    def _document(self, result: BuildResult, deferrals: int) -> dict[str, Any]:
        from gemini_batch.display import build_document, dumps

        document = build_document(self.command, result.exit_code, result.summaries,
                                  result.errors, result.jobs)
        # Through JSON, so XCom gets plain values (times as text).
        return {**json.loads(dumps(document)), "deferrals": deferrals,
                "project_dir": str(Path(self.project_dir))}

    # -- killed ----------------------------------------------------------------------

    def on_kill(self) -> None:
        """Killed while a build step runs: the jobs keep running and the ledger keeps
        them, so the next run of the task resumes them; ``cancel_on_kill=True`` cancels
        the live jobs of the build's batch models instead. (Killed while deferred, the
        trigger does the same.)"""
        running = self._running
        if running is None:
            return
        if not self.cancel_on_kill:
            self.log.info("Killed: the Vertex AI jobs keep running; the next run of this "
                          "task collects them (`gemini-batch cancel` stops them).")
            return
        from gemini_batch.build.ledger_commands import cancel_jobs

        workspace, models = running
        live = [entry for model in models for entry in workspace.ledger.live_jobs(model.unique_id)
                if not entry.is_terminal]
        for entry, status in cancel_jobs(workspace, live):
            self.log.info("cancelled %s: %s", entry.job_id or entry.job_name, status.state)


def _as_tuple(selection: Selection | None) -> tuple[str, ...]:
    if not selection:
        return ()
    if isinstance(selection, str):
        return (selection,)
    return tuple(str(item) for item in selection)


def _vars_text(value: Mapping[str, Any] | str | None) -> str | None:
    """dbt's --vars text: a mapping as JSON (which YAML reads), a string as it is."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, str):
        return value
    if not isinstance(value, Mapping):
        raise ConfigError(f"vars must be a mapping or a YAML string, not {type(value).__name__}")
    return json.dumps(dict(value), default=str)


def _failed_rows_message(result: BuildResult) -> str:
    parts = []
    for summary in result.summaries:
        if summary.failed_jobs:
            parts.append(f"{summary.model}: job(s) ended without answers: "
                         + "; ".join(summary.failed_jobs)
                         + " (their requests stay pending: a retry of the task submits "
                         "them again)")
        elif summary.canary_stopped:
            parts.append(summary.canary_stopped)
        elif summary.failed:
            reasons = ", ".join(f"{reason} ({count})"
                                for reason, count in summary.failure_reasons.items())
            parts.append(f"{summary.model}: {summary.failed:,} request(s) failed for good"
                         + (f": {reasons}" if reasons else ""))
    return ("Rows ended failed (gemini-batch exit 3). " + " | ".join(parts)
            + ". Requests failed for good are not sent again by a retry; fix them, or "
            "pass fail_on_failed_rows=False to accept failed rows.")


__all__ = ["GeminiBatchBuildOperator"]
