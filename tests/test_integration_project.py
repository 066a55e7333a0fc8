"""The integration project (integration_tests/) built on the local stack.

dbt runs in this process through its Python API (``dbtRunner``), one invocation at a
time: ``deps`` links the package from ``../``, ``build`` loads the seeds, builds the
models and runs every data test and unit test. Each session writes to a dataset of its
own, so runs never see each other's tables.
"""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dbt.cli.main import dbtRunner, dbtRunnerResult

from conftest import FIXTURES, REPO_ROOT
from gemini_batch.local.stack import StackState

PROJECT_DIR = REPO_ROOT / "integration_tests"

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class IntegrationRun:
    """What ``dbt build`` did: the dataset it wrote and each node's status."""

    dataset: str
    project: str
    statuses: dict[str, str]
    messages: dict[str, str]


def _dbt(*args: str) -> dbtRunnerResult:
    project = ["--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)]
    return dbtRunner().invoke([*args, *project])


@pytest.fixture(scope="module")
def dbt_env(
    local_stack: StackState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """The profile's variables (the local stack, a dataset for this session), and
    dbt's target and log directories outside the source tree."""
    scratch = tmp_path_factory.mktemp("integration-dbt")
    env = {
        **local_stack.environment(),
        "GEMINI_BATCH_DATASET": f"gemini_batch_it_{uuid.uuid4().hex[:10]}",
        "DBT_TARGET_PATH": str(scratch / "target"),
        "DBT_LOG_PATH": str(scratch / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="module")
def dbt_deps(dbt_env: dict[str, str]) -> dict[str, str]:
    """The package installed: `deps` only links ../ into dbt_packages/, offline."""
    deps = _dbt("deps")
    assert deps.success, f"dbt deps failed: {deps.exception}"
    return dbt_env


@pytest.fixture(scope="module")
def integration_run(dbt_deps: dict[str, str]) -> IntegrationRun:
    dbt_env = dbt_deps
    build = _dbt("build")
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
        dataset=dbt_env["GEMINI_BATCH_DATASET"],
        project=dbt_env["GEMINI_BATCH_PROJECT"],
        statuses=statuses,
        messages=messages,
    )


# The spellings the service accepts besides the REST camelCase that the macros write.
_SNAKE_TO_CAMEL = {
    "file_data": "fileData",
    "file_uri": "fileUri",
    "mime_type": "mimeType",
    "inline_data": "inlineData",
}


def canonical_request(request: dict) -> str:
    """A request as ``gemini_batch.request`` writes it: camelCase, ``parts`` as a list,
    keys sorted, no spaces (what TO_JSON_STRING prints for BigQuery's JSON type)."""

    def normalise(value):
        if isinstance(value, dict):
            return {_SNAKE_TO_CAMEL.get(k, k): normalise(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normalise(item) for item in value]
        return value

    request = normalise(request)
    for content in request["contents"]:
        if isinstance(content["parts"], dict):
            content["parts"] = [content["parts"]]
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fixture_requests(sample: str) -> list[dict]:
    """The ``request`` of each line of ``<sample>_input.jsonl``, in file order."""
    path = FIXTURES / f"batch_request_{sample}_input.jsonl"
    return [json.loads(line)["request"] for line in path.read_text().splitlines() if line.strip()]


def _seed_rows(name: str) -> list[dict[str, str]]:
    with (PROJECT_DIR / "seeds" / "vertex_samples" / f"{name}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_vertex_seeds_are_the_fixtures() -> None:
    """The seeds hold the real Vertex AI samples, not a hand-edited copy."""
    expected = {
        (row["sample"], int(row["line"])): row["expected_request"]
        for row in _seed_rows("vertex_expected_requests")
    }
    echoed = {
        (row["sample"], int(row["line"])): json.loads(row["request_text"])
        for row in _seed_rows("vertex_echoed_requests")
    }
    assert expected == {
        (sample, line): canonical_request(request)
        for sample in ("text", "multimodal")
        for line, request in enumerate(fixture_requests(sample), start=1)
    }
    assert echoed == {
        (sample, line): json.loads(text)["request"]
        for sample in ("text", "multimodal")
        for line, text in enumerate(
            (FIXTURES / f"batch_request_{sample}_output.jsonl").read_text().splitlines(), start=1
        )
        if text.strip()
    }


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
    }
    ran = {
        node.rsplit(".", 1)[0] if node.startswith("test.") else node
        for node in integration_run.statuses
    }
    assert must_run <= ran
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
        for line, request in enumerate(fixture_requests(sample), start=1)
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
        ("turn('system', [gemini_batch.text_part('q')])", "role must be 'user' or 'model'"),
        (
            "request(prompt='q', safety_settings=[{'category': 'HARM_CATEGORY_HATE_SPEECH'}])",
            "gemini_batch.request: safety_settings[0]: missing threshold",
        ),
    ],
)
def test_bad_arguments_are_compile_errors(
    dbt_deps: dict[str, str], call: str, message: str
) -> None:
    result = _dbt("compile", "--inline", f"select {{{{ gemini_batch.{call} }}}}")
    assert not result.success
    # dbt wraps the compiler error of an inline query in "Error parsing inline query";
    # in a model it is printed as it is.
    errors, error = [], result.exception
    while error is not None:
        errors.append(str(error))
        error = error.__cause__ or error.__context__
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
        "contents[0].parts[1]: has none of text, fileData, inlineData, functionCall, "
        "functionResponse",
        'contents[1].role: "bot" is not user or model',
        'contents[1].parts[0].fileData.fileUri: "ftp://x" is not a gs:// or https:// URI',
        "generationConfig.tempreture: unknown field of a GenerationConfig",
    ]
