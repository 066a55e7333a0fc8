"""The integration project (integration_tests/) built on the local stack.

dbt runs in this process through its Python API (``dbtRunner``), one invocation at a
time: ``deps`` links the package from ``../`` (tests/stack/dbt/conftest.py), ``build``
loads the seeds, builds the models and runs every data test and unit test. Each session
writes to a dataset of its own, so runs never see each other's tables. (That the seeds
hold the real samples is checked without a stack, in tests/unit/test_request_seeds.py.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from dbt.cli.main import dbtRunnerResult

from helpers.dbt_projects import DbtTestProject, exception_chain
from helpers.samples import canonical_request, sample_requests

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class IntegrationRun:
    """What ``dbt build`` did: the dataset it wrote and each node's status."""

    dataset: str
    project: str
    statuses: dict[str, str]
    messages: dict[str, str]


@pytest.fixture(scope="module")
def integration_run(integration_project: DbtTestProject) -> IntegrationRun:
    build = integration_project.dbt("build")
    assert build.exception is None, f"dbt build raised: {build.exception}"
    results = build.result.results
    statuses = {result.node.unique_id: str(result.status) for result in results}
    messages = {result.node.unique_id: str(result.message) for result in results}
    failed = {
        node: messages[node]
        for node, status in statuses.items()
        if status not in ("success", "pass")
    }
    assert build.success and not failed, "integration project nodes failed:\n" + "\n".join(
        f"  {node}: {statuses[node]}: {message}" for node, message in failed.items()
    )
    return IntegrationRun(
        dataset=integration_project.dataset,
        project=integration_project.stack.project,
        statuses=statuses,
        messages=messages,
    )


def test_integration_project_builds(integration_run: IntegrationRun) -> None:
    prefix = "gemini_batch_integration_tests"
    # Nodes that must have run (and passed: the fixture fails on any other status).
    must_run = {
        f"seed.{prefix}.vertex_expected_requests",
        f"model.{prefix}.vertex_text_requests",
        f"model.{prefix}.vertex_multimodal_requests",
        f"model.{prefix}.vertex_samples_compared",
        f"model.{prefix}.request_cases",
        f"model.{prefix}.request_problem_cases",
        f"unit_test.{prefix}.recipe_requests.recipe_requests_build_one_request_per_dish",
        f"model.{prefix}.response_fields_compared",
        f"model.{prefix}.parse_output_compared",
        f"unit_test.{prefix}.recipe_answers.recipe_answers_reads_text_tokens_and_recipe",
        # Named tests: their ids end in a hash, which is dropped here.
        f"test.{prefix}.request_size_below_fails_on_every_case",
        f"test.{prefix}.request_problems_from_json_match",
        # Route ai_generate: answered inside `dbt build` (its singular test,
        # tests/ai_generate_route_answers_every_dish.sql, must pass as every node must).
        f"model.{prefix}.recipe_answers_ai_generate",
    }
    ran = {
        node.rsplit(".", 1)[0] if node.startswith("test.") else node
        for node in integration_run.statuses
    }
    assert must_run <= ran
    assert f"test.{prefix}.ai_generate_route_answers_every_dish" in integration_run.statuses
    assert sum(".columns_equal_" in node for node in ran) >= 3
    # valid_request ran on built requests, on broken ones (expecting 21 failures) and on
    # the requests Vertex AI echoed back.
    assert sum(".gemini_batch_valid_request_" in node for node in ran) >= 6


@pytest.mark.parametrize("sample", ["text", "multimodal"])
def test_built_requests_equal_the_vertex_inputs(
    integration_run: IntegrationRun, bq, sample: str
) -> None:
    table = f"`{integration_run.project}.{integration_run.dataset}.vertex_{sample}_requests`"
    rows = bq.query(
        f"select line, to_json_string(request) as request from {table} order by line"
    ).result()
    built = {row["line"]: json.loads(row["request"]) for row in rows}
    expected = {
        line: json.loads(canonical_request(request))
        for line, request in enumerate(sample_requests(sample), start=1)
    }
    assert built == expected


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            "request(prompt='q', generation_config={'tempreture': 0.2})",
            "unknown generation_config key 'tempreture'. Valid keys: audioTimestamp,",
        ),
        (
            "request(prompt='q', generation_config={'max_output_tokens': 5})",
            "(did you mean 'maxOutputTokens'?)",
        ),
        (
            "request(prompt='q', generation_config={'temperature': true})",
            "generation_config['temperature'] takes a number or a SQL expression as a string",
        ),
        ("request(prompt='q', contents=['c'])", "give exactly one of prompt"),
        ("request()", "got neither"),
        ("request(prompt=' ')", "an empty string was given where a SQL expression is expected"),
        (
            "request(prompt='q', output_columns={'title': 'STRING', 'born': 'DATETIME'})",
            "output_columns['born']: unsupported type 'DATETIME'",
        ),
        ("request(prompt='q', output_columns={'2x': 'STRING'})", "'2x' is not a valid BigQuery"),
        # output_columns with enum: validated where it is written.
        (
            "request(prompt='q', output_columns={'n': {'type': 'INT64', 'enum': ['1', '2']}})",
            "output_columns['n']: enum is for STRING or ARRAY<STRING> columns; this one is INT64",
        ),
        (
            "request(prompt='q', output_columns={'c': {'type': 'STRING', 'enum': 'bug'}})",
            "output_columns['c']: enum is a non-empty list of strings, e.g. ['billing', 'bug',",
        ),
        (
            "request(prompt='q', output_columns={'c': {'type': 'STRING', 'enum': ['a', 2]}})",
            "output_columns['c']: enum is a non-empty list of strings",
        ),
        (
            "request(prompt='q', output_columns={'c': {'type': 'STRING', 'enums': ['a']}})",
            "output_columns['c']: unknown key enums (valid: type, description, nullable, enum)",
        ),
        (
            "request(prompt='q', output_columns={'c': {'enum': ['a']}})",
            "output_columns['c']: a dict spec needs 'type'",
        ),
        # A SQL expression that does not parse: the macro, the argument and its text.
        (
            "request(prompt='body', system_instruction=\"'You're a support agent.'\")",
            "gemini_batch.request: system_instruction is a SQL expression, and this one does "
            "not parse (a quote ' is not closed): 'You're a support agent.'",
        ),
        (
            "request(prompt='body', system_instruction=\"'You''re a support agent.'\")",
            "system_instruction is a SQL expression, and this one does not parse (two string "
            "literals side by side",
        ),
        (
            "request(prompt=\"concat('Ticket: ', subject\")",
            "gemini_batch.request: prompt is a SQL expression, and this one does not parse "
            "(a ( is not closed): concat('Ticket: ', subject",
        ),
        ("request(prompt='subject, body')", "(a , outside brackets: one expression is expected"),
        (
            "request(prompt='q', generation_config={'maxOutputTokens': 'if(long, 8192, 1024'})",
            "gemini_batch.request: generation_config['maxOutputTokens'] is a SQL expression, "
            "and this one does not parse (a ( is not closed): if(long, 8192, 1024",
        ),
        (
            "request(contents=[gemini_batch.turn('user', ['part_column)'])])",
            "gemini_batch.turn: parts[0] is a SQL expression, and this one does not parse",
        ),
        ("text_part('-- a comment')", "gemini_batch.text_part: expr is a SQL expression, and "
         "this one does not parse (it is only a comment)"),
        ("file_part('uri', \"'application/pdf\")", "gemini_batch.file_part: mime_type_expr is"),
        ("literal(42)", "gemini_batch.literal: text is the plain text to pass, a string; got 42"),
        ("turn('system', [gemini_batch.text_part('q')])", "role must be 'user' or 'model'"),
        (
            "request(prompt='q', safety_settings=[{'category': 'HARM_CATEGORY_HATE_SPEECH'}])",
            "gemini_batch.request: safety_settings[0]: missing threshold",
        ),
    ],
)
def test_bad_arguments_are_compile_errors(
    compile_inline: Callable[[str], dbtRunnerResult], call: str, message: str
) -> None:
    result = compile_inline(f"select {{{{ gemini_batch.{call} }}}}")
    assert not result.success
    # dbt wraps the compiler error of an inline query in "Error parsing inline query";
    # in a model it is printed as it is.
    errors = exception_chain(result)
    assert any(message in text for text in errors), errors


def test_request_problems_name_every_broken_field(integration_run: IntegrationRun, bq) -> None:
    table = f"`{integration_run.project}.{integration_run.dataset}.request_problem_cases`"
    rows = bq.query(
        f"select case_name, actual_from_string from {table} "
        "where case_name in ('valid_full', 'several_problems')"
    ).result()
    problems = {row["case_name"]: row["actual_from_string"] for row in rows}
    assert problems["valid_full"] is None
    assert problems["several_problems"].split("; ") == [
        "generationConfig.tempreture: unknown field",
        "did you mean temperature?",
        "contents[0].parts[1]: has none of text, fileData, inlineData, functionCall, "
        "functionResponse",
        'contents[1].role: "bot" is not user or model',
        'contents[1].parts[0].fileData.fileUri: "ftp://x" is not a gs:// or https:// URI',
    ]
