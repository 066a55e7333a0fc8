"""`gemini-batch build` against the service as it is: thinking models that spend their
output budget, rows refused for good, rows throttled, creates whose answer is lost.

What a user sees: exit codes, the closing notes, each row's batch_state and last_error
in the model's view, and the jobs the Vertex emulator was given (each one is paid).
"""

from __future__ import annotations

import httpx
import pytest

from helpers.build_project import batch_model_sql
from helpers.dbt_projects import DbtTestProject, cli_ok

pytestmark = pytest.mark.slow

VIEW = "select id, batch_state, last_error, attempts from `{ds}.questions` order by id"


def _thinking_model(project: DbtTestProject, *, max_output_tokens: int) -> None:
    project.write("models/questions.sql", f"""\
        {{{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-pro',
                    max_retries=2) }}}}
        select id, {{{{ gemini_batch.request(
            prompt="prompt", generation_config={{'maxOutputTokens': {max_output_tokens}}}) }}}}
          as request
        from {{{{ ref('prompts') }}}}
        """)


def test_thinking_that_spends_max_output_tokens_fails_once_and_is_not_sent_again(
    project: DbtTestProject,
) -> None:
    # 2.5 Pro cannot turn thinking off; 32 tokens are gone before it writes a word.
    _thinking_model(project, max_output_tokens=32)
    output = cli_ok(project.cli("build", "--plain"), code=3)
    rows = project.rows(VIEW)
    assert [row["batch_state"] for row in rows] == ["failed"] * 3
    for row in rows:
        assert row["last_error"].startswith(
            "EMPTY_ANSWER: MAX_TOKENS (thinking used 32 of 32 output tokens; raise "
            "maxOutputTokens or lower thinkingBudget)"), row
        assert row["attempts"] == 1
    assert "failed for good: 3 EMPTY_ANSWER: MAX_TOKENS" in output
    # The answers were paid for: the raw responses are kept.
    kept = project.rows("select count(*) as n from `{ds}.questions__responses` "
                        "where response is not null")
    assert kept == [{"n": 3}]
    assert len(project.jobs()) == 1

    # The next build sends nothing: the same bytes would give the same answer.
    again = cli_ok(project.cli("build", "--plain"), code=3)
    assert len(project.jobs()) == 1
    assert "3 EMPTY_ANSWER: MAX_TOKENS" in again
    # (A changed request has a new request_id and is sent: test_build_e2e shows it.)


def test_a_row_refused_with_400_is_sent_once_and_throttled_rows_are_retried(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    project.seed(["Name a fruit.", "[[gemini-batch:error:400]] Name a colour.", "Name a city."])
    project.write("models/questions.sql", batch_model_sql(", max_retries=2"))
    # The first job's rows all come back 429; the job waits until the test has seen it.
    faults.put("/emulator/faults", json={
        "row_failure_rate": 1.0, "row_failure_codes": [429], "hold": True,
    }).raise_for_status()
    build = project.cli_in_background("build", "--plain", "--poll-interval", "0.2")
    project.wait_for_jobs(build, 1)
    faults.put("/emulator/faults", json={}).raise_for_status()  # the retry is not throttled
    output = cli_ok(build.result(timeout=600), code=3)

    rows = {row["id"]: row for row in project.rows(VIEW)}
    assert rows[1]["batch_state"] == rows[3]["batch_state"] == "succeeded"
    assert rows[2]["batch_state"] == "failed"
    assert rows[2]["last_error"].startswith("400 INVALID_ARGUMENT: ")
    # Throttled in the first job (429: retried), refused in the second (400: final).
    # max_retries=2 would allow a third round: none is made, nothing is left to send.
    assert rows[2]["attempts"] == 2
    jobs = project.jobs()
    assert [job.succeeded + job.failed for job in jobs] == [3, 3]
    assert [job.succeeded for job in jobs] == [0, 2]
    assert "failed for good: 1 400 INVALID_ARGUMENT" in output


def test_a_create_whose_answer_is_lost_leaves_exactly_one_job(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # The emulator makes the job, then answers the create call with a 504.
    faults.put("/emulator/faults", json={"lose_create_answers": 1}).raise_for_status()
    cli_ok(project.cli("build", "--plain"))
    assert len(project.jobs()) == 1
    assert [row["batch_state"] for row in project.rows(VIEW)] == ["succeeded"] * 3
    ledger = project.rows("select job_name from `{ds}.gemini_batch_jobs`")
    assert [row["job_name"] for row in ledger] == [project.jobs()[0].name]
