"""BigQuery refusing DML as concurrent updates, on the local stack: builds and locks
come out right all the same.

The local BigQuery's fault mode (``PUT /emulator/faults`` ``{"dml_conflict_rate": ...}``)
fails a seeded share of MERGE, UPDATE and DELETE statements with BigQuery's "Could not
serialize access to table ... due to concurrent update", before they change anything.
"""

from __future__ import annotations

import textwrap
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from dbt.cli.main import dbtRunner
from google.cloud import bigquery

from conftest import REPO_ROOT
from gemini_batch.bq import BigQuery
from gemini_batch.cli import main
from gemini_batch.errors import LockedError
from gemini_batch.jobs import VertexJobs
from gemini_batch.ledger import Ledger, LockOwner
from gemini_batch.local.bigquery import FAULTS_PATH
from gemini_batch.local.stack import DEFAULT_LOCATION, StackState

pytestmark = pytest.mark.slow

MODELS = ("questions", "summaries", "translations")
PROMPTS = [f"Question number {n}." for n in range(12)]


def _fault_settings(endpoint: str) -> Iterator[httpx.Client]:
    """An emulator's ``/emulator/faults`` (both have one); faults off after the test."""
    with httpx.Client(base_url=endpoint) as client:
        yield client
        client.put(FAULTS_PATH, json={}).raise_for_status()


@pytest.fixture()
def dml_faults(local_stack: StackState) -> Iterator[httpx.Client]:
    yield from _fault_settings(local_stack.bigquery_endpoint)


@pytest.fixture()
def vertex_faults(local_stack: StackState) -> Iterator[httpx.Client]:
    yield from _fault_settings(local_stack.vertex_endpoint)


@dataclass
class Project:
    """A dbt project with three batch models at the same depth, in its own dataset."""

    path: Path
    dataset: str
    stack: StackState
    bq: bigquery.Client

    def write(self, relative: str, text: str) -> None:
        (self.path / relative).parent.mkdir(parents=True, exist_ok=True)
        (self.path / relative).write_text(textwrap.dedent(text))

    def args(self) -> list[str]:
        return ["--project-dir", str(self.path), "--profiles-dir", str(self.path)]

    def rows(self, sql: str) -> list[dict[str, Any]]:
        sql = sql.replace("{ds}", f"{self.stack.project}.{self.dataset}")
        return [dict(row) for row in self.bq.query(sql).result()]


@pytest.fixture()
def project(tmp_path: Path, stack_env: dict[str, str], local_stack: StackState,
            bq: bigquery.Client, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    dataset = f"dml_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    project = Project(path=tmp_path / "project", dataset=dataset, stack=local_stack, bq=bq)
    project.write("dbt_project.yml", """\
        name: dml
        version: "1.0"
        config-version: 2
        profile: dml
        seeds:
          dml:
            +quote_columns: false
        """)
    project.write("packages.yml", f"packages:\n  - local: {REPO_ROOT}\n")
    project.write("profiles.yml", local_stack.dbt_profile("dml", dataset))
    project.write("seeds/prompts.csv", "id,prompt\n" + "".join(
        f"{n},{prompt}\n" for n, prompt in enumerate(PROMPTS, start=1)))
    for name in MODELS:  # three jobs each (shards of 4), all fed by the seed
        project.write(f"models/{name}.sql", f"""\
            {{{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash',
                        shard_size=4, max_concurrent_jobs=3) }}}}
            select id, {{{{ gemini_batch.request(prompt="concat('{name}: ', prompt)") }}}}
              as request
            from {{{{ ref('prompts') }}}}
            """)
    # Vertex AI needs a regional dataset (bqemulator puts one dbt creates in US).
    regional = bigquery.Dataset(f"{local_stack.project}.{dataset}")
    regional.location = DEFAULT_LOCATION
    bq.create_dataset(regional)
    deps = dbtRunner().invoke(["deps", *project.args()])
    assert deps.success, deps.exception
    yield project
    bq.delete_dataset(f"{local_stack.project}.{dataset}", delete_contents=True,
                      not_found_ok=True)


def test_a_build_of_three_models_with_a_fifth_of_dml_refused_merges_every_answer_once(
    project: Project, dml_faults: httpx.Client, vertex_faults: httpx.Client,
) -> None:
    # Queued a while, so the three models' jobs are in flight together.
    vertex_faults.put(FAULTS_PATH, json={"queue_delay": 6}).raise_for_status()
    dml_faults.put(FAULTS_PATH, json={"dml_conflict_rate": 0.2, "seed": 11}
                   ).raise_for_status()

    result = CliRunner().invoke(main, ["build", *project.args(), "--poll-interval", "0.5"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"

    faults = dml_faults.get(FAULTS_PATH).json()
    assert faults["dml_conflicts"] > 0, f"no DML statement was refused: {faults}"

    # Every answer merged exactly once, by one job, at the first attempt.
    for name in MODELS:
        (responses,) = project.rows(f"""
            select count(*) as rows, count(distinct request_id) as requests,
                   countif(status = '') as answered, min(attempts) as min_attempts,
                   max(attempts) as max_attempts, count(distinct job_name) as jobs
            from `{{ds}}.{name}__responses`""")
        assert responses == {"rows": 12, "requests": 12, "answered": 12,
                             "min_attempts": 1, "max_attempts": 1, "jobs": 3}, name

    # The ledger has one row per job the service was given, every one ended and merged.
    vertex = VertexJobs(project=project.stack.project, location=DEFAULT_LOCATION)
    prefix = f"{project.stack.project}.{project.dataset}."
    jobs = [job for job in vertex.list(limit=1000) if (job.input_table or "").startswith(prefix)]
    ledger = project.rows("select job_name, dbt_model, state, request_count, succeeded_count, "
                          "merged_at from `{ds}.gemini_batch_jobs`")
    assert sorted(row["job_name"] for row in ledger) == sorted(job.name for job in jobs)
    assert len(ledger) == 9
    assert {(row["state"], row["request_count"], row["succeeded_count"]) for row in ledger} == {
        ("SUCCEEDED", 4, 4)}
    assert all(row["merged_at"] is not None for row in ledger)
    assert {row["dbt_model"].rsplit(".", 1)[-1] for row in ledger} == set(MODELS)
    # The models' jobs overlapped: the statements came from all three at once.
    by_model = {name: [job for job in jobs if job.labels["dbt_model"] == name]
                for name in MODELS}
    assert max(min(j.create_time for j in js) for js in by_model.values()) < min(
        max(j.end_time for j in js) for js in by_model.values())
    # Released: nothing holds the models any more.
    assert project.rows("select dbt_model from `{ds}.gemini_batch_locks`") == []


def test_two_builds_claiming_a_lock_under_refused_dml_get_one_winner_each_time(
    bq: bigquery.Client, dml_faults: httpx.Client,
) -> None:
    ledger = Ledger(BigQuery(bq), bq.project, f"dml_locks_{uuid.uuid4().hex[:10]}")
    ledger.ensure()
    dml_faults.put(FAULTS_PATH, json={"dml_conflict_rate": 0.5, "seed": 5}
                   ).raise_for_status()
    try:
        for round_number in range(4):
            model = f"model.shop.summaries_{round_number}"
            owners = [LockOwner(host=f"build-host-{n}", pid=1000 + n) for n in range(2)]
            start = threading.Barrier(len(owners))
            outcomes: dict[str, str] = {}

            def claim(owner: LockOwner, model: str = model,
                      outcomes: dict[str, str] = outcomes,
                      start: threading.Barrier = start) -> None:
                start.wait()
                try:
                    ledger.lock(model, owner)
                    outcomes[owner.host] = "won"
                except LockedError as refused:
                    outcomes[owner.host] = str(refused)

            threads = [threading.Thread(target=claim, args=(owner,)) for owner in owners]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            winners = [host for host, outcome in outcomes.items() if outcome == "won"]
            assert len(winners) == 1, outcomes
            (loser,) = set(outcomes) - set(winners)
            winner = next(owner for owner in owners if owner.host == winners[0])
            assert f"pid {winner.pid} on {winner.host}" in outcomes[loser]
            held = list(bq.query(
                f"select host from `{ledger.locks_table}` where dbt_model = @model",
                job_config=bigquery.QueryJobConfig(query_parameters=[
                    bigquery.ScalarQueryParameter("model", "STRING", model)]),
            ).result())
            assert [row["host"] for row in held] == [winner.host]
        assert dml_faults.get(FAULTS_PATH).json()["dml_conflicts"] > 0
    finally:
        bq.delete_dataset(f"{bq.project}.{ledger.dataset}", delete_contents=True,
                          not_found_ok=True)
