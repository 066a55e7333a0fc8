"""BigQuery refusing DML as concurrent updates, on the local stack: builds and locks
come out right all the same.

The local BigQuery's fault mode (``PUT /emulator/faults`` ``{"dml_conflict_rate": ...}``)
fails a seeded share of MERGE, UPDATE and DELETE statements with BigQuery's "Could not
serialize access to table ... due to concurrent update", before they change anything.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import httpx
import pytest
from google.cloud import bigquery

from gemini_batch.clients.bigquery import BigQuery
from gemini_batch.errors import LockedError
from gemini_batch.local.bigquery import FAULTS_PATH
from gemini_batch.state.ledger import Ledger, LockOwner
from helpers.build_project import sibling_models_files
from helpers.dbt_projects import DbtProjects, DbtTestProject

pytestmark = pytest.mark.slow

MODELS = ("questions", "summaries", "translations")
PROMPTS = [f"Question number {n}." for n in range(12)]


@pytest.fixture()
def project(dbt_projects: DbtProjects) -> Iterator[DbtTestProject]:
    """Three batch models at the same depth (three jobs each: shards of 4), all fed by
    one seed, in a regional dataset of their own."""
    files = sibling_models_files(MODELS, PROMPTS, ", shard_size=4, max_concurrent_jobs=3")
    project = dbt_projects.create("e2e", files, regional=True)
    yield project
    project.drop()


def test_a_build_of_three_models_with_a_fifth_of_dml_refused_merges_every_answer_once(
    project: DbtTestProject, bigquery_faults: httpx.Client, faults: httpx.Client,
) -> None:
    # Held until all nine jobs exist, so the three models' jobs are in flight together.
    faults.put(FAULTS_PATH, json={"hold": True}).raise_for_status()
    bigquery_faults.put(FAULTS_PATH, json={"dml_conflict_rate": 0.2, "seed": 11}
                   ).raise_for_status()

    build = project.cli_in_background("build", "--poll-interval", "0.5")
    project.wait_for_jobs(build, 9)
    faults.put(FAULTS_PATH, json={}).raise_for_status()
    result = build.result(timeout=900)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"

    refused = bigquery_faults.get(FAULTS_PATH).json()
    assert refused["dml_conflicts"] > 0, f"no DML statement was refused: {refused}"

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
    jobs = project.jobs()
    ledger = project.rows("select job_name, dbt_model, state, request_count, succeeded_count, "
                          "merged_at from `{ds}.gemini_batch_jobs`")
    assert sorted(row["job_name"] for row in ledger) == sorted(job.name for job in jobs)
    assert len(ledger) == 9
    assert {(row["state"], row["request_count"], row["succeeded_count"]) for row in ledger} == {
        ("SUCCEEDED", 4, 4)}
    assert all(row["merged_at"] is not None for row in ledger)
    assert {row["dbt_model"].rsplit(".", 1)[-1] for row in ledger} == set(MODELS)
    # The models' jobs were all in flight together (held until the ninth was made): the
    # statements came from all three at once.
    assert {job.labels["dbt_model"] for job in jobs} == set(MODELS)
    # Released: nothing holds the models any more.
    assert project.rows("select dbt_model from `{ds}.gemini_batch_locks`") == []


def test_two_builds_claiming_a_lock_under_refused_dml_get_one_winner_each_time(
    bq: bigquery.Client, bigquery_faults: httpx.Client,
) -> None:
    ledger = Ledger(BigQuery(bq), bq.project, f"dml_locks_{uuid.uuid4().hex[:10]}")
    ledger.ensure()
    bigquery_faults.put(FAULTS_PATH, json={"dml_conflict_rate": 0.5, "seed": 5}
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
        assert bigquery_faults.get(FAULTS_PATH).json()["dml_conflicts"] > 0
    finally:
        bq.delete_dataset(f"{bq.project}.{ledger.dataset}", delete_contents=True,
                          not_found_ok=True)


def test_bigquery_503s_and_429_rows_together_merge_every_answer_once(
    project: DbtTestProject, bigquery_faults: httpx.Client, faults: httpx.Client,
) -> None:
    # A tenth of every BigQuery API call answered 503 backendError (dbt's, the operator's
    # and the Vertex emulator's reads and writes of the job tables) and a third of the
    # rows shed by Vertex AI with 429. (Refused DML: the test above; dbt's own MERGE into
    # <model>__checks is not retried by dbt, and never races on BigQuery.)
    # Retries enough that no row runs out of them (a row shed 11 times: 0.3^11).
    for name in MODELS:
        model = project.path / "models" / f"{name}.sql"
        model.write_text(model.read_text().replace(
            "max_concurrent_jobs=3", "max_concurrent_jobs=3, max_retries=10"))
    bigquery_faults.put(FAULTS_PATH, json={"error_rate": 0.1, "seed": 5}).raise_for_status()
    faults.put(FAULTS_PATH, json={"row_failure_rate": 0.3, "row_failure_codes": [429]}
               ).raise_for_status()
    result = project.cli("build", "--poll-interval", "0.5")
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    refused = bigquery_faults.get(FAULTS_PATH).json()
    assert refused["api_errors"] > 0, refused
    bigquery_faults.put(FAULTS_PATH, json={}).raise_for_status()

    ledger = project.rows("select dbt_model, request_count, succeeded_count, merged_at "
                          "from `{ds}.gemini_batch_jobs`")
    assert all(row["merged_at"] is not None for row in ledger)
    for name in MODELS:
        (responses,) = project.rows(f"""
            select count(*) as rows, count(distinct request_id) as requests,
                   countif(answered) as answered
            from `{{ds}}.{name}__responses`""")
        assert responses == {"rows": 12, "requests": 12, "answered": 12}, name
        # Each answer merged once: the answers the ledger counts are the 12 of the model.
        mine = [row for row in ledger if row["dbt_model"].endswith(f".{name}")]
        assert sum(row["succeeded_count"] for row in mine) == 12, (name, mine)
    assert project.rows("select dbt_model from `{ds}.gemini_batch_locks`") == []
