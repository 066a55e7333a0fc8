"""Prices, actual cost and the budget cap, in Python (the estimate, in SQL, is in
tests/stack/services/test_cost_estimate.py)."""

from __future__ import annotations

import pytest

from gemini_batch.config import BatchModel, BatchModelConfig
from gemini_batch.cost import (
    PRICES,
    BudgetExceededError,
    CostEstimate,
    Price,
    PriceTable,
    actual_cost,
    check_budget,
)
from gemini_batch.errors import ConfigError


def test_price_lookup_by_longest_prefix() -> None:
    table = PriceTable()
    assert table.price_for("gemini-2.5-flash") == PRICES["gemini-2.5-flash"]
    assert table.price_for("gemini-2.5-flash-001") == PRICES["gemini-2.5-flash"]
    assert table.price_for("gemini-2.5-flash-lite") == PRICES["gemini-2.5-flash-lite"]
    assert (
        table.price_for("publishers/google/models/gemini-2.5-pro@001") == PRICES["gemini-2.5-pro"]
    )
    assert table.price_for("llama-3") is None


def test_prices_from_vars_override_and_add() -> None:
    table = PriceTable.from_vars(
        {
            "gemini_batch_prices": {
                "gemini-2.5-flash": {"input": 1.0, "output": 2.0},
                "my-tuned-model": {"input": 3, "output": 4, "batch_discount": 0},
            }
        }
    )
    assert table.price_for("gemini-2.5-flash-002") == Price(1.0, 2.0, 0.5)
    assert table.price_for("my-tuned-model").batch_usd(1_000_000, 1_000_000) == 7.0
    assert table.price_for("gemini-2.5-pro") == PRICES["gemini-2.5-pro"]
    assert PriceTable.from_vars({}).prices == PRICES
    with pytest.raises(ConfigError, match="gemini_batch_prices: the price of 'x'"):
        PriceTable.from_vars({"gemini_batch_prices": {"x": {"input": 1}}})
    with pytest.raises(ConfigError, match="batch_discount"):
        PriceTable.from_vars(
            {"gemini_batch_prices": {"x": {"input": 1, "output": 1, "batch_discount": 50}}}
        )


def test_actual_cost_is_half_the_online_price() -> None:
    # gemini-2.5-flash: $0.30 in, $2.50 out per million; thinking bills as output.
    assert actual_cost("gemini-2.5-flash", 1_000_000, 600_000, 400_000) == pytest.approx(1.40)
    assert actual_cost("gemini-2.5-flash", None, None, None) == 0
    assert actual_cost("unknown-model", 10, 10, 0) is None


def test_budget_cap_refuses_with_the_estimate_and_the_cap() -> None:
    model = BatchModel(
        unique_id="model.test.costly",
        name="costly",
        project="local-project",
        dataset="cost",
        config=BatchModelConfig(gemini_model="gemini-2.5-flash", max_cost_usd=0.01),
    )
    over = CostEstimate(
        "gemini-2.5-flash", requests=13, input_tokens=40000, output_tokens=6000, usd=0.0135
    )
    with pytest.raises(BudgetExceededError) as refused:
        check_budget(model, over)
    message = str(refused.value)
    assert "model.test.costly" in message
    assert "$0.0135" in message and "max_cost_usd=$0.0100" in message
    assert "Nothing was submitted" in message

    check_budget(model, CostEstimate("gemini-2.5-flash", 13, 100, 100, usd=0.001))
    check_budget(model, CostEstimate("gemini-2.5-flash", 0, 0, 0, usd=None))
    with pytest.raises(ConfigError, match="no price is known for 'mystery'"):
        check_budget(model, CostEstimate("mystery", 1, 10, 10, usd=None))
