"""materialized='gemini_batch' in small dbt projects that install the package from the
repo root (packages.yml ``local:``), run through dbtRunner on the local stack.

What a user sees after ``dbt run``: the requests table, the responses table (kept across
runs, dropped only by var gemini_batch_reset), the view with batch_state, and compiler
errors that name the model when its config is wrong.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import bigquery

from gemini_batch.clients.bigquery import BigQuery
from gemini_batch.rules.answers import answered_sql, empty_answer_sql, error_code_sql
from gemini_batch.state.ledger import Ledger, LedgerEntry
from helpers.dbt_projects import DbtProjects, DbtTestProject, dbt_messages
from helpers.paths import FIXTURES

pytestmark = pytest.mark.slow

GEMINI_MODEL = "gemini-2.5-flash"

QUESTIONS_SQL = """\
{{ config(materialized='gemini_batch', gemini_model=var('test_gemini_model', 'gemini-2.5-flash'),
          max_retries=1) }}
select id, question,
  json_object('contents', [json_object('role', 'user', 'parts', [json_object('text', question)])])
    as request
from unnest([
  struct(1 as id, 'Give me a recipe for red velvet cake.' as question),
  struct(2, concat('Give me a recipe for pound cake.', {{ "'" ~ var('test_suffix', '') ~ "'" }})),
  struct(3, 'Give me a recipe for banana bread.'),
  struct(4, 'Give me a recipe for banana bread.')
])
union all
select 5, 'empty', parse_json('{"contents": []}')
"""

# A STRING request column: parsed; text that is not JSON is kept and reported.
TEXT_REQUESTS_SQL = """\
{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash') }}
select 1 as id, '{"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}' as request
union all
select 2, 'not json {'
"""


# Keys under meta (dbt warns about custom keys at the top of config()).
META_CONFIG_SQL = """\
{{ config(materialized='gemini_batch', meta={'gemini_model': 'gemini-2.5-pro', 'max_retries': 0}) }}
select 1 as id, json_object('contents', [json_object('role', 'user', 'parts',
  [json_object('text', 'hi')])]) as request
"""


def _models(models: dict[str, str]) -> dict[str, str]:
    return {f"models/{name}.sql": sql for name, sql in models.items()}


@pytest.fixture(scope="module")
def dbt_project(dbt_projects: DbtProjects) -> DbtTestProject:
    project = dbt_projects.create(
        "mat_test",
        _models(
            {
                "questions": QUESTIONS_SQL,
                "text_requests": TEXT_REQUESTS_SQL,
                "meta_config": META_CONFIG_SQL,
            }
        ),
    )
    project.dbt_ok("run")
    return project


def _rows(bq: bigquery.Client, sql: str) -> list[dict]:
    return [dict(row) for row in bq.query(sql).result()]


def _view(bq: bigquery.Client, project: DbtTestProject, name: str = "questions") -> dict[int, dict]:
    return {row["id"]: row for row in _rows(bq, f"select * from {project.quoted(name)}")}


def _insert_responses(bq: bigquery.Client, project: DbtTestProject, rows: list[dict]) -> None:
    """Answers as `gemini-batch build` would have merged them."""
    bq.query(f"delete from {project.quoted('questions__responses')} where true").result()
    for row in rows:
        bq.query(
            f"""insert into {project.quoted("questions__responses")}
            (request_id, response, status, processed_time, attempts, last_error, job_name,
             updated_at, answered, empty_answer, error_code)
            values (@request_id, safe.parse_json(@response), @status, current_timestamp(),
                    @attempts, @last_error, 'projects/p/locations/l/batchPredictionJobs/1',
                    current_timestamp(),
                    {answered_sql("@status", "safe.parse_json(@response)")},
                    {empty_answer_sql("@status", "safe.parse_json(@response)")},
                    {error_code_sql("@status")})""",
            job_config=bigquery.QueryJobConfig(
                query_parameters=[
                    bigquery.ScalarQueryParameter("request_id", "STRING", row["request_id"]),
                    bigquery.ScalarQueryParameter("response", "STRING", row.get("response")),
                    bigquery.ScalarQueryParameter("status", "STRING", row["status"]),
                    bigquery.ScalarQueryParameter("attempts", "INT64", row["attempts"]),
                    bigquery.ScalarQueryParameter("last_error", "STRING", row.get("last_error")),
                ]
            ),
        ).result()


def _sample_response() -> str:
    line = (FIXTURES / "batch_request_text_output.jsonl").read_text().splitlines()[0]
    return json.dumps(json.loads(line)["response"])


def test_run_builds_requests_responses_and_view(bq, dbt_project: DbtTestProject) -> None:
    tables = {t.table_id: t.table_type for t in bq.list_tables(dbt_project.dataset)}
    assert tables["questions"] == "VIEW"
    assert tables["questions__requests"] == "TABLE"
    assert tables["questions__responses"] == "TABLE"
    assert tables["questions__keys"] == "TABLE"  # key -> request_id history (diff)

    requests = _rows(bq, f"select * from {dbt_project.quoted('questions__requests')}")
    assert len(requests) == 5
    assert set(requests[0]) == {"id", "question", "request", "request_id", "request_problem",
                                "_gemini_batch_key"}

    view_columns = [f.name for f in bq.get_table(f"{dbt_project.dataset}.questions").schema]
    assert view_columns == [
        "id", "question", "request", "request_id", "response", "status", "processed_time",
        "attempts", "last_error", "job_name", "batch_state",
    ]  # fmt: skip

    view = _view(bq, dbt_project)
    assert {i: view[i]["batch_state"] for i in view} == {
        1: "pending", 2: "pending", 3: "pending", 4: "pending", 5: "failed",
    }  # fmt: skip
    assert view[5]["last_error"] == "contents: is empty"
    assert all(view[i]["attempts"] == 0 and view[i]["response"] is None for i in range(1, 5))


def test_request_id_is_sha256_of_model_and_canonical_request(
    bq, dbt_project: DbtTestProject
) -> None:
    rows = _rows(
        bq,
        "select id, request_id, to_json_string(request) as canonical "
        f"from {dbt_project.quoted('questions__requests')}",
    )
    for row in rows:
        expected = hashlib.sha256(f"{GEMINI_MODEL}\n{row['canonical']}".encode()).hexdigest()
        assert row["request_id"] == expected, row
    by_id = {row["id"]: row["request_id"] for row in rows}
    # The same question asked twice is one request (answered and paid once).
    assert by_id[3] == by_id[4]
    assert len(set(by_id.values())) == 4


def test_request_id_changes_only_with_the_request_or_the_gemini_model(
    bq, dbt_project: DbtTestProject
) -> None:
    def ids() -> dict[int, str]:
        sql = f"select id, request_id from {dbt_project.quoted('questions__requests')}"
        return {row["id"]: row["request_id"] for row in _rows(bq, sql)}

    before = ids()
    dbt_project.dbt_ok("run", "--select", "questions")
    assert ids() == before

    dbt_project.dbt_ok("run", "--select", "questions", "--vars", "{test_suffix: ' Quickly.'}")
    changed = ids()
    assert {i for i in before if before[i] != changed[i]} == {2}

    dbt_project.dbt_ok(
        "run", "--select", "questions", "--vars", "{test_gemini_model: gemini-2.5-pro}"
    )
    other_model = ids()
    assert all(other_model[i] != before[i] for i in before)

    dbt_project.dbt_ok("run", "--select", "questions")
    assert ids() == before


def test_batch_state_follows_the_responses_rows(bq, dbt_project: DbtTestProject) -> None:
    ids = {row["id"]: row["request_id"] for row in _view(bq, dbt_project).values()}
    _insert_responses(
        bq,
        dbt_project,
        [
            {"request_id": ids[1], "response": _sample_response(), "status": "", "attempts": 1},
            # max_retries=1: one failed attempt leaves a retry, two use them up.
            {"request_id": ids[2], "status": "429 quota", "attempts": 1, "last_error": "429"},
            {"request_id": ids[3], "status": "500 boom", "attempts": 2, "last_error": "boom"},
        ],
    )
    view = _view(bq, dbt_project)
    states = {i: (view[i]["batch_state"], view[i]["attempts"]) for i in view}
    assert states == {
        1: ("succeeded", 1), 2: ("pending", 1), 3: ("failed", 2), 4: ("failed", 2),
        5: ("failed", 0),
    }  # fmt: skip
    assert view[1]["response"]["usageMetadata"]["promptTokenCount"] == 9
    assert view[1]["last_error"] is None
    assert view[3]["last_error"] == "boom"
    assert view[1]["job_name"].endswith("/batchPredictionJobs/1")


def test_full_refresh_keeps_answers_and_reset_drops_them(bq, dbt_project: DbtTestProject) -> None:
    ids = {row["id"]: row["request_id"] for row in _view(bq, dbt_project).values()}
    _insert_responses(
        bq,
        dbt_project,
        [{"request_id": ids[1], "response": _sample_response(), "status": "", "attempts": 1}],
    )
    responses = dbt_project.quoted("questions__responses")

    dbt_project.dbt_ok("run", "--full-refresh")
    assert _rows(bq, f"select request_id from {responses}") == [{"request_id": ids[1]}]
    assert _view(bq, dbt_project)[1]["batch_state"] == "succeeded"

    # A reset for another model leaves this one alone.
    dbt_project.dbt_ok("run", "--vars", "{gemini_batch_reset: [text_requests]}")
    assert len(_rows(bq, f"select request_id from {responses}")) == 1

    dbt_project.dbt_ok("run", "--select", "questions", "--vars", "{gemini_batch_reset: true}")
    assert _rows(bq, f"select request_id from {responses}") == []
    assert _view(bq, dbt_project)[1]["batch_state"] == "pending"


def test_a_responses_table_made_before_the_derived_columns_gets_them_filled(
    bq, dbt_project: DbtTestProject
) -> None:
    """An older package made <model>__responses without the derived columns (`answered`,
    `empty_answer`, `error_code`): the next run adds them and fills them from the answers
    kept (ADR 0011), so an answer paid for stays answered and an empty one stays failed
    for good."""
    ids = {row["id"]: row["request_id"] for row in _view(bq, dbt_project).values()}
    responses = dbt_project.quoted("questions__responses")
    empty = json.dumps({"candidates": [{"finishReason": "RECITATION"}]})
    bq.query(f"drop table {responses}").result()
    bq.query(
        f"""create table {responses} (request_id STRING, response JSON, status STRING,
        processed_time TIMESTAMP, attempts INT64, last_error STRING, job_name STRING,
        updated_at TIMESTAMP)"""
    ).result()
    bq.query(
        f"""insert into {responses} (request_id, response, status, attempts)
        values ('{ids[1]}', parse_json(@answer), '', 1), ('{ids[2]}', parse_json(@empty), '', 1),
               ('{ids[3]}', null, '429 quota', 1)""",
        job_config=bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter("answer", "STRING", _sample_response()),
            bigquery.ScalarQueryParameter("empty", "STRING", empty),
        ]),
    ).result()

    dbt_project.dbt_ok("run", "--select", "questions")

    columns = [f.name for f in bq.get_table(dbt_project.table("questions__responses")).schema]
    # Where a new table has them, in the order they came: `gemini-batch retry`'s column,
    # then where an answer was copied from; both empty (never asked, nothing copied).
    assert columns[-5:] == ["answered", "empty_answer", "error_code", "retry_at_attempt",
                            "reused_from"]
    assert _rows(bq, f"select countif(retry_at_attempt is not null) as n, "
                 f"countif(reused_from is not null) as m from {responses}"
                 ) == [{"n": 0, "m": 0}]
    derived = {
        row["request_id"]: (row["answered"], row["empty_answer"], row["error_code"])
        for row in _rows(
            bq, f"select request_id, answered, empty_answer, error_code from {responses}")
    }
    assert derived == {
        ids[1]: (True, False, None), ids[2]: (False, True, None), ids[3]: (False, False, 429),
    }
    view = _view(bq, dbt_project)
    assert [view[i]["batch_state"] for i in (1, 2, 3)] == ["succeeded", "failed", "pending"]
    # Filled once: a later run finds the columns and changes nothing.
    dbt_project.dbt_ok("run", "--select", "questions")
    assert _rows(bq, f"select count(*) as n from {responses}") == [{"n": 3}]


def test_string_requests_are_parsed_and_bad_json_fails(bq, dbt_project: DbtTestProject) -> None:
    view = _view(bq, dbt_project, "text_requests")
    assert view[1]["batch_state"] == "pending"
    assert view[1]["request"] == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert view[2]["batch_state"] == "failed"
    assert view[2]["request"] is None
    assert view[2]["last_error"] == "request: is not valid JSON"
    assert view[2]["request_id"] and view[2]["request_id"] != view[1]["request_id"]


def test_config_keys_under_meta(bq, dbt_project: DbtTestProject) -> None:
    [row] = _rows(
        bq,
        "select request_id, to_json_string(request) as canonical "
        f"from {dbt_project.quoted('meta_config__requests')}",
    )
    expected = hashlib.sha256(f"gemini-2.5-pro\n{row['canonical']}".encode()).hexdigest()
    assert row["request_id"] == expected
    # max_retries=0 from meta: one failed answer and the row is failed.
    bq.query(
        f"insert into {dbt_project.quoted('meta_config__responses')} (request_id, status, attempts)"
        f" values ('{expected}', 'boom', 1)"
    ).result()
    assert _view(bq, dbt_project, "meta_config")[1]["batch_state"] == "failed"


BAD_MODELS: dict[str, tuple[str, str]] = {
    "no_gemini_model": (
        "{{ config(materialized='gemini_batch') }}",
        "config 'gemini_model' is required",
    ),
    "bad_retries": (
        "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash', "
        "max_retries='two') }}",
        "config 'max_retries' must be a whole number from 0 to 100; got two",
    ),
    "huge_shards": (
        "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash', "
        "shard_size=300000) }}",
        "config 'shard_size' must be a whole number from 1 to 200000",
    ),
    "negative_budget": (
        "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash', "
        "max_cost_usd=-1) }}",
        "config 'max_cost_usd' must be a number of US dollars >= 0",
    ),
    "queue_hours_zero": (
        "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash', "
        "meta={'max_queue_hours': 0}) }}",
        "config 'max_queue_hours' must be a number of hours above 0 and at most 72 (a job "
        "still queued at 72 hours expires), or left out for no deadline; got 0",
    ),
    "queue_hours_text": (
        "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash', "
        "meta={'max_queue_hours': '24'}) }}",
        "config 'max_queue_hours' must be a number of hours above 0",
    ),
    "multi_region": (
        "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash', location='US') }}",
        "is a multi-region",
    ),
}


@pytest.fixture(scope="module")
def bad_project(dbt_projects: DbtProjects) -> DbtTestProject:
    request = (
        "json_object('contents', "
        "[json_object('role', 'user', 'parts', [json_object('text', 'x')])])"
    )
    models = {
        name: f"{config}\nselect 1 as id, {request} as request"
        for name, (config, _) in BAD_MODELS.items()
    }
    models["no_request"] = (
        "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash') }}\n"
        "select 1 as id, 'hi' as prompt"
    )
    models["reserved_column"] = (
        "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash') }}\n"
        f"select 1 as id, 'x' as status, {request} as request"
    )
    return dbt_projects.create("mat_test", _models(models))


ERRORS = {
    **{name: message for name, (_, message) in BAD_MODELS.items()},
    "no_request": "must select a column named `request`",
    "reserved_column": "the model selects status, which the package adds itself",
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_bad_config_fails_with_an_error_naming_the_model(
    bq, bad_project: DbtTestProject, name: str
) -> None:
    result = bad_project.dbt("run", "--select", name)
    assert not result.success
    message = dbt_messages(result)
    assert f"gemini_batch model model.mat_test.{name} (models/{name}.sql)" in message
    assert ERRORS[name] in message
    # Nothing was built for it.
    assert not list(bq.query(
        "select table_name from "
        f"`{bad_project.stack.project}.{bad_project.dataset}.INFORMATION_SCHEMA.TABLES` "
        f"where table_name like '{name}%'"
    ).result())  # fmt: skip


# -- the models over the ledger ------------------------------------------------------

LEDGER_MODELS = ["gemini_batch_job_history", "gemini_batch_usage_daily"]


def test_ledger_models_are_off_by_default(dbt_project: DbtTestProject) -> None:
    result = dbt_project.dbt_ok("ls", "--resource-type", "model", "--output", "name")
    listed = set(result.result)
    assert "questions" in listed
    assert not listed & set(LEDGER_MODELS)


def test_ledger_models_run_before_and_after_the_ledger_exists(
    bq, dbt_projects: DbtProjects
) -> None:
    project = dbt_projects.create("mat_test", {})
    enable = ["--vars", "{gemini_batch_ledger_models: true}"]
    # No ledger yet: the models still run, and are empty.
    project.dbt_ok("run", *enable)
    for name in LEDGER_MODELS:
        assert _rows(bq, f"select * from {project.quoted(name)}") == []

    ledger = Ledger(BigQuery(bq), project.stack.project, project.dataset)
    ledger.ensure()
    _record_finished_job(ledger, "1", tokens=(1000, 3000, 0), cost=0.5, ended=True)
    _record_finished_job(ledger, "2", tokens=(2000, 1000, 500), cost=0.25, ended=True)
    _record_finished_job(ledger, "3", tokens=(0, 0, 0), cost=None, ended=False)
    project.dbt_ok("run", *enable)

    history = {
        row["job_id"]: row for row in _rows(bq, f"select * from {project.quoted(LEDGER_MODELS[0])}")
    }
    assert set(history) == {"1", "2", "3"}
    assert history["1"]["duration_seconds"] == 3600
    assert history["3"]["duration_seconds"] is None
    assert history["1"]["dbt_model_name"] == "questions"
    assert history["2"]["actual_cost_usd"] == pytest.approx(0.25)

    daily = _rows(bq, f"select * from {project.quoted(LEDGER_MODELS[1])}")
    assert len(daily) == 1
    assert daily[0]["gemini_model"] == GEMINI_MODEL
    assert daily[0]["jobs"] == 3
    assert daily[0]["requests"] == 30
    assert daily[0]["prompt_tokens"] == 3000
    assert daily[0]["output_tokens"] == 4500
    assert daily[0]["actual_cost_usd"] == pytest.approx(0.75)


def _record_finished_job(
    ledger: Ledger,
    job_id: str,
    *,
    tokens: tuple[int, int, int],
    cost: float | None,
    ended: bool,
) -> None:
    submitted = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    name = f"projects/p/locations/us-central1/batchPredictionJobs/{job_id}"
    ledger.record_submitted(
        LedgerEntry(
            job_name=name,
            dbt_model="model.mat_test.questions",
            model_relation="p.d.questions",
            shard_table=f"p.d.questions__shard_r_{job_id}",
            output_table=f"p.d.questions__output_r_{job_id}",
            gemini_model=GEMINI_MODEL,
            location="us-central1",
            state="RUNNING",
            request_count=10,
            submitted_at=submitted,
        )
    )
    if ended:
        prompt, candidates, thoughts = tokens
        ledger.update(
            name,
            state="SUCCEEDED",
            ended_at=submitted + timedelta(hours=1),
            succeeded_count=10,
            failed_count=0,
            prompt_tokens=prompt,
            candidates_tokens=candidates,
            thoughts_tokens=thoughts,
            total_tokens=prompt + candidates + thoughts,
            actual_cost_usd=cost,
        )
