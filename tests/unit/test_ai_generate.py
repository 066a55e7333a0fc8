"""AI.GENERATE on the local BigQuery, the pure parts: the statement rewrite, the
output schema, the rows answered through the Vertex emulator's one entry point, the
status BigQuery words, and the JSON fields nested in a schema. No server: the stack
tests (tests/stack/emulators/test_bigquery_ai_generate.py) run the real thing."""

from __future__ import annotations

import json

import pytest

from gemini_batch.local.ai_generate import rows, schema, sql
from gemini_batch.local.bigquery_types import json_paths, mark_json_entries
from gemini_batch.local.vertex.engines.simulate import SimulateEngine
from gemini_batch.local.vertex.faults import Faults, row_error
from gemini_batch.local.vertex.generate import Call, answer

# -- the rewrite ------------------------------------------------------------------------


def test_each_form_of_the_call_is_rewritten_and_nothing_else_is_touched() -> None:
    statement = ("SELECT 'AI.GENERATE(not a call)' AS s, -- AI.GENERATE( in a comment\n"
                 "AI.GENERATE('hi').result AS r, AI.GENERATE(('a', c)) AS g, "
                 "AI.GENERATE(prompt => c, endpoint => 'gemini-2.5-flash').* FROM t")
    rewritten = sql.rewrite(statement)
    assert rewritten is not None and rewritten.calls == 3
    assert rewritten.sql == (
        "SELECT 'AI.GENERATE(not a call)' AS s, -- AI.GENERATE( in a comment\n"
        "gemini_batch_ai_generate([TO_JSON_STRING('hi')], NULL, NULL, NULL, NULL).result AS r, "
        "gemini_batch_ai_generate([TO_JSON_STRING('a'), TO_JSON_STRING(c)], NULL, NULL, NULL, "
        "NULL) AS g, gemini_batch_ai_generate_spread(gemini_batch_ai_generate("
        "[TO_JSON_STRING(c)], 'gemini-2.5-flash', NULL, NULL, NULL)) FROM t")
    assert list(rewritten.functions) == ["gemini_batch_ai_generate"]
    assert sql.rewrite("SELECT AI.GENERATE_TABLE(1), 'AI.GENERATE(x)'") is None
    assert sql.rewrite("SELECT 1") is None


def test_prompt_values_stay_expressions_of_the_statement() -> None:
    # A literal full of quotes is written back as a literal, never pasted as SQL.
    statement = r"""SELECT AI.GENERATE('''it's "x" \\ '''), AI.GENERATE(@p)"""
    rewritten = sql.rewrite(statement)
    assert rewritten is not None
    assert "TO_JSON_STRING('it\\'s \"x\" \\\\ ')" in rewritten.sql
    assert "TO_JSON_STRING(@p)" in rewritten.sql


def test_obj_make_ref_becomes_an_object_ref_struct() -> None:
    rewritten = sql.rewrite("SELECT AI.GENERATE(('Describe ', OBJ.MAKE_REF(uri, 'us.c'))), "
                            "OBJ.MAKE_REF('gs://b/x.pdf') AS ref FROM t")
    assert rewritten is not None and rewritten.calls == 1
    assert ("TO_JSON_STRING(STRUCT(uri AS uri, CAST(NULL AS STRING) AS version, 'us.c' AS "
            "authorizer, CAST(NULL AS JSON) AS details))") in rewritten.sql
    assert ("STRUCT('gs://b/x.pdf' AS uri, CAST(NULL AS STRING) AS version, CAST(NULL AS "
            "STRING) AS authorizer, CAST(NULL AS JSON) AS details) AS ref") in rewritten.sql
    with pytest.raises(sql.AiGenerateError, match="takes \\(uri\\)"):
        sql.rewrite("SELECT OBJ.MAKE_REF(JSON '{\"uri\": \"gs://b/x\"}')")


def test_output_schema_and_model_params_are_passed_on() -> None:
    rewritten = sql.rewrite(
        "SELECT AI.GENERATE(STRUCT('a' AS x, c AS y), connection_id => 'us.conn', "
        "request_type => 'shared', model_params => JSON '{\"generation_config\": {}}', "
        "output_schema => 'n INT64') FROM t")
    assert rewritten is not None
    [name] = rewritten.functions
    assert name.startswith("gemini_batch_ai_generate_") and name in rewritten.sql
    assert rewritten.functions[name].text == "n INT64"
    assert "TO_JSON_STRING(PARSE_JSON('{\"generation_config\": {}}'))" in rewritten.sql
    assert rewritten.sql.endswith("'shared', 'us.conn') FROM t")


@pytest.mark.parametrize(("call", "words"), [
    ("AI.GENERATE('x', 'gemini-2.5-flash')", "only positional argument"),
    ("AI.GENERATE(endpoint => 'gemini-2.5-flash')", "needs a prompt"),
    ("AI.GENERATE('x', top_k => 3)", "no argument named top_k"),
    ("AI.GENERATE('x', endpoint => 'a', endpoint => 'b')", "given twice"),
    ("AI.GENERATE('x', endpoint => 'gemini-7')", "Invalid endpoint 'gemini-7'"),
    ("AI.GENERATE('x', endpoint => 'gemini-1.5-flash')", "retired"),
    ("AI.GENERATE('x', request_type => 'FAST')", "Invalid request_type 'FAST'"),
    ("AI.GENERATE('x', request_type => 'DEDICATED')", "Provisioned throughput"),
    ("AI.GENERATE('x', model_params => PARSE_JSON(c))", "must be a JSON literal"),
    ("AI.GENERATE('x', model_params => JSON '[1]')", "must be a JSON object"),
    ("AI.GENERATE('x', model_params => JSON '{\"contents\": []}')", "cannot set contents"),
    ("AI.GENERATE('x', output_schema => c)", "must be a string literal"),
    ("AI.GENERATE('x', output_schema => 'a GEOGRAPHY')", "GEOGRAPHY is not supported"),
    ("AI.GENERATE('x', output_schema => 'a STRING', model_params => JSON "
     "'{\"generationConfig\": {\"responseSchema\": {\"type\": \"STRING\"}}}')",
     "cannot be used together"),
])
def test_calls_bigquery_refuses_are_refused_before_running(call: str, words: str) -> None:
    with pytest.raises(sql.AiGenerateError, match=words):
        sql.rewrite(f"SELECT {call} FROM t")


def test_the_endpoint_may_be_a_full_url() -> None:
    url = ("https://aiplatform.googleapis.com/v1/projects/p/locations/global/publishers/"
           "google/models/gemini-2.5-pro")
    assert rows.model_of(url) == "gemini-2.5-pro"
    assert rows.model_of(None) == rows.DEFAULT_ENDPOINT == "gemini-2.5-flash"
    assert rows.endpoint_error(url) is None


# -- the output schema ------------------------------------------------------------------


def test_the_output_schema_gives_the_struct_the_response_schema_and_typed_values() -> None:
    output = schema.parse("name STRING, age INT64, tags ARRAY<STRING>, "
                          "home STRUCT<city STRING, lat FLOAT64>, ok BOOL")
    assert output.duckdb_type == (
        'STRUCT("name" VARCHAR, "age" BIGINT, "tags" VARCHAR[], '
        '"home" STRUCT("city" VARCHAR, "lat" DOUBLE), "ok" BOOLEAN, '
        "full_response JSON, status VARCHAR)")
    assert output.response_schema == {
        "type": "OBJECT",
        "properties": {"name": {"type": "STRING"}, "age": {"type": "INTEGER"},
                       "tags": {"type": "ARRAY", "items": {"type": "STRING"}},
                       "home": {"type": "OBJECT",
                                "properties": {"city": {"type": "STRING"},
                                               "lat": {"type": "NUMBER"}},
                                "propertyOrdering": ["city", "lat"]},
                       "ok": {"type": "BOOLEAN"}},
        "propertyOrdering": ["name", "age", "tags", "home", "ok"]}
    assert output.values({"name": "Ada", "age": 36.0, "tags": ["x"],
                          "home": {"city": "London", "lat": 51}, "ok": True}) == {
        "name": "Ada", "age": 36, "tags": ["x"], "home": {"city": "London", "lat": 51.0},
        "ok": True}
    with pytest.raises(ValueError, match="age is not an integer"):
        output.values({"age": 1.5})
    assert schema.parse(None).duckdb_type == (
        "STRUCT(result VARCHAR, full_response JSON, status VARCHAR)")


# -- rows -------------------------------------------------------------------------------


def _generate(prompts: list[list[str | None] | None], *, params: str | None = None,
              output: schema.OutputSchema = schema.DEFAULT, endpoint: str | None = None,
              state: rows.AiGenerate | None = None) -> list[dict]:
    state = state or rows.AiGenerate(SimulateEngine)
    return state.answer_rows(prompts, [endpoint] * len(prompts), [params] * len(prompts),
                             output)


def _text(value: str) -> str:
    return json.dumps(value)


def test_a_row_is_answered_with_the_text_its_full_response_and_an_empty_status() -> None:
    [row] = _generate([[_text("Describe "), _text("Oslo")]],
                      params='{"system_instruction": {"parts": [{"text": "Be brief"}]}}')
    assert row["status"] == ""
    assert "System instruction: Be brief\nYou asked: Describe Oslo" in row["result"]
    full = json.loads(row["full_response"])
    assert full["modelVersion"] == "gemini-2.5-flash@default"
    assert {"candidates", "usageMetadata", "createTime", "responseId"} <= set(full)


def test_struct_fields_combine_like_concat_and_object_refs_are_file_parts() -> None:
    ref = {"uri": "gs://bucket/cat.png", "version": None, "authorizer": None, "details": None}
    runtime = {"obj_ref": {"uri": "gs://bucket/doc", "details": {
        "gcs_metadata": {"content_type": "application/pdf"}}}, "access_urls": {}}
    assert rows.parts_of([_text("a"), json.dumps(["b", "c"]), json.dumps(ref),
                          json.dumps(runtime), _text("d")]) == [
        {"text": "abc"},
        {"fileData": {"fileUri": "gs://bucket/cat.png", "mimeType": "image/png"}},
        {"fileData": {"fileUri": "gs://bucket/doc", "mimeType": "application/pdf"}},
        {"text": "d"}]
    assert rows.parts_of([_text("a"), None]) is None
    with pytest.raises(ValueError, match="cast it to STRING"):
        rows.parts_of(["42"])


def test_a_null_prompt_is_not_sent() -> None:
    state = rows.AiGenerate(SimulateEngine)
    [row] = _generate([[_text("a"), None]], state=state)
    assert row == {"result": None, "full_response": None, "status": rows.NULL_PROMPT}
    assert state.stats()["rows"] == 0


def test_output_schema_rows_get_typed_fields() -> None:
    output = schema.parse("city STRING, people INT64")
    [row] = _generate([[_text("Facts")]], output=output)
    assert set(row) == {"city", "people", "full_response", "status"}
    assert isinstance(row["people"], int) and row["status"] == ""


def test_faults_fail_rows_per_request_and_a_retry_draws_again() -> None:
    state = rows.AiGenerate(SimulateEngine)
    state.set_faults({"row_failure_rate": 0.5, "row_failure_codes": [429]}, replace=True)
    prompts = [[_text(f"row {n}")] for n in range(60)]
    first = [row["status"] for row in _generate(prompts, state=state)]
    failed = {n for n, status in enumerate(first) if status}
    assert 10 < len(failed) < 50
    assert {first[n] for n in failed} == {
        "A retryable error occurred: RESOURCE_EXHAUSTED error from remote service/endpoint."}
    second = [row["status"] for row in _generate(prompts, state=state)]
    assert all(second[n] == "" for n in range(60) if n not in failed)
    assert any(second[n] == "" for n in failed)
    # Setting the faults again: the draws start again, the same rows fail.
    state.set_faults({"row_failure_rate": 0.5, "row_failure_codes": [429]}, replace=True)
    assert [row["status"] for row in _generate(prompts, state=state)] == first
    assert state.stats() == {"rows": 180, "failed_rows": len(failed) * 2
                             + sum(1 for n in failed if second[n]), "statements": 0}


def test_bad_fault_settings_are_refused() -> None:
    state = rows.AiGenerate(SimulateEngine)
    with pytest.raises(ValueError, match="unknown ai_generate fault settings"):
        state.set_faults({"job_outcome": "FAILED"}, replace=True)
    with pytest.raises(ValueError, match="row_failure_rate"):
        state.set_faults({"row_failure_rate": 2}, replace=True)


def test_an_empty_answer_has_no_result_and_an_empty_status() -> None:
    state = rows.AiGenerate(SimulateEngine)
    state.set_faults({"empty_answer_rate": 1.0, "empty_answer_kinds": ["finish:SAFETY"]},
                     replace=True)
    [row] = _generate([[_text("hello")]], state=state)
    assert row["result"] is None and row["status"] == ""
    assert json.loads(row["full_response"])["candidates"][0]["finishReason"] == "SAFETY"


def test_a_request_the_model_refuses_is_a_400_status_in_bigquerys_words() -> None:
    [row] = _generate([[_text("x")]], endpoint="gemini-2.5-pro",
                      params='{"generationConfig": {"thinkingConfig": {"thinkingBudget": 0}}}')
    assert row["result"] is None and row["full_response"] is None
    assert row["status"].startswith("INVALID_ARGUMENT error from remote service/endpoint: "
                                    "Budget 0 is invalid")


@pytest.mark.parametrize(("code", "status"), [
    (429, "A retryable error occurred: RESOURCE_EXHAUSTED error from remote service/endpoint."),
    (503, "A retryable error occurred: UNAVAILABLE error from remote service/endpoint."),
    (500, "A retryable error occurred: INTERNAL error from remote service/endpoint."),
    (400, "INVALID_ARGUMENT error from remote service/endpoint: Request contains an invalid "
          "argument."),
])
def test_bigquery_words_a_failed_call_from_its_code(code: int, status: str) -> None:
    assert rows.bigquery_status(row_error(code)) == status


# -- the one entry point ------------------------------------------------------------------


def test_the_batch_jobs_and_ai_generate_answer_through_one_entry_point() -> None:
    calls = [Call('{"contents": [{"parts": [{"text": "hi"}]}]}', "job", 0, "table t, row 0"),
             Call('{"contents": []}', "job", 1, "table t, row 1")]
    first, second = answer(calls, engine=SimulateEngine(), faults=Faults(),
                           model="gemini-2.5-flash")
    assert isinstance(first, dict) and first["responseId"]
    assert isinstance(second, str) and "table t, row 1, field request.contents" in second


# -- JSON inside STRUCT and ARRAY ----------------------------------------------------------


def test_json_fields_nested_in_structs_and_arrays_are_found_and_marked() -> None:
    paths = json_paths('STRUCT(result VARCHAR, full_response JSON, "list" JSON[], '
                       '"inner" STRUCT(j JSON, n INTEGER))')
    assert paths == [("full_response",), ("list",), ("inner", "j")]
    assert json_paths("STRUCT(not a type)") == []
    entries = [{"name": "g", "type": "RECORD", "mode": "NULLABLE", "fields": [
        {"name": "full_response", "type": "STRING", "mode": "NULLABLE"},
        {"name": "status", "type": "STRING", "mode": "NULLABLE"}]}]
    marked = mark_json_entries(entries, [("g", "full_response")])
    assert [f["type"] for f in marked[0]["fields"]] == ["JSON", "STRING"]
    assert entries[0]["fields"][0]["type"] == "STRING"  # the input is left as it was


def test_the_engine_comes_from_the_variables_the_stack_sets_for_both_servers() -> None:
    # An OpenAI-compatible server that is not there: the row fails as a 503 would.
    engine = rows.engine_from_env({"GEMINI_BATCH_ENGINE": "openai",
                                   "GEMINI_BATCH_OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
                                   "GEMINI_BATCH_OPENAI_MODEL": "llama3.2",
                                   "GEMINI_BATCH_OPENAI_TIMEOUT": "5"})
    try:
        assert engine.name == "openai"
        [row] = _generate([[_text("hi")]], state=rows.AiGenerate(lambda: engine))
        assert row["status"] == ("A retryable error occurred: UNAVAILABLE error from remote "
                                 "service/endpoint.")
    finally:
        engine.close()
    assert rows.engine_from_env({}).name == "simulate"
