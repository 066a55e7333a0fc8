"""Prices, the token and cost estimate (SQL on the local BigQuery), actual cost, the cap."""

from __future__ import annotations

import json
import math
import uuid

import pytest
from google.cloud import bigquery

from conftest import FIXTURES
from gemini_batch.bq import BigQuery, quote_table
from gemini_batch.config import BatchModel, BatchModelConfig
from gemini_batch.cost import (
    DEFAULT_OUTPUT_TOKENS,
    FILE_PART_TOKENS,
    PRICES,
    CostEstimate,
    Price,
    PriceTable,
    actual_cost,
    check_budget,
    estimate,
)
from gemini_batch.errors import BudgetExceededError, ConfigError
from gemini_batch.ledger import Ledger, LedgerEntry
from gemini_batch.warehouse import Warehouse


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


# -- the estimate, in SQL ---------------------------------------------------------------


def _fixture_requests() -> list[dict]:
    lines = []
    for sample in ("text", "multimodal"):
        path = FIXTURES / f"batch_request_{sample}_input.jsonl"
        lines += [json.loads(line)["request"] for line in path.read_text().splitlines() if line]
    return lines


def _expected_input_tokens(request: dict) -> int:
    """The documented method, in Python: text characters / 4 + an allowance per file."""
    text_chars, files = 0, 0
    for content in request["contents"]:
        parts = content["parts"] if isinstance(content["parts"], list) else [content["parts"]]
        for part in parts:
            text_chars += len(part.get("text", ""))
            data = part.get("file_data") or part.get("fileData")
            if data:
                mime = data.get("mime_type") or data.get("mimeType")
                files += next(
                    t for prefix, t in FILE_PART_TOKENS.items() if mime.startswith(prefix)
                )
    return math.ceil(text_chars / 4) + files


@pytest.fixture(scope="module")
def model(bq: bigquery.Client) -> BatchModel:
    """A batch model whose requests are the real Vertex inputs, one with maxOutputTokens."""
    dataset = f"cost_{uuid.uuid4().hex[:10]}"
    bq.create_dataset(dataset)
    model = BatchModel(
        unique_id="model.test.costly",
        name="costly",
        project=bq.project,
        dataset=dataset,
        config=BatchModelConfig(gemini_model="gemini-2.5-flash", max_cost_usd=0.01),
    )
    requests = _fixture_requests()
    requests[0] = {**requests[0], "generationConfig": {"maxOutputTokens": 100}}
    bq.query(
        f"""create table {quote_table(model.requests_table)} as
        select format('r%d', n) as request_id, parse_json(request) as request,
          cast(null as string) as request_problem
        from unnest(@requests) as request with offset as n""",
        job_config=bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ArrayQueryParameter(
                    "requests", "STRING", [json.dumps(r) for r in requests]
                )
            ]
        ),
    ).result()
    bq.query(
        f"""create table {quote_table(model.responses_table)} (request_id STRING,
        response JSON, status STRING, processed_time TIMESTAMP, attempts INT64,
        last_error STRING, job_name STRING, updated_at TIMESTAMP)"""
    ).result()
    return model


def test_estimate_counts_text_and_file_parts(bq: bigquery.Client, model: BatchModel) -> None:
    requests = _fixture_requests()
    cost = estimate(Warehouse(BigQuery(bq)), model)
    assert cost.requests == len(requests)
    assert cost.input_tokens == sum(_expected_input_tokens(r) for r in requests)
    # One request sets maxOutputTokens=100; the others get the default.
    assert cost.output_tokens == 100 + (len(requests) - 1) * DEFAULT_OUTPUT_TOKENS
    price = PRICES["gemini-2.5-flash"]
    assert cost.usd == pytest.approx(
        (cost.input_tokens * 0.30 + cost.output_tokens * 2.50) / 1e6 * 0.5
    )
    assert price.batch_discount == 0.5
    # The multimodal sample has 3 images and a video: the allowances dominate.
    assert cost.input_tokens - 3 * 258 - 60 * 263 < 200


def test_estimate_uses_the_ledger_average_and_var_prices(
    bq: bigquery.Client, model: BatchModel
) -> None:
    ledger = Ledger(BigQuery(bq), model.project, model.dataset)
    ledger.ensure()
    ledger.record_submitted(
        LedgerEntry(
            job_name="projects/p/locations/us-central1/batchPredictionJobs/9",
            dbt_model=model.unique_id,
            model_relation=model.view,
            shard_table="p.d.s",
            output_table="p.d.o",
            gemini_model="gemini-2.5-flash",
            location="us-central1",
            state="SUCCEEDED",
            request_count=4,
            succeeded_count=4,
            candidates_tokens=700,
            thoughts_tokens=100,
        )
    )
    prices = PriceTable.from_vars(
        {"gemini_batch_prices": {"gemini-2.5-flash": {"input": 0, "output": 1}}}
    )
    cost = estimate(
        Warehouse(BigQuery(bq)), model, prices=prices,
        observed_output_tokens=ledger.observed_output_tokens("gemini-2.5-flash"),
    )
    requests = len(_fixture_requests())
    assert cost.output_tokens == 100 + (requests - 1) * 200
    assert cost.usd == pytest.approx(cost.output_tokens / 1e6 * 0.5)


def test_budget_cap_refuses_with_the_estimate_and_the_cap(model: BatchModel) -> None:
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
