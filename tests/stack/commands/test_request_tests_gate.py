"""Tests on a batch model's `request` column gate its spending: they run before its jobs,
an error-severity failure sends nothing and skips what depends on the model, a warning
is reported and the jobs go; tests on the answers still run after the jobs."""

from __future__ import annotations

import json
import textwrap

import pytest

from helpers.build_project import PROMPTS, batch_model_sql
from helpers.dbt_projects import DbtTestProject
from helpers.dbt_projects import cli_ok as _ok

pytestmark = pytest.mark.slow

LONG_PROMPT = "Summarise this: " + "lorem ipsum " * 40  # about 500 bytes of request


def _schema(severity: str = "error") -> str:
    return textwrap.dedent(f"""\
        version: 2
        models:
          - name: questions
            columns:
              - name: request
                data_tests:
                  - gemini_batch.valid_request
                  - gemini_batch.request_size_below:
                      arguments:
                        max_bytes: 300
                      config:
                        severity: {severity}
              - name: batch_state
                data_tests:
                  # Reads the answers: passes only after the jobs.
                  - accepted_values:
                      arguments:
                        values: ['succeeded']
        """)


def test_a_failing_request_test_sends_nothing_and_skips_what_depends_on_the_model(
    project: DbtTestProject,
) -> None:
    project.seed([PROMPTS[0], LONG_PROMPT, PROMPTS[1]])
    project.write("models/schema.yml", _schema())
    result = project.cli("build", "--json")
    output = _ok(result, code=1)
    assert project.jobs() == []  # nothing was sent to Vertex AI
    assert project.rows("select count(*) as n from `{ds}.gemini_batch_jobs`") == [{"n": 0}]
    # The build names the test, the row by the model's key column, and why.
    assert "request test gemini_batch_request_size_below_questions_request__300 failed " \
        "on 1 row (id=2: request_bytes=" in output
    assert "nothing was submitted; skipped what depends on it: accepted_values_questions_" \
        "batch_state__succeeded, answers" in output
    # What depends on the model was not built.
    assert "answers" not in project.table_ids()
    document = json.loads(result.stdout[result.stdout.index("{"):])
    (model,) = document["models"]
    assert model["model"] == "questions" and model["submitted"] == 0
    assert model["skipped"] == ["accepted_values_questions_batch_state__succeeded", "answers"]
    assert document["exit_code"] == 1


def test_passing_request_tests_let_the_jobs_go_and_answer_tests_run_after_them(
    project: DbtTestProject,
) -> None:
    project.write("models/schema.yml", _schema())
    output = _ok(project.cli("build"))
    (job,) = project.jobs()
    assert job.succeeded == 3
    # accepted_values on batch_state passed: it ran once the answers were merged.
    assert "request test" not in output
    assert [r["batch_state"] for r in project.rows("select batch_state from `{ds}.answers`")] \
        == ["succeeded"] * 3


def test_a_warning_request_test_is_reported_and_the_jobs_go(project: DbtTestProject) -> None:
    project.seed([PROMPTS[0], LONG_PROMPT])
    project.write("models/schema.yml", _schema(severity="warn"))
    output = _ok(project.cli("build"))
    (job,) = project.jobs()
    assert job.succeeded == 2
    assert "questions: request test gemini_batch_request_size_below_questions_request__300 " \
        "warned on 1 row (id=2: request_bytes=" in output
    assert "the requests were sent all the same" in output


def test_request_tests_share_their_model_s_stage(project: DbtTestProject) -> None:
    """Stage planning from the manifest alone (no BigQuery, no job)."""
    from gemini_batch.build.dbt_options import DbtOptions
    from gemini_batch.build.dbt_project import DbtProject

    project.write("models/follow_ups.sql", batch_model_sql(source="ref('answers')"))
    project.write("models/schema.yml", _schema() + textwrap.indent(textwrap.dedent("""\
        - name: follow_ups
          columns:
            - name: request
              data_tests: [not_null]
        """), "  "))
    dbt = DbtProject(DbtOptions(project_dir=str(project.path), profiles_dir=str(project.path)))
    dbt.parse()
    stages = dbt.stages(dbt.select("build"))
    names = [sorted(uid.split(".")[2] for uid in stage.node_ids) for stage in stages]
    assert names == [
        ["gemini_batch_request_size_below_questions_request__300",
         "gemini_batch_valid_request_questions_request", "prompts", "questions"],
        ["accepted_values_questions_batch_state__succeeded", "answers", "follow_ups",
         "not_null_follow_ups_request"],
    ]
    gates = [sorted((t.split(".")[2], m.split(".")[2]) for t, m in stage.request_tests)
             for stage in stages]
    assert gates == [
        [("gemini_batch_request_size_below_questions_request__300", "questions"),
         ("gemini_batch_valid_request_questions_request", "questions")],
        [("not_null_follow_ups_request", "follow_ups")],
    ]
