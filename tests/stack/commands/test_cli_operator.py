"""The operator commands around a build: status, jobs, cancel, reset; dbt semantics of
build and run (tests after answers, dbt failures). Same local stack and project as
test_build_e2e."""

from __future__ import annotations

import re
import textwrap

import httpx
import pytest

from helpers.dbt_projects import DbtTestProject
from helpers.dbt_projects import cli_ok as _ok

pytestmark = pytest.mark.slow

SCHEMA_YML = textwrap.dedent("""\
    version: 2
    models:
      - name: questions
        columns:
          - name: batch_state
            data_tests:
              - accepted_values:
                  arguments:
                    values: ['succeeded']
    """)


def test_status_jobs_and_cancel_a_running_build(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # The job stays QUEUED until the test cancels it, however long the commands take.
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()
    build = project.spawn("build", "--poll-interval", "0.5")
    try:
        project.wait_for_ledger_job(build)
        (job,) = project.jobs()

        output = _ok(project.cli("status"))
        assert "in flight" in output
        line = next(line for line in output.splitlines() if job.job_id in line)
        assert "questions" in line and ("QUEUED" in line or "PENDING" in line)

        output = _ok(project.cli("jobs"))
        assert job.job_id in output and "gemini_batch_jobs" in output

        output = _ok(project.cli("cancel", "questions"))
        assert job.job_id in output and "CANCEL" in output

        # The waiting build sees the job end without answers and fails clearly.
        out, _ = build.communicate(timeout=600)
    finally:
        if build.poll() is None:
            build.kill()
            build.wait()
    assert build.returncode == 3, out
    assert "ended CANCELLED without answers" in out
    assert "3 requests are still pending" in out
    (job,) = project.jobs()
    assert job.state == "CANCELLED"

    output = _ok(project.cli("status"))
    assert "No job in flight." in output
    assert job.job_id in output  # under recent jobs, from the ledger
    assert "No live job to cancel." in _ok(project.cli("cancel", "--yes"))


def test_unknown_models_are_named_then_reset_asks_and_drops_the_answers(
    project: DbtTestProject,
) -> None:
    _ok(project.cli("build"))
    output = _ok(project.cli("jobs", "--model", "nope"), code=1)
    assert "No batch model" in output and "questions" in output
    output = _ok(project.cli("cancel", "nope"), code=1)
    assert "No batch model" in output

    responses = project.table("questions__responses")

    output = _ok(project.cli("reset", "questions", input="n\n"), code=1)
    assert "Aborted" in output
    assert project.rows(f"select count(*) as n from `{responses}`") == [{"n": 3}]

    output = _ok(project.cli("reset", "questions", "--yes"))
    assert f"Dropped {responses}" in output
    _ok(project.cli("build"))
    assert len(project.jobs()) == 2  # everything was asked again
    assert project.rows("select distinct batch_state from `{ds}.answers`") == [
        {"batch_state": "succeeded"}
    ]


def test_build_runs_tests_after_the_answers_and_run_skips_them(
    project: DbtTestProject,
) -> None:
    # Passes only if dbt tests the view once the job's answers are merged.
    project.write("models/schema.yml", SCHEMA_YML)
    output = _ok(project.cli("build"))
    assert re.search(r"PASS accepted_values_questions_batch_state", output), output

    # `run` builds models only: a failing data test does not run, nor fail the build.
    project.write("models/schema.yml", SCHEMA_YML.replace("'succeeded'", "'nonsense'"))
    output = _ok(project.cli("run"))
    assert "accepted_values" not in output
    output = _ok(project.cli("build"), code=1)
    assert "accepted_values_questions_batch_state" in output and "fail" in output


def test_dbt_failure_upstream_stops_before_any_job(project: DbtTestProject) -> None:
    project.write("models/cleaned.sql", "select id, prompt, no_such_column from "
                                        "{{ ref('prompts') }}\n")
    project.write("models/questions.sql", textwrap.dedent("""\
        {{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash') }}
        select id, {{ gemini_batch.request(prompt='prompt') }} as request
        from {{ ref('cleaned') }}
        """))
    output = _ok(project.cli("build"), code=1)
    assert "model.e2e.cleaned" in output and "no_such_column" in output.lower()
    assert project.jobs() == []


def test_selection_without_batch_models_is_plain_dbt(project: DbtTestProject) -> None:
    output = _ok(project.cli("build", "--select", "prompts"))
    assert "gemini-batch summary" not in output
    assert project.rows("select count(*) as n from `{ds}.prompts`") == [{"n": 3}]
    assert project.jobs() == []
