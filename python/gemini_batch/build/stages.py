"""`gemini-batch build|run`: dbt in stages, the batch models' jobs in between.

Orchestration only: parse and cut the selection into stages (``dbt_project``), lock the
batch models (``ledger``), run each stage with dbt, then the jobs of its batch models
side by side (``model_run``, one thread per model), and decide the exit code. A batch
model whose request tests failed in its stage gets no job, and what depends on it is
left out of the later stages (``request_tests``). The closing counts of a stage's batch
models run beside the next stage. A lock keeper pushes the locks' expiry forward while
dbt stages and jobs run for hours.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from gemini_batch.build import request_tests
from gemini_batch.build.context import BatchContext, BatchSettings
from gemini_batch.build.dbt_options import DbtOptions
from gemini_batch.build.dbt_project import DbtProject, Stage
from gemini_batch.build.model_run import ModelRun
from gemini_batch.build.summary import INTERRUPTED_NOTE, ModelSummary, Reporter
from gemini_batch.build.workspace import Workspace
from gemini_batch.errors import BuildInterrupted, GeminiBatchError, service_errors
from gemini_batch.exit_codes import ExitCode
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.ledger import LOCK_TOKEN_ENV, LedgerEntry, LockOwner

# How often a waiting build pushes its locks' expiry forward.
LOCK_REFRESH_SECONDS = 120.0


@dataclass
class BuildResult:
    summaries: list[ModelSummary]
    errors: list[str]
    exit_code: ExitCode
    jobs: list[LedgerEntry] = field(default_factory=list)  # the ledger rows it handled
    # What ended the build, in a word (`exit_reason` of --json): the exit code's unless a
    # failure says more (dbt_failed, config_error, ...: GeminiBatchError.reason).
    reason: str | None = None

    @property
    def exit_reason(self) -> str:
        return self.reason or self.exit_code.reason

    @classmethod
    def stopped(cls, stop: BaseException, summaries: Sequence[ModelSummary] = (),
                jobs: Sequence[LedgerEntry] = ()) -> BuildResult:
        """The build ended by ``stop`` (Ctrl-C, or an error that is not one model's),
        after ``summaries`` ran."""
        if isinstance(stop, KeyboardInterrupt | BuildInterrupted):
            errors = [f"{s.model}: {s.error}" for s in summaries
                      if s.error and s.error != INTERRUPTED_NOTE]
            return cls(list(summaries), errors, ExitCode.INTERRUPTED, list(jobs), "interrupted")
        errors = [f"{s.model}: {s.error}" for s in summaries if s.error]
        return cls(list(summaries), [*errors, str(stop) or type(stop).__name__],
                   ExitCode.ERROR, list(jobs), getattr(stop, "reason", "error"))


def run_batch_models(ctx: BatchContext, runs: Sequence[ModelRun]) -> None:
    """Jobs of several batch models in flight together (one thread per model). Each
    run's closing counts are left to its ``report()``. Ctrl-C stops every run where it
    is safe to (each one's summary says what it did) and goes on up."""
    if not runs:
        return
    with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="batch") as pool:
        futures = [pool.submit(run.run) for run in runs]
        try:
            while not all(f.done() for f in futures):
                time.sleep(0.1)
        except KeyboardInterrupt:
            ctx.stop.set()
            raise
        for future in futures:
            future.result()


def _lock_all(ctx: BatchContext, models: Sequence[BatchModel]) -> list[BatchModel]:
    locked: list[BatchModel] = []
    try:
        for model in models:
            ctx.workspace.ledger.lock(model, ctx.owner)
            locked.append(model)
    except BaseException:
        _unlock_all(ctx, locked)
        raise
    return locked


def _unlock_all(ctx: BatchContext, models: Sequence[BatchModel]) -> None:
    for model in models:
        # The lock expires on its own: a failed unlock must not hide the real error.
        with contextlib.suppress(Exception):
            ctx.workspace.ledger.unlock(model, ctx.owner)


class _LockKeeper(threading.Thread):
    """Pushes the expiry of our locks forward while dbt stages and jobs run for hours."""

    def __init__(self, ctx: BatchContext, models: Sequence[BatchModel]) -> None:
        super().__init__(name="gemini-batch-locks", daemon=True)
        self.ctx = ctx
        self.models = list(models)
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(LOCK_REFRESH_SECONDS):
            for model in self.models:
                # A missed refresh is retried; the TTL covers several.
                with contextlib.suppress(Exception):
                    self.ctx.workspace.ledger.refresh_lock(model, self.ctx.owner)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def _exit_code(summaries: Sequence[ModelSummary], settings: BatchSettings,
               configs: dict[str, bool]) -> ExitCode:
    for summary in summaries:
        if summary.error:
            return ExitCode.ERROR
    if any(summary.in_flight_jobs for summary in summaries):
        return ExitCode.IN_FLIGHT  # rows may still be answered: not a failure yet
    for summary in summaries:
        fail_on_rows = settings.fail_on_failed_rows
        if fail_on_rows is None:
            fail_on_rows = configs.get(summary.model, True)
        if summary.failed_jobs or summary.canary_stopped or (fail_on_rows and summary.failed):
            return ExitCode.FAILED_ROWS
    return ExitCode.OK


def build(
    options: DbtOptions,
    *,
    command: str,
    reporter_factory: Callable[[], Reporter],
    settings: BatchSettings | None = None,
    on_locked: Callable[[Workspace, Sequence[BatchModel]], None] | None = None,
) -> BuildResult:
    """`gemini-batch build|run`: stages of dbt with the batch jobs in between.

    ``reporter_factory()`` makes the progress reporter for one level's jobs.
    ``on_locked(workspace, models)`` is called once the build holds the locks of its
    batch models: from then on their live jobs are this build's (the Airflow operator
    cancels them when its task is killed).
    """
    settings = settings or BatchSettings()
    project = DbtProject.parsed(options)
    selected = project.select(command)
    stages = project.stages(selected)
    batch_ids = [uid for stage in stages for uid in stage.batch_ids]
    if not batch_ids:
        project.run_all(command)
        return BuildResult(summaries=[], errors=[], exit_code=ExitCode.OK)

    models = {uid: project.batch_model(uid) for uid in batch_ids}
    workspace = Workspace.open(project)
    workspace.ledger.ensure()
    ctx = BatchContext(
        workspace=workspace,
        owner=LockOwner.current(),
        settings=settings,
        invocation_id=project.invocation_id or "unknown",
        ai_generate=_one_dbt_run_at_a_time(project),
    )
    # Locks first: a second build must not even rebuild <model>__requests under us.
    locked = _lock_all(ctx, list(models.values()))
    keeper = _LockKeeper(ctx, locked)
    keeper.start()
    # dbt runs in this process: a route ai_generate model answers under our locks.
    os.environ[LOCK_TOKEN_ENV] = ctx.owner.token
    summaries: list[ModelSummary] = []
    # The closing counts of each stage's batch models, counted beside the next stage.
    reports = ThreadPoolExecutor(max_workers=4, thread_name_prefix="report")
    reported: list[Future[ModelSummary]] = []
    skipped: set[str] = set()  # downstream of a batch model whose request test failed
    # What ended the build early: a dbt stage that failed, Ctrl-C, an error that is no
    # one model's. The summaries of what ran before it are still the build's result.
    stop: BaseException | None = None
    try:
        with service_errors():
            if on_locked is not None:
                on_locked(workspace, locked)
            for planned in stages:
                stage = planned.without(skipped)
                if not stage.node_ids:
                    continue
                gates = request_tests.outcomes(
                    workspace.bq, models, stage.request_tests,
                    project.run_stage(command, stage, total=len(stages)))
                blocked = _gated(project, stages[stages.index(planned) + 1:], gates, summaries)
                skipped |= project.downstream(blocked)
                go = [uid for uid in stage.batch_ids if uid not in blocked]
                if not go:
                    continue
                stage_ctx = ctx.for_stage(project.invocation_id, reporter_factory())
                runs = [ModelRun(stage_ctx, models[uid]) for uid in go]
                for run in runs:
                    run.summary.warnings.extend(
                        gate.describe() for gate in gates
                        if not gate.blocks and models[gate.model].name == run.summary.model)
                try:
                    run_batch_models(stage_ctx, runs)
                finally:
                    stage_ctx.reporter.close()
                    summaries.extend(run.summary for run in runs)
                    reported.extend(reports.submit(run.report) for run in runs)
                if any(run.summary.error or run.summary.in_flight_jobs for run in runs):
                    break  # downstream models would read answers that are not there (yet)
    except (GeminiBatchError, KeyboardInterrupt, BuildInterrupted) as exc:
        stop = exc
    finally:
        os.environ.pop(LOCK_TOKEN_ENV, None)
        reports.shutdown(wait=True)
        keeper.stop()
        _unlock_all(ctx, locked)
    for future in reported:
        future.result()  # a model's error is in its summary; anything else goes on up
    if stop is not None:
        jobs: list[LedgerEntry] = []
        # The ledger rows are extra: a service that failed the build may fail them too.
        with contextlib.suppress(Exception):
            jobs = _jobs_handled(workspace, list(models.values()), summaries)
        return BuildResult.stopped(stop, summaries, jobs)
    errors = [f"{s.model}: {s.error}" for s in summaries if s.error]
    configs = {m.name: m.config.fail_on_failed_rows for m in models.values()}
    return BuildResult(summaries=summaries, errors=errors,
                       exit_code=_exit_code(summaries, settings, configs),
                       jobs=_jobs_handled(workspace, list(models.values()), summaries))


def _one_dbt_run_at_a_time(project: DbtProject) -> Callable[[BatchModel], str | None]:
    """A model's dbt run from its ModelRun's thread (route auto after a queue cancel:
    build/queue_deadline.py). dbt takes one invocation at a time: while the batch models
    of a stage run, the main thread invokes none, and this lock keeps two models' runs
    apart."""
    lock = threading.Lock()

    def run(model: BatchModel) -> str | None:
        with lock:
            return project.run_model(model.unique_id)

    return run


def _gated(
    project: DbtProject, later_stages: Sequence[Stage],
    gates: Sequence[request_tests.RequestTestOutcome], summaries: list[ModelSummary],
) -> set[str]:
    """The batch models a failed request test stops: each gets a summary that says which
    test failed, on which rows, and what of ``later_stages`` is skipped. Their
    unique_ids."""
    blocked = {gate.model for gate in gates if gate.blocks}
    later = {node for stage in later_stages for node in stage.node_ids}
    for uid in sorted(blocked):
        skipped = sorted(project.node(node).name for node in project.downstream([uid])
                         if node in later)
        failed = "; ".join(gate.describe() for gate in gates if gate.model == uid and gate.blocks)
        error = f"{failed}: nothing was submitted"
        if skipped:
            error += f"; skipped what depends on it: {', '.join(skipped)}"
        summaries.append(ModelSummary(
            model=project.node(uid).name, error=error, skipped=skipped,
            warnings=[gate.describe() for gate in gates if gate.model == uid and not gate.blocks],
        ))
    return blocked


def _jobs_handled(
    workspace: Workspace, models: Sequence[BatchModel], summaries: Sequence[ModelSummary]
) -> list[LedgerEntry]:
    """The ledger rows of the jobs the build submitted, resumed or adopted (as now)."""
    names = {name for summary in summaries for name in summary.job_names}
    if not names:
        return []
    return [
        entry for model in models
        for entry in workspace.ledger.entries(model.unique_id, limit=len(names) + 100)
        if entry.job_name in names
    ]


__all__ = ["BuildResult", "build", "run_batch_models"]
