"""Which route `plan` says a model's pending requests take, what AI.GENERATE adds to
the estimate, and what a build's summary says answered them (no server)."""

from __future__ import annotations

import pytest

from gemini_batch.build.plan import ModelPlan
from gemini_batch.build.summary import ModelSummary
from gemini_batch.display import plan_notes, plan_table, summary_notes
from gemini_batch.routes.choice import planned_route
from gemini_batch.rules import pricing, processing
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.state.ledger import AI_GENERATE_PREFIX, LedgerEntry
from gemini_batch.state.warehouse import RequestCounts


def _config(route: str, rows: int = 3) -> BatchModelConfig:
    return BatchModelConfig(gemini_model="gemini-2.5-flash", route=route,
                            ai_generate_max_rows=rows)


@pytest.mark.parametrize(("route", "pending", "expected"), [
    ("batch", 1, "batch"),
    ("batch", 0, "batch"),
    ("auto", 0, "ai_generate"),
    ("auto", 3, "ai_generate"),  # at most ai_generate_max_rows
    ("auto", 4, "batch"),  # more: all of them by batch job
    ("ai_generate", 3, "ai_generate"),
    ("ai_generate", 4, "ai_generate+batch"),  # the rest after the dbt run, by batch job
])
def test_planned_route(route: str, pending: int, expected: str) -> None:
    assert planned_route(_config(route), pending) == expected


def test_ai_generate_adds_data_processing_to_both_figures() -> None:
    cost = pricing.CostEstimate(gemini_model="gemini-2.5-flash", requests=2, input_tokens=10,
                                thinking_tokens=0, answer_tokens=5, usd=1.0,
                                worst_case_usd=2.0)
    through = processing.with_ai_generate_processing(cost, processing.TIB // 2, {})
    assert through.processing_usd == processing.BIGQUERY_USD_PER_TIB / 2
    assert through.usd == 1.0 + through.processing_usd
    assert through.worst_case_usd == 2.0 + through.processing_usd
    # The var sets the price, as in the materialization.
    priced = processing.with_ai_generate_processing(
        cost, processing.TIB, {processing.BIGQUERY_USD_PER_TIB_VAR: 5})
    assert priced.processing_usd == 5.0
    unknown = processing.with_ai_generate_processing(
        pricing.CostEstimate(gemini_model="x", requests=1, input_tokens=1, thinking_tokens=0,
                             answer_tokens=1, usd=None), processing.TIB, {})
    assert unknown.usd is None and unknown.processing_usd == processing.BIGQUERY_USD_PER_TIB


def test_plan_names_the_route_in_its_table_and_notes() -> None:
    model = BatchModel(unique_id="model.p.q", name="q", project="p", dataset="d",
                       config=_config("auto"))
    counts = RequestCounts(total=2, unique=2, cached=0, pending=2, failed=0, invalid=0,
                           in_flight=0)
    cost = pricing.CostEstimate(gemini_model="gemini-2.5-flash", requests=2, input_tokens=10,
                                thinking_tokens=0, answer_tokens=5, usd=0.5,
                                worst_case_usd=0.6, processing_usd=0.000001)
    item = ModelPlan(model=model, built=True, counts=counts, estimate=cost, route="ai_generate")
    table = plan_table([item])
    assert [column.header for column in table.columns][-1] == "route"
    assert list(table.columns[-1].cells) == ["ai_generate"]
    assert ("q: route auto: 2 requests through AI.GENERATE in the model's dbt run; the "
            "estimate includes $0.000001 of BigQuery ML data processing.") in plan_notes([item])


def _statement(job_name: str, sent: int, answered: int) -> LedgerEntry:
    return LedgerEntry(job_name=AI_GENERATE_PREFIX + job_name, job_id=None,
                       dbt_model="model.p.q", model_relation="p.d.q", invocation_id="inv",
                       shard_table="", output_table="", gemini_model="gemini-2.5-flash",
                       location="us-central1", state="SUCCEEDED", request_count=sent,
                       succeeded_count=answered, failed_count=sent - answered,
                       total_tokens=7 * sent, estimated_cost_usd=0.25, actual_cost_usd=0.5)


def test_the_summary_says_which_route_answered() -> None:
    summary = ModelSummary(model="q")
    # Round 1 sends 3 (one refused with a 429), round 2 sends that one again.
    answered = summary.add_ai_generate([_statement("inv/1-1", 3, 2),
                                        _statement("inv/2-1", 1, 1)])
    assert answered == 3
    assert summary.route == "ai_generate"
    assert (summary.submitted, summary.ai_generate_statements, summary.tokens) == (3, 2, 28)
    assert summary.cost_usd == 1.0 and summary.estimated_cost_usd == 0.5
    assert len(summary.job_names) == 2
    assert "q: route ai_generate: sent by AI.GENERATE in its dbt run (2 AI.GENERATE " \
           "statements)." in summary_notes(summary)
    summary.took("batch")
    assert summary.route == "ai_generate+batch"
    assert ModelSummary(model="q").route is None
    batch_only = ModelSummary(model="q")
    batch_only.took("batch")
    batch_only.took("batch")
    assert batch_only.route == "batch"
