"""GeminiBatchBuildOperator in real Airflow 3: the example DAG, run with ``dag.test()``.

What a user of Airflow sees: the task deferred (a trigger row in Airflow's database,
no worker slot) while the Vertex AI jobs are held by the emulator's ``hold`` fault, the
task and its downstream task done once the jobs end, the build's summary in XCom, the
dbt models built, and no request sent twice, even when the worker is killed.

One story, to build the project as few times as the assertions need: a worker killed
while its task is deferred, the task run again resuming the job, a retry round that
makes it defer a second time, then the downstream model.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.dbt_projects import DbtTestProject, environment

pytestmark = pytest.mark.slow

DAG_ID = "gemini_batch_recipes"
TRIGGER = "gemini_batch.airflow.triggers.GeminiBatchJobTrigger"
RUN_DAG = Path(__file__).with_name("run_dag.py")


def dag_environment(project: DbtTestProject) -> dict[str, str]:
    """The stack's variables, and the example DAG pointed at the test's project."""
    return {
        **project.environment(),
        "RECIPES_PROJECT_DIR": str(project.path),
        "RECIPES_PROFILES_DIR": str(project.path),
        "RECIPES_TARGET": "local",
        "RECIPES_POLL_SECONDS": "0.2",
    }


def deferrals() -> int:
    """Deferrals to our trigger so far: Airflow stores a trigger row for each."""
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return session.scalar(
            select(func.count()).select_from(Trigger).where(Trigger.classpath == TRIGGER))


def run_dag(project: DbtTestProject, logical_date: datetime) -> Any:
    """``dag.test()`` of the example DAG, in this process; the DagRun."""
    from airflow.dag_processing.dagbag import DagBag

    with environment(dag_environment(project)):
        bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        assert not bag.import_errors, bag.import_errors
        return bag.get_dag(DAG_ID).test(logical_date=logical_date, run_after=logical_date)


def task_outcomes(dag_run: Any) -> tuple[dict[str, str], dict[str, Any]]:
    """Each task's state, and what each returned (XCom)."""
    from airflow.models import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter_by(dag_id=DAG_ID, run_id=dag_run.run_id)
        states = {ti.task_id: str(ti.state) for ti in tis}
        rows = session.query(XComModel).filter_by(
            dag_id=DAG_ID, run_id=dag_run.run_id, key="return_value")
        values = {row.task_id: XComModel.deserialize_value(row) for row in rows}
    return states, values


class Watcher:
    """Does ``then()`` in a thread once the task has deferred ``count`` times in all,
    while the DAG runs in the main thread (dag.test() must: Airflow's task runner sets
    signal handlers). Gives up, failing the test, when the run ends first."""

    def __init__(self) -> None:
        self.run_over = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watcher")

    def when_deferred(self, count: int, then: Callable[[], Any]) -> Future[Any]:
        return self._pool.submit(self._wait, count, then)

    def _wait(self, count: int, then: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + 600  # only catches a hang
        while deferrals() < count:
            assert not self.run_over.is_set(), f"the DAG run ended before deferral {count}"
            assert time.monotonic() < deadline, f"no deferral {count} within 600 s"
            time.sleep(0.1)
        return then()

    def close(self) -> None:
        self.run_over.set()
        self._pool.shutdown(wait=True)


@pytest.fixture()
def watcher() -> Any:
    watching = Watcher()
    yield watching
    watching.close()


def _job_states(project: DbtTestProject) -> list[str]:
    return [job.state for job in project.jobs()]


def _check_built(project: DbtTestProject, dag_run: Any, deferred: int) -> dict[str, Any]:
    """The run succeeded, both tasks did, and the answers are in; the build's summary."""
    states, values = task_outcomes(dag_run)
    assert str(dag_run.state) == "success", states
    assert states == {"dbt_build": "success", "report": "success"}
    summary = values["dbt_build"]
    assert summary["exit_reason"] == "answered" and summary["deferrals"] == deferred
    assert f"deferred {deferred} time(s)" in values["report"]
    rows = project.rows("select batch_state, answer from `{ds}.answers` order by id")
    assert [row["batch_state"] for row in rows] == ["succeeded"] * 3
    assert all(row["answer"] for row in rows)
    return summary


def test_a_deferred_task_outlives_its_worker_and_defers_again_for_a_retry_round(
    project: DbtTestProject, faults: httpx.Client, airflow_dags: Path, watcher: Watcher
) -> None:
    # The first job's rows all come back 429 (retried); the retry job is not throttled.
    faults.put("/emulator/faults", json={
        "hold": True, "row_failure_rate": 1.0, "row_failure_codes": [429],
    }).raise_for_status()
    logical_date = datetime(2026, 1, 2, tzinfo=UTC)
    before = deferrals()

    # A worker of its own (a process running the DAG): its task submits the job and
    # defers while the emulator holds it; then the worker is killed.
    worker = subprocess.Popen(
        [sys.executable, str(RUN_DAG), DAG_ID, logical_date.isoformat()],
        env={**os.environ, **dag_environment(project)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 600
        while deferrals() < before + 1:
            assert worker.poll() is None, f"the worker ended early:\n{worker.communicate()[0]}"
            assert time.monotonic() < deadline, "the worker's task never deferred"
            time.sleep(0.1)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
    [job] = project.jobs()
    assert job.state in ("QUEUED", "PENDING")
    assert "answers" not in project.table_ids()  # downstream waits for the answers

    # Run again (dag.test clears the task first, as a retry or a clear does): the task
    # resumes the held job from the ledger, submitting nothing, and defers on it.
    def release_the_first_job_only() -> list[str]:
        names = [j.name for j in project.jobs()]
        # The held job goes on; `hold` stays on for every other job, so the retry job
        # the task submits after this deferral is held whenever it comes.
        released = [name.rsplit("/", 1)[-1] for name in names]
        faults.put("/emulator/faults", json={"hold": True, "released": released}
                   ).raise_for_status()
        return names

    def release_the_retry_job() -> list[str]:
        states = _job_states(project)
        faults.put("/emulator/faults", json={}).raise_for_status()
        return states

    first = watcher.when_deferred(before + 2, release_the_first_job_only)
    second = watcher.when_deferred(before + 3, release_the_retry_job)
    dag_run = run_dag(project, logical_date)
    watcher.close()

    assert first.result() == [job.name]  # deferred on the killed worker's job
    # Every row of it failed (429): a retry round, and a second deferral on it.
    assert second.result()[0] == "FAILED" and second.result()[1] in ("QUEUED", "PENDING")
    summary = _check_built(project, dag_run, deferred=2)
    assert deferrals() - before == 3
    # The last step's counts: it collected the retry job the step before submitted.
    [model] = summary["models"]
    assert (model["model"], model["resumed"], model["succeeded"]) == ("questions", 3, 3)
    jobs = project.jobs()
    assert jobs[0].name == job.name and len(jobs) == 2  # nothing sent twice
    assert [j.succeeded + j.failed for j in jobs] == [3, 3]
    rows = project.rows("select attempts from `{ds}.questions`")
    assert [row["attempts"] for row in rows] == [2, 2, 2]
