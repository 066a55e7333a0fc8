"""route='auto' through `gemini-batch build`: at most ai_generate_max_rows pending
requests are answered through AI.GENERATE in the model's dbt run, more go by Vertex AI
batch jobs; `plan` and `--json` name the route. What a user sees: the plan table and
document, the build's notes and document, the local BigQuery's AI.GENERATE count
(`GET $BIGQUERY_ENDPOINT/emulator/ai_generate`) and the Vertex emulator's jobs."""

from __future__ import annotations

import json

import httpx
import pytest

from helpers.build_project import batch_model_sql
from helpers.dbt_projects import DbtTestProject
from helpers.dbt_projects import cli_ok as _ok

pytestmark = pytest.mark.slow

AUTO = ", route='auto', ai_generate_max_rows=3, max_retries=1"


def _rows_sent(project: DbtTestProject) -> int:
    """Rows the local BigQuery has answered through AI.GENERATE since it started."""
    response = httpx.get(f"{project.stack.bigquery_endpoint}/emulator/ai_generate")
    response.raise_for_status()
    return int(response.json()["rows"])


def _document(output: str) -> dict:
    return json.loads(output[output.index("{"):])


def _plan_routes(project: DbtTestProject) -> tuple[str, dict]:
    result = project.cli("plan", "--json")
    _ok(result)
    document = _document(result.stdout)
    return result.output, {item["model"]: item for item in document["models"]}


def _route_cell(output: str, model: str) -> str:
    """The last cell (route) of ``model``'s row of the plan table."""
    line = next(line for line in output.splitlines() if line.strip("│┃| ").startswith(model))
    return line.strip("│┃| ").split("│")[-1].strip()


def test_auto_answers_few_through_ai_generate_and_many_by_batch_jobs(
    project: DbtTestProject,
) -> None:
    # questions: the seed's 3 prompts (== ai_generate_max_rows); more: 6 (over it).
    project.write("models/questions.sql", batch_model_sql(AUTO))
    project.write("models/more.sql", """\
        {{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash',
                  route='auto', ai_generate_max_rows=3, max_retries=1) }}
        select id, {{ gemini_batch.request(prompt="prompt") }} as request
        from (select id, prompt from {{ ref('prompts') }}
              union all select id + 100, concat(prompt, ' Again.') from {{ ref('prompts') }})
        """)
    project.dbt_ok("seed")

    output, plans = _plan_routes(project)
    assert plans["questions"]["route"] == "ai_generate"
    assert plans["more"]["route"] == "batch"
    assert plans["more"]["counts"]["pending"] == 6
    assert _route_cell(output, "questions") == "ai_generate"
    assert _route_cell(output, "more") == "batch"
    # AI.GENERATE's estimate carries BigQuery ML's data processing; batch jobs' does not.
    assert plans["questions"]["estimate"]["processing_usd"] > 0
    assert plans["more"]["estimate"]["processing_usd"] == 0
    assert plans["questions"]["shards"] == 0 and plans["more"]["shards"] == 1
    assert "questions: route auto: 3 requests through AI.GENERATE" in output

    before = _rows_sent(project)
    result = project.cli("build", "--json")
    _ok(result)

    # Three rows through AI.GENERATE (questions); none of more's.
    assert _rows_sent(project) - before == 3
    jobs = project.jobs()
    shards = [job.input_table.rsplit(".", 1)[-1] for job in jobs]
    assert shards and all(shard.startswith("more__shard_") for shard in shards)
    assert sum(job.succeeded for job in jobs) == 6
    states = project.rows("select batch_state, count(*) as n from `{ds}.questions` "
                          "group by batch_state")
    assert states == [{"batch_state": "succeeded", "n": 3}]
    assert project.rows("select count(*) as n from `{ds}.more` "
                        "where batch_state = 'succeeded'") == [{"n": 6}]

    document = _document(result.stdout)
    models = {item["model"]: item for item in document["models"]}
    assert models["questions"]["route"] == "ai_generate"
    assert (models["questions"]["submitted"], models["questions"]["succeeded"],
            models["questions"]["cached"]) == (3, 3, 0)
    assert models["more"]["route"] == "batch"
    assert (models["more"]["submitted"], models["more"]["succeeded"]) == (6, 6)
    assert "questions: route ai_generate: sent by AI.GENERATE in its dbt run" in result.output
    assert "more: route batch: sent by batch jobs" in result.output
    assert "more: route auto: 6 pending requests, over ai_generate_max_rows=3" in result.output
    # The statement is among the build's jobs, with its route.
    assert any(job["job_name"].startswith("ai_generate/") for job in document["jobs"])

    # A rebuild sends nothing on either route.
    before = _rows_sent(project)
    result = project.cli("build", "--json")
    _ok(result)
    assert _rows_sent(project) == before
    assert len(project.jobs()) == len(jobs)
    models = {item["model"]: item for item in _document(result.stdout)["models"]}
    assert models["questions"]["route"] is None and models["more"]["route"] is None
