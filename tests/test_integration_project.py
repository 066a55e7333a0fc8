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
def integration_run(dbt_env: dict[str, str]) -> IntegrationRun:
    # `deps` only links ../ into dbt_packages/: no network is needed.
    deps = _dbt("deps")
    assert deps.success, f"dbt deps failed: {deps.exception}"
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


def test_expected_seed_is_the_fixtures_in_canonical_form() -> None:
    path = PROJECT_DIR / "seeds" / "vertex_samples" / "vertex_expected_requests.csv"
    with path.open(newline="") as handle:
        seeded = {
            (row["sample"], int(row["line"])): row["expected_request"]
            for row in csv.DictReader(handle)
        }
    from_fixtures = {
        (sample, line): canonical_request(request)
        for sample in ("text", "multimodal")
        for line, request in enumerate(fixture_requests(sample), start=1)
    }
    assert seeded == from_fixtures


def test_integration_project_builds(integration_run: IntegrationRun) -> None:
    # The nodes that prove the macros against real Vertex inputs must have run.
    must_run = {
        "seed.gemini_batch_integration_tests.vertex_expected_requests",
        "model.gemini_batch_integration_tests.vertex_text_requests",
        "model.gemini_batch_integration_tests.vertex_multimodal_requests",
        "model.gemini_batch_integration_tests.vertex_samples_compared",
    }
    assert must_run <= integration_run.statuses.keys()
    equality_tests = [node for node in integration_run.statuses if ".columns_equal_" in node]
    assert equality_tests, "no columns_equal test ran"
    assert all(integration_run.statuses[node] == "pass" for node in equality_tests)


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
