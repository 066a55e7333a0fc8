"""The job ledger and the build locks, on the local BigQuery."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from google.cloud import bigquery

from gemini_batch.clients.bigquery import BigQuery, quote_table
from gemini_batch.errors import LockedError
from gemini_batch.state.ledger import Ledger, LedgerEntry, LockOwner

MODEL = "model.shop.product_summaries"


@pytest.fixture()
def ledger(bq: bigquery.Client) -> Ledger:
    """A ledger in a dataset of its own (created by ensure())."""
    ledger = Ledger(BigQuery(bq), bq.project, f"ledger_{uuid.uuid4().hex[:10]}")
    ledger.ensure()
    return ledger


def _entry(job_id: str, *, model: str = MODEL, state: str = "PENDING", **extra) -> LedgerEntry:
    return LedgerEntry(
        job_name=f"projects/local-project/locations/us-central1/batchPredictionJobs/{job_id}",
        dbt_model=model,
        model_relation="local-project.shop.product_summaries",
        shard_table=f"local-project.shop.product_summaries__shard_r1_{job_id}",
        output_table=f"local-project.shop.product_summaries__output_r1_{job_id}",
        gemini_model="gemini-2.5-flash",
        location="us-central1",
        state=state,
        request_count=100,
        invocation_id="inv-1",
        estimated_cost_usd=0.12,
        **extra,
    )


def test_ensure_is_idempotent_and_creates_both_tables(ledger: Ledger, bq: bigquery.Client) -> None:
    ledger.ensure()
    tables = {t.table_id for t in bq.list_tables(ledger.dataset)}
    assert tables == {"gemini_batch_jobs", "gemini_batch_locks"}
    columns = [f.name for f in bq.get_table(ledger.table).schema]
    assert columns[:3] == ["job_name", "job_id", "dbt_model"]
    assert "merged_at" in columns and "actual_cost_usd" in columns


def test_record_then_update_every_state_change(ledger: Ledger) -> None:
    entry = _entry("1001")
    before = datetime.now(UTC) - timedelta(seconds=5)
    ledger.record_submitted(entry)

    stored = ledger.get(entry.job_name)
    assert stored is not None
    assert stored.job_id == "1001"  # derived from the job name
    assert stored.state == "PENDING" and stored.request_count == 100
    assert stored.submitted_at >= before and stored.updated_at >= before
    assert stored.merged_at is None and stored.succeeded_count is None
    assert stored.estimated_cost_usd == pytest.approx(0.12)
    # Recording it again (a retried call) keeps one row.
    ledger.record_submitted(_entry("1001", state="RUNNING"))
    assert [e.state for e in ledger.entries()] == ["PENDING"]

    ended = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    ledger.update(entry.job_name, state="RUNNING")
    ledger.update(
        entry.job_name,
        state="SUCCEEDED",
        ended_at=ended,
        succeeded_count=98,
        failed_count=2,
        prompt_tokens=1200,
        candidates_tokens=4000,
        thoughts_tokens=None,
        total_tokens=5200,
        actual_cost_usd=0.0046,
    )
    stored = ledger.get(entry.job_name)
    assert stored.state == "SUCCEEDED"
    assert stored.ended_at == ended
    assert (stored.succeeded_count, stored.failed_count, stored.total_tokens) == (98, 2, 5200)
    assert stored.thoughts_tokens is None
    assert stored.actual_cost_usd == pytest.approx(0.0046)
    assert ledger.get("projects/p/locations/l/batchPredictionJobs/none") is None


def test_update_many_writes_several_jobs_at_once(ledger: Ledger) -> None:
    """The poll loop's batched write: one statement, each job its own values, NULLs too."""
    for n in range(5):
        ledger.record_submitted(_entry(str(n), error="old"))
    before = datetime.now(UTC) - timedelta(seconds=5)
    ended = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    ledger.update_many({
        **{_entry(str(n)).job_name: {"state": "RUNNING", "succeeded_count": n, "error": None}
           for n in range(4)},
        _entry("4").job_name: {"state": "FAILED", "ended_at": ended, "actual_cost_usd": 0.5},
    })
    stored = {entry.job_id: entry for entry in ledger.entries()}
    assert [(stored[str(n)].state, stored[str(n)].succeeded_count, stored[str(n)].error)
            for n in range(4)] == [("RUNNING", n, None) for n in range(4)]
    assert (stored["4"].state, stored["4"].ended_at, stored["4"].error) == ("FAILED", ended, "old")
    assert stored["4"].actual_cost_usd == pytest.approx(0.5)
    assert all(entry.updated_at >= before for entry in stored.values())
    assert all(entry.request_count == 100 for entry in stored.values())  # others untouched
    ledger.update_many({})  # nothing to write: no statement


def test_update_refuses_unknown_columns(ledger: Ledger) -> None:
    ledger.record_submitted(_entry("1002"))
    with pytest.raises(ValueError, match="statee"):
        ledger.update(_entry("1002").job_name, statee="RUNNING")
    with pytest.raises(ValueError, match="job_name"):
        ledger.update(_entry("1002").job_name, job_name="other")


def test_live_jobs_are_running_or_ended_but_not_merged(ledger: Ledger) -> None:
    ledger.record_submitted(_entry("1", state="RUNNING"))
    ledger.record_submitted(_entry("2", state="SUCCEEDED"))  # ended, output not merged
    ledger.record_submitted(_entry("3", state="SUCCEEDED"))
    ledger.update(_entry("3").job_name, merged_at=datetime.now(UTC))
    ledger.record_submitted(_entry("4", state="FAILED"))
    ledger.update(_entry("4").job_name, merged_at=datetime.now(UTC))
    ledger.record_submitted(_entry("5", state="QUEUED", model="model.shop.other"))

    assert [e.job_id for e in ledger.live_jobs(MODEL)] == ["1", "2"]
    assert {e.job_id for e in ledger.live_jobs()} == {"1", "2", "5"}
    assert all(e.is_live for e in ledger.live_jobs())
    assert not ledger.get(_entry("3").job_name).is_live


def test_entries_most_recent_first(ledger: Ledger) -> None:
    start = datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
    for n in range(4):
        ledger.record_submitted(_entry(str(n), submitted_at=start + timedelta(minutes=n)))
    ledger.record_submitted(_entry("x", model="model.shop.other", submitted_at=start))
    assert [e.job_id for e in ledger.entries(MODEL, limit=3)] == ["3", "2", "1"]
    assert len(ledger.entries()) == 5


def test_observed_output_tokens(ledger: Ledger) -> None:
    assert ledger.observed_output_tokens("gemini-2.5-flash") is None
    ledger.record_submitted(
        _entry(
            "a", state="SUCCEEDED", succeeded_count=10, candidates_tokens=3000, thoughts_tokens=1000
        )
    )
    ledger.record_submitted(
        _entry("b", state="SUCCEEDED", succeeded_count=30, candidates_tokens=4000)
    )
    ledger.record_submitted(_entry("c", state="RUNNING"))
    assert ledger.observed_output_tokens("gemini-2.5-flash") == pytest.approx(8000 / 40)
    assert ledger.observed_output_tokens("gemini-2.5-pro") is None


# -- locks ----------------------------------------------------------------------------


def test_second_build_is_refused_with_the_owner(ledger: Ledger) -> None:
    first = LockOwner(host="build-host-1", pid=4242)
    held = ledger.lock(MODEL, first)
    assert held.token == first.token and held.since is not None

    with pytest.raises(LockedError) as refused:
        ledger.lock(MODEL, LockOwner(host="build-host-2", pid=77))
    message = str(refused.value)
    assert MODEL in message
    assert "pid 4242 on build-host-1 since " in message

    # The holder can refresh; the lock is per model.
    assert ledger.lock(MODEL, first).since == held.since
    ledger.refresh_lock(MODEL, first)
    ledger.lock("model.shop.other", LockOwner(host="build-host-2", pid=77))

    # Only the holder can release it; then the next build gets it.
    ledger.unlock(MODEL, LockOwner(host="build-host-2", pid=77))
    with pytest.raises(LockedError):
        ledger.lock(MODEL, LockOwner(host="build-host-2", pid=77))
    ledger.unlock(MODEL, first)
    ledger.lock(MODEL, LockOwner(host="build-host-2", pid=77))


def test_builds_racing_for_a_lock_get_exactly_one_winner(ledger: Ledger) -> None:
    owners = [LockOwner(host=f"host-{n}", pid=1000 + n) for n in range(4)]

    def claim(owner: LockOwner) -> str:
        try:
            ledger.lock(MODEL, owner)
        except LockedError:
            return "refused"
        return "won"

    with ThreadPoolExecutor(max_workers=len(owners)) as pool:
        outcomes = list(pool.map(claim, owners))
    assert sorted(outcomes) == ["refused"] * 3 + ["won"]


def test_expired_lock_is_taken_over(ledger: Ledger, bq: bigquery.Client) -> None:
    gone = LockOwner(host="a-host-that-crashed", pid=1)
    ledger.lock(MODEL, gone, ttl=timedelta(seconds=1))
    time.sleep(1.5)
    mine = LockOwner(host="build-host-2", pid=2)
    assert ledger.lock(MODEL, mine).token == mine.token
    rows = list(bq.query(f"select host from {quote_table(ledger.locks_table)}").result())
    assert [row["host"] for row in rows] == ["build-host-2"]


def test_lock_of_a_killed_process_on_this_host_is_taken_over(ledger: Ledger) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    killed = LockOwner(host=LockOwner.current().host, pid=dead.pid)
    ledger.lock(MODEL, killed)
    assert ledger.lock(MODEL).host == LockOwner.current().host

    # A live process on this host is respected.
    alive = LockOwner.current()
    ledger.lock("model.shop.other", alive)
    with pytest.raises(LockedError, match=f"pid {alive.pid} on "):
        ledger.lock("model.shop.other", LockOwner(host=alive.host, pid=alive.pid))
