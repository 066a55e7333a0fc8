"""Concurrent DML without a server: which BigQuery errors are sent again, how often and
for how long; the ledger's batched writes; the local BigQuery's fault mode."""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from google.api_core import exceptions
from google.cloud import bigquery

from gemini_batch.clients.bigquery import (
    RETRY_WAIT_MAX,
    RETRY_WAIT_MIN,
    BigQuery,
    bigquery_client,
    is_concurrent_update,
    retryable_error,
    statement_retry,
)
from gemini_batch.errors import LockedError, WarehouseError
from gemini_batch.local.bigquery import (
    BigQueryFaults,
    DmlConflicts,
    DmlQueues,
    concurrent_update_message,
    mutated_table,
)
from gemini_batch.state.ledger import FLUSH_SECONDS, Ledger, LedgerUpdates, LockOwner

CONFLICT = ("Could not serialize access to table my-project:shop.gemini_batch_jobs due to "
            "concurrent update")


def job_error(reason: str, message: str) -> exceptions.GoogleAPICallError:
    """The exception google-cloud-bigquery raises for a query job that failed so."""
    client = bigquery_client("p", api_endpoint="http://127.0.0.1:9")  # never called
    error = {"reason": reason, "message": message}
    job = bigquery.QueryJob.from_api_repr({
        "jobReference": {"projectId": "p", "jobId": "job-1", "location": "US"},
        "configuration": {"query": {"query": "MERGE ..."}},
        "status": {"state": "DONE", "errorResult": error, "errors": [error]},
    }, client)
    found = job.exception(timeout=1)
    assert isinstance(found, exceptions.GoogleAPICallError)
    return found


def http_error(code: int, reason: str, message: str) -> exceptions.GoogleAPICallError:
    """The exception for an API call BigQuery answered with an error status."""
    return exceptions.from_http_status(code, message, errors=[{"reason": reason,
                                                               "message": message}])


# -- which errors are sent again -------------------------------------------------------


def test_a_concurrent_update_is_a_400_job_error_and_is_retried() -> None:
    error = job_error("invalidQuery", CONFLICT)
    assert isinstance(error, exceptions.BadRequest)
    assert is_concurrent_update(error) and retryable_error(error)


@pytest.mark.parametrize("error", [
    job_error("rateLimitExceeded", "Exceeded rate limits: too many table update operations "
                                   "for this table"),
    job_error("jobRateLimitExceeded", "Exceeded rate limits: too many concurrent queries"),
    http_error(403, "rateLimitExceeded", "Exceeded rate limits: too many api requests"),
    http_error(403, "quotaExceeded", "Exceeded rate limits: too many table update "
                                     "operations for this table"),
    http_error(429, "rateLimitExceeded", "Too many requests"),
    job_error("resourcesExceeded", "Resources exceeded during query execution: Too many DML "
                                   "statements outstanding against table p:d.t, limit is 20."),
    job_error("jobInternalError", "The job encountered an internal error during execution"),
    job_error("backendError", "Backend error. Job aborted."),
], ids=["table-updates", "job-rate", "api-rate", "quota-rate-words", "429", "dml-queue",
        "job-internal", "backend"])
def test_rate_limits_and_jobs_failed_inside_bigquery_are_retried(
    error: exceptions.GoogleAPICallError,
) -> None:
    assert retryable_error(error)
    assert not is_concurrent_update(error)


@pytest.mark.parametrize("error", [
    job_error("invalidQuery", "Syntax error: Unexpected keyword MERGE at [1:1]"),
    job_error("invalidQuery", "UPDATE/MERGE must match at most one source row for each "
                              "target row"),
    job_error("notFound", "Not found: Table p:d.t was not found in location US"),
    http_error(403, "quotaExceeded", "Quota exceeded: Your project exceeded quota for free "
                                     "query bytes scanned"),
    http_error(403, "accessDenied", "Access Denied: Table p:d.t: User does not have "
                                    "permission to query table p:d.t"),
    job_error("timeout", "Job timed out after 2 min"),
    job_error("invalid", "Could not serialize the answer"),  # the words, not the message
], ids=["syntax", "merge-rows", "not-found", "daily-quota", "denied", "timeout", "lookalike"])
def test_other_errors_are_not_retried(error: exceptions.GoogleAPICallError) -> None:
    assert not retryable_error(error)


def test_errors_that_are_not_from_google_are_not_retried() -> None:
    assert not retryable_error(concurrent.futures.TimeoutError())
    assert not retryable_error(ValueError(CONFLICT))


# -- how a statement is sent again -----------------------------------------------------


@dataclass
class FakeJob:
    outcome: Any
    job_id: str
    cancelled: bool = False
    waited: list[float] = field(default_factory=list)

    def result(self, *, timeout: float, retry: Any, job_retry: Any) -> Iterator[dict]:
        assert job_retry is None, "the client's own job retry would stack on ours"
        self.waited.append(timeout)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return iter(self.outcome)

    def cancel(self, *, timeout: float) -> bool:
        self.cancelled = True
        return True


class FakeClient:
    """Answers each query with the next outcome: rows, or an exception to raise."""

    def __init__(self, *outcomes: Any) -> None:
        self.outcomes = list(outcomes)
        self.jobs: list[FakeJob] = []
        self.configs: list[bigquery.QueryJobConfig] = []

    def query(self, sql: str, *, job_config: bigquery.QueryJobConfig, timeout: float,
              retry: Any, job_retry: Any) -> FakeJob:
        assert job_retry is None and timeout > 0
        self.configs.append(job_config)
        self.jobs.append(FakeJob(self.outcomes.pop(0), job_id=f"job-{len(self.jobs)}"))
        return self.jobs[-1]


def fast_bq(client: FakeClient, waits: list[float], timeout: float = 300.0) -> BigQuery:
    return BigQuery(client, retry=statement_retry(timeout=timeout, sleep=waits.append))  # type: ignore[arg-type]


def test_a_refused_statement_is_sent_again_as_a_new_job_until_it_runs() -> None:
    conflict = job_error("invalidQuery", CONFLICT)
    client = FakeClient(*[conflict] * 6, [{"n": 1}])
    waits: list[float] = []
    rows = fast_bq(client, waits).query("MERGE ...", {"job_name": "j"}, timeout=120)
    assert rows == [{"n": 1}]
    assert len(client.jobs) == 7  # a new job each time
    # Exponential with full jitter: the n-th wait is drawn from [0.5, min(30, 2^(n-1))].
    assert len(waits) == 6
    assert all(RETRY_WAIT_MIN <= wait <= min(RETRY_WAIT_MAX, 2 ** n)
               for n, wait in enumerate(waits))
    # Every attempt has its deadline: the job's own, and the wait for it a little longer.
    assert {int(config.job_timeout_ms) for config in client.configs} == {120_000}
    assert all(job.waited[0] > 120 for job in client.jobs)
    assert [p.name for p in client.configs[0].query_parameters] == ["job_name"]


def test_a_statement_refused_for_good_raises_the_error_at_once() -> None:
    syntax = job_error("invalidQuery", "Syntax error: Unexpected end of script")
    client = FakeClient(syntax)
    waits: list[float] = []
    with pytest.raises(exceptions.BadRequest, match="Syntax error"):
        fast_bq(client, waits).query("MERGE")
    assert len(client.jobs) == 1 and waits == []


def test_retrying_stops_after_its_time_with_bigquerys_own_error() -> None:
    conflict = job_error("invalidQuery", CONFLICT)
    client = FakeClient(conflict, conflict)
    with pytest.raises(exceptions.BadRequest, match="Could not serialize access"):
        fast_bq(client, [], timeout=0.0).query("MERGE ...")
    assert len(client.jobs) == 1


def test_a_statement_that_runs_past_its_deadline_is_cancelled_not_sent_again() -> None:
    client = FakeClient(concurrent.futures.TimeoutError(), [{"n": 1}])
    with pytest.raises(WarehouseError, match="did not finish within 120 s"):
        fast_bq(client, []).query("MERGE `p`.`d`.`t` ...", timeout=120)
    assert len(client.jobs) == 1 and client.jobs[0].cancelled


# -- batched ledger writes -------------------------------------------------------------


class RecordingBigQuery:
    """Stands in for BigQuery: records statements, answers with the rows given."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.statements: list[tuple[str, dict[str, Any], float]] = []

    def query(self, sql: str, params: dict[str, Any] | None = None, *, timeout: float) -> Any:
        self.statements.append((sql, dict(params or {}), timeout))
        answer = self.answers.pop(0) if self.answers else []
        if isinstance(answer, BaseException):
            raise answer
        return answer


def recording_ledger(*answers: Any) -> tuple[Ledger, RecordingBigQuery]:
    bq = RecordingBigQuery(*answers)
    return Ledger(bq, "p", "shop"), bq  # type: ignore[arg-type]


def struct_rows(params: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(row.struct_values) for row in params["updates"].values]


def test_update_many_writes_many_jobs_in_one_statement() -> None:
    ledger, bq = recording_ledger()
    ledger.update_many({
        f"jobs/{n}": {"state": "RUNNING", "succeeded_count": n, "failed_count": 0}
        for n in range(50)
    })
    (sql, params, timeout), = bq.statements
    assert sql.lstrip().startswith("MERGE `p`.`shop`.`gemini_batch_jobs`")
    assert "UNNEST(@updates)" in sql and timeout <= 120
    rows = struct_rows(params)
    assert len(rows) == 50
    assert rows[7]["job_name"] == "jobs/7" and rows[7]["succeeded_count"] == 7
    assert all(row["updated_at"] is not None for row in rows)
    assert params["updates"].values[0].struct_types == {
        "job_name": "STRING", "state": "STRING", "succeeded_count": "INT64",
        "failed_count": "INT64", "updated_at": "TIMESTAMP",
    }


def test_update_many_groups_jobs_by_the_columns_they_change() -> None:
    ledger, bq = recording_ledger()
    ledger.update_many({
        "jobs/1": {"state": "RUNNING"},
        "jobs/2": {"state": "RUNNING"},
        "jobs/3": {"state": "SUCCEEDED", "merged_at": None},
    })
    assert len(bq.statements) == 2
    assert [len(struct_rows(params)) for _, params, _ in bq.statements] == [2, 1]
    with pytest.raises(ValueError, match="statee"):
        ledger.update_many({"jobs/1": {"statee": "RUNNING"}})


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class RecordingLedger:
    def __init__(self) -> None:
        self.writes: list[dict[str, dict[str, Any]]] = []

    def update_many(self, changes: dict[str, dict[str, Any]]) -> None:
        self.writes.append({name: dict(fields) for name, fields in changes.items()})


def test_changes_are_held_and_written_together_once_due() -> None:
    clock, ledger = FakeClock(), RecordingLedger()
    updates = LedgerUpdates(ledger, every=15.0, clock=clock)  # type: ignore[arg-type]
    updates.set("jobs/1", state="PENDING")
    updates.set("jobs/2", state="RUNNING")
    clock.now = 10.0
    updates.set("jobs/1", state="RUNNING", succeeded_count=3)
    updates.flush_if_due()
    assert ledger.writes == []
    clock.now = 15.0
    updates.flush_if_due()
    assert ledger.writes == [{"jobs/1": {"state": "RUNNING", "succeeded_count": 3},
                              "jobs/2": {"state": "RUNNING"}}]
    updates.flush_if_due()  # nothing held: nothing written
    assert len(ledger.writes) == 1


def test_a_merged_job_drops_its_held_change_and_flush_writes_the_rest() -> None:
    clock, ledger = FakeClock(), RecordingLedger()
    updates = LedgerUpdates(ledger, clock=clock)  # type: ignore[arg-type]
    updates.set("jobs/1", state="RUNNING")
    updates.set("jobs/2", state="RUNNING")
    updates.discard("jobs/1")  # its merge writes SUCCEEDED: RUNNING must not follow it
    updates.flush()
    assert ledger.writes == [{"jobs/2": {"state": "RUNNING"}}]
    updates.flush()
    assert len(ledger.writes) == 1


def test_a_failed_write_keeps_the_changes_for_the_next() -> None:
    class FailingLedger:
        def update_many(self, changes: dict[str, Any]) -> None:
            raise exceptions.BadRequest(CONFLICT)

    updates = LedgerUpdates(FailingLedger())  # type: ignore[arg-type]
    updates.set("jobs/1", state="RUNNING")
    with pytest.raises(exceptions.BadRequest):
        updates.flush()
    assert updates.pending == {"jobs/1": {"state": "RUNNING"}}


@pytest.mark.parametrize("jobs", [1, 10, 200])
def test_a_wait_loop_writes_at_most_once_per_flush_interval_whatever_the_jobs(
    jobs: int,
) -> None:
    """Every job polled every second for 10 minutes, each poll a change: the ledger gets
    one statement per FLUSH_SECONDS, not one per job and poll."""
    clock, ledger = FakeClock(), RecordingLedger()
    updates = LedgerUpdates(ledger, clock=clock)  # type: ignore[arg-type]
    for second in range(600):
        clock.now = float(second)
        for job in range(jobs):
            updates.set(f"jobs/{job}", state="RUNNING", succeeded_count=second)
        updates.flush_if_due()
    updates.flush()
    assert len(ledger.writes) <= 600 / FLUSH_SECONDS + 1
    assert ledger.writes[-1][f"jobs/{jobs - 1}"]["succeeded_count"] == 599
    assert FLUSH_SECONDS >= 10.0  # at most one statement per model per 10 s window


# -- locks under concurrent updates ----------------------------------------------------


def test_a_lock_claim_refused_as_a_concurrent_update_names_the_winner() -> None:
    winner = {"token": "abc123", "host": "build-host-1", "pid": 4242, "since": None}
    ledger, _ = recording_ledger(job_error("invalidQuery", CONFLICT), [winner])
    with pytest.raises(LockedError, match="pid 4242 on build-host-1"):
        ledger.lock("model.shop.summaries", LockOwner(host="build-host-2", pid=7))


def test_a_lock_claim_refused_with_no_winner_is_refused_not_a_crash() -> None:
    ledger, _ = recording_ledger(job_error("invalidQuery", CONFLICT), [])
    with pytest.raises(LockedError, match="could not be claimed.*Run the build again"):
        ledger.lock("model.shop.summaries", LockOwner(host="build-host-2", pid=7))


def test_a_lock_claim_failing_otherwise_raises_as_it_is() -> None:
    ledger, _ = recording_ledger(job_error("notFound", "Not found: Table p:shop.locks"))
    with pytest.raises(exceptions.NotFound):
        ledger.lock("model.shop.summaries", LockOwner(host="build-host-2", pid=7))


# -- the local BigQuery's fault mode ---------------------------------------------------


@pytest.mark.parametrize(("sql", "table"), [
    ("MERGE `p`.`d`.`t` AS t USING (SELECT 1 AS x) AS s ON FALSE "
     "WHEN NOT MATCHED THEN INSERT (x) VALUES (s.x)", "p:d.t"),
    ("UPDATE `p.d.t` SET a = 1 WHERE TRUE", "p:d.t"),
    ("DELETE FROM d.t WHERE x = @x", "default-project:d.t"),
    ("INSERT INTO d.t VALUES (1)", None),  # INSERTs never conflict on BigQuery
    ("SELECT 1", None),
    ("CREATE TABLE d.t AS SELECT 1 AS x", None),
    ("UPDATE d.t SET a = 1 WHERE TRUE; DELETE FROM d.t WHERE TRUE", None),  # a script
    ("not sql at all (", None),
])
def test_only_single_merge_update_and_delete_statements_can_conflict(
    sql: str, table: str | None,
) -> None:
    assert mutated_table(sql, "default-project") == table


def test_the_fault_mode_fails_the_chosen_share_the_same_way_for_the_same_seed() -> None:
    statement = "UPDATE `p`.`d`.`t` SET a = 1 WHERE TRUE"

    def draws(faults: BigQueryFaults) -> list[str | None]:
        conflicts = DmlConflicts(faults)
        return [conflicts.conflict(mutated_table(statement, "p")) for _ in range(1000)]

    first = draws(BigQueryFaults(dml_conflict_rate=0.2, seed=7))
    assert first == draws(BigQueryFaults(dml_conflict_rate=0.2, seed=7))
    assert first != draws(BigQueryFaults(dml_conflict_rate=0.2, seed=8))
    failed = [message for message in first if message]
    assert 150 <= len(failed) <= 250
    assert set(failed) == {concurrent_update_message("p:d.t")}
    assert is_concurrent_update(job_error("invalidQuery", failed[0]))
    assert not any(draws(BigQueryFaults()))
    assert all(draws(BigQueryFaults(dml_conflict_rate=1.0)))


def test_the_fault_mode_counts_what_it_saw_and_starts_again_when_set() -> None:
    conflicts = DmlConflicts(BigQueryFaults(dml_conflict_rate=1.0))
    conflicts.conflict(mutated_table("SELECT 1", "p"))
    conflicts.conflict(mutated_table("DELETE FROM d.t WHERE TRUE", "p"))
    assert conflicts.state() == {"dml_conflict_rate": 1.0, "seed": 0, "hold_queries": "",
                                 "error_rate": 0.0, "drop_rate": 0.0, "dml_statements": 1,
                                 "dml_conflicts": 1, "held_queries": 0, "api_errors": 0,
                                 "dropped": 0}
    conflicts.set(BigQueryFaults.from_dict({"dml_conflict_rate": "0.5"}, conflicts.faults))
    assert conflicts.state()["dml_statements"] == 0


def test_the_hold_holds_the_queries_with_its_marker_until_it_changes() -> None:
    faults = DmlConflicts(BigQueryFaults.from_dict({"hold_queries": "-- hold me"}))
    assert faults.holds("select 1 -- hold me") and not faults.holds("select 1")
    faults.set(BigQueryFaults.from_dict({}))
    assert not faults.holds("select 1 -- hold me")


def test_fault_settings_come_from_the_environment_and_are_checked() -> None:
    env = {"GEMINI_BATCH_BQ_FAULT_DML_CONFLICT_RATE": "0.2", "GEMINI_BATCH_BQ_FAULT_SEED": "3"}
    assert BigQueryFaults.from_env(env) == BigQueryFaults(dml_conflict_rate=0.2, seed=3)
    assert BigQueryFaults.from_env({}) == BigQueryFaults()
    with pytest.raises(ValueError, match="dml_conflict_rat'"):
        BigQueryFaults.from_dict({"dml_conflict_rat": 0.2})
    with pytest.raises(ValueError, match="between 0 and 1"):
        BigQueryFaults.from_dict({"dml_conflict_rate": 2})
    with pytest.raises(ValueError, match="bad BigQuery fault setting"):
        BigQueryFaults.from_dict({"seed": "seven"})


def test_mutating_statements_on_one_table_take_turns() -> None:
    queues = DmlQueues()
    entered, release = threading.Event(), threading.Event()
    second_in = threading.Event()

    def first() -> None:
        with queues.turn("p:d.t"):
            entered.set()
            release.wait()

    def second() -> None:
        with queues.turn("p:d.t"):
            second_in.set()

    holder = threading.Thread(target=first, daemon=True)
    holder.start()
    entered.wait()
    waiter = threading.Thread(target=second, daemon=True)
    waiter.start()
    try:
        # Other tables, and statements that mutate none, do not wait...
        with queues.turn("p:d.other"), queues.turn(None):
            pass
        # ...the second on the table does (were it let in, it would be in at once).
        assert not second_in.wait(timeout=0.5)
    finally:
        release.set()
    waiter.join()
    holder.join()
    assert second_in.is_set()
