"""Chaos: `gemini-batch build` killed with SIGKILL at random moments while Vertex AI sheds
rows with 429 and BigQuery answers 503 or drops connections: once a last build has run,
every answer is merged exactly once, no request was paid for twice, none was in two
jobs at once, and no job is left behind.

The moments are drawn from a seed (printed; ``GEMINI_BATCH_CHAOS_SEED`` replays one, and
``GEMINI_BATCH_CHAOS_KILLS`` sets how many builds are killed). Whenever a kill lands (in
dbt, between a job's create and its ledger row, in a merge, or after the build ended),
the assertions are the same: they read what the service did (its jobs, their input and
output tables) and what the build left (responses, ledger, locks), never a timing.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator

import httpx
import pytest
from google.api_core.exceptions import NotFound

from gemini_batch.clients.vertex import JobStatus
from gemini_batch.local.bigquery import FAULTS_PATH
from helpers.build_project import sibling_models_files
from helpers.dbt_projects import DbtProjects, DbtTestProject

pytestmark = pytest.mark.slow

MODELS = ("questions", "summaries")
PROMPTS = [f"Question number {n}." for n in range(10)]
KILLS = int(os.environ.get("GEMINI_BATCH_CHAOS_KILLS", "3"))
# Where a kill lands, drawn from the seed: a quarter in the dbt stage (up to DBT_SECONDS
# after the build started), the rest once the build's jobs began (up to JOBS_SECONDS
# after its first job line: a job submitted, resumed or adopted): creates, ledger rows,
# polls and merges. A build that ended first is simply not killed.
DBT_SHARE, DBT_SECONDS, JOBS_SECONDS = 0.25, 12.0, 8.0
# The first line of a build's jobs (model_run.py's messages).
JOB_LINE = re.compile(r": (job \S+ submitted|resuming \d+ jobs?|adopting job)")


@pytest.fixture()
def project(dbt_projects: DbtProjects) -> Iterator[DbtTestProject]:
    """Two batch models fed by one seed, three jobs a round each (shards of 4), retries
    enough that no row runs out of them under a third of rows shed (0.3^11), and the
    jobs' input and output tables kept: the test reads what each job was sent and
    answered."""
    files = sibling_models_files(MODELS, PROMPTS, ", shard_size=4, max_concurrent_jobs=3, "
                                 "max_retries=10, keep_job_tables=true")
    project = dbt_projects.create("e2e", files, regional=True)
    yield project
    project.drop()


class Run:
    """One `gemini-batch build` in a process group of its own, its output collected."""

    def __init__(self, project: DbtTestProject) -> None:
        self.process = project.spawn("build", new_session=True)
        self.started = time.monotonic()
        self.lines: list[str] = []
        self.jobs_began = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if JOB_LINE.search(line):
                self.jobs_began.set()
        self.jobs_began.set()  # ended: nothing more to wait for

    def kill(self, in_dbt: bool, seconds: float) -> str:
        """SIGKILL the whole group ``seconds`` after the start (``in_dbt``) or after its
        first job line, unless it ended first; what happened, for the log."""
        if in_dbt:
            moment, after = self.started + seconds, "its start"
        else:
            self.jobs_began.wait(timeout=600)
            moment, after = time.monotonic() + seconds, "its first job line"
        try:
            self.process.wait(timeout=max(0.0, moment - time.monotonic()))
            outcome = f"ended (exit {self.process.returncode}) before its kill"
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)
            outcome = "killed"
        self._reader.join(timeout=60)
        return f"{outcome} ({seconds:.1f} s after {after})"

    def finish(self, timeout: float) -> int:
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=60)
            code = -1
        self._reader.join(timeout=60)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def test_builds_killed_at_random_under_429s_503s_and_dropped_connections_pay_each_answer_once(
    project: DbtTestProject, bigquery_faults: httpx.Client, faults: httpx.Client,
) -> None:
    project.extra_env["PYTHONUNBUFFERED"] = "1"  # each line as it is printed
    seed = int(os.environ.get("GEMINI_BATCH_CHAOS_SEED") or random.randrange(10**6))
    draws = random.Random(seed)
    log = [f"chaos seed {seed} (GEMINI_BATCH_CHAOS_SEED={seed} replays the kill moments)"]
    bigquery_faults.put(FAULTS_PATH, json={"error_rate": 0.02, "drop_rate": 0.02,
                                           "seed": seed}).raise_for_status()
    faults.put(FAULTS_PATH, json={"row_failure_rate": 0.3, "row_failure_codes": [429]}
               ).raise_for_status()
    outputs: list[str] = []
    run: Run | None = None
    try:
        for number in range(KILLS):
            run = Run(project)
            in_dbt = draws.random() < DBT_SHARE
            seconds = draws.uniform(1.0, DBT_SECONDS) if in_dbt else draws.uniform(0.0,
                                                                                   JOBS_SECONDS)
            log.append(f"build {number + 1}: {run.kill(in_dbt, seconds)}")
            outputs.append(run.output)
        run = Run(project)
        code = run.finish(timeout=600)
        outputs.append(run.output)
        log.append(f"last build: exit {code}")
        assert code == 0, "the last build failed"
        bigquery = bigquery_faults.get(FAULTS_PATH).json()
        log.append(f"BigQuery: {bigquery['api_errors']} calls answered 503, "
                   f"{bigquery['dropped']} dropped")
        bigquery_faults.put(FAULTS_PATH, json={}).raise_for_status()
        _check_every_answer_paid_and_merged_once(project)
    except BaseException:
        if run is not None and run.process.poll() is None:  # interrupted: end it too
            run.finish(timeout=0)
        print("\n".join(log))
        for number, output in enumerate(outputs, start=1):
            print(f"--- build {number} ---\n{output}")
        raise
    print("\n".join(log))


def _check_every_answer_paid_and_merged_once(project: DbtTestProject) -> None:
    jobs = project.jobs()  # what Vertex AI was given: every job paid for
    ledger = {row["job_name"]: row for row in project.rows(
        "select job_name, dbt_model, state, merged_at from `{ds}.gemini_batch_jobs`")}
    # No job left behind: each one the service has is in the ledger, ended and merged,
    # and no build holds a model.
    assert sorted(ledger) == sorted(job.name for job in jobs), "jobs the ledger does not know"
    assert all(job.terminal for job in jobs), [job.name for job in jobs if not job.terminal]
    assert [name for name, row in ledger.items() if row["merged_at"] is None] == []
    assert project.rows("select dbt_model from `{ds}.gemini_batch_locks`") == []

    for name in MODELS:
        mine = sorted((job for job in jobs if job.labels.get("dbt_model") == name),
                      key=lambda job: job.create_time)
        assert mine, f"{name}: no job"
        sent, answered_by = _what_each_job_did(project, mine)
        # Every request answered by exactly one job: paid once (the service's own count
        # of answered rows agrees).
        assert {request: len(by) for request, by in answered_by.items()} == {
            request: 1 for request in sent}, name
        assert len(sent) == len(PROMPTS), name
        assert sum(job.succeeded for job in mine) == len(PROMPTS), name
        # A request sent again went in a job created after the one before had ended
        # without answering it: never in two jobs at once.
        for request, in_jobs in sent.items():
            for earlier, later in zip(in_jobs, in_jobs[1:], strict=False):
                assert earlier.end_time is not None and later.create_time is not None
                assert earlier.end_time <= later.create_time, (name, request, earlier.name,
                                                              later.name)
                assert earlier.name not in answered_by[request], (name, request)
        # Each answer merged once, from the job that answered it.
        merged = project.rows(f"""
            select request_id, job_name, answered from `{{ds}}.{name}__responses`""")
        assert len(merged) == len(PROMPTS), name
        assert {row["request_id"]: (row["job_name"], row["answered"]) for row in merged} == {
            request: (by[0], True) for request, by in answered_by.items()}, name


def _what_each_job_did(project: DbtTestProject, jobs: list[JobStatus]
                       ) -> tuple[dict[str, list[JobStatus]], dict[str, list[str]]]:
    """For each request of these jobs (oldest first): the jobs it was sent in, and the
    names of the jobs that answered it (status '' in the job's output table)."""
    sent: dict[str, list[JobStatus]] = defaultdict(list)
    answered_by: dict[str, list[str]] = defaultdict(list)
    for job in jobs:
        assert job.input_table and job.output_table, job
        for row in project.rows(f"select request_id from `{job.input_table}`"):
            sent[row["request_id"]].append(job)
        try:
            output = project.rows(f"select request_id, status from `{job.output_table}`")
        except NotFound:  # a job that failed before it wrote anything
            assert job.succeeded == 0, job
            continue
        for row in output:
            if row["status"] == "":
                answered_by[row["request_id"]].append(job.name)
    return sent, answered_by
