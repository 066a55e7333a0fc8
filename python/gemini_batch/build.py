"""`gemini-batch build|run|plan`: dbt in stages, Vertex AI batch jobs in between.

dbt is driven through its Python API (``dbtRunner``, one invocation at a time): a parse
gives the manifest, ``dbt ls`` resolves the user's selection with dbt's own selector
logic, and the selected nodes are cut into levels. Level L holds the nodes whose inputs
are final once the batch models of lower levels have their answers; after dbt builds
level L, the jobs of the batch models at level L run (in flight together, one thread
per model), then level L+1 follows. Talks to dbt, BigQuery (through ``Warehouse``,
``Ledger`` and ``cost``) and Vertex AI (through ``jobs``).
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from graphlib import TopologicalSorter
from typing import Any

from google.api_core.exceptions import GoogleAPICallError
from google.cloud import bigquery

from gemini_batch import cost
from gemini_batch.config import BatchModel, ledger_dataset
from gemini_batch.errors import ConfigError, GeminiBatchError
from gemini_batch.jobs import (
    TOOL_LABEL,
    Backoff,
    JobStatus,
    VertexJobs,
    job_labels,
    label_value,
    vertex_job_client,
)
from gemini_batch.ledger import Ledger, LedgerEntry, LockOwner
from gemini_batch.progress import ModelSummary, Reporter
from gemini_batch.warehouse import (
    MergeResult,
    RequestCounts,
    Warehouse,
    bigquery_client,
    quote_table,
)

MATERIALIZATION = "gemini_batch"
# Node types `dbt build` executes; `dbt run` executes models only.
BUILD_RESOURCE_TYPES = frozenset({"model", "seed", "snapshot", "test", "unit_test", "function"})
# How often a waiting build pushes its locks' expiry forward.
LOCK_REFRESH_SECONDS = 120.0


class DbtError(GeminiBatchError):
    """A dbt invocation failed; the message is dbt's own."""


# --------------------------------------------------------------------------- dbt side


@dataclass(frozen=True)
class DbtOptions:
    """The dbt arguments a gemini-batch command was given."""

    project_dir: str | None = None
    profiles_dir: str | None = None
    target: str | None = None
    profile: str | None = None
    vars: str | None = None
    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    selector: str | None = None
    state: str | None = None
    # Passed as they are to the `dbt run|build` of each stage (--full-refresh, --threads...).
    extra: tuple[str, ...] = ()

    def common_args(self) -> list[str]:
        """Arguments every invocation gets: where the project is and which target."""
        args: list[str] = []
        for flag, value in (
            ("--project-dir", self.project_dir),
            ("--profiles-dir", self.profiles_dir),
            ("--target", self.target),
            ("--profile", self.profile),
            ("--vars", self.vars),
        ):
            if value is not None:
                args += [flag, value]
        return args

    def selection_args(self) -> list[str]:
        args: list[str] = []
        if self.select:
            args += ["--select", *self.select]
        if self.exclude:
            args += ["--exclude", *self.exclude]
        if self.selector:
            args += ["--selector", self.selector]
        if self.state:
            args += ["--state", self.state]
        return args


@dataclass(frozen=True)
class DbtTarget:
    """BigQuery connection of the dbt target (profiles.yml), as dbt-bigquery reads it."""

    project: str  # execution project: where queries and Vertex jobs run
    data_project: str  # the target's database: where the ledger lives
    dataset: str
    location: str | None
    api_endpoint: str | None
    credentials: Any  # dbt-bigquery's BigQueryCredentials

    def bigquery(self) -> bigquery.Client:
        if self.api_endpoint:
            return bigquery_client(
                self.project, api_endpoint=self.api_endpoint, location=self.location
            )
        # Google Cloud: the same credentials dbt uses (keyfile, oauth, impersonation...).
        from dbt.adapters.bigquery.credentials import create_google_credentials

        return bigquery.Client(
            project=self.project,
            location=self.location,
            credentials=create_google_credentials(self.credentials),
        )

    def google_credentials(self) -> Any:
        if self.api_endpoint:
            return None
        from dbt.adapters.bigquery.credentials import create_google_credentials

        return create_google_credentials(self.credentials)


def _failure_message(result: Any, what: str) -> str:
    """dbt's own words for a failed invocation."""
    if result.exception is not None:
        return f"{what} failed: {result.exception}"
    lines = []
    for node_result in getattr(result.result, "results", None) or []:
        status = str(getattr(node_result, "status", ""))
        if status in ("error", "fail", "runtime error"):
            node = getattr(node_result, "node", None)
            name = getattr(node, "unique_id", "?")
            lines.append(f"  {name}: {status}: {node_result.message}")
    detail = "\n".join(lines) or "  see dbt's messages above"
    return f"{what} failed:\n{detail}"


class DbtProject:
    """A dbt project driven through ``dbtRunner``: parse, select, run stages.

    dbtRunner is not safe for two invocations at once, so only the caller's thread uses
    it, one invocation after another.
    """

    def __init__(self, options: DbtOptions) -> None:
        from dbt.cli.main import dbtRunner

        self.options = options
        self._runner_class = dbtRunner
        self.manifest: Any = None
        self.runner: Any = None
        self.invocation_id: str | None = None

    def _invoke(self, args: list[str], what: str) -> Any:
        result = self.runner.invoke(args)
        if not result.success:
            raise DbtError(_failure_message(result, what))
        from dbt_common.invocation import get_invocation_id

        self.invocation_id = get_invocation_id()
        return result

    def parse(self) -> None:
        """Parse the project (partial parsing applies) and keep the manifest for reuse."""
        self.runner = self._runner_class()
        result = self._invoke(["parse", *self.options.common_args(), "--quiet"], "dbt parse")
        self.manifest = result.result
        # Later invocations reuse it instead of parsing again.
        self.runner = self._runner_class(manifest=self.manifest)

    def target(self) -> DbtTarget:
        """The BigQuery target, through dbt's own profile loader (env_var, vars, --target)."""
        from dbt.config.runtime import load_profile
        from dbt.flags import get_flags

        flags = get_flags()
        profile = load_profile(
            str(flags.PROJECT_DIR or self.options.project_dir or "."),
            dict(flags.VARS or {}),
            flags.PROFILE,
            flags.TARGET,
        )
        credentials = profile.credentials
        if credentials.type != "bigquery":
            raise ConfigError(
                f"Target {profile.target_name!r} of profile {profile.profile_name!r} is "
                f"{credentials.type!r}: gemini-batch needs a BigQuery target."
            )
        return DbtTarget(
            project=credentials.execution_project or credentials.database,
            data_project=credentials.database,
            dataset=credentials.schema,
            location=credentials.location,
            api_endpoint=credentials.api_endpoint,
            credentials=credentials,
        )

    @property
    def vars(self) -> dict[str, Any]:
        from dbt.flags import get_flags

        return dict(get_flags().VARS or {})

    def node(self, unique_id: str) -> Any:
        for collection in ("nodes", "unit_tests", "functions"):
            found = getattr(self.manifest, collection, {}).get(unique_id)
            if found is not None:
                return found
        raise KeyError(unique_id)

    def _graph_ids(self) -> list[str]:
        ids: list[str] = []
        for collection in ("nodes", "unit_tests", "functions"):
            ids.extend(getattr(self.manifest, collection, {}) or {})
        return ids

    def is_batch_model(self, unique_id: str) -> bool:
        node = self.node(unique_id)
        return (
            getattr(node, "resource_type", "") == "model"
            and node.config.materialized == MATERIALIZATION
        )

    def batch_model(self, unique_id: str) -> BatchModel:
        return BatchModel.from_manifest_node(self.node(unique_id).to_dict())

    def all_batch_models(self) -> list[str]:
        return [uid for uid in self.manifest.nodes if self.is_batch_model(uid)]

    def select(self, command: str) -> list[str]:
        """Unique ids the user's selection picks for ``command``, by dbt's own rules."""
        args = ["ls", *self.options.common_args(), *self.options.selection_args(),
                "--output", "json", "--output-keys", "unique_id", "--log-level", "none"]
        if command == "run":
            args += ["--resource-type", "model"]
        result = self._invoke(args, "dbt ls (selection)")
        selected = [json.loads(line)["unique_id"] for line in result.result or []]
        return [uid for uid in selected if self._executable(uid)]

    def _executable(self, unique_id: str) -> bool:
        try:
            node = self.node(unique_id)
        except KeyError:  # sources, exposures, metrics: nothing to run
            return False
        return str(node.resource_type) in BUILD_RESOURCE_TYPES

    def stages(self, selected: Sequence[str]) -> list[Stage]:
        """Cut the selected nodes into levels (see the module docstring)."""
        chosen = set(selected)
        batch = {uid for uid in chosen if self.is_batch_model(uid)}
        graph = {uid: self._parents(uid) for uid in self._graph_ids()}
        level: dict[str, int] = {}
        ready: dict[str, int] = {}  # level after which a node's data is final
        for uid in TopologicalSorter(graph).static_order():
            parents = [p for p in graph.get(uid, ()) if p in ready]
            if uid in graph and str(self.node(uid).resource_type) == "unit_test":
                # dbt runs a unit test before building its model: same stage as the model.
                lvl = max((level[p] for p in parents), default=0)
            else:
                lvl = max((ready[p] for p in parents), default=0)
            level[uid] = lvl
            ready[uid] = lvl + 1 if uid in batch else lvl
        stages: list[Stage] = []
        for lvl in range(max((level[u] for u in chosen), default=-1) + 1):
            nodes = [u for u in selected if level[u] == lvl]
            models = [u for u in nodes if u in batch]
            if nodes:
                stages.append(Stage(level=lvl, node_ids=tuple(nodes), batch_ids=tuple(models)))
        return stages

    def _parents(self, unique_id: str) -> list[str]:
        depends_on = getattr(self.node(unique_id), "depends_on", None)
        return list(getattr(depends_on, "nodes", None) or [])

    def stage_selection(self, node_ids: Iterable[str]) -> list[str]:
        """``--select``/``--exclude`` arguments that pick exactly ``node_ids``.

        dbt has no unique_id selector; a full ``fqn:`` is exact except that it also picks
        nodes whose fqn extends it (a folder named like a model). Those are found with
        dbt's own fqn matcher and excluded.
        """
        from dbt.graph.selector_methods import QualifiedNameSelectorMethod

        wanted = set(node_ids)
        everything = set(self._graph_ids())
        matcher = QualifiedNameSelectorMethod(self.manifest, None, [])
        selectors, picked = [], set()
        for uid in sorted(wanted):
            selector = ".".join(self.node(uid).fqn)
            selectors.append(f"fqn:{selector}")
            picked.update(matcher.search(everything, selector))
        args = ["--select", *selectors]
        extra = sorted(picked - wanted)
        if extra:
            args += ["--exclude", *(f"fqn:{'.'.join(self.node(u).fqn)}" for u in extra)]
        return args

    def run_stage(self, command: str, stage: Stage, total: int) -> None:
        args = [command, *self.options.common_args(), *self.stage_selection(stage.node_ids),
                "--indirect-selection", "empty", *self.options.extra]
        self._invoke(args, f"dbt {command} (stage {stage.level + 1} of {total})")

    def run_all(self, command: str) -> None:
        """No batch model selected: exactly what `dbt <command>` would do."""
        self._invoke(
            [command, *self.options.common_args(), *self.options.selection_args(),
             *self.options.extra],
            f"dbt {command}",
        )


@dataclass(frozen=True)
class Stage:
    level: int
    node_ids: tuple[str, ...]
    batch_ids: tuple[str, ...]  # batch models built in this stage, whose jobs follow it


def _ledger(client: bigquery.Client, target: DbtTarget, dbt_vars: dict[str, Any]) -> Ledger:
    return Ledger(client, target.data_project, ledger_dataset(dbt_vars, target.dataset))


# --------------------------------------------------------------------------- jobs side


def new_run_id() -> str:
    """Short and sortable, e.g. 20261125t063012_ab12: names one round's shard tables."""
    return f"{datetime.now(UTC):%Y%m%dt%H%M%S}_{secrets.token_hex(2)}"


@dataclass(frozen=True)
class BatchSettings:
    """How a build waits and what counts as failure (CLI flags)."""

    poll_initial: float = 1.0
    poll_max: float = 60.0
    # None: each model's fail_on_failed_rows config; True/False: the CLI flag wins.
    fail_on_failed_rows: bool | None = None


@dataclass
class _Tracked:
    """A job this build waits on."""

    entry: LedgerEntry
    backoff: Backoff
    next_poll: float = 0.0
    status: JobStatus | None = None
    rows_back: int = 0  # rows of its output merged (answers and row errors)


class Stopped(GeminiBatchError):
    """The build was interrupted; live jobs stay in the ledger for the next build."""


@dataclass
class BatchContext:
    """What every batch model of a build shares."""

    target: DbtTarget
    client: bigquery.Client
    ledger: Ledger
    warehouse: Warehouse
    owner: LockOwner
    settings: BatchSettings
    dbt_vars: dict[str, Any]
    invocation_id: str
    reporter: Reporter | None = None  # set for each level's jobs
    stop: threading.Event = field(default_factory=threading.Event)
    _vertex: dict[str, VertexJobs] = field(default_factory=dict)
    _vertex_lock: threading.Lock = field(default_factory=threading.Lock)

    def vertex(self, location: str) -> VertexJobs:
        with self._vertex_lock:
            if location not in self._vertex:
                self._vertex[location] = VertexJobs(
                    project=self.target.project,
                    location=location,
                    client=vertex_job_client(
                        location, credentials=self.target.google_credentials()
                    ),
                )
            return self._vertex[location]

    def prices(self) -> cost.PriceTable:
        return cost.PriceTable.from_vars(self.dbt_vars)


def open_context(project: DbtProject, settings: BatchSettings | None = None) -> BatchContext:
    """Clients and the ledger for the dbt target (the ledger is created if missing)."""
    target = project.target()
    client = target.bigquery()
    ledger = _ledger(client, target, project.vars)
    ledger.ensure()
    return BatchContext(
        target=target,
        client=client,
        ledger=ledger,
        warehouse=Warehouse(client, ledger=ledger),
        owner=LockOwner.current(),
        settings=settings or BatchSettings(),
        dbt_vars=project.vars,
        invocation_id=project.invocation_id or "unknown",
    )


class ModelRun:
    """The jobs of one batch model in one build: resume, count, submit rounds, merge."""

    def __init__(self, ctx: BatchContext, model: BatchModel) -> None:
        self.ctx = ctx
        self.model = model
        assert ctx.reporter is not None, "set ctx.reporter before running jobs"
        self.reporter: Reporter = ctx.reporter
        self.summary = ModelSummary(model=model.name)

    # -- helpers -------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.reporter.message(self.model.name, text)

    def _location(self) -> str:
        dataset_location = self.ctx.warehouse.dataset_location(
            self.model.project, self.model.dataset
        )
        return self.model.job_location(dataset_location)

    def _sleep(self, seconds: float) -> None:
        if self.ctx.stop.wait(max(0.0, seconds)):
            raise Stopped("interrupted")

    # -- the flow ------------------------------------------------------------------

    def run(self) -> ModelSummary:
        started = time.monotonic()
        try:
            self._run()
        except Stopped:
            self.summary.error = "interrupted: live jobs stay in the ledger; rerun to resume"
            raise
        except GeminiBatchError as exc:
            self.summary.error = str(exc)
        except GoogleAPICallError as exc:
            self.summary.error = f"{type(exc).__name__} from Google Cloud: {exc.message or exc}"
        finally:
            self.summary.wall_seconds = time.monotonic() - started
        return self.summary

    def _run(self) -> None:
        ctx, model = self.ctx, self.model
        if not ctx.warehouse.table_exists(model.requests_table):
            raise GeminiBatchError(
                f"{model.requests_table} does not exist: dbt did not build {model.unique_id}."
            )
        location = self._location()
        live = ctx.ledger.live_jobs(model.unique_id)
        cached_before: int | None = None
        if live:
            cached_before = ctx.warehouse.counts(model).cached
            resumed = sum(entry.request_count for entry in live)
            self._say(f"resuming {len(live)} job(s) of an earlier build ({resumed:,} requests)")
            self.summary.resumed = resumed
            self._wait([self._track(entry, announce=True) for entry in live], queue=[])

        counts = ctx.warehouse.counts(model)
        if counts.invalid:  # marking scans every request: only when there is one to mark
            invalid = ctx.warehouse.mark_invalid(model)
            examples = "; ".join(f"{rid[:12]}: {reason}" for rid, reason in invalid.examples)
            self._say(f"{counts.invalid:,} invalid requests are not submitted (e.g. {examples})")
            counts = ctx.warehouse.counts(model)
        if counts.pending and self._adopt_orphans(location):
            counts = ctx.warehouse.counts(model)
        if cached_before is None:
            cached_before = counts.cached

        for attempt in range(model.config.max_retries + 1):
            if counts.pending == 0:
                break
            if attempt:
                self._say(f"retry round {attempt}: {counts.pending:,} requests still pending")
            round_ok = self._submit_round(location, counts)
            counts = ctx.warehouse.counts(model)
            if not round_ok:
                break  # a job brought nothing back: another round would fail alike

        self._finish_summary(counts, cached_before)

    def _adopt_orphans(self, location: str) -> bool:
        """Merge jobs of this model the ledger does not know, waiting on live ones.

        A build killed between creating a job and writing its ledger row leaves one; its
        requests are in no live shard of the ledger, so they would be sent again, and
        if it ended, its answers (paid for) are in its output table. Found by the labels
        every job gets and the model's shard table prefix, among the newest jobs.
        """
        ctx, model = self.ctx, self.model
        prefix = f"{model.view}__shard_"
        labelled = [
            job for job in ctx.vertex(location).list(
                labels={"tool": TOOL_LABEL, "dbt_model": label_value(model.name)})
            if (job.input_table or "").startswith(prefix)
        ]
        if not labelled:
            return False
        known = {entry.job_name for entry in ctx.ledger.entries(
            model.unique_id, limit=len(labelled) + 1000)}
        orphans = [
            job for job in labelled if job.name not in known
            and (not job.terminal
                 or bool(job.output_table and ctx.warehouse.table_exists(job.output_table)))
        ]
        adopted = []
        for job in orphans:
            shard = job.input_table or ""
            if ctx.warehouse.table_exists(shard):
                requests = int(ctx.warehouse.query(
                    f"SELECT COUNT(*) AS n FROM {quote_table(shard)}")[0]["n"])
            else:  # the shard is gone: the service's own counts
                requests = job.succeeded + job.failed + job.incomplete
            entry = LedgerEntry(
                job_name=job.name, job_id=job.job_id, dbt_model=model.unique_id,
                model_relation=model.view, invocation_id=job.labels.get("dbt_invocation_id"),
                shard_table=shard, output_table=job.output_table or "",
                gemini_model=model.config.gemini_model, location=location, state=job.state,
                request_count=requests, submitted_at=job.create_time,
            )
            ctx.ledger.record_submitted(entry)
            adopted.append(entry)
            self._say(f"adopting job {job.job_id} ({entry.request_count:,} requests): "
                      "created by a build that died before recording it")
        if adopted:
            self.summary.resumed += sum(entry.request_count for entry in adopted)
            self._wait([self._track(entry, announce=True) for entry in adopted], queue=[])
        return bool(adopted)

    def _finish_summary(self, counts: RequestCounts, cached_before: int) -> None:
        self.summary.requests = counts.unique
        self.summary.cached = cached_before
        self.summary.succeeded = counts.cached - cached_before
        self.summary.failed = counts.failed
        self.summary.invalid = counts.invalid
        self.summary.pending = counts.pending + counts.in_flight

    def _submit_round(self, location: str, counts: RequestCounts) -> bool:
        """One round: shards of the pending requests, jobs, wait, merge. False if a job
        brought no row back (failed before answering, cancelled, expired...)."""
        ctx, model = self.ctx, self.model
        estimate = cost.estimate(ctx.warehouse, model, prices=ctx.prices(), ledger=ctx.ledger)
        cost.check_budget(model, estimate)
        if self.summary.estimated_cost_usd is None:
            self.summary.estimated_cost_usd = estimate.usd
        run_id = new_run_id()
        shards = ctx.warehouse.create_shards(model, run_id)
        if not shards:
            return True
        usd = f", est. ${estimate.usd:,.4f}" if estimate.usd is not None else ""
        self._say(
            f"{sum(s.rows for s in shards):,} requests in {len(shards)} job(s) "
            f"(~{estimate.input_tokens:,} input / ~{estimate.output_tokens:,} output tokens{usd})"
        )
        queue = [
            (shard, (estimate.usd or 0.0) * shard.rows / max(estimate.requests, 1))
            for shard in shards
        ]
        jobs = self._wait([], queue=queue, location=location, run_id=run_id)
        return all(job.rows_back for job in jobs)

    # -- submit and wait -----------------------------------------------------------

    def _submit(self, location: str, run_id: str, shard: Any, estimated_usd: float) -> _Tracked:
        ctx, model = self.ctx, self.model
        output_table = model.output_table(run_id, shard.index)
        status = ctx.vertex(location).submit(
            display_name=shard.table.rsplit(".", 1)[-1],
            gemini_model=model.config.gemini_model,
            input_table=shard.table,
            output_table=output_table,
            labels=job_labels(
                model_name=model.name, invocation_id=ctx.invocation_id,
                extra=model.config.labels,
            ),
        )
        entry = LedgerEntry(
            job_name=status.name,
            job_id=status.job_id,
            dbt_model=model.unique_id,
            model_relation=model.view,
            invocation_id=ctx.invocation_id,
            shard_table=shard.table,
            output_table=output_table,
            gemini_model=model.config.gemini_model,
            location=location,
            state=status.state,
            request_count=shard.rows,
            estimated_cost_usd=estimated_usd,
        )
        try:
            ctx.ledger.record_submitted(entry)
        except Exception:
            # A job the ledger does not know could be paid for twice: take it back.
            ctx.vertex(location).cancel(status.name)
            raise
        self.summary.submitted += shard.rows
        self.summary.jobs += 1
        self.reporter.job_started(model.name, status.name, shard.rows)
        tracked = self._track(entry)
        tracked.status = status
        # The create call just said where the job is: the first poll can wait.
        tracked.next_poll = time.monotonic() + tracked.backoff.next_delay()
        return tracked

    def _track(self, entry: LedgerEntry, *, announce: bool = False) -> _Tracked:
        """Start waiting on a job; ``announce`` one this build did not submit."""
        if announce:
            self.reporter.job_started(self.model.name, entry.job_name, entry.request_count)
        settings = self.ctx.settings
        return _Tracked(entry=entry, backoff=Backoff(settings.poll_initial, settings.poll_max))

    def _wait(
        self,
        active: list[_Tracked],
        *,
        queue: list[tuple[Any, float]],
        location: str | None = None,
        run_id: str | None = None,
    ) -> list[_Tracked]:
        """Submit ``queue`` with at most max_concurrent_jobs in flight; wait until every
        job ended and is merged. Returns every job handled."""
        handled = list(active)
        active = list(active)
        queue = list(queue)
        limit = self.model.config.max_concurrent_jobs
        while active or queue:
            while queue and len(active) < limit:
                shard, usd = queue.pop(0)
                assert location is not None and run_id is not None
                tracked = self._submit(location, run_id, shard, usd)
                active.append(tracked)
                handled.append(tracked)
            due = min(job.next_poll for job in active)
            self._sleep(due - time.monotonic())
            now = time.monotonic()
            for job in [j for j in active if j.next_poll <= now]:
                if self._poll(job):
                    active.remove(job)
        return handled

    def _poll(self, job: _Tracked) -> bool:
        """Poll once; True once the job ended and its output is merged."""
        entry = job.entry
        if entry.is_terminal:  # ended while no build was watching: merge only
            status = JobStatus(
                name=entry.job_name, state=entry.state, error=entry.error,
                succeeded=entry.succeeded_count or 0, failed=entry.failed_count or 0,
            )
        else:
            status = self.ctx.vertex(entry.location).get(entry.job_name)
        changed = job.status is None or (
            status.state, status.succeeded, status.failed
        ) != (job.status.state, job.status.succeeded, job.status.failed)
        job.status = status
        self.reporter.job_update(self.model.name, status)
        if changed and not status.terminal:
            self.ctx.ledger.update(
                entry.job_name, state=status.state,
                succeeded_count=status.succeeded, failed_count=status.failed,
            )
            job.backoff.reset()
        if not status.terminal:
            job.next_poll = time.monotonic() + job.backoff.next_delay()
            return False
        self._merge(job, status)
        return True

    def _merge(self, job: _Tracked, status: JobStatus) -> None:
        """Fold an ended job's output into responses; ledger; drop the job's tables."""
        ctx, model, entry = self.ctx, self.model, job.entry
        ended_at = status.end_time or entry.ended_at or datetime.now(UTC)
        merge: MergeResult | None = None
        if ctx.warehouse.table_exists(entry.output_table):
            # Even a FAILED or EXPIRED job may have answered some rows: they were paid.
            merge = ctx.warehouse.merge_output(
                model, entry.output_table, entry.job_name, shard_table=entry.shard_table
            )
        fields: dict[str, Any] = {"state": status.state, "ended_at": ended_at,
                                  "error": status.error}
        note = status.state
        if merge is not None:
            usd = cost.actual_cost(
                entry.gemini_model, merge.prompt_tokens, merge.candidates_tokens,
                merge.thoughts_tokens, prices=ctx.prices(),
            )
            fields.update(
                succeeded_count=merge.succeeded, failed_count=merge.failed,
                prompt_tokens=merge.prompt_tokens, candidates_tokens=merge.candidates_tokens,
                thoughts_tokens=merge.thoughts_tokens, total_tokens=merge.total_tokens,
                actual_cost_usd=usd,
            )
            self.summary.tokens += merge.total_tokens
            self.summary.cost_usd += usd or 0.0
            note = (f"{status.state}: merged {merge.succeeded:,} answers, "
                    f"{merge.failed:,} failed rows, {merge.unanswered:,} unanswered")
        if merge is not None:
            job.rows_back = merge.succeeded + merge.failed
        if not status.answered:
            reason = status.error or "no error given"
            note = f"{note} ({reason})"
            if not job.rows_back:
                # Nothing came back: its requests stay pending, and the build failed.
                self.summary.failed_jobs.append(
                    f"{status.job_id} ended {status.state} without answers: {reason}"
                )
        fields["merged_at"] = datetime.now(UTC)
        ctx.ledger.update(entry.job_name, **fields)
        job.entry = replace(entry, state=status.state, merged_at=fields["merged_at"])
        if not model.config.keep_job_tables:
            ctx.warehouse.drop_tables([entry.shard_table, entry.output_table])
        self.reporter.job_finished(model.name, status, note)


# --------------------------------------------------------------------------- builds


@dataclass
class BuildResult:
    summaries: list[ModelSummary]
    errors: list[str]
    exit_code: int


# Exit codes (docs/cli.md).
EXIT_OK = 0
EXIT_ERROR = 1  # dbt failed, bad config, budget cap, service refused
EXIT_FAILED_ROWS = 3  # rows ended failed, or a job ended without answers


def run_batch_models(ctx: BatchContext, models: Sequence[BatchModel]) -> list[ModelSummary]:
    """Jobs of several batch models in flight together (one thread per model)."""
    if not models:
        return []
    with ThreadPoolExecutor(max_workers=len(models), thread_name_prefix="batch") as pool:
        futures = [pool.submit(ModelRun(ctx, model).run) for model in models]
        try:
            while not all(f.done() for f in futures):
                time.sleep(0.1)
        except KeyboardInterrupt:
            ctx.stop.set()
            raise
        return [f.result() for f in futures]


def _lock_all(ctx: BatchContext, models: Sequence[BatchModel]) -> list[BatchModel]:
    locked: list[BatchModel] = []
    try:
        for model in models:
            ctx.ledger.lock(model, ctx.owner)
            locked.append(model)
    except BaseException:
        _unlock_all(ctx, locked)
        raise
    return locked


def _unlock_all(ctx: BatchContext, models: Sequence[BatchModel]) -> None:
    for model in models:
        # The lock expires on its own: a failed unlock must not hide the real error.
        with contextlib.suppress(Exception):
            ctx.ledger.unlock(model, ctx.owner)


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
                    self.ctx.ledger.refresh_lock(model, self.ctx.owner)

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=5)


def _exit_code(summaries: Sequence[ModelSummary], settings: BatchSettings,
               configs: dict[str, bool]) -> int:
    for summary in summaries:
        if summary.error:
            return EXIT_ERROR
    for summary in summaries:
        fail_on_rows = settings.fail_on_failed_rows
        if fail_on_rows is None:
            fail_on_rows = configs.get(summary.model, True)
        if summary.failed_jobs or (fail_on_rows and summary.failed):
            return EXIT_FAILED_ROWS
    return EXIT_OK


def build(
    options: DbtOptions,
    *,
    command: str,
    reporter_factory: Any,
    settings: BatchSettings | None = None,
) -> BuildResult:
    """`gemini-batch build|run`: stages of dbt with the batch jobs in between.

    ``reporter_factory()`` makes the progress reporter for one level's jobs.
    """
    settings = settings or BatchSettings()
    project = DbtProject(options)
    project.parse()
    selected = project.select(command)
    stages = project.stages(selected)
    batch_ids = [uid for stage in stages for uid in stage.batch_ids]
    if not batch_ids:
        project.run_all(command)
        return BuildResult(summaries=[], errors=[], exit_code=EXIT_OK)

    models = {uid: project.batch_model(uid) for uid in batch_ids}
    ctx = open_context(project, settings)
    # Locks first: a second build must not even rebuild <model>__requests under us.
    locked = _lock_all(ctx, list(models.values()))
    keeper = _LockKeeper(ctx, locked)
    keeper.start()
    summaries: list[ModelSummary] = []
    errors: list[str] = []
    try:
        for stage in stages:
            project.run_stage(command, stage, total=len(stages))
            if not stage.batch_ids:
                continue
            ctx.invocation_id = project.invocation_id or ctx.invocation_id
            ctx.reporter = reporter_factory()
            try:
                level = run_batch_models(ctx, [models[uid] for uid in stage.batch_ids])
            finally:
                ctx.reporter.close()
            summaries.extend(level)
            errors = [f"{s.model}: {s.error}" for s in level if s.error]
            if errors:
                break  # downstream models would read answers that are not there
    finally:
        keeper.stop()
        _unlock_all(ctx, locked)
    configs = {m.name: m.config.fail_on_failed_rows for m in models.values()}
    return BuildResult(summaries=summaries, errors=errors,
                       exit_code=_exit_code(summaries, settings, configs))


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class ModelPlan:
    """What `gemini-batch build` would submit for one batch model, as of its last dbt run."""

    model: BatchModel
    built: bool  # <model>__requests exists
    counts: RequestCounts | None
    shards: int
    estimate: cost.CostEstimate | None
    over_budget: str | None
    live_jobs: int


def plan(options: DbtOptions, *, command: str = "build") -> list[ModelPlan]:
    """Per selected batch model: cached, pending, failed, shards, tokens and cost.

    Reads the tables the last dbt run left; submits and writes nothing.
    """
    project = DbtProject(options)
    project.parse()
    batch_ids = [uid for uid in project.select(command) if project.is_batch_model(uid)]
    if not batch_ids:
        return []
    target = project.target()
    client = target.bigquery()
    ledger = _ledger(client, target, project.vars)
    ledger_exists = Warehouse(client).table_exists(ledger.table)
    warehouse = Warehouse(client, ledger=ledger if ledger_exists else None)
    prices = cost.PriceTable.from_vars(project.vars)
    plans = []
    for uid in batch_ids:
        model = project.batch_model(uid)
        if not warehouse.table_exists(model.requests_table):
            plans.append(ModelPlan(model, False, None, 0, None, None, 0))
            continue
        counts = warehouse.counts(model)
        estimate = cost.estimate(warehouse, model, prices=prices,
                                 ledger=ledger if ledger_exists else None)
        try:
            cost.check_budget(model, estimate)
            over = None
        except GeminiBatchError as exc:
            over = str(exc)
        live = len(ledger.live_jobs(uid)) if ledger_exists else 0
        plans.append(ModelPlan(
            model=model, built=True, counts=counts,
            shards=math.ceil(counts.pending / model.config.shard_size),
            estimate=estimate, over_budget=over, live_jobs=live,
        ))
    return plans


# --------------------------------------------------------------------------- ledger commands


def open_ledger(options: DbtOptions) -> tuple[DbtProject, DbtTarget, Ledger]:
    """The dbt project (parsed), its target and its ledger, for status/jobs/cancel/reset."""
    project = DbtProject(options)
    project.parse()
    target = project.target()
    client = target.bigquery()
    return project, target, _ledger(client, target, project.vars)


def find_model(project: DbtProject, name: str) -> BatchModel:
    """A batch model by name or unique_id; ConfigError listing the batch models if none."""
    for uid in project.all_batch_models():
        if name in (uid, project.node(uid).name):
            return project.batch_model(uid)
    known = ", ".join(sorted(project.node(u).name for u in project.all_batch_models()))
    raise ConfigError(
        f"No batch model (materialized='gemini_batch') named {name!r} in this project. "
        f"Batch models: {known or 'none'}."
    )
