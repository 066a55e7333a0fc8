"""`gemini-batch plan` is right when it matters: before the batch model is built, after
its SQL changed, and on a batch model that waits on another's answers."""

from __future__ import annotations

import json
import textwrap

import pytest

from helpers.build_project import batch_model_sql
from helpers.dbt_projects import DbtTestProject
from helpers.dbt_projects import cli_ok as _ok

pytestmark = pytest.mark.slow


def _row(output: str, model: str) -> list[str]:
    """The cells of ``model``'s row of the plan table."""
    line = next(line for line in output.splitlines() if line.strip("│┃| ").startswith(model))
    return [cell.strip() for cell in line.strip("│┃| ").split("│")]


def _plan(project: DbtTestProject) -> tuple[str, dict]:
    result = project.cli("plan", "--json")
    _ok(result)
    document = json.loads(result.stdout[result.stdout.index("{"):])
    return result.output, {item["model"]: item for item in document["models"]}


def test_plan_before_the_first_build_reads_the_model_s_sql(project: DbtTestProject) -> None:
    # Nothing built: the model's input is missing, and plan says which to build.
    output, models = _plan(project)
    assert models["questions"]["missing_inputs"] == [project.table("prompts")]
    assert f"its inputs {project.table('prompts')} do not exist: build them first" in output
    assert _row(output, "questions")[1] == "-"

    project.dbt_ok("seed")
    output, models = _plan(project)
    # model, requests, cached, pending, failed, invalid, in flight, shards
    assert _row(output, "questions")[:8] == ["questions", "3", "0", "3", "0", "0", "0", "1"]
    assert models["questions"]["estimate"]["requests"] == 3
    assert models["questions"]["estimate"]["usd"] > 0
    assert "questions: its tables are not built yet: the figures are read from its SQL now" \
        in output
    # Read only: plan built nothing and sent nothing.
    assert not [t for t in project.table_ids() if t.startswith("questions")]
    assert project.jobs() == []

    _ok(project.cli("build"))
    output, models = _plan(project)
    assert models["questions"]["from_sql"] is None  # the tables are the SQL's now
    assert _row(output, "questions")[:4] == ["questions", "3", "3", "0"]
    assert "questions: nothing to submit" in output


def test_plan_after_the_batch_model_s_sql_changed_estimates_the_new_requests(
    project: DbtTestProject,
) -> None:
    _ok(project.cli("build"))
    project.write("models/questions.sql", batch_model_sql(
        ", max_retries=1", prompt="concat('Answer in one word: ', prompt)"))
    output, models = _plan(project)
    # The old tables would say 3 cached, 0 pending.
    assert _row(output, "questions")[:4] == ["questions", "3", "0", "3"]
    assert models["questions"]["from_sql"] == "its SQL changed since its tables were built"
    assert "questions: its SQL changed since its tables were built: the figures are read " \
        "from its SQL now" in output
    assert "nothing to submit" not in output
    assert len(project.jobs()) == 1

    # A build of the new SQL sends exactly what plan said.
    _ok(project.cli("build"))
    jobs = project.jobs()
    assert len(jobs) == 2 and jobs[1].succeeded == 3


def test_plan_of_a_batch_model_fed_by_another_says_it_waits_with_the_pending_count(
    project: DbtTestProject,
) -> None:
    # Only answered questions are followed up: before them, it has no request at all.
    project.write("models/follow_ups.sql", textwrap.dedent("""\
        {{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash') }}
        select id, {{ gemini_batch.request(prompt="concat('Tell me more: ', answer)") }} as request
        from {{ ref('answers') }}
        where batch_state = 'succeeded'
        """))
    project.dbt_ok("seed")
    project.dbt_ok("run")  # a plain dbt run: every table, no job
    output, models = _plan(project)
    assert _row(output, "follow_ups")[:4] == ["follow_ups", "0", "0", "0"]
    assert models["follow_ups"]["waits_on"] == {"questions": 3}
    assert "follow_ups: waits on the answers of questions (3 requests without an answer " \
        "yet): its requests are final only after them" in output
    assert "follow_ups: nothing to submit" not in output
    assert models["questions"]["waits_on"] == {}

    _ok(project.cli("build"))
    output, models = _plan(project)
    assert models["follow_ups"]["waits_on"] == {}
    assert "follow_ups: nothing to submit" in output
