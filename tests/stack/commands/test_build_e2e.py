"""`gemini-batch build` end to end on the local stack: dbt, BigQuery and Vertex AI emulators.

Each test gets the build project (tests/helpers/build_project.py) in its own directory
and dataset, runs the CLI (in this process with click's runner, or as a subprocess when
it has to be killed), and checks what a user would: the exit code, the lines printed,
the rows of the model's view, and the jobs the Vertex emulator was given (through
JobServiceClient). A test that needs a job to stay open holds it with the emulator's
`hold` fault and releases it itself.
"""

from __future__ import annotations

import os
import signal
import textwrap

import httpx
import pytest

from helpers.build_project import PROMPTS, batch_model_sql
from helpers.dbt_projects import DbtTestProject
from helpers.dbt_projects import cli_ok as _ok

pytestmark = pytest.mark.slow


# --------------------------------------------------------------------------- tests


def test_build_answers_then_caches_then_sends_only_the_changed_row(project: DbtTestProject) -> None:
    output = _ok(project.cli("build"))
    assert "gemini-batch summary" in output
    answers = project.rows("select id, batch_state, answer from `{ds}.answers` order by id")
    assert [a["batch_state"] for a in answers] == ["succeeded"] * 3
    assert all(a["answer"] for a in answers)
    jobs = project.jobs()
    assert [(j.state, j.succeeded) for j in jobs] == [("SUCCEEDED", 3)]
    assert jobs[0].labels["dbt_model"] == "questions"
    assert jobs[0].labels["tool"] == "gemini-batch"
    # The job's tables are gone after the merge (keep_job_tables is false).
    assert not [t for t in project.bq.list_tables(f"{project.stack.project}.{project.dataset}")
                if "__shard_" in t.table_id or "__output_" in t.table_id]
    ledger = project.rows("select state, request_count, succeeded_count, merged_at, "
                          "actual_cost_usd from `{ds}.gemini_batch_jobs`")
    assert len(ledger) == 1 and ledger[0]["state"] == "SUCCEEDED"
    assert ledger[0]["request_count"] == 3 and ledger[0]["merged_at"] is not None

    # Nothing changed: no job.
    output = _ok(project.cli("build"))
    assert "all 3 answerable requests were cached; no job submitted" in output
    assert len(project.jobs()) == 1

    # One input row changed: exactly one request goes out.
    project.seed([PROMPTS[0], PROMPTS[1], "Name a river."])
    _ok(project.cli("build"))
    jobs = project.jobs()
    assert len(jobs) == 2 and jobs[1].succeeded + jobs[1].failed == 1
    answers = project.rows("select batch_state from `{ds}.answers`")
    assert [a["batch_state"] for a in answers] == ["succeeded"] * 3


def test_failed_rows_are_retried_up_to_max_retries_then_failed(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    faults.put("/emulator/faults", json={"row_failure_rate": 1.0,
                                         "row_failure_codes": [429]}).raise_for_status()
    output = _ok(project.cli("build"), code=3)  # max_retries=1: two attempts, then failed
    assert "retry round 1: 3 requests still pending" in output
    # The service's message points at the output table; merged, it is gone: say where.
    assert ("FAILED: merged 0 answers, 3 failed rows, 0 unanswered (every row failed; each "
            "row's error is in last_error of") in output
    assert "was merged and dropped)" in output and "has each row's error" not in output
    # Every row failed in both jobs (the service calls such a job FAILED).
    assert [j.state for j in project.jobs()] == ["FAILED", "FAILED"]
    ledger = project.rows("select request_count, failed_count from `{ds}.gemini_batch_jobs`")
    assert ledger == [{"request_count": 3, "failed_count": 3}] * 2
    rows = project.rows("select batch_state, attempts, last_error from `{ds}.questions`")
    assert {(r["batch_state"], r["attempts"]) for r in rows} == {("failed", 2)}
    assert all("RESOURCE_EXHAUSTED" in r["last_error"] for r in rows)

    # Failed for good: never sent again, even with the service healthy.
    faults.put("/emulator/faults", json={}).raise_for_status()
    _ok(project.cli("build"), code=3)
    assert len(project.jobs()) == 2
    _ok(project.cli("build", "--no-fail-on-failed-rows"))


def test_some_rows_fail_once_and_succeed_on_the_retry_round(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # Job ids are random, so are the rows that fail: 30 rows and 9 retries make a run
    # where no row fails (0.7^30) or one fails 10 times (30 x 0.3^10) about 1 in 5,000.
    project.seed([f"Question number {i}." for i in range(30)])
    faults.put("/emulator/faults", json={"row_failure_rate": 0.3}).raise_for_status()
    project.write("models/questions.sql", batch_model_sql(", max_retries=9"))
    _ok(project.cli("build"))
    jobs = project.jobs()
    assert len(jobs) >= 2, "a 30% failure rate over 30 rows should need a retry round"
    # Every request went out once, then only the failed ones again.
    assert jobs[0].succeeded + jobs[0].failed == 30
    for earlier, later in zip(jobs, jobs[1:], strict=False):
        assert later.succeeded + later.failed == earlier.failed
    states = project.rows("select batch_state, count(*) as n from `{ds}.questions` group by 1")
    assert states == [{"batch_state": "succeeded", "n": 30}]


def test_chained_batch_models_wait_for_each_other(project: DbtTestProject) -> None:
    project.write("models/follow_ups.sql", batch_model_sql(
        source="ref('answers')",
        prompt="concat('Tell me more about: ', coalesce(answer, 'NOTHING'))",
    ))
    project.write("models/follow_up_answers.sql", textwrap.dedent("""\
        select id, batch_state from {{ ref('follow_ups') }}
        """))
    output = _ok(project.cli("build"))
    assert "questions" in output and "follow_ups" in output
    first, second = project.jobs()
    assert first.input_table.startswith(project.table("questions__shard_"))
    assert second.input_table.startswith(project.table("follow_ups__shard_"))
    assert second.create_time >= first.end_time, "follow_ups must wait for questions' answers"
    prompts = project.rows(
        "select json_value(request, '$.contents[0].parts[0].text') as prompt "
        "from `{ds}.follow_ups`")
    assert not [p for p in prompts if "NOTHING" in p["prompt"]]
    states = project.rows("select distinct batch_state from `{ds}.follow_up_answers`")
    assert states == [{"batch_state": "succeeded"}]


def test_budget_cap_refuses_before_anything_is_submitted(project: DbtTestProject) -> None:
    project.write("models/questions.sql", batch_model_sql(", max_cost_usd=0.001"))
    output = _ok(project.cli("build"), code=1)
    assert "max_cost_usd=$0.0010" in output  # the cap
    assert "Nothing was submitted" in output
    assert project.jobs() == []
    tables = [t.table_id for t in project.bq.list_tables(
        f"{project.stack.project}.{project.dataset}")]
    # The downstream model was not built on answers that are not there, and the
    # snapshot of the pending requests the estimate read is gone, with no shard cut.
    assert "answers" not in tables
    assert not [t for t in tables if "__pending_" in t or "__shard_" in t]


def test_plan_shows_what_would_be_submitted_then_invalid_rows_end_failed_with_the_reason(
    project: DbtTestProject,
) -> None:
    # One invalid request (an empty prompt) among valid ones.
    project.seed([PROMPTS[0], None, PROMPTS[1], PROMPTS[2]])
    project.dbt_ok("build")  # a plain dbt build: requests and views, no job
    output = _ok(project.cli("plan"))
    line = next(line for line in output.splitlines() if "questions" in line)
    cells = [cell.strip() for cell in line.strip("│┃| ").split("│")]
    assert cells[:8] == ["questions", "4", "0", "3", "1", "1", "0", "1"], line
    assert "$" in line
    assert project.jobs() == []

    # The build sends the valid requests only; the invalid row ends failed, with why.
    output = _ok(project.cli("build"), code=3)
    # The example names the row by the model's key column, and the field, in words.
    assert "1 invalid request is not submitted (e.g. id=2: the prompt is NULL " \
        "(contents[0].parts[0].text))" in output
    assert "questions: 1 invalid request was not submitted (batch_state = 'failed', see " \
        "last_error): id=2: the prompt is NULL (contents[0].parts[0].text)." in output
    (job,) = project.jobs()
    assert job.succeeded + job.failed == 3
    rows = project.rows("select id, batch_state, last_error from `{ds}.questions` order by id")
    assert [r["batch_state"] for r in rows] == ["succeeded", "failed", "succeeded", "succeeded"]
    assert rows[1]["last_error"] == "the prompt is NULL (contents[0].parts[0].text)"
    output = _ok(project.cli("plan"))
    assert "nothing to submit" in output


def test_bad_config_names_the_model_and_the_setting(project: DbtTestProject) -> None:
    project.write("models/questions.sql", batch_model_sql(", shard_size=500000"))
    output = _ok(project.cli("build"), code=1)
    assert "questions" in output and "shard_size" in output
    assert project.jobs() == []


def test_second_build_refuses_and_a_killed_build_resumes_without_paying_twice(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    project.seed([f"Question number {i}." for i in range(12)])
    project.write("models/questions.sql", batch_model_sql(", keep_job_tables=true"))
    # The job stays QUEUED until this test releases it: the first build is still
    # waiting on it when the second one starts, however slow the machine.
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()
    first = project.spawn("build", "--poll-interval", "0.5")
    try:
        project.wait_for_ledger_job(first)

        # Two builds at once on the same model: the second refuses, submits nothing.
        output = _ok(project.cli("build"), code=1)
        assert "questions" in output and f"pid {first.pid}" in output
        assert len(project.jobs()) == 1

        os.kill(first.pid, signal.SIGKILL)  # while it waits on the job
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    (job,) = project.jobs()
    assert not job.terminal, "the job should still run after its build died"

    faults.patch("/emulator/faults", json={"hold": False}).raise_for_status()
    output = _ok(project.cli("build", "--poll-interval", "0.5"))
    assert "resuming 1 job of an earlier build (12 requests)" in output
    (job,) = project.jobs()  # no second job: nothing was submitted twice
    assert (job.state, job.succeeded) == ("SUCCEEDED", 12)
    shards = [t.table_id for t in project.bq.list_tables(
        f"{project.stack.project}.{project.dataset}") if "__shard_" in t.table_id]
    assert len(shards) == 1
    assert project.rows(f"select count(distinct request_id) as n, count(*) as c "
                        f"from `{{ds}}.{shards[0]}`") == [{"n": 12, "c": 12}]
    assert project.rows("select distinct batch_state from `{ds}.answers`") == [
        {"batch_state": "succeeded"}
    ]
    ledger = project.rows("select state, merged_at from `{ds}.gemini_batch_jobs`")
    assert len(ledger) == 1 and ledger[0]["state"] == "SUCCEEDED" and ledger[0]["merged_at"]


def test_a_job_missing_from_the_ledger_is_adopted_not_submitted_again(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    """A build killed between creating a job and writing its ledger row: the job ends
    on its own (before the next build looks, here), and its paid answers are merged."""
    from gemini_batch.clients.bigquery import BigQuery
    from gemini_batch.clients.vertex import job_labels
    from gemini_batch.rules.config import BatchModel, BatchModelConfig
    from gemini_batch.state.warehouse import Warehouse

    project.dbt_ok("build")  # requests and responses tables, no job
    model = BatchModel(unique_id="model.e2e.questions", name="questions",
                       project=project.stack.project, dataset=project.dataset,
                       config=BatchModelConfig(gemini_model="gemini-2.5-flash"))
    (shard,) = Warehouse(BigQuery(project.bq)).create_shards(model, "20260101t000000_dead")
    project.vertex().submit(
        display_name="orphan", gemini_model="gemini-2.5-flash", input_table=shard.table,
        output_table=model.output_table("20260101t000000_dead", 0),
        labels=job_labels(model_name="questions", invocation_id="dead"),
    )

    output = _ok(project.cli("build"))
    assert "adopting job" in output and "(3 requests)" in output
    (job,) = project.jobs()
    assert job.succeeded == 3
    assert project.rows("select distinct batch_state from `{ds}.answers`") == [
        {"batch_state": "succeeded"}
    ]


def test_batch_models_at_the_same_depth_have_jobs_in_flight_together(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    project.write("models/summaries.sql", batch_model_sql(prompt="concat('Summarise: ', prompt)"))
    # Held jobs cannot end: a build that waited for one model's job before submitting the
    # other's would never submit the second, and wait_for_jobs would fail.
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()
    build = project.cli_in_background("build", "--poll-interval", "0.5")
    try:
        project.wait_for_jobs(build, count=2)
        assert not [job for job in project.jobs() if job.terminal]
    finally:
        faults.patch("/emulator/faults", json={"hold": False}).raise_for_status()
        result = build.result(timeout=600)
    _ok(result)
    first, second = project.jobs()
    # Sequential jobs would start the second after the first ended.
    assert second.create_time < first.end_time
    assert {first.labels["dbt_model"], second.labels["dbt_model"]} == {"questions", "summaries"}


def test_stages_put_tests_after_the_answers_and_chained_models_after_their_inputs(
    project: DbtTestProject,
) -> None:
    """Stage planning from the manifest alone (no BigQuery, no job)."""
    from gemini_batch.build.dbt_options import DbtOptions
    from gemini_batch.build.dbt_project import DbtProject

    project.write("models/summaries.sql", batch_model_sql(prompt="concat('Summarise: ', prompt)"))
    project.write("models/follow_ups.sql", batch_model_sql(source="ref('answers')"))
    project.write("models/schema.yml", textwrap.dedent("""\
        version: 2
        models:
          - name: questions
            columns:
              - name: id
                data_tests: [not_null]
        """))
    dbt = DbtProject(DbtOptions(project_dir=str(project.path), profiles_dir=str(project.path)))
    dbt.parse()
    stages = [
        (sorted(uid.split(".")[2] for uid in stage.node_ids),
         sorted(uid.split(".")[-1] for uid in stage.batch_ids))
        for stage in dbt.stages(dbt.select("build"))
    ]
    assert stages == [
        (["prompts", "questions", "summaries"], ["questions", "summaries"]),
        (["answers", "follow_ups", "not_null_questions_id"], ["follow_ups"]),
    ]
    # `run` selects models only: no seed, no test.
    assert [sorted(uid.split(".")[2] for uid in stage.node_ids)
            for stage in dbt.stages(dbt.select("run"))] == [
        ["questions", "summaries"], ["answers", "follow_ups"],
    ]
