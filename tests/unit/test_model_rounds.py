"""A batch model's rounds (build/model_run.py) against fakes of the route, the warehouse
and the ledger: no server. Each fake keeps the state a real one would (which requests
have an answer, which jobs the ledger holds, which tables exist), so a test asserts what
a build reports and leaves behind, not which calls were made.

The stack tests (tests/stack/commands/) run the same rounds against the local services.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gemini_batch.build.context import BatchContext, BatchSettings
from gemini_batch.build.model_run import ModelRun
from gemini_batch.clients.vertex import TOOL_LABEL, JobStatus
from gemini_batch.routes.base import OutputPlace
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.rules.pricing import PriceTable
from gemini_batch.state.ledger import AI_GENERATE_PREFIX, Ledger, LedgerEntry, LockOwner
from gemini_batch.state.warehouse import InvalidSummary, MergeResult, RequestCounts, Shard

LOCATION = "us-central1"
UNIQUE_ID = "model.shop.reviews"


def batch_model(**config: Any) -> BatchModel:
    return BatchModel(unique_id=UNIQUE_ID, name="reviews", project="p", dataset="ds",
                      config=BatchModelConfig(gemini_model="gemini-2.5-flash", **config))


# -- fakes -----------------------------------------------------------------------------


class FakeBigQuery:
    """Tables by name (each a list of request ids) and the one query a round reads
    outside the warehouse: the size of an unrecorded job's shard."""

    def __init__(self) -> None:
        self.tables: dict[str, list[str]] = {}
        self.snapshot: list[str] = []  # what the estimate prices

    def dataset_location(self, project: str, dataset: str) -> str:
        return LOCATION

    def table_exists(self, table: str) -> bool:
        return table in self.tables

    def drop_tables(self, tables: Any) -> None:
        for table in tables:
            self.tables.pop(table, None)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        counted = re.fullmatch(r"SELECT COUNT\(\*\) AS n FROM `(.+)`", sql.strip())
        assert counted, f"a query the fake does not know: {sql}"
        return [{"n": len(self.tables[counted.group(1).replace("`.`", ".")])}]


class FakeWarehouse:
    """The requests of one model and what ``<model>__responses`` says of each."""

    def __init__(self, request_ids: list[str], *, invalid: set[str] = frozenset()) -> None:
        self.bq = FakeBigQuery()
        self.request_ids = request_ids
        self.invalid = set(invalid)
        self.answered: set[str] = set()
        self.attempts: dict[str, int] = {}
        self.empty: set[str] = set()  # answered with no text: paid for, failed for good
        self.last_job: dict[str, str] = {}  # the job that last wrote each responses row

    def check_tables(self, model: BatchModel) -> None:
        pass

    def _in_flight(self, live_shards: Any) -> set[str]:
        return {rid for table in live_shards for rid in self.bq.tables.get(table, [])}

    def _pending(self, model: BatchModel, live_shards: Any) -> list[str]:
        in_flight = self._in_flight(live_shards)
        return [rid for rid in self.request_ids if rid not in self.answered
                and rid not in self.invalid and rid not in in_flight and rid not in self.empty
                and self.attempts.get(rid, 0) <= model.config.max_retries]

    def counts(self, model: BatchModel, live_shards: Any = ()) -> RequestCounts:
        pending = self._pending(model, live_shards)
        in_flight = self._in_flight(live_shards) - self.answered
        failed = [rid for rid in self.request_ids if rid not in self.answered
                  and (rid in self.invalid or rid in self.empty
                       or self.attempts.get(rid, 0) > model.config.max_retries)]
        return RequestCounts(
            total=len(self.request_ids), unique=len(self.request_ids),
            cached=len(self.answered), pending=len(pending), failed=len(failed),
            invalid=len(self.invalid), in_flight=len(in_flight),
        )

    def pending_price_groups(self, model: BatchModel, live_shards: Any = (),
                             pending_snapshot: str | None = None,
                             *, sample: int | None = None,
                             planned: str | None = None) -> list[dict[str, Any]]:
        snapshot = self.bq.snapshot
        return [{"requested_budget": None, "max_output_tokens": None,
                 "long_context": False, "requests": len(snapshot),
                 "input_tokens": 1_000 * len(snapshot), "audio_tokens": 0}]

    def mark_invalid(self, model: BatchModel) -> InvalidSummary:
        return InvalidSummary(count=len(self.invalid),
                              examples=[(rid, "no contents") for rid in sorted(self.invalid)])

    def failure_reasons(self, model: BatchModel) -> dict[str, int]:
        return {"429 RESOURCE_EXHAUSTED": self.counts(model).failed}

    @contextlib.contextmanager
    def pending_snapshot(self, model: BatchModel, run_id: str, live_shards: Any = (),
                         sample: int | None = None) -> Iterator[str]:
        self.bq.snapshot = self._pending(model, live_shards)
        yield f"p.ds.reviews__pending_{run_id}"

    @contextlib.contextmanager
    def sample_snapshot(self, model: BatchModel, run_id: str, snapshot: str, rows: int
                        ) -> Iterator[str]:
        self.bq.snapshot = sorted(self.bq.snapshot)[:rows]
        yield f"p.ds.reviews__sample_{run_id}"

    def job_outcomes(self, model: BatchModel, job_names: list[str]) -> dict[str, int]:
        rows = [rid for rid, job in self.last_job.items() if job in job_names]
        bad = [rid for rid in rows if rid in self.empty]
        return {"requests": len(rows), "bad": len(bad),
                **({"EMPTY_ANSWER: MAX_TOKENS": len(bad)} if bad else {})}

    def cut_shards(self, model: BatchModel, run_id: str, snapshot: str) -> list[Shard]:
        rows, size = self.bq.snapshot, model.config.shard_size
        shards = []
        for index, start in enumerate(range(0, len(rows), size)):
            table = model.shard_table(run_id, index)
            self.bq.tables[table] = rows[start:start + size]
            shards.append(Shard(table=table, rows=len(self.bq.tables[table]), index=index))
        return shards


class FakeLedger:
    """``gemini_batch_jobs`` as a dict by job name."""

    def __init__(self, bq: FakeBigQuery) -> None:
        self.bq = bq
        self.rows: dict[str, LedgerEntry] = {}

    def live_jobs(self, model_unique_id: str | None = None) -> list[LedgerEntry]:
        return [entry for entry in self.rows.values() if entry.is_live]

    def live_shard_tables(self, model_unique_id: str, live: list[LedgerEntry] | None = None
                          ) -> list[str]:
        # The ledger's own rule, over this fake's tables.
        return Ledger.live_shard_tables(
            self, model_unique_id, self.live_jobs() if live is None else live)  # type: ignore[arg-type]

    def entries(self, model_unique_id: str | None = None, limit: int = 50) -> list[LedgerEntry]:
        return list(self.rows.values())[:limit]

    def ai_generate_entries(self, model_unique_id: str, invocation_id: str) -> list[LedgerEntry]:
        prefix = f"{AI_GENERATE_PREFIX}{invocation_id}/"
        return [entry for entry in self.rows.values() if entry.job_name.startswith(prefix)]

    def record_submitted(self, entry: LedgerEntry) -> None:
        assert entry.job_name not in self.rows, "a job recorded twice"
        self.rows[entry.job_name] = entry

    def update(self, job_name: str, /, **fields: Any) -> None:
        self.rows[job_name] = replace(self.rows[job_name], **fields)

    def update_many(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        for job_name, fields in changes.items():
            self.update(job_name, **fields)

    def observed_tokens(self, gemini_model: str, dbt_model: str | None = None) -> None:
        return None


@dataclass
class FakeJob:
    status: JobStatus
    requests: list[str]
    # What the job does once released: its end state, and which of its requests it
    # answers and fails (None: every request answered; "nothing": no output at all).
    end_state: str = "SUCCEEDED"
    fails: set[str] = field(default_factory=set)
    empty: set[str] = field(default_factory=set)  # of the answered, those with no text
    # usageMetadata of each answer: prompt, candidates and thoughts tokens.
    usage: tuple[int, int, int] = (10, 5, 0)
    brings_nothing: bool = False
    # It answered (its counts say so) but nothing is where its output should be, until
    # the test puts it back.
    output_lost: bool = False
    held: bool = False  # still running (the test releases it)
    # Still QUEUED while held, created this many hours ago (the queue deadline's age).
    queued_hours: float | None = None
    ran: tuple[str, ...] = ()  # of its requests, those it answered before a cancel landed


class FakeRoute:
    """Batch jobs that answer from a script: each submitted job runs until released
    (``hold``) and then ends as ``outcome`` says for its index."""

    name = "fake"
    location = LOCATION

    def __init__(self, warehouse: FakeWarehouse) -> None:
        self.warehouse = warehouse
        self.jobs: dict[str, FakeJob] = {}
        self.submitted: list[str] = []  # job names, in order
        self.hold_new = False
        self.outcome: dict[int, dict[str, Any]] = {}  # by submit index: FakeJob fields
        self.max_running = 0
        self.cancelled: list[str] = []  # job names, in order
        self._ids = itertools.count(1)

    def running(self) -> list[str]:
        return [name for name, job in self.jobs.items() if job.held]

    def release(self) -> None:
        for job in self.jobs.values():
            job.held = False

    def add_job(self, requests: list[str], shard_table: str, *, held: bool,
                labels: Mapping[str, str] | None = None, **outcome: Any) -> JobStatus:
        number = next(self._ids)
        name = f"projects/p/locations/{LOCATION}/batchPredictionJobs/{number}"
        queued = outcome.get("queued_hours")
        held = held or queued is not None
        status = JobStatus(
            name=name, state="PENDING", input_table=shard_table,
            output_table=shard_table.replace("__shard_", "__output_"),
            labels=dict(labels or {}),
            create_time=datetime.now(UTC) - timedelta(hours=queued or 0),
        )
        self.warehouse.bq.tables.setdefault(shard_table, list(requests))
        self.jobs[name] = FakeJob(status=status, requests=list(requests), held=held, **outcome)
        return status

    # -- the Route protocol --

    def submit(self, shard: Shard, *, output_table: str, labels: Mapping[str, str]
               ) -> JobStatus:
        outcome = self.outcome.get(len(self.submitted), {})
        status = self.add_job(self.warehouse.bq.tables[shard.table], shard.table,
                              held=self.hold_new, labels=labels, **outcome)
        status = replace(status, output_table=output_table)
        self.jobs[status.name].status = status
        self.submitted.append(status.name)
        self.max_running = max(self.max_running, len(self.running()))
        return status

    def status(self, entry: LedgerEntry) -> JobStatus:
        job = self.jobs[entry.job_name]
        if job.held:
            return replace(job.status,
                           state="RUNNING" if job.queued_hours is None else "QUEUED")
        state = job.end_state
        done = 0 if job.brings_nothing else len(job.requests)
        return replace(job.status, state=state, succeeded=done - len(job.fails),
                       failed=len(job.fails), error=None if state == "SUCCEEDED" else "quota")

    def cancel(self, job: JobStatus) -> None:
        fake = self.jobs[job.name]
        fake.end_state = "CANCELLED"
        self.cancelled.append(job.name)
        if fake.held:  # it ends with what it answered before the cancel landed
            fake.held = False
            fake.requests = list(fake.ran)
            fake.brings_nothing = not fake.ran

    def labelled_jobs(self, labels: Mapping[str, str], created_after: datetime
                      ) -> list[JobStatus]:
        return [job.status for job in self.jobs.values()
                if all(job.status.labels.get(k) == v for k, v in labels.items())]

    def shard_of(self, job: JobStatus) -> str:
        return job.input_table or ""

    def output_of(self, job: JobStatus) -> str:
        return job.output_table or ""

    def has_output(self, job: JobStatus) -> bool:
        return not self.jobs[job.name].brings_nothing

    def locate(self, entry: LedgerEntry) -> OutputPlace:
        job = self.jobs[entry.job_name]
        return OutputPlace(found=not (job.brings_nothing or job.output_lost),
                           where=f"output table {entry.output_table} (as asked)",
                           check="check the table")

    def collect(self, entry: LedgerEntry) -> MergeResult | None:
        job = self.jobs[entry.job_name]
        if job.brings_nothing or job.output_lost:
            return None
        answered = [rid for rid in job.requests if rid not in job.fails]
        self.warehouse.answered.update(rid for rid in answered if rid not in job.empty)
        self.warehouse.empty.update(job.empty)
        for rid in job.fails:
            self.warehouse.attempts[rid] = self.warehouse.attempts.get(rid, 0) + 1
        self.warehouse.last_job.update(dict.fromkeys(job.requests, entry.job_name))
        self.warehouse.bq.tables[entry.output_table] = list(job.requests)
        prompt, candidates, thoughts = (len(answered) * tokens for tokens in job.usage)
        return MergeResult(succeeded=len(answered), failed=len(job.fails), unanswered=0,
                           prompt_tokens=prompt, candidates_tokens=candidates,
                           thoughts_tokens=thoughts, total_tokens=prompt + candidates + thoughts)

    def clean_up(self, entry: LedgerEntry) -> None:
        self.warehouse.bq.drop_tables([entry.shard_table, entry.output_table])


class FakeReporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def message(self, model: str, text: str) -> None:
        self.lines.append(text)

    def job_started(self, model: str, job_name: str, requests: int, *,
                    resumed: bool = False) -> None:
        self.lines.append(f"{'resumed' if resumed else 'started'} {job_name} ({requests})")

    def job_update(self, model: str, status: JobStatus) -> None:
        pass

    def job_finished(self, model: str, status: JobStatus, note: str) -> None:
        self.lines.append(f"finished {status.job_id}: {note}")

    def close(self) -> None:
        pass


@dataclass
class FakeWorkspace:
    warehouse: FakeWarehouse
    ledger: FakeLedger
    prices: PriceTable = field(default_factory=PriceTable)
    dbt_vars: dict[str, Any] = field(default_factory=dict)  # no sample, no answers source

    @property
    def bq(self) -> FakeBigQuery:
        return self.warehouse.bq


class Build:
    """One model's requests, ledger and route; ``run`` is one `gemini-batch build`."""

    def __init__(self, requests: int, *, invalid: int = 0, **config: Any) -> None:
        ids = [f"r{n:03d}" for n in range(requests)]
        self.model = batch_model(**config)
        self.warehouse = FakeWarehouse(ids, invalid=set(ids[:invalid]))
        self.ledger = FakeLedger(self.warehouse.bq)
        self.route = FakeRoute(self.warehouse)
        self.reporter = FakeReporter()
        self.ai_generate_runs: list[list[str]] = []  # the requests each dbt run answered

    def ai_generate(self, model: BatchModel) -> str:
        """A dbt run of the model with route auto: AI.GENERATE answers what is pending
        when it is at most ai_generate_max_rows, and writes its ledger row."""
        pending = self.warehouse._pending(model, self.ledger.live_shard_tables(UNIQUE_ID))
        invocation = f"inv-ai-{len(self.ai_generate_runs) + 1}"
        sent = pending if len(pending) <= model.config.ai_generate_max_rows else []
        self.ai_generate_runs.append(sent)
        if sent:
            self.warehouse.answered.update(sent)
            self.ledger.rows[f"{AI_GENERATE_PREFIX}{invocation}/1-1"] = LedgerEntry(
                job_name=f"{AI_GENERATE_PREFIX}{invocation}/1-1", dbt_model=UNIQUE_ID,
                model_relation="p.ds.reviews", shard_table="", output_table="",
                gemini_model="gemini-2.5-flash", location=LOCATION, state="SUCCEEDED",
                request_count=len(sent), succeeded_count=len(sent),
                merged_at=datetime.now(UTC))
        return invocation

    def run(self, *, wait: bool = True) -> Any:
        ctx = BatchContext(
            workspace=FakeWorkspace(self.warehouse, self.ledger),  # type: ignore[arg-type]
            owner=LockOwner.current(), invocation_id="inv-1", reporter=self.reporter,
            settings=BatchSettings(poll_initial=0.001, poll_max=0.001, wait=wait),
            ai_generate=self.ai_generate,
        )
        run = ModelRun(ctx, self.model, routes=lambda ws, model, location: self.route)
        run.run()
        return run.report()

    def recorded(self) -> list[LedgerEntry]:
        return list(self.ledger.rows.values())

    def job_tables(self) -> list[str]:
        return sorted(t for t in self.warehouse.bq.tables if "__shard_" in t or "__output_" in t)


# -- the rounds ------------------------------------------------------------------------


def test_a_round_answers_every_pending_request_and_leaves_no_table():
    build = Build(5, shard_size=2)
    summary = build.run()
    assert summary.error is None
    assert (summary.requests, summary.submitted, summary.jobs) == (5, 5, 3)
    assert (summary.succeeded, summary.cached, summary.pending, summary.failed) == (5, 0, 0, 0)
    assert summary.tokens == 75
    assert all(entry.merged_at and entry.state == "SUCCEEDED" for entry in build.recorded())
    assert [entry.request_count for entry in build.recorded()] == [2, 2, 1]
    assert build.job_tables() == []
    assert "5 requests in 3 jobs" in build.reporter.lines[0]

    again = build.run()  # every answer is cached: nothing is sent again
    assert (again.submitted, again.cached, again.pending) == (0, 5, 0)
    assert len(build.route.submitted) == 3


def test_at_most_max_concurrent_jobs_run_at_once():
    build = Build(6, shard_size=1, max_concurrent_jobs=2)
    build.route.hold_new = True

    real_status = build.route.status

    def status(entry: LedgerEntry) -> JobStatus:
        # The oldest running job ends at its poll: a slot frees for the next shard.
        running = build.route.running()
        if running and entry.job_name == running[0]:
            build.route.jobs[entry.job_name].held = False
        return real_status(entry)

    build.route.status = status  # type: ignore[method-assign]
    summary = build.run()
    assert (summary.submitted, summary.jobs, summary.succeeded) == (6, 6, 6)
    assert build.route.max_running == 2


def test_a_live_job_of_an_earlier_build_is_resumed_not_sent_again():
    build = Build(5)
    build.route.hold_new = True
    first = build.run(wait=False)
    assert first.in_flight_jobs == build.route.submitted
    assert first.pending == 5  # in flight: pending until merged

    build.route.release()
    summary = build.run()
    assert summary.resumed == 5
    assert (summary.submitted, summary.succeeded, summary.pending) == (0, 5, 0)
    assert "resuming 1 job of an earlier build (5 requests)" in build.reporter.lines
    assert len(build.route.submitted) == 1


def test_a_job_a_dead_build_never_recorded_is_adopted_and_its_requests_not_resent():
    build = Build(5)
    # A build died between creating this job and writing its ledger row.
    shard = build.model.shard_table("20260101t000000_dead", 0)
    orphan = build.route.add_job(
        ["r000", "r001"], shard, held=True,
        labels={"tool": TOOL_LABEL, "dbt_model": "reviews"},
    )
    real_status = build.route.status

    def status(entry: LedgerEntry) -> JobStatus:
        build.route.release()  # it ends once this build polls it
        return real_status(entry)

    build.route.status = status  # type: ignore[method-assign]
    summary = build.run()
    assert summary.error is None
    assert any(line.startswith(f"adopting job {orphan.job_id} (2 requests)")
               for line in build.reporter.lines)
    adopted = build.ledger.rows[orphan.name]
    assert (adopted.shard_table, adopted.request_count, adopted.merged_at is not None) == (
        shard, 2, True)
    # Only the three requests the orphan did not carry went out in a new job.
    assert [build.route.jobs[name].requests for name in build.route.submitted] == [
        ["r002", "r003", "r004"]]
    # The adopted job's answers count as there before this build (a dead build paid).
    assert (summary.resumed, summary.cached, summary.submitted, summary.succeeded) == (
        2, 2, 3, 3)


def test_no_wait_submits_what_the_slots_take_and_merges_what_ended_next_time():
    build = Build(5, shard_size=2, max_concurrent_jobs=2)
    build.route.hold_new = True
    first = build.run(wait=False)
    assert first.error is None
    # Two slots: two jobs (4 requests); the third shard's table is dropped, its request
    # stays pending for a later build.
    assert (first.submitted, first.jobs, len(first.in_flight_jobs)) == (4, 2, 2)
    assert first.pending == 5
    assert len(build.job_tables()) == 2

    # Still running: the next --no-wait build polls them once, and has no free slot.
    second = build.run(wait=False)
    assert (second.submitted, second.in_flight_jobs) == (0, first.in_flight_jobs)

    build.route.release()
    third = build.run(wait=False)  # merges both, sends the last request
    assert (third.succeeded, third.submitted, third.pending) == (4, 1, 1)
    build.route.release()
    fourth = build.run()
    assert (fourth.succeeded, fourth.cached, fourth.pending, fourth.submitted) == (1, 4, 0, 0)
    assert len(build.route.submitted) == 3


def test_failed_rows_go_in_a_retry_round_until_max_retries():
    build = Build(5, max_retries=1)
    build.route.outcome = {
        0: {"end_state": "PARTIALLY_SUCCEEDED", "fails": {"r001", "r003"}},
        1: {"end_state": "PARTIALLY_SUCCEEDED", "fails": {"r003"}},
    }
    summary = build.run()
    assert "retry round 1: 2 requests still pending" in build.reporter.lines
    assert [build.route.jobs[name].requests for name in build.route.submitted] == [
        ["r000", "r001", "r002", "r003", "r004"], ["r001", "r003"]]
    # r003 failed twice: its retries are used up; it is not sent a third time.
    assert (summary.succeeded, summary.failed, summary.pending) == (4, 1, 0)
    assert summary.submitted == 7
    assert build.run().submitted == 0


def test_a_job_that_brings_nothing_back_ends_the_rounds_and_the_requests_stay_pending():
    build = Build(5, max_retries=3)
    build.route.outcome = {0: {"end_state": "FAILED", "brings_nothing": True}}
    summary = build.run()
    assert len(build.route.submitted) == 1  # another round would fail alike
    [failed_job] = summary.failed_jobs
    assert failed_job.endswith("ended FAILED without answers: quota")
    assert (summary.succeeded, summary.pending, summary.failed) == (0, 5, 0)
    [entry] = build.recorded()
    assert (entry.state, entry.merged_at is not None, entry.succeeded_count) == (
        "FAILED", True, None)

    retry = build.run()  # a later build sends them again
    assert (retry.submitted, retry.succeeded) == (5, 5)


def test_a_job_that_answered_with_its_output_missing_is_kept_unmerged_until_it_is_read():
    build = Build(5, max_retries=3)
    build.route.outcome = {0: {"output_lost": True}}
    summary = build.run()
    [name] = build.route.submitted
    job_id = name.rsplit("/", 1)[-1]
    failed_job = summary.error
    assert summary.failed_jobs == []
    assert failed_job.startswith(
        f"job {job_id} ended SUCCEEDED with 5 answers but nothing was found to merge: output "
        "table p.ds.reviews__output_")
    assert "not found; check the table. Its 5 requests are not sent again" in failed_job
    assert f"`gemini-batch collect {job_id}`" in failed_job
    # Not merged, nothing dropped, nothing pending: the requests are in flight.
    [entry] = build.recorded()
    assert (entry.state, entry.merged_at, entry.succeeded_count) == ("SUCCEEDED", None, 5)
    assert entry.shard_table in build.job_tables()
    assert (summary.submitted, summary.succeeded) == (5, 0)
    assert build.warehouse.counts(build.model, [entry.shard_table]).pending == 0

    again = build.run()  # still missing: nothing sent, still unmerged
    assert again.submitted == 0 and again.error.startswith(f"job {job_id} ended SUCCEEDED")
    assert build.recorded()[0].merged_at is None

    build.route.jobs[name].output_lost = False  # the output turns up
    done = build.run()
    assert done.error is None and done.failed_jobs == []
    assert (done.submitted, done.succeeded, done.pending) == (0, 5, 0)
    assert build.recorded()[0].merged_at is not None
    assert build.job_tables() == []
    assert len(build.route.submitted) == 1


def test_invalid_requests_are_marked_and_never_sent():
    build = Build(5, invalid=2)
    summary = build.run()
    assert any(line.startswith("2 invalid requests are not submitted (e.g. r000: no contents")
               for line in build.reporter.lines)
    assert [build.route.jobs[name].requests for name in build.route.submitted] == [
        ["r002", "r003", "r004"]]
    assert (summary.invalid, summary.failed, summary.succeeded) == (2, 2, 3)


def test_over_the_cost_cap_nothing_is_sent():
    build = Build(5, max_cost_usd=0.000001)
    summary = build.run()
    assert summary.error is not None
    assert "over max_cost_usd=$0.0000" in summary.error
    assert "Nothing was submitted" in summary.error
    assert build.route.submitted == [] and build.recorded() == []
    assert build.job_tables() == []  # no shard was cut


def test_a_ledger_write_that_fails_cancels_the_job_it_records():
    build = Build(3)

    def refuse(entry: LedgerEntry) -> None:
        raise RuntimeError("ledger unavailable")

    build.ledger.record_submitted = refuse  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="ledger unavailable"):
        build.run()
    [name] = build.route.submitted
    assert build.route.jobs[name].end_state == "CANCELLED"


# -- the cap over the whole build, the canary -------------------------------------------


def test_retry_rounds_stop_where_the_build_would_cross_the_cap():
    # The estimate (1,000 input, 800 thinking + 200 answer tokens a request) lets the
    # first round through; its answers cost twice that, so the retry round of the 429s
    # would cross the cap with what was spent.
    build = Build(10, max_retries=3, max_cost_usd=0.02)
    build.route.outcome = {0: {"end_state": "PARTIALLY_SUCCEEDED", "usage": (1_000, 200, 2_000),
                               "fails": {"r001", "r003", "r005", "r007", "r009"}}}
    summary = build.run()
    assert len(build.route.submitted) == 1  # the retry round was not sent
    assert summary.error is not None
    assert "already spent by this build's earlier rounds + 5 pending requests" in summary.error
    assert "Nothing more was submitted (the answers already back are kept)" in summary.error
    spent = sum(entry.actual_cost_usd or 0 for entry in build.recorded())
    assert spent == pytest.approx(summary.cost_usd) and 0 < spent <= 0.02


CANARY = {"canary_min_rows": 10, "canary_min_sample": 5, "canary_max_sample": 5}


def test_a_canary_goes_first_and_the_rest_follows_when_it_answers():
    build = Build(30, **CANARY)
    summary = build.run()
    sent = [build.route.jobs[name].requests for name in build.route.submitted]
    assert sent[0] == ["r000", "r001", "r002", "r003", "r004"]  # the lowest request_ids
    assert [len(requests) for requests in sent] == [5, 25]
    assert "__shard_" in build.recorded()[0].shard_table
    assert build.recorded()[0].shard_table.split("__shard_")[1].endswith("_canary_0")
    assert ("canary passed (0 of 5 failed for good or empty): sending the other 25 requests"
            in build.reporter.lines)
    assert (summary.succeeded, summary.pending, summary.canary_stopped) == (30, 0, None)


def test_a_canary_that_comes_back_empty_stops_the_model_and_a_rerun_sends_nothing():
    build = Build(30, **CANARY)
    build.route.outcome = {0: {"empty": {"r000", "r001", "r002", "r003"}}}
    summary = build.run()
    assert len(build.route.submitted) == 1
    assert summary.canary_stopped is not None
    assert "4 of its 5 requests failed for good or came back empty" in summary.canary_stopped
    assert "The other 25 pending requests were not sent" in summary.canary_stopped
    assert summary.pending == 25
    assert build.run().submitted == 0 and len(build.route.submitted) == 1


def test_with_no_wait_the_canary_is_a_job_and_the_next_build_decides():
    build = Build(30, **CANARY)
    build.route.hold_new = True
    first = build.run(wait=False)
    assert (first.submitted, len(first.in_flight_jobs)) == (5, 1)
    held = build.run(wait=False)  # the canary still runs: nothing more is sent
    assert held.submitted == 0
    assert any("is still running: the next build decides" in line
               for line in build.reporter.lines)
    build.route.release()
    build.route.hold_new = False
    done = build.run()
    assert (done.submitted, done.succeeded, done.pending) == (25, 30, 0)


def test_what_ai_generate_answered_in_the_dbt_run_is_the_build_s_and_the_rest_goes_by_job():
    # route auto / ai_generate: the model's dbt run of this build (invocation inv-1)
    # answered 2 of 5 through AI.GENERATE (one statement); an earlier run's is not ours.
    build = Build(5, shard_size=10, route="ai_generate")
    build.warehouse.answered |= {"r000", "r001", "r002"}
    for name, sent in (("inv-1/1-1", 2), ("inv-0/1-1", 1)):
        build.ledger.record_submitted(LedgerEntry(
            job_name=AI_GENERATE_PREFIX + name, dbt_model=UNIQUE_ID,
            model_relation="p.ds.reviews", shard_table="", output_table="",
            gemini_model="gemini-2.5-flash", location=LOCATION,
            state="SUCCEEDED", request_count=sent, succeeded_count=sent, failed_count=0,
            total_tokens=10 * sent, actual_cost_usd=0.01 * sent, merged_at=datetime.now(UTC)))
    summary = build.run()
    # The other 2 (say, conversations AI.GENERATE cannot send) went in one batch job.
    assert len(build.route.submitted) == 1
    assert [entry.request_count for entry in build.recorded()
            if not entry.job_name.startswith(AI_GENERATE_PREFIX)] == [2]
    assert summary.route == "ai_generate+batch"
    assert (summary.cached, summary.submitted, summary.succeeded) == (1, 4, 4)
    assert summary.ai_generate_statements == 1
    assert AI_GENERATE_PREFIX + "inv-1/1-1" in summary.job_names
    assert AI_GENERATE_PREFIX + "inv-0/1-1" not in summary.job_names


def test_a_running_job_whose_shard_is_gone_stops_the_model_naming_the_job():
    # The shard expired (or was dropped) under a running job: its 3 requests would look
    # pending and go into a second job.
    build = Build(3, shard_size=10)
    build.ledger.record_submitted(LedgerEntry(
        job_name="projects/p/locations/l/batchPredictionJobs/77", dbt_model=UNIQUE_ID,
        model_relation="p.ds.reviews", shard_table="p.ds.reviews__shard_gone_0",
        output_table="p.ds.reviews__output_gone_0", gemini_model="gemini-2.5-flash",
        location=LOCATION, state="RUNNING", request_count=3))
    summary = build.run()
    assert build.route.submitted == []
    assert summary.error is not None
    assert "the shard table p.ds.reviews__shard_gone_0 of job 77 (RUNNING) is gone" in (
        summary.error)
    assert "gemini-batch wait" in summary.error


# -- the queue deadline (max_queue_hours) --------------------------------------------


def _requests_of(build: Build, index: int) -> list[str]:
    return build.route.jobs[build.route.submitted[index]].requests


def test_a_job_queued_past_max_queue_hours_is_cancelled_and_a_new_job_sends_its_requests():
    build = Build(3, max_queue_hours=24)
    build.route.outcome = {0: {"queued_hours": 30}}
    summary = build.run()
    assert summary.error is None and summary.failed_jobs == []
    first, second = build.route.submitted
    assert build.route.cancelled == [first]
    # Only once the service said CANCELLED was the second job made, with every request.
    assert _requests_of(build, 1) == ["r000", "r001", "r002"]
    assert (summary.jobs, summary.submitted, summary.succeeded, summary.pending) == (2, 6, 3, 0)
    [cancel] = summary.queue_cancelled
    assert (cancel.job_id, round(cancel.queued_hours), cancel.max_queue_hours,
            cancel.requests, cancel.answered, cancel.resent_by) == ("1", 30, 24, 3, 0, "batch")
    row = build.ledger.rows[first]
    assert (row.state, row.merged_at is not None) == ("CANCELLED", True)
    assert row.error == ("cancelled: queued 30.0 h, past max_queue_hours 24; its requests "
                         "went to a new job")
    assert build.ledger.rows[second].state == "SUCCEEDED"
    assert any("still QUEUED after 30.0 h, past max_queue_hours 24: cancelled" in line
               for line in build.reporter.lines)
    assert build.job_tables() == []


def test_what_a_cancelled_job_answered_before_the_cancel_landed_is_merged_not_resent():
    build = Build(3, max_queue_hours=24)
    build.route.outcome = {0: {"queued_hours": 30, "ran": ("r000",)}}
    summary = build.run()
    assert _requests_of(build, 1) == ["r001", "r002"]  # r000's answer is kept, not paid twice
    assert summary.queue_cancelled[0].answered == 1
    assert (summary.succeeded, summary.pending) == (3, 0)
    assert build.ledger.rows[build.route.submitted[0]].succeeded_count == 1


def test_a_second_cancel_for_the_queue_in_one_build_leaves_the_requests_pending():
    build = Build(3, max_queue_hours=24)
    build.route.outcome = {0: {"queued_hours": 30}, 1: {"queued_hours": 25}}
    summary = build.run()
    assert len(build.route.submitted) == 2  # no third job
    assert build.route.cancelled == build.route.submitted
    assert (summary.succeeded, summary.pending) == (0, 3)
    assert [cancel.resent_by for cancel in summary.queue_cancelled] == ["batch", None]
    assert summary.failed_jobs == [
        "2 was cancelled for the queue again: its 3 requests were not sent a third time"]
    assert build.ledger.rows[build.route.submitted[1]].error.endswith(
        "its requests stay pending (a second cancel in one build)")
    # The next build sends them again.
    again = build.run()
    assert (again.succeeded, again.pending, len(build.route.submitted)) == (3, 0, 3)


def test_a_no_wait_build_cancels_and_the_next_one_merges_and_sends_again():
    build = Build(3, max_queue_hours=24)
    build.route.outcome = {0: {"queued_hours": 30}}
    build.run(wait=False)  # submits
    second = build.run(wait=False)  # polls it: past the deadline, cancelled, still in flight
    [first] = build.route.submitted
    assert build.route.cancelled == [first] and second.in_flight_jobs == [first]
    assert build.ledger.rows[first].error == "cancelled: queued 30.0 h, past max_queue_hours 24"
    third = build.run(wait=False)  # merges it (the reason read from the ledger), sends again
    assert [cancel.resent_by for cancel in third.queue_cancelled] == ["batch"]
    assert len(build.route.submitted) == 2 and third.failed_jobs == []
    assert build.run().succeeded == 3


def test_route_auto_sends_the_requests_of_a_cancelled_job_through_ai_generate():
    # Six requests, over ai_generate_max_rows=3: two batch jobs; the first is stuck.
    build = Build(6, max_queue_hours=24, route="auto", ai_generate_max_rows=3, shard_size=3)
    build.route.outcome = {0: {"queued_hours": 30}}
    summary = build.run()
    assert build.ai_generate_runs == [["r000", "r001", "r002"]]
    assert len(build.route.submitted) == 2  # no job for the cancelled one's requests
    assert summary.queue_cancelled[0].resent_by == "ai_generate"
    assert (summary.succeeded, summary.pending, summary.route) == (6, 0, "ai_generate+batch")
    assert summary.ai_generate_statements == 1
    assert build.ledger.rows[build.route.submitted[0]].error.endswith(
        "its requests went to AI.GENERATE")


def test_route_auto_over_ai_generate_max_rows_sends_them_by_a_new_job():
    build = Build(3, max_queue_hours=24, route="auto", ai_generate_max_rows=2)
    build.route.outcome = {0: {"queued_hours": 30}}
    summary = build.run()
    assert build.ai_generate_runs == [[]]  # the run sent none: 3 pending, over the cap
    assert _requests_of(build, 1) == ["r000", "r001", "r002"]
    assert summary.queue_cancelled[0].resent_by == "batch"
    assert (summary.succeeded, summary.pending) == (3, 0)


def test_a_job_under_its_deadline_or_running_is_not_cancelled():
    build = Build(3, max_queue_hours=24)
    build.route.outcome = {0: {"queued_hours": 23}}
    real_status = build.route.status
    polls = itertools.count()

    def status(entry: LedgerEntry) -> JobStatus:
        if next(polls) == 3:
            build.route.release()  # it runs after a few polls under its deadline
        return real_status(entry)

    build.route.status = status  # type: ignore[method-assign]
    summary = build.run()
    assert build.route.cancelled == [] and summary.queue_cancelled == []
    assert (summary.jobs, summary.succeeded) == (1, 3)
