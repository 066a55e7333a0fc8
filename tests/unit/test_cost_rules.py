"""Cost rules without a server: prices and their tiers, thinking budgets in the estimate,
the worst case and the cap, actual cost as the bill reads it, the model check.

The estimate's one BigQuery query is replaced by the rows it returns (one per group of
pending requests that price alike); the query itself runs on the local BigQuery in
tests/stack/commands/test_cost_estimates.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from gemini_batch.build.estimate import estimate
from gemini_batch.errors import BudgetExceededError, ConfigError
from gemini_batch.rules import catalog
from gemini_batch.rules.bill import actual_cost, answered_by, answered_by_note
from gemini_batch.rules.catalog import LONG_CONTEXT_TOKENS, Price
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.rules.pricing import (
    DEFAULT_ANSWER_TOKENS,
    FILE_PART_TOKENS,
    GEMINI_3_FILE_PART_TOKENS,
    UNKNOWN_MAX_OUTPUT_TOKENS,
    CostEstimate,
    PriceTable,
    check_budget,
    file_part_tokens,
    model_problem,
    request_price_row,
)
from gemini_batch.state.warehouse import MergeResult

FLASH = catalog.MODELS["gemini-2.5-flash"]
PRO = catalog.MODELS["gemini-2.5-pro"]


def batch_model(gemini_model: str = "gemini-2.5-flash", **config: Any) -> BatchModel:
    return BatchModel(
        unique_id="model.shop.summaries", name="summaries", project="p", dataset="d",
        config=BatchModelConfig(gemini_model=gemini_model, **config),
    )


def group(
    *, requests: int = 1, input_tokens: int = 1_000, audio_tokens: int = 0,
    budget: int | None = None, max_output: int | None = None, long_context: bool = False,
) -> dict[str, Any]:
    """One row of the estimate's query."""
    return {"requested_budget": budget, "max_output_tokens": max_output,
            "long_context": long_context, "requests": requests,
            "input_tokens": input_tokens, "audio_tokens": audio_tokens}


class FakeWarehouse:
    """Answers the estimate's one query with the given rows, as BigQuery would."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.queries = 0

    def pending_price_groups(self, model: BatchModel, live_shards: Any,
                             pending_snapshot: str | None = None,
                             *, sample: int | None = None,
                             planned: str | None = None) -> list[dict[str, Any]]:
        self.queries += 1
        return self.rows


def estimate_of(rows: list[dict[str, Any]], model: BatchModel | None = None,
                **kwargs: Any) -> CostEstimate:
    warehouse = FakeWarehouse(rows)
    result = estimate(warehouse, model or batch_model(), **kwargs)  # type: ignore[arg-type]
    assert warehouse.queries == 1
    return result


# -- prices ------------------------------------------------------------------------------


def test_prices_come_from_the_catalog_by_longest_name() -> None:
    table = PriceTable()
    assert table.price_for("gemini-2.5-flash") == FLASH.price
    assert table.price_for("gemini-2.5-flash-preview-09-2025") == FLASH.price
    assert table.price_for("gemini-2.5-flash-lite") == catalog.MODELS["gemini-2.5-flash-lite"].price
    assert table.price_for("publishers/google/models/gemini-2.5-pro@001") == PRO.price
    assert table.price_for("gemini-2.0-flash") == catalog.MODELS["gemini-2.0-flash-001"].price
    assert table.price_for("llama-3") is None
    assert catalog.lookup("gemini-2.5-flash-preview-09-2025", extended=True) is FLASH
    assert catalog.lookup("llama-3", extended=True) is None


def test_var_prices_override_fields_and_add_models() -> None:
    table = PriceTable.from_vars({"gemini_batch_prices": {
        "gemini-2.5-flash": {"output": 3.0},  # the other fields stay the catalog's
        "my-tuned-gemini": {"input": 3, "output": 4, "batch_discount": 0},
    }})
    assert table.price_for("gemini-2.5-flash") == Price(
        0.30, 3.0, audio_input=1.00, cached_input=0.03)
    assert table.price_for("my-tuned-gemini").batch_usd(1_000_000, 1_000_000) == 7.0
    assert table.price_for("gemini-2.5-pro") == PRO.price
    assert table.priced_by_var("my-tuned-gemini-v2") and not table.priced_by_var("gemini-2.5-pro")
    assert PriceTable.from_vars({}).prices == PriceTable().prices


@pytest.mark.parametrize(("spec", "message"), [
    ({"x": {"input": 1}}, "'x': output missing"),
    ({"gemini-2.5-flash": {"cache_input": 0.1}}, "unknown field(s) cache_input"),
    ({"x": {"input": 1, "output": 1, "batch_discount": 50}}, "batch_discount of 'x' is a fraction"),
    ({"x": {"input": -1, "output": 1}}, "numbers >= 0"),
    ({"x": {"input": True, "output": 1}}, "numbers >= 0"),
    ({"x": 3}, "the price of 'x' must be"),
])
def test_bad_var_prices_say_what_is_expected(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match="var gemini_batch_prices") as refused:
        PriceTable.from_vars({"gemini_batch_prices": spec})
    assert message in str(refused.value)
    with pytest.raises(ConfigError, match="must map model names"):
        PriceTable.from_vars({"gemini_batch_prices": ["gemini-2.5-flash"]})


# -- actual cost: the bill -------------------------------------------------------------


def usage(**tokens: Any) -> MergeResult:
    counts = {"succeeded": 1, "failed": 0, "unanswered": 0, "prompt_tokens": 0,
              "candidates_tokens": 0, "thoughts_tokens": 0, "total_tokens": 0}
    return MergeResult(**{**counts, **tokens})


def test_actual_cost_is_half_the_online_price_thinking_billed_as_output() -> None:
    # gemini-2.5-flash: $0.30 in, $2.50 out per million.
    spent = usage(prompt_tokens=1_000_000, candidates_tokens=600_000, thoughts_tokens=400_000)
    assert actual_cost("gemini-2.5-flash", spent) == pytest.approx(1.40)
    assert actual_cost("gemini-2.5-flash", usage()) == 0
    assert actual_cost("unknown-model", spent) is None


def test_the_model_that_answered_sets_the_price() -> None:
    # The same model under another name: the requested model's price, no note.
    assert answered_by("gemini-2.0-flash", "gemini-2.0-flash-001@default") is None
    assert answered_by("gemini-2.5-flash", "gemini-2.5-flash-preview-09-2025") is None
    assert answered_by("gemini-2.5-flash", None) is None
    same = usage(prompt_tokens=1_000_000, candidates_tokens=1_000_000,
                 model_version="gemini-2.5-flash@default")
    assert actual_cost("gemini-2.5-flash", same) == pytest.approx((0.30 + 2.50) * 0.5)
    # Another model answered: its rates (2.5 Flash-Lite: $0.10 in, $0.40 out).
    assert answered_by("gemini-2.5-flash", "gemini-2.5-flash-lite@default") == (
        "gemini-2.5-flash-lite")
    lite = usage(prompt_tokens=1_000_000, candidates_tokens=1_000_000,
                 model_version="gemini-2.5-flash-lite")
    assert actual_cost("gemini-2.5-flash", lite) == pytest.approx((0.10 + 0.40) * 0.5)
    assert answered_by_note("gemini-2.5-flash", lite.model_version) == (
        "; answered by gemini-2.5-flash-lite, not gemini-2.5-flash: priced at its rates")
    assert answered_by_note("gemini-2.5-flash", same.model_version) == ""
    # A model version the catalog cannot price leaves the requested model's price.
    assert answered_by("gemini-2.5-flash", "some-tuned-model@1") is None


def test_cached_tokens_bill_at_the_cached_price_without_the_batch_discount() -> None:
    spent = usage(prompt_tokens=1_000_000, cached_tokens=400_000)
    # 600k plain at $0.30 with 50% off, 400k at the cached $0.03 (not halved again).
    assert actual_cost("gemini-2.5-flash", spent) == pytest.approx(0.09 + 0.012)


def test_audio_prompt_tokens_bill_at_the_audio_price() -> None:
    spent = usage(prompt_tokens=1_500_000, audio_prompt_tokens=1_000_000)
    assert actual_cost("gemini-2.5-flash", spent) == pytest.approx((0.15 + 1.00) * 0.5)


def test_long_context_requests_bill_all_their_tokens_at_the_long_rates() -> None:
    # One short request (100k prompt, 10k out) and one long (300k, 10k, 100k cached).
    spent = usage(prompt_tokens=400_000, candidates_tokens=15_000, thoughts_tokens=5_000,
                  cached_tokens=100_000, long_prompt_tokens=300_000, long_output_tokens=10_000,
                  long_cached_tokens=100_000)
    short = (100_000 * 1.25 + 10_000 * 10.00) * 0.5
    long = (200_000 * 2.50 + 10_000 * 15.00) * 0.5 + 100_000 * 0.25  # cached: 10% of $2.50
    assert actual_cost("gemini-2.5-pro", spent) == pytest.approx((short + long) / 1e6)


# -- the estimate: thinking, answers, the worst case -------------------------------------


def test_thinking_budgets_as_the_model_takes_them() -> None:
    typical = FLASH.thinking.typical_tokens
    flash = estimate_of([group(budget=None), group(budget=0), group(budget=-1),
                         group(budget=300), group(budget=10**6)])
    # unset and -1: dynamic (typical); 0: off; 300: at most 300; 10**6: clamped, then typical.
    assert flash.thinking_tokens == typical + 0 + typical + min(300, typical) + typical
    assert flash.answer_tokens == 5 * DEFAULT_ANSWER_TOKENS
    assert flash.output_tokens == flash.thinking_tokens + flash.answer_tokens

    # 2.5 Pro cannot turn thinking off: a budget of 0 becomes its minimum.
    pro = estimate_of([group(budget=0), group()], batch_model("gemini-2.5-pro"))
    assert pro.thinking_tokens == PRO.thinking.min_budget + PRO.thinking.typical_tokens

    # Flash-Lite does not think unless asked; 2.0 Flash cannot.
    lite = estimate_of([group(), group(budget=1024)], batch_model("gemini-2.5-flash-lite"))
    assert lite.thinking_tokens == 1024
    old = estimate_of([group(budget=1024)], batch_model("gemini-2.0-flash-001"))
    assert old.thinking_tokens == 0


def test_thinking_comes_first_within_max_output_tokens() -> None:
    typical = FLASH.thinking.typical_tokens
    capped = estimate_of([group(max_output=typical - 200)])
    assert (capped.thinking_tokens, capped.answer_tokens) == (typical - 200, 0)
    roomy = estimate_of([group(max_output=typical + 200)])
    assert (roomy.thinking_tokens, roomy.answer_tokens) == (typical, 200)


def test_the_ledger_observed_answer_and_thoughts_replace_the_assumptions() -> None:
    seen = estimate_of([group(requests=10), group(requests=10, budget=0)], observed=(40, 300))
    assert seen.thinking_tokens == 10 * 300
    assert seen.answer_tokens == 20 * 40


def test_worst_case_is_every_request_writing_all_it_may() -> None:
    worst = estimate_of([group(requests=3, max_output=600), group(requests=2)])
    assert worst.worst_case_output_tokens == 3 * 600 + 2 * FLASH.max_output_tokens
    old = estimate_of([group(max_output=100_000)], batch_model("gemini-2.0-flash-001"))
    assert old.worst_case_output_tokens == 8_192  # the model's own limit
    unknown = estimate_of([group()], batch_model("my-tuned-gemini"))
    assert unknown.worst_case_output_tokens == UNKNOWN_MAX_OUTPUT_TOKENS
    assert unknown.usd is None and unknown.worst_case_usd is None
    assert worst.worst_case_usd == pytest.approx(
        FLASH.price.batch_usd(2_000, 3 * 600 + 2 * FLASH.max_output_tokens))


def test_estimate_prices_audio_and_the_long_context_tier_per_group() -> None:
    per_request = PRO.thinking.typical_tokens + DEFAULT_ANSWER_TOKENS
    flash = estimate_of([group(requests=10, input_tokens=10_000, audio_tokens=2_000)])
    assert flash.usd == pytest.approx(
        (8_000 * 0.30 + 2_000 * 1.00
         + 10 * (FLASH.thinking.typical_tokens + DEFAULT_ANSWER_TOKENS) * 2.50)
        * 0.5 / 1e6)
    assert flash.audio_tokens == 2_000

    long_prompt = LONG_CONTEXT_TOKENS + 100_000
    pro = estimate_of([group(input_tokens=long_prompt, long_context=True), group()],
                      batch_model("gemini-2.5-pro"))
    assert pro.long_context_requests == 1
    assert pro.usd == pytest.approx(
        ((long_prompt * 2.50 + per_request * 15.00) + (1_000 * 1.25 + per_request * 10.00))
        * 0.5 / 1e6)


# -- the cap -------------------------------------------------------------------------------


def cost_of(usd: float | None, worst: float | None, requests: int = 13) -> CostEstimate:
    return CostEstimate("gemini-2.5-flash", requests=requests, input_tokens=40_000,
                        thinking_tokens=4_000, answer_tokens=2_000, usd=usd,
                        worst_case_output_tokens=65_000, worst_case_usd=worst)


def test_cap_on_the_estimate_names_the_estimate_and_the_thinking() -> None:
    capped = batch_model(max_cost_usd=0.01)
    with pytest.raises(BudgetExceededError) as refused:
        check_budget(capped, cost_of(0.0135, 0.5))
    message = str(refused.value)
    assert "model.shop.summaries" in message and "$0.0135" in message
    assert "40000 input + 6000 output tokens of gemini-2.5-flash, 4000 of them thinking" in message
    assert "max_cost_usd=$0.0100" in message and "Nothing was submitted" in message
    check_budget(capped, cost_of(0.001, 0.5))  # the worst case is not what this cap checks
    check_budget(capped, cost_of(None, None, requests=0))
    with pytest.raises(ConfigError, match="no price is known for 'gemini-2.5-flash'"):
        check_budget(capped, cost_of(None, None))


def test_worst_case_cap_refuses_what_the_estimate_lets_through() -> None:
    between = cost_of(0.01, 0.10)
    check_budget(batch_model(max_cost_usd=0.05), between)
    with pytest.raises(BudgetExceededError) as refused:
        check_budget(batch_model(max_cost_usd=0.05, max_cost_mode="worst_case"), between)
    message = str(refused.value)
    assert "cost at most $0.1000" in message and "65000 output tokens" in message
    assert "max_cost_mode='worst_case'" in message and "the estimate is $0.0100" in message
    assert "Nothing was submitted" in message


def test_max_cost_mode_is_estimate_or_worst_case() -> None:
    assert BatchModelConfig(gemini_model="gemini-2.5-flash").max_cost_mode == "estimate"
    node = {"unique_id": "model.shop.summaries", "name": "summaries", "database": "p",
            "schema": "d", "config": {"meta": {"gemini_model": "gemini-2.5-flash",
                                               "max_cost_mode": "worst"}}}
    with pytest.raises(ConfigError, match="max_cost_mode"):
        BatchModel.from_manifest_node(node)


# -- the model check ---------------------------------------------------------------------


def test_a_mistyped_model_is_refused_with_what_was_meant() -> None:
    problem = model_problem(batch_model("gemini-2.5-flsh"), "us-central1", PriceTable())
    assert problem is not None
    assert problem.startswith("Model model.shop.summaries: gemini_model 'gemini-2.5-flsh'")
    assert "Did you mean 'gemini-2.5-flash'" in problem
    assert "var gemini_batch_prices" in problem  # the way through for a new model


def test_a_model_not_served_in_the_location_names_where_it_is() -> None:
    problem = model_problem(batch_model("gemini-3-pro-preview"), "us-central1", PriceTable())
    assert problem is not None and "not served for batch prediction in 'us-central1'" in problem
    assert "global" in problem


def test_served_models_and_models_priced_by_the_var_pass() -> None:
    prices = PriceTable.from_vars({"gemini_batch_prices": {
        "my-tuned-gemini": {"input": 1, "output": 2}}})
    assert model_problem(batch_model("gemini-2.5-flash"), "europe-west4", prices) is None
    assert model_problem(batch_model("publishers/google/models/gemini-2.5-pro"),
                         "us-central1", prices) is None
    assert model_problem(batch_model("my-tuned-gemini"), "us-central1", prices) is None
    assert model_problem(batch_model("my-tuned-gemini"), "us-central1", PriceTable())


# -- docs/costs.md prints the catalog ------------------------------------------------------


def _figure(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def catalog_price_table() -> str:
    """docs/costs.md's price table, from the catalog (print it to refresh the docs)."""
    lines = ["| model | input | output | input > 200k | output > 200k | audio input "
             "| cached input | batch input | batch output | served in |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for model in catalog.MODELS.values():
        price, batch = model.price, 1 - model.price.batch_discount
        where = (f"{len(model.locations)} regions" if model.locations == catalog.GA_REGIONS
                 else ", ".join(sorted(model.locations)))
        figures = (price.input, price.output, price.long_input, price.long_output,
                   price.audio_input, price.cached_input, price.input * batch,
                   price.output * batch)
        lines.append(f"| `{model.name}` | {' | '.join(map(_figure, figures))} | {where} |")
    return "\n".join(lines)


def catalog_thinking_table() -> str:
    """docs/costs.md's thinking table, from the catalog."""
    lines = ["| model | default budget | budget range | can turn off | typical thinking "
             "| max output |", "| --- | --- | --- | --- | --- | --- |"]
    for model in catalog.MODELS.values():
        think = model.thinking
        if think.max_budget == 0:
            lines.append(f"| `{model.name}` | no thinking | — | — | 0 "
                         f"| {model.max_output_tokens:,} |")
            continue
        default = "dynamic (-1)" if think.default_budget == -1 else f"{think.default_budget}"
        lines.append(
            f"| `{model.name}` | {default} | {think.min_budget:,}–{think.max_budget:,} "
            f"| {'yes' if think.can_disable else 'no'} | {think.typical_tokens:,} "
            f"| {model.max_output_tokens:,} |")
    return "\n".join(lines)


def test_docs_print_the_catalog_prices_with_the_date_checked() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "costs.md").read_text()
    assert catalog_price_table() in docs, catalog_price_table()
    assert catalog_thinking_table() in docs, catalog_thinking_table()
    assert f"checked {catalog.CHECKED}" in docs


# -- the build-wide cap, candidates, declared tokens, the thinking trap ---------------------


def test_the_cap_counts_what_the_build_already_spent() -> None:
    capped = batch_model(max_cost_usd=0.05)
    check_budget(capped, cost_of(0.03, 0.5))  # a first round fits
    with pytest.raises(BudgetExceededError) as refused:
        check_budget(capped, cost_of(0.03, 0.5), spent_usd=0.025)
    message = str(refused.value)
    assert "$0.0250 already spent by this build's earlier rounds" in message
    assert "Nothing more was submitted (the answers already back are kept)" in message
    worst = batch_model(max_cost_usd=0.05, max_cost_mode="worst_case")
    check_budget(worst, cost_of(0.001, 0.04), spent_usd=0.009)
    with pytest.raises(BudgetExceededError, match="already spent"):
        check_budget(worst, cost_of(0.001, 0.04), spent_usd=0.011)


def test_every_candidate_bills_its_output() -> None:
    one = estimate_of([group(requests=5, max_output=300, budget=0)])
    four = estimate_of([{**group(requests=5, max_output=300, budget=0), "candidate_count": 4}])
    assert four.worst_case_output_tokens == 4 * one.worst_case_output_tokens == 4 * 5 * 300
    assert four.answer_tokens == 4 * one.answer_tokens == 4 * 5 * DEFAULT_ANSWER_TOKENS
    assert four.worst_case_usd == pytest.approx(FLASH.price.batch_usd(1_000, 4 * 5 * 300))


def test_a_request_row_counts_candidates_tools_and_the_response_schema() -> None:
    plain = {"contents": [{"role": "user", "parts": [{"text": "x" * 400}]}]}
    schema = {"type": "OBJECT", "properties": {"label": {"type": "STRING"}}}
    declared = {**plain, "generationConfig": {"candidateCount": 4, "responseSchema": schema},
                "tools": [{"functionDeclarations": [{"name": "lookup"}]}]}
    assert request_price_row(plain)["candidate_count"] == 1
    row = request_price_row(declared)
    assert row["candidate_count"] == 4
    declared_chars = len(json.dumps(schema, separators=(",", ":"))) + len(json.dumps(
        declared["tools"], separators=(",", ":")))
    assert row["input_tokens"] == 100 + math.ceil(declared_chars / 4)


def test_the_thinking_trap_is_named_with_its_fix() -> None:
    trapped = estimate_of([group(requests=2_500, max_output=256)])
    trap = trapped.thinking_trap or ""
    assert trap.startswith("2,500 requests leave thinking no room: maxOutputTokens 256")
    typical = FLASH.thinking.typical_tokens
    assert f"~{typical:,} tokens" in trap and f"~{DEFAULT_ANSWER_TOKENS:,})" in trap
    assert f"raise maxOutputTokens to {typical + DEFAULT_ANSWER_TOKENS:,} or more" in trap
    assert "thinkingBudget" in trap and "0 turns it off" in trap
    pro = estimate_of([group(max_output=256)], batch_model("gemini-2.5-pro"))
    assert f"{PRO.thinking.min_budget} is the least gemini-2.5-pro takes" in (
        pro.thinking_trap or "")
    # Room enough, thinking off, a small fixed budget, or no limit set: no warning.
    for fine in (group(max_output=typical + DEFAULT_ANSWER_TOKENS), group(max_output=256, budget=0),
                 group(max_output=256, budget=24), group()):
        assert estimate_of([fine]).thinking_trap is None, fine
    # The model's own observed thinking sets the bar.
    assert estimate_of([group(max_output=256)], observed=(20, 100)).thinking_trap is None


def test_media_is_counted_at_the_model_generations_rates() -> None:
    image = {"fileData": {"mimeType": "image/png", "fileUri": "gs://b/photo.png"}}
    pdf = {"file_data": {"mime_type": "application/pdf", "file_uri": "gs://b/report.pdf"}}
    request = {"contents": [{"role": "user", "parts": [{"text": "abcd"}, image, pdf]}]}
    assert request_price_row(request, "gemini-2.5-flash")["input_tokens"] == 1 + 258 + 10 * 258
    assert request_price_row(request)["input_tokens"] == 1 + 258 + 10 * 258
    assert request_price_row(request, "gemini-3-pro-preview")["input_tokens"] == (
        1 + 1_120 + 10 * 560)
    assert file_part_tokens("publishers/google/models/gemini-3-flash-preview@001") is (
        GEMINI_3_FILE_PART_TOKENS)
    assert file_part_tokens("gemini-2.0-flash-001") is FILE_PART_TOKENS
