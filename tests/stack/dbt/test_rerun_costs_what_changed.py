"""A rerun costs what changed (ADR 0010), seen by what it does on the local stack.

One batch model of 3,000 requests (3 of them invalid), built by `gemini-batch build`;
then 30 rows change. What a user (and the bill) sees: the request check ran on the 30
new requests only (``<model>__checks`` got 30 rows, the others were not checked again),
exactly 30 requests were sent, a rerun with nothing changed sends nothing and checks
nothing, and `--full-refresh` checks again but keeps every answer. Counts, not times.
And the answers kept are not read again (ADR 0011): the only statements that look into
an answer's JSON are those over a job's output table.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from helpers.dbt_projects import DbtProjects, DbtTestProject, cli_ok

pytestmark = pytest.mark.slow

ROWS = 3000
CHANGED = 30
INVALID_EVERY = 1000  # ids 1000, 2000, 3000: an empty contents list (3 requests)

QUESTIONS_SQL = f"""\
{{{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash-lite',
          fail_on_failed_rows=false) }}}}
select n as id,
  if(mod(n, {INVALID_EVERY}) = 0,
     parse_json(format('{{"contents": [], "labels": {{"n": "%d"}}}}', n)),
     {{{{ gemini_batch.request(
         prompt="concat('Question ', cast(n as string),
                        if(n <= " ~ var('changed', 0) ~ ", ' (asked again)', ''))",
         generation_config={{'maxOutputTokens': 16}}) }}}}) as request
from unnest(generate_array(1, {ROWS})) as n
"""


@pytest.fixture(scope="module")
def project(dbt_projects: DbtProjects) -> DbtTestProject:
    project = dbt_projects.create(
        "rerun_cost", {"models/questions.sql": QUESTIONS_SQL}, regional=True
    )
    cli_ok(project.cli("build"))
    return project


def _one(project: DbtTestProject, sql: str) -> dict[str, Any]:
    return project.rows(sql)[0]


def _sent(project: DbtTestProject) -> int:
    """Requests sent to Vertex AI so far: the ledger's jobs."""
    return int(_one(project, "select coalesce(sum(request_count), 0) as n "
                             "from `{ds}.gemini_batch_jobs`")["n"])


def _checks(project: DbtTestProject) -> dict[str, Any]:
    return _one(project, """select count(*) as rows, count(distinct request_id) as ids,
        max(checked_at) as last, countif(request_problem is not null) as invalid
        from `{ds}.questions__checks`""")


def _statements_since(project: DbtTestProject, since: datetime) -> list[str]:
    """The SQL of the BigQuery statements created since ``since``."""
    return [job.query for job in project.bq.list_jobs(max_results=5000)
            if job.job_type == "query" and job.created and job.created >= since]


def _reads_answers(sql: str) -> bool:
    """The statement applies the "answered" rule to a response's JSON."""
    return "'$.candidates'" in sql


def _states(project: DbtTestProject) -> dict[str, int]:
    return {row["batch_state"]: row["n"] for row in project.rows(
        "select batch_state, count(*) as n from `{ds}.questions` group by batch_state")}


def test_first_build_checks_and_sends_every_valid_request(project: DbtTestProject) -> None:
    checks = _checks(project)
    assert (checks["rows"], checks["ids"], checks["invalid"]) == (ROWS, ROWS, 3)
    assert _sent(project) == ROWS - 3
    assert _states(project) == {"succeeded": ROWS - 3, "failed": 3}


def test_a_rerun_checks_and_sends_only_what_changed(project: DbtTestProject) -> None:
    sent, checks = _sent(project), _checks(project)
    responses = _one(project, "select count(*) as n from `{ds}.questions__responses`")["n"]

    started = datetime.now(UTC)
    result = project.cli("build", "--vars", f"{{changed: {CHANGED}}}", "--json")
    output = cli_ok(result)

    assert _sent(project) - sent == CHANGED, output
    # The summary's counts, taken once the round's answers were all in.
    [model] = json.loads(result.stdout)["models"]
    assert {name: model[name] for name in (
        "requests", "cached", "submitted", "succeeded", "failed", "invalid", "pending")} == {
        "requests": ROWS, "cached": ROWS - 3 - CHANGED, "submitted": CHANGED,
        "succeeded": CHANGED, "failed": 3, "invalid": 3, "pending": 0}
    # The rules ran over the new answers only, where they came in (the job's output).
    statements = _statements_since(project, started)
    assert any(_reads_answers(sql) for sql in statements)
    assert all("__output_" in sql for sql in statements if _reads_answers(sql))
    after = _checks(project)
    assert after["rows"] - checks["rows"] == CHANGED  # the 30 new requests, once each
    newly_checked = _one(project, f"""select count(*) as n from `{{ds}}.questions__checks`
        where checked_at > timestamp '{checks["last"].isoformat()}'""")["n"]
    assert newly_checked == CHANGED  # the 2,970 others were not checked again
    # Every row of the model is in the view with its state; the invalid ones stay failed
    # with their reason, and the old answers are kept (money spent).
    assert _states(project) == {"succeeded": ROWS - 3, "failed": 3}
    reasons = project.rows("select last_error from `{ds}.questions` where batch_state = 'failed'")
    assert {row["last_error"] for row in reasons} == {"contents: is empty"}
    assert _one(project, "select count(*) as n from `{ds}.questions__responses`")["n"] \
        == responses + CHANGED

    # Nothing changed: nothing checked, nothing sent, no answer read.
    started = datetime.now(UTC)
    again = cli_ok(project.cli("build", "--vars", f"{{changed: {CHANGED}}}"))
    assert "no job submitted" in again
    assert not [sql for sql in _statements_since(project, started) if _reads_answers(sql)]
    assert _sent(project) - sent == CHANGED
    assert _checks(project) == after


def test_full_refresh_checks_again_and_keeps_every_answer(project: DbtTestProject) -> None:
    responses = project.rows("select request_id, response from `{ds}.questions__responses`")
    sent = _sent(project)

    project.dbt_ok("run", "--full-refresh", "--vars", f"{{changed: {CHANGED}}}")

    checks = _checks(project)
    assert (checks["rows"], checks["invalid"]) == (ROWS, 3)  # the current requests, afresh
    kept = project.rows("select request_id, response from `{ds}.questions__responses`")
    assert sorted(kept, key=lambda r: r["request_id"]) == sorted(
        responses, key=lambda r: r["request_id"])
    assert _states(project) == {"succeeded": ROWS - 3, "failed": 3}
    assert _sent(project) == sent
