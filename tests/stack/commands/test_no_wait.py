"""Submit now, collect later: `build --no-wait`, `wait`, `--json`, exit code 75.

What a scheduler sees: exit codes, one JSON document on stdout, the downstream models
built only once every answer is in, and no request sent twice however often it runs.
The emulator's `hold` fault keeps the jobs running until the test lets them go.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest

from helpers.dbt_projects import DbtTestProject

pytestmark = pytest.mark.slow


def _json(result) -> dict:
    """The JSON document a --json command wrote on stdout (its human lines are on stderr)."""
    return json.loads(result.stdout)


def _answers_built(project: DbtTestProject) -> bool:
    return "answers" in project.table_ids()


def test_no_wait_submits_and_exits_75_then_a_later_build_collects(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()
    first = project.cli("build", "--no-wait", "--json")
    assert first.exit_code == 75, first.output
    document = _json(first)
    assert document["exit_reason"] == "in_flight"
    [model] = document["models"]
    assert model["model"] == "questions" and model["submitted"] == 3
    assert len(model["in_flight_jobs"]) == 1
    assert [job["state"] for job in document["jobs"]] in (["QUEUED"], ["PENDING"])
    assert not _answers_built(project)  # downstream waits for the answers

    # Jobs still held: `wait` gives up at its timeout, saying they are in flight.
    waited = project.cli("wait", "--timeout", "1", "--poll-interval", "0.2", "--json")
    assert waited.exit_code == 75, waited.output
    assert _json(waited)["jobs"][0]["job_name"] == model["in_flight_jobs"][0]

    # A second --no-wait while they run sends nothing new.
    again = project.cli("build", "--no-wait", "--plain")
    assert again.exit_code == 75, again.output
    assert "1 job in flight" in again.output
    assert len(project.jobs()) == 1

    faults.put("/emulator/faults", json={}).raise_for_status()
    waited = project.cli("wait", "--poll-interval", "0.2", "--json")
    assert waited.exit_code == 0, waited.output
    assert _json(waited)["jobs"][0]["state"] == "SUCCEEDED"

    done = project.cli("build", "--no-wait", "--json")
    assert done.exit_code == 0, done.output
    assert _json(done)["models"][0]["in_flight_jobs"] == []
    assert _answers_built(project)
    assert len(project.jobs()) == 1  # nothing sent twice
    rows = project.rows("select batch_state from `{ds}.answers`")
    assert [row["batch_state"] for row in rows] == ["succeeded"] * 3


def test_repeated_no_wait_builds_converge_through_a_retry_round(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # The first job's rows all come back 429 (retried); the retry job is not throttled.
    faults.put("/emulator/faults", json={
        "hold": True, "row_failure_rate": 1.0, "row_failure_codes": [429],
    }).raise_for_status()
    first = project.cli("build", "--no-wait", "--plain")
    assert first.exit_code == 75, first.output
    faults.put("/emulator/faults", json={}).raise_for_status()

    # What cron does: run it again until it is done (the bound only catches a hang).
    codes = []
    for _ in range(300):
        result = project.cli("build", "--no-wait", "--plain")
        codes.append(result.exit_code)
        if result.exit_code != 75:
            break
        time.sleep(0.2)
    assert codes[-1] == 0, result.output
    jobs = project.jobs()
    assert len(jobs) == 2  # the first round and one retry round: nothing sent twice
    assert [job.succeeded + job.failed for job in jobs] == [3, 3]
    rows = project.rows("select batch_state, attempts from `{ds}.questions`")
    assert rows and all(row["batch_state"] == "succeeded" for row in rows)
    assert all(row["attempts"] == 2 for row in rows)
    assert _answers_built(project)
