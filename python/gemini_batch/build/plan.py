"""`gemini-batch plan`: what a build would submit per batch model, and at what cost.

Reads the tables the last dbt run left (BigQuery, through the workspace) and the
ledger; submits nothing and writes nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gemini_batch.build.dbt_project import DbtOptions, DbtProject
from gemini_batch.build.estimate import estimate as estimate_cost
from gemini_batch.build.workspace import Workspace
from gemini_batch.errors import ConfigError, GeminiBatchError
from gemini_batch.rules import pricing
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.reuse import AnswerSources, deferred_dataset, sample_size, source_datasets
from gemini_batch.state.warehouse import RequestCounts


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
    # --sample N (var gemini_batch_sample): the estimate is of the sample's requests.
    sample: int | None = None
    sampled: int | None = None  # pending requests in the sample
    # Answers sources (var gemini_batch_answers_from): source table -> pending requests
    # it would fill, and what they would have cost.
    reusable: dict[str, int] = field(default_factory=dict)
    reuse_saves_usd: float | None = None
    reuse_warnings: list[str] = field(default_factory=list)  # sources that could not be read


def plan(options: DbtOptions, *, command: str = "build") -> list[ModelPlan]:
    """Per selected batch model: cached, pending, failed, shards, tokens and cost."""
    project = DbtProject.parsed(options)
    batch_ids = [uid for uid in project.select(command) if project.is_batch_model(uid)]
    if not batch_ids:
        return []
    workspace = Workspace.open(project)
    deferred = options.state if "--defer" in options.extra else None
    return [model_plan(workspace, project.batch_model(uid), deferred) for uid in batch_ids]


def model_plan(
    workspace: Workspace, model: BatchModel, defer_state: str | None = None
) -> ModelPlan:
    """The plan of one batch model (no ledger yet: nothing is in flight)."""
    ws = workspace
    sample = sample_size(ws.dbt_vars)
    if not ws.bq.table_exists(model.requests_table):
        return ModelPlan(model=model, built=False)
    ledger = ws.ledger if ws.ledger.exists() else None
    live_jobs = ledger.live_jobs(model.unique_id) if ledger else []
    live_shards = ledger.live_shard_tables(model.unique_id, live_jobs) if ledger else []
    counts = ws.warehouse.counts(model, live_shards)
    try:
        location = model.job_location(ws.bq.dataset_location(model.project, model.dataset))
        model_problem = pricing.model_problem(model, location, ws.prices)
    except ConfigError as exc:  # a multi-region dataset, a location that is not its own
        model_problem = str(exc)
    observed = ledger.observed_tokens(model.config.gemini_model) if ledger else None
    estimate = estimate_cost(ws.warehouse, model, live_shards=live_shards, prices=ws.prices,
                             observed=observed, sample=sample)
    sampled = None if sample is None else ws.warehouse.pending_count(model, live_shards, sample)
    reusable: dict[str, int] = {}
    warnings: list[str] = []
    saves = None
    datasets = source_datasets(ws.dbt_vars, model, deferred_dataset(defer_state, model.unique_id))
    if datasets and counts.pending:
        pending, params = ws.warehouse.pending_query(model, live_shards)
        reusable = AnswerSources(ws.bq, warnings.append).available(model, datasets, pending, params)
        if reusable:
            every = estimate if sample is None else estimate_cost(
                ws.warehouse, model, live_shards=live_shards, prices=ws.prices,
                observed=observed)
            if every.usd is not None:
                saves = every.usd * sum(reusable.values()) / counts.pending
    try:
        pricing.check_budget(model, estimate)
        over_budget = None
    except GeminiBatchError as exc:
        over_budget = str(exc)
    return ModelPlan(
        model=model,
        built=True,
        counts=counts,
        shards=math.ceil((counts.pending if sampled is None else sampled)
                         / model.config.shard_size),
        estimate=estimate,
        over_budget=over_budget,
        live_jobs=len(live_jobs),
        model_problem=model_problem,
        failure_reasons=ws.warehouse.failure_reasons(model) if counts.failed else {},
        sample=sample,
        sampled=sampled,
        reusable=reusable,
        reuse_saves_usd=saves,
        reuse_warnings=warnings,
    )


__all__ = ["ModelPlan", "model_plan", "plan"]
