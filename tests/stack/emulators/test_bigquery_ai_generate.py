"""The local BigQuery answers AI.GENERATE, seen through google-cloud-bigquery and
dbt-bigquery: the forms of the call, what each row returns, the faults and the counts
(docs/local-stack.md, "AI.GENERATE on the local BigQuery").
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from google.api_core.exceptions import BadRequest
from google.cloud import bigquery

from gemini_batch.local.stack import StackState
from helpers.dbt_projects import DbtProjects

RETRYABLE_429 = ("A retryable error occurred: RESOURCE_EXHAUSTED error from remote "
                 "service/endpoint.")
SIMULATED = "This is a simulated response from gemini-2.5-flash"


@pytest.fixture(scope="module")
def dataset(bq: bigquery.Client) -> Iterator[str]:
    name = f"aigen_{uuid.uuid4().hex[:10]}"
    bq.create_dataset(name)
    bq.query(f"CREATE TABLE {name}.cities AS SELECT * FROM UNNEST(['Paris', 'Oslo', 'Lima']) "
             "AS city").result()
    yield name
    bq.delete_dataset(name, delete_contents=True, not_found_ok=True)


@pytest.fixture()
def admin(local_stack: StackState) -> Iterator[httpx.Client]:
    """The local BigQuery's /emulator endpoints; faults off again after the test."""
    with httpx.Client(base_url=local_stack.bigquery_endpoint) as client:
        client.put("/emulator/faults", json={}).raise_for_status()
        yield client
        client.put("/emulator/faults", json={}).raise_for_status()


def _query(bq: bigquery.Client, sql: str) -> tuple[list[dict], list[bigquery.SchemaField]]:
    result = bq.query(sql).result()
    return [dict(row) for row in result], list(result.schema)


def _rows(bq: bigquery.Client, sql: str) -> list[dict]:
    return _query(bq, sql)[0]


def _fields(schema: list[bigquery.SchemaField]) -> dict[str, tuple[str, str]]:
    """name -> (type, mode), nested fields as parent.child."""
    found = {}
    for field in schema:
        found[field.name] = (field.field_type, field.mode)
        for child in field.fields:
            found[f"{field.name}.{child.name}"] = (child.field_type, child.mode)
    return found


# ------------------------------------------------------------------ forms and shape


def test_a_string_prompt_answers_with_text_and_the_full_response(bq: bigquery.Client) -> None:
    rows, schema = _query(
        bq, "SELECT AI.GENERATE('Write a haiku about rain', "
            "endpoint => 'gemini-2.5-flash').* ")
    assert _fields(schema) == {"result": ("STRING", "NULLABLE"),
                               "full_response": ("JSON", "NULLABLE"),
                               "status": ("STRING", "NULLABLE")}
    [row] = rows
    assert row["status"] == ""
    assert row["result"].startswith(SIMULATED)
    assert "You asked: Write a haiku about rain" in row["result"]
    response = row["full_response"]
    assert response["candidates"][0]["content"]["parts"][0]["text"] == row["result"]
    assert response["candidates"][0]["finishReason"] == "STOP"
    assert response["modelVersion"] == "gemini-2.5-flash@default"
    assert response["usageMetadata"]["thoughtsTokenCount"] > 0  # 2.5 Flash thinks by default
    assert response["usageMetadata"]["promptTokenCount"] > 0
    assert len(response["responseId"]) == 23
    assert response["createTime"].endswith("Z")


def test_a_struct_prompt_of_strings_and_columns_over_a_table(
        bq: bigquery.Client, dataset: str) -> None:
    rows, schema = _query(
        bq, f"SELECT city, AI.GENERATE(('Describe ', city, ' in one line'), "
            f"connection_id => 'us.my_connection', endpoint => 'gemini-2.5-flash', "
            f"request_type => 'SHARED') AS g FROM {dataset}.cities ORDER BY city")
    assert _fields(schema)["g"] == ("RECORD", "NULLABLE")
    assert _fields(schema)["g.full_response"] == ("JSON", "NULLABLE")
    assert [row["city"] for row in rows] == ["Lima", "Oslo", "Paris"]
    for row in rows:
        assert row["g"]["status"] == ""
        assert f"You asked: Describe {row['city']} in one line" in row["g"]["result"]
        assert row["g"]["full_response"]["candidates"]
    # The named STRUCT form, and .result straight off the call.
    [row] = _rows(bq, "SELECT AI.GENERATE(prompt => STRUCT('Name a colour' AS a, "
                      "' please' AS b)).result AS answer")
    assert "You asked: Name a colour please" in row["answer"]


def test_create_table_as_and_insert_select_keep_the_struct_and_its_json(
        bq: bigquery.Client, dataset: str) -> None:
    bq.query(f"CREATE OR REPLACE TABLE {dataset}.answers AS SELECT city, "
             f"AI.GENERATE(CONCAT('Capital? ', city)) AS g FROM {dataset}.cities").result()
    bq.query(f"INSERT INTO {dataset}.answers SELECT 'Rome', "
             "AI.GENERATE('Capital? Rome')").result()
    table = bq.get_table(f"{dataset}.answers")
    assert _fields(table.schema)["g.full_response"] == ("JSON", "NULLABLE")
    rows = _rows(bq, f"SELECT city, g.result, g.status, "
                     f"INT64(g.full_response.usageMetadata.promptTokenCount) AS prompt_tokens "
                     f"FROM {dataset}.answers ORDER BY city")
    assert [row["city"] for row in rows] == ["Lima", "Oslo", "Paris", "Rome"]
    assert all(row["status"] == "" and row["prompt_tokens"] > 0 for row in rows)
    assert "You asked: Capital? Rome" in rows[-1]["result"]


def test_a_script_calls_it_in_each_of_its_statements(bq: bigquery.Client, dataset: str) -> None:
    # What a dbt materialization sends: several statements in one job.
    bq.query(f"""
        DECLARE model STRING DEFAULT 'gemini-2.5-flash';
        CREATE TEMP TABLE asked AS SELECT city FROM {dataset}.cities WHERE city != 'Lima';
        CREATE OR REPLACE TABLE {dataset}.scripted AS
        SELECT city, AI.GENERATE(('Say hello to ', city), output_schema => 'hello STRING').*
        FROM asked;
        INSERT INTO {dataset}.scripted
        SELECT 'Lima', AI.GENERATE('Say hello to Lima', output_schema => 'hello STRING').*;
    """).result()
    rows = _rows(bq, f"SELECT city, hello, status FROM {dataset}.scripted ORDER BY city")
    assert [(row["city"], row["status"]) for row in rows] == [
        ("Lima", ""), ("Oslo", ""), ("Paris", "")]
    assert all(row["hello"] for row in rows)


def test_quotes_backslashes_newlines_and_triple_quotes_are_answered_like_any_text(
        bq: bigquery.Client, dataset: str) -> None:
    texts = ["it's \"quoted\"", "back\\slash \\n not a newline", "two\nlines\r\nand a tab\t",
             "'''triple''' \"\"\"quotes\"\"\"", "`backtick` -- not a comment /* nor this */"]
    table = f"{dataset}.tricky"
    bq.query(f"CREATE OR REPLACE TABLE {table} (id INT64, prompt STRING)").result()
    bq.insert_rows_json(table, [{"id": i, "prompt": text} for i, text in enumerate(texts)])
    rows = _rows(bq, f"SELECT id, AI.GENERATE(prompt).result AS answer FROM {table} "
                     "ORDER BY id")
    for row, text in zip(rows, texts, strict=True):
        assert row["answer"].endswith(f"You asked: {text}")
    # The same texts as literals in the statement (escaped as BigQuery reads them).
    literal = bigquery.ScalarQueryParameter("p", "STRING", texts[3])
    job = bq.query("SELECT AI.GENERATE(@p).result AS answer",
                   job_config=bigquery.QueryJobConfig(query_parameters=[literal]))
    assert next(iter(job.result()))["answer"].endswith(f"You asked: {texts[3]}")
    [row] = _rows(bq, r"""SELECT AI.GENERATE('''a 'quoted' \\ "x" ''').result AS answer""")
    assert row["answer"].endswith("""You asked: a 'quoted' \\ "x" """)


def test_object_refs_in_a_struct_prompt_are_file_parts(bq: bigquery.Client,
                                                       dataset: str) -> None:
    bq.query(f"CREATE OR REPLACE TABLE {dataset}.images AS SELECT 'cat' AS name, "
             "OBJ.MAKE_REF('gs://pets/cat.png', 'us.my_connection') AS ref").result()
    table = bq.get_table(f"{dataset}.images")
    assert _fields(table.schema)["ref.uri"] == ("STRING", "NULLABLE")
    [row] = _rows(bq, f"SELECT AI.GENERATE(('Describe this ', name, ': ', ref)) AS g "
                      f"FROM {dataset}.images")
    assert row["g"]["status"] == ""
    assert "You asked: Describe this cat: \n[file gs://pets/cat.png (image/png)]" in (
        row["g"]["result"])
    details = row["g"]["full_response"]["usageMetadata"]["promptTokensDetails"]
    assert {"modality": "IMAGE", "tokenCount": 258} in details


# ------------------------------------------------------------------ model_params


def test_model_params_system_instruction_and_thinking_budget(bq: bigquery.Client) -> None:
    params = {"systemInstruction": {"parts": [{"text": "Answer in French"}]},
              "generationConfig": {"thinkingConfig": {"thinkingBudget": 0},
                                   "maxOutputTokens": 500}}
    [row] = _rows(bq, f"SELECT AI.GENERATE('Hello', endpoint => 'gemini-2.5-flash', "
                      f"model_params => JSON '{json.dumps(params)}') AS g")
    answer = row["g"]
    assert "System instruction: Answer in French" in answer["result"]
    assert "thoughtsTokenCount" not in answer["full_response"]["usageMetadata"]
    # snake_case, as protobuf's JSON reads it, works the same.
    [row] = _rows(bq, "SELECT AI.GENERATE('Hello', model_params => JSON "
                      "'{\"generation_config\": {\"thinking_config\": {\"thinking_budget\": 64}}}'"
                      ").full_response AS r")
    assert 0 < row["r"]["usageMetadata"]["thoughtsTokenCount"] <= 64


def test_a_response_schema_in_model_params_gives_a_json_answer(bq: bigquery.Client) -> None:
    params = {"generationConfig": {"responseMimeType": "application/json", "responseSchema": {
        "type": "OBJECT", "properties": {"mood": {"type": "STRING", "enum": ["up", "down"]},
                                         "score": {"type": "INTEGER", "minimum": 1,
                                                   "maximum": 5}}}}}
    [row] = _rows(bq, f"SELECT AI.GENERATE('Rate this', model_params => JSON "
                      f"'{json.dumps(params)}').result AS answer")
    answer = json.loads(row["answer"])
    assert answer["mood"] in ("up", "down") and 1 <= answer["score"] <= 5


def test_a_request_the_model_refuses_fails_its_row_with_a_400_status(
        bq: bigquery.Client) -> None:
    # 2.5 Pro cannot turn thinking off: the service answers 400 for that request.
    [row] = _rows(bq, "SELECT AI.GENERATE('Hi', endpoint => 'gemini-2.5-pro', model_params => "
                      "JSON '{\"generationConfig\": {\"thinkingConfig\": {\"thinkingBudget\": 0}}}'"
                      ") AS g")
    assert row["g"]["result"] is None and row["g"]["full_response"] is None
    assert row["g"]["status"].startswith("INVALID_ARGUMENT error from remote service/endpoint")
    assert "Budget 0 is invalid" in row["g"]["status"]


# ------------------------------------------------------------------ output_schema


def test_output_schema_returns_typed_fields_instead_of_result(
        bq: bigquery.Client, dataset: str) -> None:
    rows, schema = _query(
        bq, f"SELECT city, AI.GENERATE(('Facts about ', city), output_schema => "
            f"'country STRING, population INT64, area FLOAT64, coastal BOOL, "
            f"languages ARRAY<STRING>, mayor STRUCT<name STRING, since INT64>').* "
            f"FROM {dataset}.cities ORDER BY city")
    assert _fields(schema) == {
        "city": ("STRING", "NULLABLE"), "country": ("STRING", "NULLABLE"),
        "population": ("INTEGER", "NULLABLE"), "area": ("FLOAT", "NULLABLE"),
        "coastal": ("BOOLEAN", "NULLABLE"), "languages": ("STRING", "REPEATED"),
        "mayor": ("RECORD", "NULLABLE"), "mayor.name": ("STRING", "NULLABLE"),
        "mayor.since": ("INTEGER", "NULLABLE"), "full_response": ("JSON", "NULLABLE"),
        "status": ("STRING", "NULLABLE")}
    for row in rows:
        assert row["status"] == ""
        answer = json.loads(row["full_response"]["candidates"][0]["content"]["parts"][0]["text"])
        assert row["population"] == answer["population"] and isinstance(row["population"], int)
        assert row["coastal"] == answer["coastal"]
        assert row["languages"] == answer["languages"]
        assert row["mayor"] == answer["mayor"]


# ------------------------------------------------------------------ faults and counts


def test_failed_rows_under_the_fault_have_no_result_and_bigquerys_status(
        bq: bigquery.Client, dataset: str, admin: httpx.Client) -> None:
    admin.put("/emulator/faults", json={"ai_generate": {
        "row_failure_rate": 1.0, "row_failure_codes": [429]}}).raise_for_status()
    rows = _rows(bq, f"SELECT AI.GENERATE(city) AS g FROM {dataset}.cities")
    assert [row["g"] for row in rows] == [
        {"result": None, "full_response": None, "status": RETRYABLE_429}] * 3
    settings = admin.get("/emulator/faults").json()["ai_generate"]
    assert settings["row_failure_rate"] == 1.0 and settings["row_failure_codes"] == [429]


def test_row_failures_are_drawn_per_request_and_a_retry_draws_again(
        bq: bigquery.Client, admin: httpx.Client) -> None:
    admin.put("/emulator/faults", json={"ai_generate": {
        "row_failure_rate": 0.5, "row_failure_codes": [429, 503]}}).raise_for_status()
    sql = ("SELECT n, AI.GENERATE(CONCAT('Row ', CAST(n AS STRING))).status AS status "
           "FROM UNNEST(GENERATE_ARRAY(1, 40)) AS n ORDER BY n")
    first = [row["status"] for row in _rows(bq, sql)]
    failed = [n for n, status in enumerate(first, start=1) if status]
    assert 5 < len(failed) < 35
    assert {status for status in first if status} <= {
        RETRYABLE_429, RETRYABLE_429.replace("RESOURCE_EXHAUSTED", "UNAVAILABLE")}
    # Setting the faults again starts the draws again: the same rows fail the same way.
    admin.put("/emulator/faults", json={"ai_generate": {
        "row_failure_rate": 0.5, "row_failure_codes": [429, 503]}}).raise_for_status()
    assert [row["status"] for row in _rows(bq, sql)] == first
    # A row answered stays answered; a failed one draws again on its next attempt.
    again = [row["status"] for row in _rows(bq, sql)]
    assert all(again[n - 1] == "" for n in range(1, 41) if n not in failed)
    assert any(again[n - 1] == "" for n in failed)


def test_empty_answers_have_no_result_an_empty_status_and_say_why(
        bq: bigquery.Client, admin: httpx.Client) -> None:
    admin.put("/emulator/faults", json={"ai_generate": {
        "empty_answer_rate": 1.0, "empty_answer_kinds": ["blocked:SAFETY"]}}).raise_for_status()
    [row] = _rows(bq, "SELECT AI.GENERATE('Tell me a story') AS g")
    assert row["g"]["result"] is None and row["g"]["status"] == ""
    assert row["g"]["full_response"]["promptFeedback"]["blockReason"] == "SAFETY"
    admin.put("/emulator/faults", json={}).raise_for_status()
    # The prompt markers of the Vertex emulator work here too.
    [row] = _rows(bq, "SELECT AI.GENERATE('Recite [[gemini-batch:finish:RECITATION]]') AS g")
    assert row["g"]["result"] is None and row["g"]["status"] == ""
    assert row["g"]["full_response"]["candidates"][0]["finishReason"] == "RECITATION"


def test_the_stats_count_rows_answered_and_statements(
        bq: bigquery.Client, dataset: str, admin: httpx.Client) -> None:
    before = admin.get("/emulator/ai_generate").json()
    admin.put("/emulator/faults", json={"ai_generate": {
        "row_failure_rate": 1.0}}).raise_for_status()
    _rows(bq, f"SELECT AI.GENERATE(city).status FROM {dataset}.cities")
    admin.put("/emulator/faults", json={}).raise_for_status()
    _rows(bq, f"SELECT AI.GENERATE(city).status FROM {dataset}.cities WHERE city = 'Oslo'")
    _rows(bq, "SELECT 'no AI.GENERATE( here' AS s")
    # Spread into columns: still one call per row, whatever the number of fields.
    _rows(bq, f"SELECT AI.GENERATE(city, output_schema => 'a STRING, b INT64, c BOOL').* "
              f"FROM {dataset}.cities")
    after = admin.get("/emulator/ai_generate").json()
    assert after["rows"] - before["rows"] == 7  # failures included
    assert after["failed_rows"] - before["failed_rows"] == 3
    assert after["statements"] - before["statements"] == 3


def test_bad_fault_settings_are_refused(admin: httpx.Client) -> None:
    answer = admin.put("/emulator/faults", json={"ai_generate": {"row_failure_codes": [418]}})
    assert answer.status_code == 400 and "418" in answer.json()["error"]
    answer = admin.put("/emulator/faults", json={"ai_generate": {"hold": True}})
    assert answer.status_code == 400 and "hold" in answer.json()["error"]


# ------------------------------------------------------------------ refused calls


@pytest.mark.parametrize(("call", "words"), [
    ("AI.GENERATE('x', endpoint => 'gemini-9-ultra')", "Invalid endpoint 'gemini-9-ultra'"),
    ("AI.GENERATE('x', endpoint => 'gemini-1.5-pro')", "retired"),
    ("AI.GENERATE('x', 'gemini-2.5-flash')", "only positional argument"),
    ("AI.GENERATE('x', temperature => 0.2)", "no argument named temperature"),
    ("AI.GENERATE('x', request_type => 'BATCH')", "Invalid request_type 'BATCH'"),
    ("AI.GENERATE('x', output_schema => 'when DATE')", "type DATE is not supported"),
    ("AI.GENERATE('x', model_params => JSON '{\"contents\": []}')", "cannot set contents"),
    ("AI.GENERATE('x', model_params => PARSE_JSON(CONCAT('{', '}')))", "must be a JSON literal"),
    ("AI.GENERATE('x', request_type => 'DEDICATED')", "Provisioned throughput"),
])
def test_calls_bigquery_refuses_fail_the_query(bq: bigquery.Client, call: str,
                                               words: str) -> None:
    with pytest.raises(BadRequest, match=words):
        _rows(bq, f"SELECT {call} AS g")


# ------------------------------------------------------------------ dbt-bigquery

_DBT_PROJECT = """
name: ai_generate_probe
version: "1.0.0"
config-version: 2
profile: gemini_batch_local
flags:
  send_anonymous_usage_stats: false
"""
_MODEL = """
{{ config(materialized='table') }}
select
  topic,
  ai.generate(('Write one line about ', topic), endpoint => 'gemini-2.5-flash',
              output_schema => 'line STRING, words INT64') as g
from unnest(['tea', 'rain']) as topic
"""


def test_a_dbt_model_answers_with_ai_generate(bq: bigquery.Client,
                                              dbt_projects: DbtProjects) -> None:
    project = dbt_projects.create("ai_generate_probe",
                                  {"dbt_project.yml": _DBT_PROJECT,
                                   "models/answers.sql": _MODEL},
                                  profile="gemini_batch_local", package=False)
    try:
        project.dbt_ok("run")
        rows = project.rows("select topic, g.line, g.words, g.status from `{ds}.answers` "
                            "order by topic")
        assert [row["topic"] for row in rows] == ["rain", "tea"]
        assert all(row["status"] == "" and isinstance(row["words"], int) and row["line"]
                   for row in rows)
    finally:
        project.drop()
