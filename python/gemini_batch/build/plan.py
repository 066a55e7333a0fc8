"""`gemini-batch plan`: what a build would submit per batch model, and at what cost.

Reads the tables the last dbt run left (BigQuery, through the workspace) and the
ledger; submits nothing and writes nothing. Where a batch model's tables are missing, or
were built from other SQL than the model's now (the view says what built them: the
materialization writes the fingerprint of the SQL at its head), the requests are read
from the model's compiled SQL instead, in one read-only query (its inputs must exist).
A batch model fed by another's answers waits on them: its plan says how many are still
to come.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field, replace

from gemini_batch.build import canary
from gemini_batch.build.answers_loop import sample_count
from gemini_batch.build.dbt_options import DbtOptions
from gemini_batch.build.dbt_project import DbtProject
from gemini_batch.build.estimate import estimate as estimate_cost
from gemini_batch.build.workspace import Workspace
from gemini_batch.clients.bigquery import quote_table
from gemini_batch.errors import ConfigError, GeminiBatchError
from gemini_batch.routes.choice import planned_route
from gemini_batch.rules import pricing, processing
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.reuse import AnswerSources, deferred_dataset, sample_size, source_datasets
from gemini_batch.state.warehouse import RequestCounts

# What the materialization writes in the model's view (gemini_batch.sql): a CTE the
# view does not read, which survives the view's SQL being parsed and written again. (The
# local BigQuery's view_definition drops the quotes of string literals.)
_BUILT_FROM = re.compile(
    r"gemini_batch_built_from\s+AS\s*\(\s*SELECT\s+'?([0-9a-f]{32})'?", re.IGNORECASE)


def fingerprint(compiled_sql: str, gemini_model: str) -> str:
    """What a batch model's tables are built from: the MD5 of its compiled SQL and its
    Gemini model, as the materialization computes it (_gemini_batch_fingerprint)."""
    return hashlib.md5(f"{compiled_sql}\n{gemini_model}".encode()).hexdigest()


@dataclass(frozen=True)
class ModelPlan:
    """What `gemini-batch build` would submit for one batch model, as of its last dbt run."""

    model: BatchModel
    built: bool  # <model>__requests exists
    counts: RequestCounts | None = None
    shards: int = 0
    estimate: pricing.CostEstimate | None = None
    over_budget: str | None = None  # why the budget cap would refuse the build
    live_jobs: int = 0
    # Why the service would refuse the model's jobs (not served there, a typo): the
    # build refuses it before creating any job.
    model_problem: str | None = None
    failure_reasons: dict[str, int] = field(default_factory=dict)  # failed for good
    canary: str | None = None  # the canary the build sends first, when it does
    # Why the figures come from the model's SQL rather than its tables (not built, or
    # built from other SQL); None: from its tables.
    from_sql: str | None = None
    # Inputs of the model not built yet (no figures then): build them first.
    missing_inputs: list[str] = field(default_factory=list)
    # How `build` answers its pending requests (routes/choice.py planned_route):
    # ai_generate, batch, or ai_generate+batch; the estimate is of that route.
    route: str = "batch"
    # Batch models whose answers it reads -> their requests without an answer yet
    # (None: not built yet); while any has some, its own requests are not final.
    waits_on: dict[str, int | None] = field(default_factory=dict)
    # --sample N (var gemini_batch_sample): the estimate is of the sample's requests.
    sample: int | None = None
    sampled: int | None = None  # pending requests in the sample
    # Answers sources (var gemini_batch_answers_from): source table -> pending requests
    # it would fill, and what they would have cost.
    reusable: dict[str, int] = field(default_factory=dict)
    reuse_saves_usd: float | None = None
    reuse_warnings: list[str] = field(default_factory=list)  # sources that could not be read

    @property
    def unanswered(self) -> int | None:
        """Requests that have no answer yet and may get one (None: not known)."""
        return None if self.counts is None else self.counts.pending + self.counts.in_flight


def plan(options: DbtOptions, *, command: str = "build") -> list[ModelPlan]:
    """Per selected batch model: cached, pending, failed, shards, tokens and cost."""
    project = DbtProject.parsed(options)
    batch_ids = [uid for uid in project.select(command) if project.is_batch_model(uid)]
    if not batch_ids:
        return []
    workspace = Workspace.open(project)
    upstream = {uid: project.upstream_batch_models(uid) for uid in batch_ids}
    involved = list(dict.fromkeys(
        [u for uid in batch_ids for u in upstream[uid]] + batch_ids))
    compiled = project.compile(involved)
    plans: dict[str, ModelPlan] = {}
    for uid in involved:
        plans[uid] = _plan_of(project, workspace, uid, compiled[uid], options.deferred_to)
    chosen = []
    for uid in batch_ids:
        waits = {project.node(u).name: plans[u].unanswered for u in upstream[uid]}
        chosen.append(_with_waits(plans[uid], {
            name: count for name, count in waits.items() if count is None or count > 0}))
    return chosen


def _with_waits(item: ModelPlan, waits: dict[str, int | None]) -> ModelPlan:
    return replace(item, waits_on=waits) if waits else item


def _plan_of(project: DbtProject, ws: Workspace, unique_id: str, compiled_sql: str,
             defer_state: str | None) -> ModelPlan:
    """From the model's tables when they were built from its SQL as it is now; else
    from its SQL (when its inputs exist)."""
    model = project.batch_model(unique_id)
    built = ws.bq.table_exists(model.requests_table)
    wanted = fingerprint(compiled_sql, model.config.gemini_model)
    if built and _built_from(ws, model) == wanted:
        return model_plan(ws, model, defer_state=defer_state)
    reason = ("its SQL changed since its tables were built" if built
              else "its tables are not built yet")
    missing = [
        relation for relation in (project.relation(uid) for uid in project.inputs(unique_id))
        if relation is not None and not ws.bq.table_exists(relation)
    ]
    if missing:
        return ModelPlan(model=model, built=built, from_sql=reason, missing_inputs=missing)
    checks = f"{model.view}__checks"
    arguments = [json.dumps(compiled_sql, ensure_ascii=False),
                 json.dumps(model.config.gemini_model)]
    if ws.bq.table_exists(checks):  # the check results kept: reused, as a build does
        arguments.append(json.dumps(quote_table(checks)))
    planned = project.render(
        "{{ gemini_batch._gemini_batch_planned_requests_sql(" + ", ".join(arguments) + ") }}")
    return model_plan(ws, model, planned=planned, from_sql=reason, built=built,
                      defer_state=defer_state)


def _built_from(ws: Workspace, model: BatchModel) -> str | None:
    """The fingerprint of the SQL the model's tables were built from (in its view)."""
    views = quote_table(f"{model.project}.{model.dataset}.INFORMATION_SCHEMA").replace(
        "`INFORMATION_SCHEMA`", "INFORMATION_SCHEMA.VIEWS")
    rows = ws.bq.query(f"SELECT view_definition FROM {views} WHERE table_name = @name",
                       {"name": model.name})
    found = _BUILT_FROM.search(str(rows[0]["view_definition"] or "")) if rows else None
    return found.group(1) if found else None


def model_plan(workspace: Workspace, model: BatchModel, *, planned: str | None = None,
               from_sql: str | None = None, built: bool = True,
               defer_state: str | None = None) -> ModelPlan:
    """The plan of one batch model (no ledger yet: nothing is in flight); ``planned``:
    a SELECT of its requests as a build would make them, in place of its table;
    ``defer_state``: dbt's --defer state directory (answers are read there too)."""
    ws = workspace
    sample = sample_size(ws.dbt_vars)
    if planned is None and not ws.bq.table_exists(model.requests_table):
        return ModelPlan(model=model, built=False)
    ledger = ws.ledger if ws.ledger.exists() else None
    live_jobs = ledger.live_jobs(model.unique_id) if ledger else []
    live_shards = ledger.live_shard_tables(model.unique_id, live_jobs) if ledger else []
    counts = ws.warehouse.counts(model, live_shards, planned=planned)
    try:
        location = model.job_location(ws.bq.dataset_location(model.project, model.dataset))
        model_problem = pricing.model_problem(model, location, ws.prices)
    except ConfigError as exc:  # a multi-region dataset, a location that is not its own
        model_problem = str(exc)
    observed = (ledger.observed_tokens(model.config.gemini_model, model.unique_id)
                if ledger else None)
    estimate = estimate_cost(ws.warehouse, model, live_shards=live_shards, prices=ws.prices,
                             observed=observed, sample=sample, planned=planned)
    sampled = None if sample is None else sample_count(
        ws, model, live_shards, sample, planned)
    reusable: dict[str, int] = {}
    warnings: list[str] = []
    saves = None
    datasets = source_datasets(ws.dbt_vars, model, deferred_dataset(defer_state, model.unique_id))
    if datasets and counts.pending:
        pending, params = ws.warehouse.pending_query(model, live_shards, planned=planned)
        reusable = AnswerSources(ws.bq, warnings.append).available(model, datasets, pending, params)
        if reusable:
            every = estimate if sample is None else estimate_cost(
                ws.warehouse, model, live_shards=live_shards, prices=ws.prices,
                observed=observed, planned=planned)
            if every.usd is not None:
                saves = every.usd * sum(reusable.values()) / counts.pending
    route = planned_route(model.config, counts.pending)
    if route != "batch" and counts.pending:
        # AI.GENERATE adds BigQuery ML's data processing of what it sends (at most
        # ai_generate_max_rows; the rest of ai_generate+batch goes by batch job).
        sent = min(counts.pending, model.config.ai_generate_max_rows) / counts.pending
        request_bytes = ws.warehouse.pending_request_bytes(model, live_shards, planned=planned)
        estimate = processing.with_ai_generate_processing(
            estimate, round(request_bytes * sent), ws.dbt_vars)
    try:
        pricing.check_budget(model, estimate)
        over_budget = None
    except GeminiBatchError as exc:
        over_budget = str(exc)
    canary_rows = canary.canary_size(counts.pending, model.config)
    return ModelPlan(
        model=model,
        built=built,
        from_sql=from_sql,
        canary=(f"a canary of {canary_rows:,} requests goes first ({counts.pending:,} pending > "
                f"canary_min_rows {model.config.canary_min_rows:,}); the rest is sent only "
                f"if at most {model.config.canary_max_failed_share:.0%} of it fails for good "
                "or comes back empty (a canary already answered decides instead)"
                if canary_rows else None),
        counts=counts,
        shards=math.ceil(_by_batch(route, counts.pending if sampled is None else sampled, model)
                         / model.config.shard_size),
        estimate=estimate,
        route=route,
        over_budget=over_budget,
        live_jobs=len(live_jobs),
        model_problem=model_problem,
        failure_reasons=(ws.warehouse.failure_reasons(model)
                         if counts.failed and planned is None else {}),
        sample=sample,
        sampled=sampled,
        reusable=reusable,
        reuse_saves_usd=saves,
        reuse_warnings=warnings,
    )


def _by_batch(route: str, pending: int, model: BatchModel) -> int:
    """Of ``pending``, the requests batch jobs send on ``route``."""
    if route == "batch":
        return pending
    return 0 if route == "ai_generate" else pending - model.config.ai_generate_max_rows


__all__ = ["ModelPlan", "fingerprint", "model_plan", "plan"]
