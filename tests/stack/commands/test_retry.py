"""`gemini-batch retry`: requests that ended failed are asked for again on purpose, by
the reason they failed, without touching any other answer; the next build sends just
them. Same local stack and project as test_build_e2e."""

from __future__ import annotations

import json

import httpx
import pytest

from helpers.build_project import PROMPTS
from helpers.dbt_projects import DbtTestProject
from helpers.dbt_projects import cli_ok as _ok

pytestmark = pytest.mark.slow


def _states(project: DbtTestProject) -> dict[int, tuple[str, str | None, int]]:
    rows = project.rows("select id, batch_state, last_error, attempts from `{ds}.questions`")
    return {r["id"]: (r["batch_state"], (r["last_error"] or "")[:15] or None, r["attempts"])
            for r in rows}


def test_retry_by_reason_makes_just_those_pending_and_the_next_build_sends_them(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # Three rows refused with a 400 (failed for good), then two blocked answers.
    faults.put("/emulator/faults", json={"row_failure_rate": 1.0,
                                         "row_failure_codes": [400]}).raise_for_status()
    _ok(project.cli("build"), code=3)
    project.seed([*PROMPTS, "Name a river.", "Name a mountain."])
    faults.put("/emulator/faults", json={"empty_answer_rate": 1.0,
                                         "empty_answer_kinds": ["blocked:SAFETY"]}
               ).raise_for_status()
    _ok(project.cli("build"), code=3)
    faults.put("/emulator/faults", json={}).raise_for_status()
    before = _states(project)
    assert {state for state, _, _ in before.values()} == {"failed"}
    refused = {i for i, (_, error, _) in before.items() if error.startswith("400")}
    blocked = {i for i, (_, error, _) in before.items() if error.startswith("BLOCKED")}
    assert (refused, blocked) == ({1, 2, 3}, {4, 5})
    assert len(project.jobs()) == 2

    # Declined at the prompt: nothing changes.
    output = _ok(project.cli("retry", "questions", "--reason", "400", input="n\n"), code=1)
    assert "questions: 3 failed requests with last_error starting '400', est. $" in output
    assert "Aborted" in output and _states(project) == before

    output = _ok(project.cli("retry", "questions", "--reason", "400", "--yes"))
    assert "questions: 3 requests pending again; the next `gemini-batch build` sends them" \
        in output
    after = _states(project)
    # The old answer and its attempts stay (paid for); only the state changed.
    assert {i: after[i] for i in refused} == {
        i: ("pending", before[i][1], before[i][2]) for i in refused}
    assert {i: after[i] for i in blocked} == {i: before[i] for i in blocked}
    plan = json.loads(project.cli("plan", "--json").stdout)
    assert plan["models"][0]["counts"]["pending"] == 3

    output = _ok(project.cli("build"), code=3)  # the two blocked rows stay failed
    jobs = project.jobs()
    assert len(jobs) == 3 and jobs[-1].succeeded + jobs[-1].failed == 3
    assert "3 requests in 1 job" in output
    final = _states(project)
    assert {i: final[i][0] for i in refused} == dict.fromkeys(refused, "succeeded")
    assert {i: final[i] for i in blocked} == {i: before[i] for i in blocked}

    # A second build sends nothing: the retried requests are answered, the others failed.
    _ok(project.cli("build"), code=3)
    assert len(project.jobs()) == 3

    # Every failed request (no --reason), as --json for scripts.
    result = project.cli("retry", "questions", "--yes", "--json")
    document = json.loads(result.stdout)
    assert (result.exit_code, document["exit_reason"], document["requests"]) == (0, "answered", 2)
    assert document["estimated_cost_usd"] > 0
    _ok(project.cli("build"))
    assert len(project.jobs()) == 4 and project.jobs()[-1].succeeded == 2
    assert {state for state, _, _ in _states(project).values()} == {"succeeded"}
    output = _ok(project.cli("retry", "questions", "--yes"))
    assert "questions: no failed request to ask again." in output


def test_a_retried_request_that_fails_again_is_judged_as_any_other(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    faults.put("/emulator/faults", json={"row_failure_rate": 1.0,
                                         "row_failure_codes": [400]}).raise_for_status()
    _ok(project.cli("build"), code=3)
    _ok(project.cli("retry", "questions", "--reason", "400 INVALID", "--yes"))
    # Still refused: failed for good again after one more job, not sent a third time.
    _ok(project.cli("build"), code=3)
    _ok(project.cli("build"), code=3)
    assert len(project.jobs()) == 2
    assert {state for state, _, _ in _states(project).values()} == {"failed"}
    assert {attempts for _, _, attempts in _states(project).values()} == {2}
