"""Refuse before paying, on the local stack: the thinking trap warned about, the canary
before a big round (stopping it, passing it, off, decided by the next build after
--no-wait), the cap over a whole build whatever its retry rounds, and the worst case
over every candidate.

Small canary thresholds keep the tests fast, except the 2,500-row model issue 22 asks
for (the default thresholds: a sample of 100).
"""

from __future__ import annotations

import json
import textwrap

import httpx
import pytest

from helpers.dbt_projects import DbtTestProject, cli_ok

pytestmark = pytest.mark.slow

SMALL_CANARY = ", canary_min_rows=10, canary_min_sample=5, canary_max_sample=5"


def _model(config: str = "", generation_config: str = "",
           gemini_model: str = "gemini-2.5-flash") -> str:
    generation = f", generation_config={generation_config}" if generation_config else ""
    return textwrap.dedent(f"""\
        {{{{ config(materialized='gemini_batch', gemini_model='{gemini_model}'{config}) }}}}
        select id, {{{{ gemini_batch.request(prompt="prompt"{generation}) }}}} as request
        from {{{{ ref('prompts') }}}}
        """)


def _words(output: str) -> str:
    """The output with its line wrapping undone."""
    return " ".join(output.split())


def _sent(project: DbtTestProject) -> list[int]:
    """Rows the Vertex emulator was given, per job, oldest first."""
    return [job.succeeded + job.failed for job in project.jobs()]


def test_a_big_model_with_no_room_to_answer_sends_only_its_canary_and_stops(
    project: DbtTestProject,
) -> None:
    project.seed([f"Tell me about the number {n}." for n in range(2_500)])
    project.write("models/questions.sql", _model(generation_config="{'maxOutputTokens': 256}"))
    project.dbt_ok("build")

    planned = _words(cli_ok(project.cli("plan")))
    assert "questions: warning: 2,500 requests leave thinking no room: maxOutputTokens 256" in (
        planned)
    assert "Fix: raise maxOutputTokens to" in planned
    assert "questions: a canary of 100 requests goes first (2,500 pending" in planned

    built = _words(cli_ok(project.cli("build"), code=3))
    assert "warning: 2,500 requests leave thinking no room" in built
    assert "the canary failed: 100 of its 100 requests failed for good or came back empty" in (
        built)
    assert "EMPTY_ANSWER: MAX_TOKENS: 100" in built
    assert "The other 2,400 pending requests were not sent" in built
    assert "raise generationConfig.maxOutputTokens" in built
    assert _sent(project) == [100]  # the emulator got the canary and nothing else
    # The sample is the 100 lowest request_ids, and its answers are kept.
    states = project.rows("select batch_state, count(*) as n, max(request_id) as last "
                          "from `{ds}.questions` group by 1 order by 1")
    assert [(s["batch_state"], s["n"]) for s in states] == [("failed", 100), ("pending", 2_400)]
    (first_pending,) = project.rows("select min(request_id) as id from `{ds}.questions` "
                                    "where batch_state = 'pending'")
    assert states[0]["last"] < first_pending["id"]

    # A rerun without a fix decides from the answers kept: nothing is sent.
    again = _words(cli_ok(project.cli("build"), code=3))
    assert "the canary failed: 100 of its 100" in again
    assert _sent(project) == [100]


def test_a_canary_that_passes_lets_the_rest_go(project: DbtTestProject) -> None:
    project.seed([f"Question number {n}." for n in range(30)])
    project.write("models/questions.sql", _model(SMALL_CANARY))
    output = _words(cli_ok(project.cli("build")))
    assert "canary: 5 requests in 1 job (" in output
    assert "canary passed (0 of 5 failed for good or empty): sending the other 25 requests" in (
        output)
    assert _sent(project) == [5, 25]
    assert project.rows("select batch_state, count(*) as n from `{ds}.questions` group by 1"
                        ) == [{"batch_state": "succeeded", "n": 30}]


def test_canary_false_sends_everything_at_once(project: DbtTestProject) -> None:
    project.seed([f"Question number {n}." for n in range(30)])
    project.write("models/questions.sql", _model(SMALL_CANARY + ", canary=false"))
    project.dbt_ok("build")
    assert "canary" not in cli_ok(project.cli("plan"))
    assert "canary" not in cli_ok(project.cli("build"))
    assert _sent(project) == [30]


def test_with_no_wait_the_next_build_decides_on_the_canary(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    project.seed([f"Question number {n}." for n in range(30)])
    project.write("models/questions.sql", _model(SMALL_CANARY))
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()
    cli_ok(project.cli("build", "--no-wait"), code=75)
    assert _sent(project) == [0]  # held: the canary's job, not yet answered
    held = _words(cli_ok(project.cli("build", "--no-wait"), code=75))
    assert "is still running: the next build decides whether the other 25 requests" in held
    assert len(project.jobs()) == 1

    faults.put("/emulator/faults", json={}).raise_for_status()
    output = _words(cli_ok(project.cli("build")))
    assert "canary passed (0 of 5 failed for good or empty)" in output
    assert _sent(project) == [5, 25]


def test_retry_rounds_stop_at_the_cap_of_the_whole_build(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # Another model of gemini-2.5-flash that does not think: its answers are what the
    # first estimate of `essays` (no answers of its own yet) goes by, as low as a
    # labelling model's. Once `essays` has answers, its own averages take over.
    project.seed([f"Question number {n}." for n in range(80)])
    project.write("models/questions.sql", _model(
        generation_config="{'thinkingConfig': {'thinkingBudget': 0}}"))
    cli_ok(project.cli("build"))
    project.write("models/essays.sql", _model(", max_retries=5, max_cost_usd=0.03"))
    project.dbt_ok("build")
    (first,) = project.rows("select count(*) as n from `{ds}.gemini_batch_jobs`")

    # 90% of the rows are shed with 429 (not billed) in every job: without the build's
    # spend counted, each retry round's estimate fits the cap on its own.
    faults.put("/emulator/faults", json={"row_failure_rate": 0.9,
                                         "row_failure_codes": [429]}).raise_for_status()
    output = _words(cli_ok(project.cli("build", "--select", "essays"), code=1))
    assert "already spent by this build's earlier rounds" in output
    assert "over max_cost_usd=$0.0300" in output
    assert "Nothing more was submitted (the answers already back are kept)" in output
    jobs = project.rows("select actual_cost_usd, succeeded_count from `{ds}.gemini_batch_jobs` "
                        f"order by submitted_at limit 100 offset {first['n']}")
    assert len(jobs) == 1 and jobs[0]["succeeded_count"] > 0
    assert 0 < sum(job["actual_cost_usd"] for job in jobs) <= 0.03


def test_the_worst_case_covers_every_candidate(project: DbtTestProject) -> None:
    # Each of the 4 candidates writes up to its 12 tokens: four times one candidate's worst.
    generation = ("{'candidateCount': 4, 'maxOutputTokens': 12, "
                  "'thinkingConfig': {'thinkingBudget': 0}}")
    project.write("models/questions.sql", _model(generation_config=generation))
    project.dbt_ok("build")
    document = project.cli("plan", "--json")
    assert document.exit_code == 0, document.output
    [plan] = json.loads(document.stdout)["models"]
    worst = plan["estimate"]["worst_case_usd"]
    assert plan["estimate"]["worst_case_output_tokens"] == 3 * 4 * 12
    cli_ok(project.cli("build"))
    (ledger,) = project.rows("select sum(actual_cost_usd) as usd, sum(candidates_tokens) as out "
                             "from `{ds}.gemini_batch_jobs`")
    assert ledger["out"] > 3 * 12  # more than one candidate's worth was written
    assert worst >= ledger["usd"] > 0
