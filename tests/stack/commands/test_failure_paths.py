"""What `gemini-batch build` says when it does not end well: a dbt stage that fails after
the jobs ran, a parse or config error, Ctrl-C in a dbt stage or while jobs run. The
closing table prints what ran before, `--json` prints its document on every exit, and
Ctrl-C exits 130 without a traceback. Then dbt's deferral (`--defer --state`), which
reaches every dbt stage. Same local stack and project as test_build_e2e."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google.cloud import bigquery

from gemini_batch.local.bigquery import FAULTS_PATH
from gemini_batch.local.stack import DEFAULT_LOCATION
from helpers.build_project import ANSWERS_SQL
from helpers.dbt_projects import DbtTestProject
from helpers.dbt_projects import cli_ok as _ok

pytestmark = pytest.mark.slow

FAILING_TEST_YML = textwrap.dedent("""\
    version: 2
    models:
      - name: questions
        columns:
          - name: batch_state
            data_tests:
              - accepted_values:
                  arguments:
                    values: ['nonsense']
    """)

INTERRUPTED = ("interrupted: submitted jobs keep running on Vertex AI and stay in the "
               "ledger; the next `gemini-batch build` resumes them")


def _json_build(project: DbtTestProject, *args: str) -> tuple[int, dict[str, Any], str]:
    """`gemini-batch build --json` in a process of its own: the exit code, the document
    (stdout must hold it alone) and the human output (stderr)."""
    process = project.spawn("build", "--json", *args, stderr_apart=True)
    out, err = process.communicate(timeout=600)
    return process.returncode, json.loads(out), err


def _model(document: dict[str, Any], name: str = "questions") -> dict[str, Any]:
    (model,) = [m for m in document["models"] if m["model"] == name]
    return model


def test_a_failing_test_after_the_jobs_keeps_the_table_and_the_json(
    project: DbtTestProject,
) -> None:
    project.write("models/schema.yml", FAILING_TEST_YML)
    code, document, err = _json_build(project)
    assert code == 1, err
    assert document["exit_code"] == 1 and document["exit_reason"] == "dbt_failed"
    assert "accepted_values_questions_batch_state" in document["message"]
    questions = _model(document)
    # What the build did before the test failed: one job, three answers merged.
    assert (questions["submitted"], questions["succeeded"], questions["jobs"]) == (3, 3, 1)
    assert [job["request_count"] for job in document["jobs"]] == [3]
    assert "gemini-batch summary" in err and "error: dbt build (stage 2 of 2) failed" in err

    # Without --json: the same table, then the error.
    output = _ok(project.cli("build"), code=1)
    assert output.index("gemini-batch summary") < output.index("error: dbt build")
    assert "all 3 answerable requests were cached" in output


def test_a_compile_error_downstream_keeps_what_the_jobs_did(project: DbtTestProject) -> None:
    project.write("models/answers.sql", ANSWERS_SQL.replace("batch_state", "no_such_column"))
    code, document, err = _json_build(project)
    assert code == 1, err
    assert document["exit_reason"] == "dbt_failed"
    assert "model.e2e.answers" in document["message"]
    assert _model(document)["succeeded"] == 3


def test_parse_and_config_errors_print_the_json_too(project: DbtTestProject) -> None:
    project.write("models/broken.sql", "select {{ ref( }}\n")
    code, document, err = _json_build(project)
    assert (code, document["exit_reason"]) == (1, "parse_error"), err
    assert document["models"] == [] and "dbt parse failed" in document["message"]
    assert "Traceback" not in err

    (project.path / "models/broken.sql").unlink()
    project.write("models/questions.sql", project.path.joinpath(
        "models/questions.sql").read_text().replace("max_retries=1", "shard_size=500000"))
    code, document, _ = _json_build(project)
    assert (code, document["exit_reason"]) == (1, "config_error")
    assert "shard_size" in document["message"] and "questions" in document["message"]
    assert project.jobs() == []


@pytest.fixture()
def held_queries(dbt_projects: Any) -> Iterator[httpx.Client]:
    """The local BigQuery's fault settings: ``hold_queries`` holds a dbt stage open."""
    with httpx.Client(base_url=dbt_projects.stack.bigquery_endpoint) as client:
        yield client
        client.put(FAULTS_PATH, json={}).raise_for_status()


def _wait_until(process: subprocess.Popen[str], done: Any, what: str) -> None:
    """Until ``done()``; fails if the process ends first (the timeout only catches a
    hang: the test holds the moment with a fault, not a delay)."""
    deadline = time.monotonic() + 600
    while not done():
        assert process.poll() is None, f"ended before {what}:\n{process.communicate()}"
        assert time.monotonic() < deadline, f"no {what}"
        time.sleep(0.2)


def test_ctrl_c_in_a_dbt_stage_exits_130_with_the_json_and_no_traceback(
    project: DbtTestProject, held_queries: httpx.Client
) -> None:
    # Stage 2 (the answers view) waits in the local BigQuery until the test releases it.
    project.write("models/answers.sql", ANSWERS_SQL + "-- hold: stage two\n")
    held_queries.put(FAULTS_PATH, json={"hold_queries": "hold: stage two"}).raise_for_status()
    build = project.spawn("build", "--json", stderr_apart=True)
    try:
        _wait_until(build, lambda: held_queries.get(FAULTS_PATH).json()["held_queries"] >= 1,
                    "the answers view held")
        build.send_signal(signal.SIGINT)
        held_queries.put(FAULTS_PATH, json={}).raise_for_status()
        out, err = build.communicate(timeout=600)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    assert build.returncode == 130, err
    assert INTERRUPTED in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "Encountered an error" not in err and "error:" not in err
    document = json.loads(out)
    assert (document["exit_code"], document["exit_reason"]) == (130, "interrupted")
    assert INTERRUPTED.split(": ", 1)[1] in document["message"]
    questions = _model(document)
    assert (questions["submitted"], questions["succeeded"]) == (3, 3)
    assert "gemini-batch summary" in err  # the table of what ran before Ctrl-C


def test_ctrl_c_while_jobs_run_exits_130_and_the_next_build_resumes(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()
    build = project.spawn("build", "--json", stderr_apart=True)
    try:
        project.wait_for_ledger_job(build)
        build.send_signal(signal.SIGINT)
        out, err = build.communicate(timeout=600)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    assert build.returncode == 130, err
    assert INTERRUPTED in err and "Traceback" not in err
    document = json.loads(out)
    assert document["exit_reason"] == "interrupted"
    questions = _model(document)
    assert (questions["submitted"], questions["jobs"], questions["succeeded"]) == (3, 1, 0)
    assert [job["request_count"] for job in document["jobs"]] == [3]

    faults.put("/emulator/faults", json={}).raise_for_status()
    output = _ok(project.cli("build"))
    assert "resuming 1 job of an earlier build (3 requests)" in output
    assert len(project.jobs()) == 1  # resumed, not sent again


def test_status_and_wait_print_the_json_on_an_error(project: DbtTestProject) -> None:
    for command in ("status", "wait", "plan"):
        result = project.cli(command, "--json", "--target", "nope")
        assert result.exit_code == 1, result.output
        document = json.loads(result.stdout)
        assert document["command"] == command
        assert (document["exit_code"], document["exit_reason"]) == (1, "parse_error")
        assert "nope" in document["message"]


def test_defer_and_state_reach_every_dbt_stage(
    project: DbtTestProject, bq: bigquery.Client
) -> None:
    # Production: its own dataset, where the seed was built; its manifest is the state.
    prod = f"{project.dataset}_prod"
    dataset = bigquery.Dataset(f"{project.stack.project}.{prod}")
    dataset.location = DEFAULT_LOCATION
    bq.create_dataset(dataset)
    try:
        profile = project.path.joinpath("profiles.yml").read_text()
        local = profile[profile.index("    local:"):]
        project.write("profiles.yml", profile + local.replace("    local:", "    prod:")
                      .replace(f"dataset: {project.dataset}", f"dataset: {prod}"))
        project.run("dbt", "seed", "--target", "prod")
        project.run("dbt", "parse", "--target", "prod", "--target-path", "prod-state")

        # Dev builds the batch model and its view only: `prompts` comes from production.
        selection = ("--select", "questions", "answers")
        state = str(project.path / "prod-state")
        output = _ok(project.cli("build", *selection, "--state", state), code=1)
        assert "prompts" in output  # not built here, and no deferral asked for
        _ok(project.cli("build", *selection, "--defer", "--state", state))
        answers = project.rows("select batch_state from `{ds}.answers`")
        assert [a["batch_state"] for a in answers] == ["succeeded"] * 3
        assert "prompts" not in project.table_ids()
    finally:
        bq.delete_dataset(f"{project.stack.project}.{prod}", delete_contents=True,
                          not_found_ok=True)
