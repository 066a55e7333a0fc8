"""Warehouse statements on the local BigQuery: counts, shards, invalid requests, and the
MERGE of Vertex AI output tables (shaped like the real ones in tests/fixtures) into
``<model>__responses``.

The requests and responses tables are written here as the materialization writes them
(tests/stack/dbt/test_materialization.py covers the materialization itself).
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from google.cloud import bigquery

from gemini_batch.clients.bigquery import BigQuery, quote_table
from gemini_batch.clients.vertex import SHARD_TABLE_HOURS
from gemini_batch.errors import WarehouseError
from gemini_batch.routes.vertex_batch import VertexBatchRoute
from gemini_batch.rules.answers import INVALID_STATUS
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.state.ledger import Ledger, LedgerEntry
from gemini_batch.state.warehouse import (
    RESPONSES_SCHEMA,
    MergeResult,
    RequestCounts,
    Warehouse,
)
from helpers.paths import FIXTURES

GEMINI_MODEL = "gemini-2.5-flash"
# A response with a usable answer (a text part): what "cached" means.
ANSWER = '{"candidates": [{"content": {"role": "model", "parts": [{"text": "ok"}]}}]}'


def _request(text: str) -> str:
    return json.dumps({"contents": [{"role": "user", "parts": [{"text": text}]}]})


@pytest.fixture(scope="module")
def dataset(bq: bigquery.Client) -> str:
    name = f"wh_{uuid.uuid4().hex[:10]}"
    bq.create_dataset(name)
    return name


def _model(
    bq: bigquery.Client, dataset: str, name: str | None = None, **config: object
) -> BatchModel:
    return BatchModel(
        unique_id=f"model.test.{name or 'm'}",
        name=name or f"m_{uuid.uuid4().hex[:8]}",
        project=bq.project,
        dataset=dataset,
        config=BatchModelConfig(gemini_model=GEMINI_MODEL, **config),
    )


def _run(bq: bigquery.Client, sql: str, **params: object) -> list[dict]:
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ArrayQueryParameter(k, "STRING", v)
            if isinstance(v, list)
            else bigquery.ScalarQueryParameter(k, "INT64" if isinstance(v, int) else "STRING", v)
            for k, v in params.items()
        ]
    )
    return [dict(row) for row in bq.query(sql, job_config=config).result()]


def _build_tables(
    bq: bigquery.Client, model: BatchModel, rows: list[tuple[str, str | None]]
) -> None:
    """<model>__requests as the materialization builds it, from (request_id, problem)
    pairs (the request text is the id), and an empty <model>__responses."""
    _run(
        bq,
        f"""create or replace table {quote_table(model.requests_table)} as
        select id as key_column, parse_json(request) as request, request_id,
          nullif(problem, '') as request_problem
        from unnest(@ids) as request_id with offset as id
        join unnest(@requests) as request with offset as r on r = id
        join unnest(@problems) as problem with offset as p on p = id""",
        ids=[rid for rid, _ in rows],
        requests=[_request(rid) for rid, _ in rows],
        problems=[problem or "" for _, problem in rows],
    )
    columns = ", ".join(f"{name} {kind}" for name, kind in RESPONSES_SCHEMA.items())
    _run(bq, f"create or replace table {quote_table(model.responses_table)} ({columns})")


def _answer(
    bq: bigquery.Client, model: BatchModel, request_id: str, *, ok: bool, attempts: int
) -> None:
    _run(
        bq,
        f"""insert into {quote_table(model.responses_table)}
        (request_id, response, status, attempts, last_error, job_name, updated_at,
         answered, empty_answer, error_code)
        values (@request_id, if(@ok = 1, parse_json(@answer), null),
                if(@ok = 1, '', 'boom'), @attempts, if(@ok = 1, null, 'boom'), 'j',
                current_timestamp(), @ok = 1, false, null)""",
        request_id=request_id,
        ok=int(ok),
        attempts=attempts,
        answer=ANSWER,
    )


def _responses(bq: bigquery.Client, model: BatchModel) -> dict[str, dict]:
    rows = _run(bq, f"select * from {quote_table(model.responses_table)}")
    return {row["request_id"]: row for row in rows}


# -- counts ---------------------------------------------------------------------------


def test_counts_by_state(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset, max_retries=1)
    _build_tables(
        bq,
        model,
        [
            ("cached", None),
            ("pending-new", None),
            ("pending-new", None),  # asked twice: one request
            ("pending-retry", None),
            ("used-up", None),
            ("bad", "contents: is empty"),
            ("flying", None),
        ],
    )
    _answer(bq, model, "cached", ok=True, attempts=1)
    _answer(bq, model, "pending-retry", ok=False, attempts=1)
    _answer(bq, model, "used-up", ok=False, attempts=2)
    ledger = _ledger_with_live_job(bq, dataset, model, ["flying"])

    live_shards = ledger.live_shard_tables(model.unique_id)
    assert live_shards == [model.shard_table("live", 0)]
    assert Warehouse(BigQuery(bq)).counts(model, live_shards) == RequestCounts(
        total=7, unique=6, cached=1, pending=2, failed=2, invalid=1, in_flight=1
    )
    # Without live shards nothing is known to be in flight.
    assert Warehouse(BigQuery(bq)).counts(model).pending == 3


def _ledger_with_live_job(
    bq: bigquery.Client, dataset: str, model: BatchModel, request_ids: list[str]
) -> Ledger:
    shard = model.shard_table("live", 0)
    _run(
        bq,
        f"create or replace table {quote_table(shard)} as "
        "select request_id, parse_json('{}') as request from unnest(@ids) as request_id",
        ids=request_ids,
    )
    ledger = Ledger(BigQuery(bq), bq.project, dataset)
    ledger.ensure()
    ledger.record_submitted(
        LedgerEntry(
            job_name=f"projects/p/locations/us-central1/batchPredictionJobs/{uuid.uuid4().hex}",
            dbt_model=model.unique_id,
            model_relation=model.view,
            shard_table=shard,
            output_table=model.output_table("live", 0),
            gemini_model=GEMINI_MODEL,
            location="us-central1",
            state="RUNNING",
            request_count=len(request_ids),
        )
    )
    return ledger


def test_counts_name_the_model_when_it_was_never_built(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset, name="never_built")
    with pytest.raises(
        WarehouseError,
        match=r"model\.test\.never_built: .*never_built__requests and .*never_built__responses do "
        r"not exist\. Run `dbt run --select never_built` first",
    ):
        Warehouse(BigQuery(bq)).counts(model)


# -- invalid requests -----------------------------------------------------------------


def test_mark_invalid_fails_them_with_the_reason(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset, max_retries=2)
    _build_tables(
        bq,
        model,
        [("good", None), ("bad-1", "contents: is empty"), ("bad-2", "request: is NULL")],
    )
    warehouse = Warehouse(BigQuery(bq))
    summary = warehouse.mark_invalid(model)
    assert summary.count == 2
    # Named by the model's key columns (here the one other than request), not a hash.
    assert summary.examples == [("key_column=1", "contents: is empty"),
                                ("key_column=2", "request: is NULL")]

    responses = _responses(bq, model)
    assert set(responses) == {"bad-1", "bad-2"}
    assert responses["bad-1"]["status"] == INVALID_STATUS
    assert responses["bad-1"]["attempts"] == 3  # max_retries + 1: never submitted
    assert responses["bad-1"]["last_error"] == "contents: is empty"

    # Marking again changes nothing; they are failed, never pending.
    warehouse.mark_invalid(model)
    assert _responses(bq, model)["bad-1"]["attempts"] == 3
    counts = warehouse.counts(model)
    assert (counts.pending, counts.failed, counts.invalid) == (1, 2, 2)


# -- shards ---------------------------------------------------------------------------


def test_shards_hold_each_pending_request_once(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset, shard_size=3, max_retries=0)
    ids = [f"r{n}" for n in range(9)]
    _build_tables(bq, model, [(i, None) for i in ids] + [("r0", None), ("bad", "no contents")])
    _answer(bq, model, "r1", ok=True, attempts=1)  # cached
    _answer(bq, model, "r2", ok=False, attempts=1)  # retries used up (max_retries=0)
    ledger = _ledger_with_live_job(bq, dataset, model, ["r3"])
    warehouse = Warehouse(BigQuery(bq))

    shards = warehouse.create_shards(
        model, "20261125t0630_ab12", ledger.live_shard_tables(model.unique_id)
    )
    assert [(s.index, s.rows) for s in shards] == [(0, 3), (1, 3)]
    assert [s.table for s in shards] == [
        model.shard_table("20261125t0630_ab12", 0),
        model.shard_table("20261125t0630_ab12", 1),
    ]
    seen = []
    for shard in shards:
        table = bq.get_table(shard.table)
        assert [f.name for f in table.schema] == ["request_id", "request"]
        rows = _run(
            bq,
            "select request_id, to_json_string(request) as request "
            f"from {quote_table(shard.table)}",
        )
        assert len(rows) == shard.rows
        assert all(
            json.loads(row["request"]) == json.loads(_request(row["request_id"])) for row in rows
        )
        seen += [row["request_id"] for row in rows]
    assert sorted(seen) == ["r0", "r4", "r5", "r6", "r7", "r8"]
    # The staging snapshot is gone.
    assert not [t for t in bq.list_tables(dataset) if "__pending_" in t.table_id]

    # Without the live shards r3 is back in.
    again = warehouse.create_shards(model, "second")
    assert sum(s.rows for s in again) == 7


def test_no_pending_request_makes_no_shard(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset)
    _build_tables(bq, model, [("done", None)])
    _answer(bq, model, "done", ok=True, attempts=1)
    assert Warehouse(BigQuery(bq)).create_shards(model, "empty") == []
    assert not [t for t in bq.list_tables(dataset) if t.table_id.startswith(f"{model.name}__shard")]


def test_shard_run_id_is_checked(bq: bigquery.Client, dataset: str) -> None:
    with pytest.raises(ValueError, match="run_id"):
        Warehouse(BigQuery(bq)).create_shards(_model(bq, dataset), "x`; drop table y")


# -- merge ----------------------------------------------------------------------------


def _vertex_output(bq: bigquery.Client, model: BatchModel, table: str, answers: list[dict]) -> None:
    """An output table as Vertex AI writes it: the input columns + response, status,
    processed_time."""
    _run(
        bq,
        f"""create or replace table {quote_table(table)} as
        select json_value(line, '$.request_id') as request_id,
          json_query(line, '$.request') as request,
          json_query(line, '$.response') as response,
          json_value(line, '$.status') as status,
          timestamp(json_value(line, '$.processed_time')) as processed_time
        from unnest(@lines) as line_text, unnest([parse_json(line_text)]) as line""",
        lines=[json.dumps(answer) for answer in answers],
    )


def _writes_to(bq: bigquery.Client, table: str) -> list[str]:
    """The kinds (INSERT, MERGE, ...) of the statements that wrote ``table``, oldest first."""
    name = quote_table(table)
    jobs = [job for job in bq.list_jobs(max_results=1000)
            if job.job_type == "query" and name in (job.query or "")]
    kinds = [(job.created, job.query.split(None, 1)[0].upper()) for job in jobs]
    return [kind for _, kind in sorted(kinds) if kind in ("INSERT", "MERGE", "UPDATE")]


def _real_answers(sample: str) -> list[dict]:
    path = FIXTURES / f"batch_request_{sample}_output.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_merge_output_success_failure_and_unanswered(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset, max_retries=2)
    real = _real_answers("text")
    ids = [f"q{n}" for n in range(len(real))] + ["failing", "unanswered"]
    _build_tables(bq, model, [(i, None) for i in ids])
    shard = model.shard_table("run1", 0)
    warehouse = Warehouse(BigQuery(bq))
    [made] = warehouse.create_shards(model, "run1")
    assert made.table == shard and made.rows == len(ids)

    output = model.output_table("run1", 0)
    answers = [{**answer, "request_id": rid} for rid, answer in zip(ids, real, strict=False)]
    answers.append(
        {
            "request_id": "failing",
            "request": json.loads(_request("failing")),
            "response": None,
            "status": "Internal error occurred. Failed to get response.",
            "processed_time": "2024-11-05T15:45:17.583+00:00",
        }
    )
    _vertex_output(bq, model, output, answers)

    job = "projects/p/locations/us-central1/batchPredictionJobs/111"
    result = warehouse.merge_output(model, output, job, shard_table=shard)
    usage = [answer["response"]["usageMetadata"] for answer in real]
    # One real answer stopped for RECITATION with no text (status ''): paid, not answered.
    recited = [rid for rid, answer in zip(ids, real, strict=False)
               if "content" not in answer["response"]["candidates"][0]]
    assert len(recited) == 1
    assert result == MergeResult(
        succeeded=len(real) - 1,
        failed=2,
        unanswered=1,
        prompt_tokens=sum(u.get("promptTokenCount", 0) for u in usage),
        candidates_tokens=sum(u.get("candidatesTokenCount", 0) for u in usage),
        thoughts_tokens=0,
        total_tokens=sum(u.get("totalTokenCount", 0) for u in usage),
        # The model that answered, which every real answer names.
        model_version="gemini-1.5-flash-002@default",
    )
    assert {answer["response"]["modelVersion"] for answer in real} == {result.model_version}
    assert result.prompt_tokens == 81 and result.candidates_tokens == 6022

    responses = _responses(bq, model)
    assert "unanswered" not in responses
    assert responses["q0"]["status"] == ""
    assert responses["q0"]["attempts"] == 1
    assert responses["q0"]["response"] == real[0]["response"]
    assert responses["q0"]["job_name"] == job
    assert responses["q0"]["processed_time"] == datetime(
        2024, 11, 5, 15, 45, 17, 583000, tzinfo=UTC
    )
    assert responses["failing"]["attempts"] == 1
    assert responses["failing"]["last_error"].startswith("Internal error occurred")
    assert responses["failing"]["response"] is None
    # The paid empty answer is kept, with the reason; it is failed for good.
    assert responses[recited[0]]["response"] == real[ids.index(recited[0])]["response"]
    assert responses[recited[0]]["last_error"] == "EMPTY_ANSWER: RECITATION (no text in the answer)"
    # What the rules say of each answer is kept with it (ADR 0011).
    assert (responses["q0"]["answered"], responses["q0"]["empty_answer"]) == (True, False)
    assert (responses[recited[0]]["answered"], responses[recited[0]]["empty_answer"]) == (
        False, True)
    assert (responses["failing"]["answered"], responses["failing"]["empty_answer"]) == (
        False, False)
    # Every answer was new: inserted, not merged (BigQuery bills a MERGE that may update
    # for the whole table).
    assert _writes_to(bq, model.responses_table) == ["INSERT"]

    # The same job merged again (a crash before merged_at was recorded): no change.
    warehouse.merge_output(model, output, job, shard_table=shard)
    assert _responses(bq, model) == responses

    counts = warehouse.counts(model)
    # Pending: the internal error (retried) and the unanswered one; failed: the recitation.
    assert (counts.cached, counts.pending, counts.failed) == (len(real) - 1, 2, 1)
    assert warehouse.failure_reasons(model) == {"EMPTY_ANSWER: RECITATION": 1}


def test_merge_retries_and_never_overwrites_a_success(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset, max_retries=1)
    _build_tables(bq, model, [("a", None), ("b", None)])
    warehouse = Warehouse(BigQuery(bq))
    real = _real_answers("multimodal")[0]
    failure = {
        "response": None,
        "status": "RESOURCE_EXHAUSTED",
        "processed_time": real["processed_time"],
    }

    def job(n: int, answers: dict[str, dict]) -> None:
        output = model.output_table(f"job{n}", 0)
        _vertex_output(
            bq,
            model,
            output,
            [{**a, "request_id": rid, "request": {}} for rid, a in answers.items()],
        )
        warehouse.merge_output(model, output, f"jobs/{n}")

    job(1, {"a": real, "b": failure})
    job(2, {"a": failure, "b": failure})  # a failure after a success changes nothing
    assert _writes_to(bq, model.responses_table) == ["INSERT", "MERGE"]  # job 2 retried
    responses = _responses(bq, model)
    assert (responses["a"]["status"], responses["a"]["attempts"]) == ("", 1)
    assert responses["a"]["response"] == real["response"]
    assert (responses["b"]["attempts"], responses["b"]["last_error"]) == (2, "RESOURCE_EXHAUSTED")
    assert warehouse.counts(model).failed == 1  # 2 attempts > max_retries=1

    job(3, {"b": real})  # a late success still replaces the failure
    responses = _responses(bq, model)
    assert (responses["b"]["status"], responses["b"]["attempts"]) == ("", 3)
    assert responses["b"]["last_error"] is None
    assert warehouse.counts(model).cached == 2


def test_merge_reads_a_string_response_column(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset)
    _build_tables(bq, model, [("a", None)])
    output = model.output_table("strings", 0)
    response = _real_answers("text")[0]["response"]
    _run(
        bq,
        f"create or replace table {quote_table(output)} as select 'a' as request_id, "
        "@response as response, '' as status, current_timestamp() as processed_time",
        response=json.dumps(response),
    )
    result = Warehouse(BigQuery(bq)).merge_output(model, output, "jobs/s")
    assert (result.succeeded, result.prompt_tokens) == (1, 9)
    assert _responses(bq, model)["a"]["response"] == response


def test_merge_of_a_missing_output_table_says_so(bq: bigquery.Client, dataset: str) -> None:
    model = _model(bq, dataset)
    _build_tables(bq, model, [("a", None)])
    missing = model.output_table("never", 0)
    with pytest.raises(WarehouseError, match=f"output table {missing} does not exist"):
        Warehouse(BigQuery(bq)).merge_output(model, missing, "jobs/x")


# -- tables ----------------------------------------------------------------------------


def test_table_exists_and_drop(bq: bigquery.Client, dataset: str) -> None:
    warehouse = BigQuery(bq)
    table = f"{bq.project}.{dataset}.to_drop"
    _run(bq, f"create table {quote_table(table)} as select 1 as x")
    assert warehouse.table_exists(table)
    warehouse.drop_tables([table, f"{bq.project}.{dataset}.never_was"])
    assert not warehouse.table_exists(table)
    assert warehouse.dataset_location(bq.project, dataset)


def _hours_left(table: bigquery.Table) -> float:
    assert table.expires is not None, f"{table.table_id} has no expiration"
    return (table.expires - datetime.now(UTC)).total_seconds() / 3600


def test_job_tables_outlive_a_one_day_dataset_default(bq: bigquery.Client) -> None:
    """A job may queue 72 h and run 24 h: its shard is made to last SHARD_TABLE_HOURS,
    and its output table (made by Vertex AI with the dataset's default) is given as long
    when a build collects it; the missing-output note names the default."""
    short = bigquery.Dataset(f"{bq.project}.wh_short_{uuid.uuid4().hex[:8]}")
    short.default_table_expiration_ms = 24 * 3600 * 1000
    dataset = bq.create_dataset(short).dataset_id
    model = _model(bq, dataset)
    _build_tables(bq, model, [("a", None), ("b", None)])
    warehouse = Warehouse(BigQuery(bq))

    [shard] = warehouse.create_shards(model, "exp1")
    assert SHARD_TABLE_HOURS - 1 < _hours_left(bq.get_table(shard.table)) <= SHARD_TABLE_HOURS

    # What Vertex AI makes takes the default; keep_table moves it out, never in.
    output = model.output_table("exp1", 0)
    _vertex_output(bq, model, output, [])
    assert 23 < _hours_left(bq.get_table(output)) <= 24
    assert warehouse.bq.keep_table(output, SHARD_TABLE_HOURS)
    assert SHARD_TABLE_HOURS - 1 < _hours_left(bq.get_table(output)) <= SHARD_TABLE_HOURS
    assert warehouse.bq.keep_table(output, 2)
    assert _hours_left(bq.get_table(output)) > SHARD_TABLE_HOURS - 1
    assert not warehouse.bq.keep_table(f"{bq.project}.{dataset}.never_was", 2)
    # A table that never expires is left so.
    forever = f"{bq.project}.{dataset}.forever"
    _run(bq, f"create table {quote_table(forever)} options (expiration_timestamp = null) "
             "as select 1 as x")
    assert bq.get_table(forever).expires is None
    assert warehouse.bq.keep_table(forever, 2)
    assert bq.get_table(forever).expires is None

    assert warehouse.bq.default_expiration_hours(bq.project, dataset) == 24

    # The route collects through keep_table: the output a merge reads lasts.
    collected = model.output_table("exp1", 1)
    _vertex_output(bq, model, collected, [{**_real_answers("text")[0], "request_id": "a"}])
    route = VertexBatchRoute(model, "us-central1", warehouse, vertex=lambda location: None)
    entry = LedgerEntry(job_name="projects/p/locations/us-central1/batchPredictionJobs/1",
                        dbt_model=model.unique_id, model_relation=model.view,
                        shard_table=shard.table, output_table=collected,
                        gemini_model=GEMINI_MODEL, location="us-central1",
                        state="SUCCEEDED", request_count=2)
    assert route.collect(entry) is not None
    assert _hours_left(bq.get_table(collected)) > SHARD_TABLE_HOURS - 1


def _row_error(code: int, status: str, message: str) -> str:
    """A row's status as the service writes it."""
    reason = {400: "Bad Request", 409: "Conflict", 429: "Too Many Requests",
              499: "Client Closed Request"}[code]
    body = {"error": {"code": code, "message": message, "status": status}}
    return f"{reason}: {json.dumps(body)}"


@pytest.mark.parametrize("retry_empty_answers", [False, True])
def test_retry_classes_decide_what_is_sent_again(
    bq: bigquery.Client, dataset: str, retry_empty_answers: bool
) -> None:
    model = _model(bq, dataset, max_retries=2, retry_empty_answers=retry_empty_answers)
    ids = ["answered", "refused", "throttled", "aborted", "cancelled", "thought_it_all",
           "blocked"]
    _build_tables(bq, model, [(i, None) for i in ids])
    processed = "2026-11-30T10:00:00+00:00"
    empty = {"candidates": [{"finishReason": "MAX_TOKENS", "content": {"role": "model"}}],
             "usageMetadata": {"promptTokenCount": 4, "thoughtsTokenCount": 64,
                               "totalTokenCount": 68}}
    rows = {
        "answered": {"response": json.loads(ANSWER), "status": ""},
        "refused": {"response": None, "status": _row_error(
            400, "INVALID_ARGUMENT", "Request contains an invalid argument.")},
        "throttled": {"response": None, "status": _row_error(
            429, "RESOURCE_EXHAUSTED", "Resource exhausted.")},
        # A concurrency conflict passes when sent again; a call cancelled does not.
        "aborted": {"response": None, "status": _row_error(409, "ABORTED", "Aborted.")},
        "cancelled": {"response": None, "status": _row_error(
            499, "CANCELLED", "The operation was cancelled.")},
        "thought_it_all": {"response": empty, "status": "",
                           "request": {"generationConfig": {"maxOutputTokens": 64}}},
        "blocked": {"response": {"promptFeedback": {"blockReason": "SAFETY"}}, "status": ""},
    }
    output = model.output_table("classes", 0)
    _vertex_output(bq, model, output, [
        {"request": {}, **row, "request_id": rid, "processed_time": processed}
        for rid, row in rows.items()
    ])
    warehouse = Warehouse(BigQuery(bq))
    result = warehouse.merge_output(model, output, "jobs/classes")
    assert (result.succeeded, result.failed) == (1, 6)
    # The empty answers were billed: their tokens count.
    assert result.thoughts_tokens == 64

    responses = _responses(bq, model)
    assert responses["thought_it_all"]["last_error"] == (
        "EMPTY_ANSWER: MAX_TOKENS (thinking used 64 of 64 output tokens; raise "
        "maxOutputTokens or lower thinkingBudget)")
    assert responses["thought_it_all"]["response"] == empty  # paid for: kept
    assert responses["blocked"]["last_error"] == "BLOCKED: SAFETY"
    assert responses["refused"]["last_error"] == (
        "400 INVALID_ARGUMENT: Request contains an invalid argument.")

    counts = warehouse.counts(model)
    [shard] = warehouse.create_shards(model, "again")
    resent = {row["request_id"] for row in _run(
        bq, f"select request_id from {quote_table(shard.table)}")}
    if retry_empty_answers:
        assert (counts.cached, counts.pending, counts.failed) == (1, 4, 2)
        assert resent == {"throttled", "aborted", "thought_it_all", "blocked"}
        assert warehouse.failure_reasons(model) == {
            "400 INVALID_ARGUMENT": 1, "499 CANCELLED": 1}
    else:
        # The 400, the 499 and the two empty answers cannot succeed: never sent again.
        assert (counts.cached, counts.pending, counts.failed) == (1, 2, 4)
        assert resent == {"throttled", "aborted"}
        assert warehouse.failure_reasons(model) == {
            "400 INVALID_ARGUMENT": 1, "499 CANCELLED": 1, "BLOCKED: SAFETY": 1,
            "EMPTY_ANSWER: MAX_TOKENS": 1}
