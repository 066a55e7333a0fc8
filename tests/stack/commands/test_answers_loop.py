"""The analytics engineer's loop on the local stack: answers reused across targets, a
sample by key, and `gemini-batch diff` (ADR 0016).

What a user sees: the closing table and `--json` of `gemini-batch build`, the rows of
`<model>__responses`, the ledger, the jobs the Vertex emulator was given, what the local
BigQuery answered through AI.GENERATE, and `gemini-batch diff --json`.
"""

from __future__ import annotations

import json
import textwrap

import httpx
import pytest
from google.cloud import bigquery

from gemini_batch.local.stack import DEFAULT_LOCATION
from helpers.dbt_projects import DbtProjects, DbtTestProject, cli_ok

pytestmark = pytest.mark.slow

PROJECT_YML = """\
name: loop
version: "1.0"
config-version: 2
profile: loop
flags:
  send_anonymous_usage_stats: false
"""


def questions_sql(rows: int, prompt: str = "Describe item", route: str = "batch") -> str:
    """A batch model of ``rows`` generated rows (key column id), one text request each."""
    return textwrap.dedent(f"""\
        {{{{ config(materialized='gemini_batch',
                    meta={{'gemini_model': 'gemini-2.5-flash', 'route': '{route}'}}) }}}}
        select id, {{{{ gemini_batch.request(prompt="concat('{prompt} ', cast(id as string))") }}}}
          as request
        from unnest(generate_array(1, {rows})) as id
        """)


def two_targets(project: DbtTestProject, dbt_projects: DbtProjects) -> str:
    """profiles.yml with targets prod (the project's dataset) and dev (a new regional
    dataset, the default target); the dev dataset's name."""
    dev = f"{project.dataset}_dev"
    created = bigquery.Dataset(f"{project.stack.project}.{dev}")
    created.location = DEFAULT_LOCATION
    project.bq.create_dataset(created)
    prod_output = project.stack.dbt_profile("loop", project.dataset).split("    local:\n")[1]
    dev_output = project.stack.dbt_profile("loop", dev).split("    local:\n")[1]
    (project.path / "profiles.yml").write_text(
        "loop:\n  target: dev\n  outputs:\n"
        f"    prod:\n{prod_output}    dev:\n{dev_output}")
    return dev


def json_of(output: str) -> dict:
    """The --json document of a command's output (its human lines go to stderr, which
    click's runner mixes in before it)."""
    return json.loads(output[output.index("{\n"):])


def build_json(project: DbtTestProject, *args: str) -> dict:
    return json_of(cli_ok(project.cli("build", "--json", *args)))


def model_row(document: dict) -> dict:
    (row,) = [m for m in document["models"] if m["model"] == "questions"]
    return row


def sent(project: DbtTestProject) -> int:
    """Requests the Vertex emulator was given for this project's datasets."""
    prefix = f"{project.stack.project}.{project.dataset}"
    return sum(job.succeeded + job.failed for job in project.vertex().list(limit=1000)
               if (job.input_table or "").startswith(prefix))


@pytest.fixture()
def loop_project(dbt_projects: DbtProjects):  # noqa: ANN201
    project = dbt_projects.create("loop", {"dbt_project.yml": PROJECT_YML,
                                           "models/questions.sql": questions_sql(12)},
                                  profile="loop", regional=True)
    yield project
    project.drop()
    project.bq.delete_dataset(f"{project.stack.project}.{project.dataset}_dev",
                              delete_contents=True, not_found_ok=True)


def test_dev_reuses_prod_answers_and_sends_only_what_changed(
    loop_project: DbtTestProject, dbt_projects: DbtProjects
) -> None:
    project = loop_project
    dev = two_targets(project, dbt_projects)
    prod = model_row(build_json(project, "--target", "prod"))
    assert prod["submitted"] == 12 and prod["succeeded"] == 12
    sent_by_prod = sent(project)
    source = f"{project.stack.project}.{project.dataset}"
    missing = f"{project.stack.project}.no_such_dataset_here"
    answers_from = f"{{gemini_batch_answers_from: ['{missing}', '{source}']}}"

    output = cli_ok(project.cli("build", "--json", "--vars", answers_from))
    document = json_of(output)
    # The missing source is a warning; the next one gives every answer.
    assert f"answers from {missing}.questions__responses not read" in output

    row = model_row(document)
    assert (row["reused"], row["submitted"], row["succeeded"], row["pending"]) == (12, 0, 0, 0)
    assert sent(project) == sent_by_prod  # dev sent nothing
    responses = project.rows(
        f"select reused_from, answered, response from `{project.stack.project}.{dev}"
        ".questions__responses`")
    assert len(responses) == 12
    assert {r["reused_from"] for r in responses} == {f"{source}.questions__responses"}
    assert all(r["answered"] and r["response"] for r in responses)
    ledger = project.rows(
        "select job_name, state, request_count, actual_cost_usd, merged_at from "
        f"`{project.stack.project}.{dev}.gemini_batch_jobs` where starts_with(job_name, 'reused/')")
    assert [(j["state"], j["request_count"], j["actual_cost_usd"]) for j in ledger] == [
        ("SUCCEEDED", 12, 0.0)]
    assert ledger[0]["job_name"].endswith(f"/{source}.questions__responses")
    assert ledger[0]["merged_at"] is not None

    states = project.rows(f"select batch_state from `{project.stack.project}.{dev}.questions`")
    assert {s["batch_state"] for s in states} == {"succeeded"}

    # Three rows changed in dev: three are sent, the rest stay as they are.
    project.write("models/questions.sql", questions_sql(12).replace(
        "concat('Describe item ', cast(id as string))",
        "concat(if(id <= 3, 'Summarise item ', 'Describe item '), cast(id as string))"))
    row = model_row(build_json(project, "--vars", answers_from))
    assert (row["reused"], row["submitted"], row["succeeded"], row["cached"]) == (0, 3, 3, 9)


def test_sample_sends_the_same_rows_before_and_after_a_prompt_change(
    loop_project: DbtTestProject,
) -> None:
    project = loop_project
    project.write("models/questions.sql", questions_sql(300))

    first = model_row(build_json(project, "--sample", "10"))
    assert (first["submitted"], first["succeeded"], first["outside_sample"]) == (10, 10, 290)
    answered = {r["id"] for r in project.rows(
        "select id from `{ds}.questions` where batch_state = 'succeeded'")}
    assert len(answered) == 10

    again = model_row(build_json(project, "--sample", "10"))
    assert again["submitted"] == 0 and again["outside_sample"] == 290

    project.write("models/questions.sql", questions_sql(300, prompt="Summarise item"))
    changed = model_row(build_json(project, "--sample", "20"))
    assert changed["submitted"] == 20
    now = {r["id"] for r in project.rows(
        "select id from `{ds}.questions` where batch_state = 'succeeded'")}
    assert answered < now and len(now) == 20  # the first ten are among the twenty

    diff = json_of(cli_ok(project.cli("diff", "questions", "--json", "--limit", "100")))
    assert len(diff["rows"]) == 10  # ten keys have an answer under each prompt
    assert {r["key"]["id"] for r in diff["rows"]} == answered
    for row in diff["rows"]:
        assert "Describe item" in row["previous"]["text"]
        assert "Summarise item" in row["current"]["text"]
        assert row["previous"]["request_id"] != row["current"]["request_id"]
        assert not row["same_text"]
    table = cli_ok(project.cli("diff", "questions", "--limit", "3"))
    assert "gemini-batch diff questions" in table and "3 row(s) with both answers" in table

    planned = cli_ok(project.cli("plan", "--sample", "25"))
    assert "--sample 25: 5 of the 280 pending requests would be sent" in planned


def test_diff_after_a_prompt_change_and_a_sample_of_twenty(loop_project: DbtTestProject) -> None:
    project = loop_project
    project.write("models/questions.sql", questions_sql(40))
    build_json(project)
    project.write("models/questions.sql", questions_sql(40, prompt="Summarise item"))
    row = model_row(build_json(project, "--sample", "20"))
    assert (row["submitted"], row["outside_sample"]) == (20, 20)
    diff = json_of(cli_ok(project.cli("diff", "questions", "--json", "--limit", "100")))
    assert len(diff["rows"]) == 20


def test_plain_dbt_run_on_the_ai_generate_route_reuses_and_samples(
    loop_project: DbtTestProject, dbt_projects: DbtProjects, local_stack  # noqa: ANN001
) -> None:
    project = loop_project
    project.write("models/questions.sql", questions_sql(12, route="ai_generate"))
    dev = two_targets(project, dbt_projects)
    with httpx.Client(base_url=local_stack.bigquery_endpoint) as admin:
        def rows_sent() -> int:
            return int(admin.get("/emulator/ai_generate").json()["rows"])

        before = rows_sent()
        output = project.run("dbt", "run", "--target", "prod", "--vars", "{gemini_batch_sample: 5}")
        assert rows_sent() - before == 5
        assert "7 pending requests outside the sample" in output

        source = f"{project.stack.project}.{project.dataset}"
        before = rows_sent()
        output = project.run("dbt", "run", "--vars",
                             f"{{gemini_batch_answers_from: ['{source}']}}")
        assert "5 answers copied from" in output
        assert rows_sent() - before == 7  # the five prod answered are copied, not sent
    reused = project.rows(
        f"select count(*) as n from `{project.stack.project}.{dev}.questions__responses` "
        "where reused_from is not null")
    assert reused == [{"n": 5}]
    ledger = project.rows(
        f"select request_count, actual_cost_usd from `{project.stack.project}.{dev}"
        ".gemini_batch_jobs` where starts_with(job_name, 'reused/')")
    assert ledger == [{"request_count": 5, "actual_cost_usd": 0.0}]
