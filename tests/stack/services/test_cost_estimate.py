"""The token and cost estimate in SQL on the local BigQuery: text, file parts, the ledger.

The pure rules (prices, tiers, thinking budgets, the cap) are in
tests/unit/test_cost_rules.py; thinking budgets, long and audio requests on the local
BigQuery in tests/stack/commands/test_cost_estimates.py.
"""

from __future__ import annotations

import json
import math
import uuid

import pytest
from google.cloud import bigquery

from gemini_batch.build.estimate import estimate
from gemini_batch.clients.bigquery import BigQuery, quote_table
from gemini_batch.rules.catalog import MODELS
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.rules.pricing import DEFAULT_ANSWER_TOKENS, FILE_PART_TOKENS, PriceTable
from gemini_batch.state.ledger import Ledger, LedgerEntry
from gemini_batch.state.warehouse import RESPONSES_SCHEMA, Warehouse
from helpers.samples import SAMPLES, sample_requests

# -- the estimate, in SQL ---------------------------------------------------------------


def _fixture_requests() -> list[dict]:
    return [request for sample in SAMPLES for request in sample_requests(sample)]


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
        config=BatchModelConfig(gemini_model="gemini-2.5-flash"),
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
    bq.create_table(bigquery.Table(model.responses_table, schema=[
        bigquery.SchemaField(name, kind) for name, kind in RESPONSES_SCHEMA.items()]))
    return model


def test_estimate_counts_text_and_file_parts(bq: bigquery.Client, model: BatchModel) -> None:
    requests = _fixture_requests()
    cost = estimate(Warehouse(BigQuery(bq)), model)
    assert cost.requests == len(requests)
    assert cost.input_tokens == sum(_expected_input_tokens(r) for r in requests)
    # One request sets maxOutputTokens=100: thinking fills it. The others think as the
    # model typically does and answer with the default.
    thinking = MODELS["gemini-2.5-flash"].thinking.typical_tokens
    assert cost.thinking_tokens == 100 + (len(requests) - 1) * thinking
    assert cost.answer_tokens == (len(requests) - 1) * DEFAULT_ANSWER_TOKENS
    assert cost.usd == pytest.approx(
        (cost.input_tokens * 0.30 + cost.output_tokens * 2.50) / 1e6 * 0.5
    )
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
    observed = ledger.observed_tokens("gemini-2.5-flash")
    assert observed == (175, 25)  # candidates and thoughts per answered request
    cost = estimate(Warehouse(BigQuery(bq)), model, prices=prices, observed=observed)
    requests = len(_fixture_requests())
    # maxOutputTokens=100: 25 thinking, then 75 of the answer; the others 25 + 175.
    assert (cost.thinking_tokens, cost.answer_tokens) == (25 * requests, 75 + 175 * (requests - 1))
    assert cost.output_tokens == 100 + (requests - 1) * 200
    assert cost.usd == pytest.approx(cost.output_tokens / 1e6 * 0.5)
