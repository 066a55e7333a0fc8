"""route='ai_generate': a plain `dbt run` answers a batch model's pending requests through
BigQuery's AI.GENERATE, on the local stack (its BigQuery answers AI.GENERATE with the
Vertex emulator's engines). No `gemini-batch` command runs here: what a dbt Cloud job
or any runner that only runs dbt does.

What a user sees: the view's batch_state and answers, <model>__responses rows, the
ledger's rows of the statements, the log lines of `dbt run`, and what the emulator
counts as sent (`GET $BIGQUERY_ENDPOINT/emulator/ai_generate`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from gemini_batch.state.ledger import AI_GENERATE_PREFIX
from helpers.dbt_projects import DbtProjects, DbtTestProject, dbt_messages

pytestmark = pytest.mark.slow

AI_GENERATE_STATS = "/emulator/ai_generate"

# Text a prompt or an instruction may hold that SQL must never see as SQL.
TRICKY = "It's \"quoted\" \\ back\\slash\nnew line ''' triple \"\"\" `tick` -- not a comment"


def sql_string(text: str) -> str:
    """A BigQuery string literal of ``text`` (for the model files of the tests)."""
    escaped = (text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n")
               .replace("\r", "\\r"))
    return f"'{escaped}'"


def questions_sql(config: str, rows: list[tuple[int, str]], system: str | None = None,
                  max_output_tokens: int | None = None) -> str:
    """A batch model on route ai_generate: one text request per (id, prompt)."""
    selects = " union all\n".join(
        f"select {row_id} as id, {sql_string(prompt)} as prompt" for row_id, prompt in rows)
    instruction = (
        f", 'systemInstruction', json_object('parts', [json_object('text', {system})])"
        if system else "")
    if max_output_tokens:
        instruction += (", 'generationConfig', "
                        f"json_object('maxOutputTokens', {max_output_tokens})")
    return f"""\
{{{{ config(materialized='gemini_batch', meta={{'gemini_model': 'gemini-2.5-flash',
   'route': 'ai_generate', {config}}}) }}}}
select id, prompt,
  json_object('contents', [json_object('role', 'user', 'parts', [json_object('text', prompt)])]
              {instruction}) as request
from (
{selects}
)
"""


@pytest.fixture()
def ai_generate(local_stack) -> Iterator[httpx.Client]:  # noqa: ANN001 - the stack state
    """The local BigQuery's admin endpoint: AI.GENERATE faults (off again after the test)
    and what it has answered."""
    with httpx.Client(base_url=local_stack.bigquery_endpoint) as client:
        yield client
        client.put("/emulator/faults", json={}).raise_for_status()


def rows_sent(client: httpx.Client) -> int:
    """Rows the local BigQuery has answered through AI.GENERATE, failures included."""
    response = client.get(AI_GENERATE_STATS)
    response.raise_for_status()
    return int(response.json()["rows"])


def dbt_run(project: DbtTestProject, *args: str) -> str:
    """A plain `dbt run` as a user types it; its output."""
    return project.run("dbt", "run", *args)


def states(project: DbtTestProject, model: str) -> dict[int, str]:
    return {row["id"]: row["batch_state"] for row in project.rows(
        f"select id, batch_state from `{{ds}}.{model}` order by id")}


def answer_texts(project: DbtTestProject, model: str) -> dict[int, str | None]:
    return {row["id"]: row["text"] for row in project.rows(
        f"select id, json_value(response, '$.candidates[0].content.parts[0].text') as text "
        f"from `{{ds}}.{model}` order by id")}


def test_a_plain_dbt_run_answers_and_a_rerun_sends_only_what_changed(
    dbt_projects: DbtProjects, ai_generate: httpx.Client
) -> None:
    prompts = [(1, "Give me a recipe for red velvet cake."), (2, TRICKY),
               (3, "Give me a recipe for banana bread."), (4, "Give me a recipe for banana bread.")]
    system = "concat('Answer as a chef. ', " + sql_string(TRICKY) + ", ' {', '{ not jinja }', '}')"
    project = dbt_projects.create("aig_answers", {"models/questions.sql": questions_sql(
        "'max_retries': 1", prompts, system)})
    before = rows_sent(ai_generate)

    output = dbt_run(project)

    # Two rows ask the same request: it is sent once.
    assert rows_sent(ai_generate) - before == 3
    assert states(project, "questions") == dict.fromkeys(range(1, 5), "succeeded")
    texts = answer_texts(project, "questions")
    assert f"You asked: {TRICKY}" in texts[2]
    assert f"System instruction: Answer as a chef. {TRICKY} {{{{ not jinja }}}}" in texts[2]
    assert "AI.GENERATE answered 3 of 3 requests" in output
    responses = project.rows(
        "select job_name, attempts, answered, empty_answer, error_code, last_error "
        "from `{ds}.questions__responses`")
    assert len(responses) == 3
    assert all(row["job_name"].startswith(AI_GENERATE_PREFIX) and row["attempts"] == 1
               and row["answered"] and not row["empty_answer"] and row["error_code"] is None
               and row["last_error"] is None for row in responses)
    ledger = project.rows(
        "select job_name, job_id, dbt_model, state, request_count, succeeded_count, "
        "failed_count, prompt_tokens, candidates_tokens, estimated_cost_usd, actual_cost_usd, "
        "merged_at from `{ds}.gemini_batch_jobs`")
    assert len(ledger) == 1
    entry = ledger[0]
    assert entry["job_name"] == responses[0]["job_name"]
    assert entry["dbt_model"] == "model.aig_answers.questions"
    assert (entry["state"], entry["request_count"], entry["succeeded_count"],
            entry["failed_count"]) == ("SUCCEEDED", 3, 3, 0)
    assert entry["prompt_tokens"] > 0 and entry["candidates_tokens"] > 0
    assert entry["estimated_cost_usd"] > 0 and entry["actual_cost_usd"] > 0
    assert entry["merged_at"] is not None
    # The lock a build takes is released.
    assert project.rows("select * from `{ds}.gemini_batch_locks`") == []

    # A rerun sends nothing: every request has its answer.
    before = rows_sent(ai_generate)
    output = dbt_run(project)
    assert rows_sent(ai_generate) == before
    assert "with no answer" not in output

    # One changed row sends one.
    project.write("models/questions.sql", questions_sql(
        "'max_retries': 1", [*prompts[:2], (3, "Give me a recipe for pound cake."), prompts[3]],
        system))
    dbt_run(project)
    assert rows_sent(ai_generate) - before == 1
    assert states(project, "questions") == dict.fromkeys(range(1, 5), "succeeded")


def test_rows_refused_with_429_are_all_answered_after_retries_in_the_run(
    dbt_projects: DbtProjects, ai_generate: httpx.Client
) -> None:
    prompts = [(i, f"Question number {i}?") for i in range(1, 21)]
    project = dbt_projects.create("aig_retries", {"models/questions.sql": questions_sql(
        "'max_retries': 8", prompts)})
    ai_generate.put("/emulator/faults", json={"ai_generate": {
        "row_failure_rate": 0.2, "row_failure_codes": [429]}}).raise_for_status()
    before = rows_sent(ai_generate)

    output = dbt_run(project)

    assert states(project, "questions") == dict.fromkeys(range(1, 21), "succeeded")
    sent = rows_sent(ai_generate) - before
    assert sent > 20, "no row was refused: the fault did not apply"
    attempts = project.rows("select sum(attempts) as total from `{ds}.questions__responses`")
    assert attempts[0]["total"] == sent
    assert "retryable" in output
    # One ledger row per statement, the later rounds' failures counted where they happened.
    ledger = project.rows(
        "select sum(request_count) as sent, sum(succeeded_count) as answered, "
        "count(*) as statements from `{ds}.gemini_batch_jobs`")[0]
    assert (ledger["sent"], ledger["answered"]) == (sent, 20)
    assert ledger["statements"] >= 2


def test_a_400_row_is_sent_once_and_fails_with_its_reason(
    dbt_projects: DbtProjects, ai_generate: httpx.Client
) -> None:
    project = dbt_projects.create("aig_400", {"models/questions.sql": questions_sql(
        "'max_retries': 3", [(1, "fine"), (2, "refused [[gemini-batch:error:400]]")])})
    before = rows_sent(ai_generate)

    dbt_run(project)
    dbt_run(project)

    assert rows_sent(ai_generate) - before == 2  # each once: a 400 is final
    assert states(project, "questions") == {1: "succeeded", 2: "failed"}
    failed = project.rows(
        "select s.attempts, s.error_code, s.last_error from `{ds}.questions__responses` as s "
        "where s.request_id in (select request_id from `{ds}.questions` where id = 2)")[0]
    assert failed["attempts"] == 1 and failed["error_code"] == 400
    assert "400" in failed["last_error"] or "INVALID_ARGUMENT" in failed["last_error"]


def test_over_the_cap_the_model_fails_and_nothing_is_sent(
    dbt_projects: DbtProjects, ai_generate: httpx.Client, capfd: pytest.CaptureFixture[str]
) -> None:
    project = dbt_projects.create("aig_cap", {"models/questions.sql": questions_sql(
        "'max_cost_usd': 0.000001", [(1, "x" * 4000), (2, "y" * 4000)],
        max_output_tokens=256)})
    before = rows_sent(ai_generate)

    result = project.dbt("run")

    assert not result.success
    # The thinking trap is named first, as plan and build name it.
    logged = " ".join(capfd.readouterr().out.split())
    assert ("questions: warning: 2 requests leave thinking no room: maxOutputTokens 256 is "
            "below what gemini-2.5-flash typically thinks") in logged
    message = dbt_messages(result)
    assert "over max_cost_usd=$0.0000" in message and "Nothing was sent" in message
    assert "2 pending requests through AI.GENERATE are estimated at $" in message
    assert rows_sent(ai_generate) == before
    assert project.rows("select * from `{ds}.questions__responses`") == []
    assert project.rows("select * from `{ds}.gemini_batch_locks`") == []


CONVERSATION_SQL = """\
{{ config(materialized='gemini_batch', meta={'gemini_model': 'gemini-2.5-flash',
   'route': 'ai_generate'}) }}
select 1 as id, json_object('contents', [json_object('role', 'user', 'parts',
  [json_object('text', 'What is a roux?')])]) as request
union all
select 2, json_object('contents', [
  json_object('role', 'user', 'parts', [json_object('text', 'What is a roux?')]),
  json_object('role', 'model', 'parts', [json_object('text', 'Flour cooked in fat.')]),
  json_object('role', 'user', 'parts', [json_object('text', 'And a beurre manie?')])])
"""


def test_conversations_stay_pending_for_batch_jobs(
    dbt_projects: DbtProjects, ai_generate: httpx.Client
) -> None:
    project = dbt_projects.create("aig_turns", {"models/turns.sql": CONVERSATION_SQL})
    before = rows_sent(ai_generate)

    output = dbt_run(project)

    assert rows_sent(ai_generate) - before == 1
    assert states(project, "turns") == {1: "succeeded", 2: "pending"}
    assert ("1 request not sent by AI.GENERATE (a conversation (several turns, or a model "
            "turn): AI.GENERATE sends one user turn)") in output
    assert "gemini-batch build --select turns` sends them by batch job" in output
    assert "turns: 1 request with no answer; `gemini-batch build --select turns`" in output


TYPED_SQL = """\
{{ config(materialized='gemini_batch', meta={'gemini_model': 'gemini-2.5-flash',
   'route': 'ai_generate', 'ai_generate_max_rows': 2}) }}
select id, {{ gemini_batch.request(prompt='dish', output_columns=var('recipe_columns')) }}
  as request
from unnest([struct(1 as id, 'red velvet cake' as dish), struct(2, 'pound cake'),
             struct(3, 'banana bread')])
"""

TYPED_DOWNSTREAM_SQL = """\
select id, {{ gemini_batch.parse_output('response', var('recipe_columns')) }}
from {{ ref('recipes') }}
where batch_state = 'succeeded'
"""


def test_typed_output_through_parse_output_and_max_rows(
    dbt_projects: DbtProjects, ai_generate: httpx.Client
) -> None:
    project = dbt_projects.create("aig_typed", {
        "models/recipes.sql": TYPED_SQL, "models/recipe_fields.sql": TYPED_DOWNSTREAM_SQL})
    columns = json.dumps({"recipe_columns": {"title": "STRING", "minutes": "INT64"}})
    before = rows_sent(ai_generate)

    output = dbt_run(project, "--vars", columns)

    # ai_generate_max_rows bounds one run; the rest waits for the next one.
    assert rows_sent(ai_generate) - before == 2
    assert "1 more request over ai_generate_max_rows=2 stays pending" in output
    typed = project.rows("select * from `{ds}.recipe_fields` order by id")
    assert len(typed) == 2  # the first two by request_id
    assert all(isinstance(row["title"], str) and isinstance(row["minutes"], int)
               and row["_parse_error"] is None for row in typed)

    dbt_run(project, "--vars", columns)
    assert rows_sent(ai_generate) - before == 3
    assert len(project.rows("select * from `{ds}.recipe_fields`")) == 3
