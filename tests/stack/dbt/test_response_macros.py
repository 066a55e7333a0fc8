"""The response parsers refuse bad arguments when the model compiles, saying what is
expected (their values on real and odd answers are checked by the integration
project's models/responses/, run by tests/stack/dbt/test_integration_project.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from dbt.cli.main import dbtRunnerResult

from helpers.dbt_projects import DbtTestProject, exception_chain

pytestmark = pytest.mark.slow

RECIPE = "{'title': 'STRING', 'calories': 'INT64'}"


def compile_errors(compile_inline: Callable[[str], dbtRunnerResult], call: str) -> list[str]:
    result = compile_inline(f"select {{{{ gemini_batch.{call} }}}}")
    assert not result.success, f"{call} compiled"
    return exception_chain(result)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("response_text('response', -1)", "gemini_batch.response_text: candidate is the index"),
        ("finish_reason('response', 'first')", "candidate is the index of a candidate"),
        ("avg_logprobs('response', true)", "candidate is the index of a candidate"),
        ("citations('response', 1.5)", "candidate is the index of a candidate"),
        ("response_text('response', input_type='XML')", "input_type is 'JSON' or 'STRING'"),
        ("model_version(42)", "gemini_batch.model_version: response is a SQL expression"),
        ("block_reason('')", "response is a SQL expression"),
        ("token_count('response', 'output')", "kind is one of prompt, candidates, total,"),
        ("error_code(none)", "gemini_batch.error_code: status is a SQL expression"),
        ("is_success(' ')", "gemini_batch.is_success: status is a SQL expression"),
        (
            "parse_output('response', {'title': 'STRING', 'born': 'DATETIME'})",
            "gemini_batch.parse_output: output_columns['born']: unsupported type 'DATETIME'",
        ),
        ("parse_output('response', {})", "output_columns must be a non-empty dict"),
        (
            f"parse_output('response', {RECIPE}, error_column='title')",
            "error_column 'title' is also a field of output_columns",
        ),
        (f"parse_output('response', {RECIPE}, error_column='bad name')", "error_column is a"),
        (
            f"parse_output('response', {RECIPE}, input_type='XML')",
            "or 'TEXT' (the expression is the answer text itself); got XML",
        ),
        (f"parse_output('response', {RECIPE}, candidate=-2)", "candidate is the index"),
        (
            "parse_output('response', {'kind': {'type': 'BOOL', 'enum': ['yes']}})",
            "gemini_batch.parse_output: output_columns['kind']: enum is for STRING or "
            "ARRAY<STRING> columns; this one is BOOL",
        ),
        (
            "response_text('json_query(response, \"$.x)')",
            "gemini_batch.response_text: response is a SQL expression, and this one does not "
            "parse (a quote \" is not closed): json_query(response, \"$.x)",
        ),
        (
            f"parse_output('answer', {RECIPE}, input_type='TEXT')".replace("'answer'", "'answer)'"),
            "gemini_batch.parse_output: response is a SQL expression, and this one does not parse",
        ),
    ],
)
def test_bad_arguments_are_compile_errors(
    compile_inline: Callable[[str], dbtRunnerResult], call: str, message: str
) -> None:
    errors = compile_errors(compile_inline, call)
    assert any(message in text for text in errors), errors


def test_parse_output_renders_a_select_list_fragment(
    compile_inline: Callable[[str], dbtRunnerResult],
) -> None:
    result = compile_inline(
        "select {{ gemini_batch.parse_output('response', "
        "{'title': 'STRING', 'order': 'INT64'}, error_column=none) }}"
    )
    assert result.success, result.exception
    sql = result.result.results[0].node.compiled_code
    # One column per field, reserved words quoted, and no error column when asked.
    assert sql.rstrip().endswith("as `order`")
    assert ") as `title`,\n" in sql
    assert "_parse_error" not in sql


# One spec for both: the request's responseSchema gets the enum, parse_output types the
# columns from the same dict.
TICKET = (
    "{'category': {'type': 'STRING', 'enum': ['billing', 'bug', 'other'], "
    "'description': 'What the ticket is about'}, 'tags': {'type': 'ARRAY<STRING>', "
    "'enum': ['urgent', 'refund']}, 'priority': 'INT64'}"
)


def test_an_enum_spec_reaches_the_request_and_parse_output_reads_it(
    integration_project: DbtTestProject,
) -> None:
    sql = f"""
        select to_json_string(json_query(request, '$.generationConfig.responseSchema')) as schema,
          category, array_to_string(tags, '|') as tags, priority, _parse_error
        from (
          select
            {{{{ gemini_batch.request(prompt="'Triage this.'", output_columns={TICKET}) }}}}
              as request,
            {{{{ gemini_batch.parse_output('answer', {TICKET}, input_type='TEXT') }}}}
          from unnest(['{{"category": "billing", "tags": ["refund"], "priority": 2}}']) as answer
        )
    """
    result = integration_project.dbt("show", "--inline", sql, "--quiet")
    assert result.success, exception_chain(result)
    row = dict(zip(result.result.results[0].agate_table.column_names,
                   result.result.results[0].agate_table.rows[0], strict=True))
    schema = json.loads(row["schema"])
    assert schema["properties"]["category"] == {
        "description": "What the ticket is about", "enum": ["billing", "bug", "other"],
        "format": "enum", "type": "STRING",
    }
    assert schema["properties"]["tags"]["items"] == {
        "enum": ["urgent", "refund"], "format": "enum", "type": "STRING"}
    assert schema["propertyOrdering"] == ["category", "tags", "priority"]
    assert (row["category"], row["tags"], row["priority"], row["_parse_error"]) == (
        "billing", "refund", 2, None)
