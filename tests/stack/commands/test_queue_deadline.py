"""No job stuck forever (issue 23): a job still queued past max_queue_hours is cancelled,
and its requests are answered in the same build, by a new job or, with route auto, by
AI.GENERATE. The emulator's `backdate` fault makes the first job look queued for 30 hours
(its createTime), `hold` keeps it queued: no test waits for a clock."""

from __future__ import annotations

import json

import httpx
import pytest

from helpers.build_project import batch_model_sql
from helpers.dbt_projects import DbtTestProject, _wait_while_running

pytestmark = pytest.mark.slow

THIRTY_HOURS = 30 * 3600


def _document(output: str) -> dict:
    return json.loads(output[output.index("{"):])


def _ai_generate_rows(project: DbtTestProject) -> int:
    """Rows the local BigQuery has answered through AI.GENERATE since it started."""
    response = httpx.get(f"{project.stack.bigquery_endpoint}/emulator/ai_generate")
    response.raise_for_status()
    return int(response.json()["rows"])


def test_a_job_queued_past_max_queue_hours_is_cancelled_and_a_new_job_answers_once(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    project.write("models/questions.sql", batch_model_sql(", max_retries=1, max_queue_hours=24"))
    # Every job stays queued; the next one made says it was created 30 hours ago.
    faults.put("/emulator/faults", json={"hold": True, "backdate": [THIRTY_HOURS]}
               ).raise_for_status()
    build = project.cli_in_background("build", "--json")
    # The second job is made only once the first is CANCELLED: then let the queue go.
    project.wait_for_jobs(build, 2)
    first, second = project.jobs()
    assert first.state == "CANCELLED" and first.succeeded + first.failed == 0
    faults.put("/emulator/faults", json={}).raise_for_status()
    result = build.result(timeout=600)
    assert result.exit_code == 0, result.output

    first, second = project.jobs()
    assert (first.state, second.state, second.succeeded) == ("CANCELLED", "SUCCEEDED", 3)
    assert len(project.jobs()) == 2
    # Each request answered once, by the second job, and merged once.
    rows = project.rows("select job_name, attempts from `{ds}.questions__responses`")
    assert sorted(row["job_name"] for row in rows) == [second.name] * 3
    assert all(row["attempts"] == 1 for row in rows)
    states = project.rows("select batch_state from `{ds}.answers`")
    assert [row["batch_state"] for row in states] == ["succeeded"] * 3

    [row] = project.rows("select state, error, merged_at from `{ds}.gemini_batch_jobs` "
                         f"where job_name = '{first.name}'")
    assert row["state"] == "CANCELLED" and row["merged_at"] is not None
    assert row["error"].startswith("cancelled: queued 30.0 h, past max_queue_hours 24")
    assert row["error"].endswith("; its requests went to a new job")

    [model] = _document(result.stdout)["models"]
    [cancel] = model["queue_cancelled"]
    assert (cancel["job_id"], cancel["max_queue_hours"], cancel["requests"],
            cancel["answered"], cancel["resent_by"]) == (first.job_id, 24, 3, 0, "batch")
    assert cancel["queued_hours"] == pytest.approx(30, abs=0.1)
    assert (model["succeeded"], model["pending"], model["failed_jobs"]) == (3, 0, [])
    text = " ".join(result.output.split())
    assert (f"questions: job {first.job_id} was still queued after 30.0 h (max_queue_hours "
            "24): cancelled; its unanswered requests went to a new batch job.") in text


def test_route_auto_answers_a_cancelled_job_s_requests_through_ai_generate(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # Six requests, over ai_generate_max_rows=3: two batch jobs of three. The first one
    # made is 30 hours old and stays queued; the second is let go.
    project.write("models/more.sql", """\
        {{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash',
                  route='auto', ai_generate_max_rows=3, shard_size=3, max_retries=1,
                  max_queue_hours=24) }}
        select id, {{ gemini_batch.request(prompt="prompt") }} as request
        from (select id, prompt from {{ ref('prompts') }}
              union all select id + 100, concat(prompt, ' Again.') from {{ ref('prompts') }})
        """)
    faults.put("/emulator/faults", json={"hold": True, "backdate": [THIRTY_HOURS]}
               ).raise_for_status()
    before = _ai_generate_rows(project)
    build = project.cli_in_background("build", "--json", "--select", "+more")
    project.wait_for_jobs(build, 2)
    stuck, other = project.jobs()  # oldest first: the backdated one
    _wait_while_running(build, lambda: project.jobs()[0].state == "CANCELLED",
                        "the stuck job cancelled", 600)
    faults.put("/emulator/faults", json={}).raise_for_status()
    result = build.result(timeout=600)
    assert result.exit_code == 0, result.output

    jobs = project.jobs()
    assert [job.name for job in jobs] == [stuck.name, other.name]  # no third job
    assert (jobs[0].state, jobs[0].succeeded) == ("CANCELLED", 0)
    assert (jobs[1].state, jobs[1].succeeded) == ("SUCCEEDED", 3)
    # The stuck job's three requests, answered by AI.GENERATE in a dbt run of the model.
    assert _ai_generate_rows(project) - before == 3
    rows = project.rows("select job_name, attempts from `{ds}.more__responses`")
    assert len(rows) == 6 and all(row["attempts"] == 1 for row in rows)
    assert sum(row["job_name"].startswith("ai_generate/") for row in rows) == 3
    assert sum(row["job_name"] == other.name for row in rows) == 3

    [model] = _document(result.stdout)["models"]
    assert model["route"] == "ai_generate+batch"
    assert [cancel["resent_by"] for cancel in model["queue_cancelled"]] == ["ai_generate"]
    assert (model["succeeded"], model["pending"]) == (6, 0)
    [row] = project.rows("select error from `{ds}.gemini_batch_jobs` "
                         f"where job_name = '{stuck.name}'")
    assert row["error"].endswith("; its requests went to AI.GENERATE")
    assert "its unanswered requests went to AI.GENERATE (route auto)" in " ".join(
        result.output.split())
