"""Runs batch prediction jobs: source → engine → sink, as the service does. A source is
an input table or JSONL files in Cloud Storage, a sink an output table or a folder of
prediction files (job_io.py; table_io.py, jsonl.py); only ``_source`` and ``_sink``
know which.

Each job runs in its own thread: QUEUED (waiting for a slot, plus any injected queue
delay; 72 hours queued: EXPIRED) → PENDING (opens the source and the sink: checks the
input, creates the output table or names the output folder) → (PAUSED while the setting
says so) → RUNNING (pages of input rows through the engine, written to the sink by load
jobs or files, and counted in ``completionStats``; 24 hours running: CANCELLED) →
SUCCEEDED, PARTIALLY_SUCCEEDED, FAILED, CANCELLED or EXPIRED. Time is emulated
(clock.py), so tests reach those limits in seconds. Rows answered before a cancel are
written before the job ends, and the process holds about three pages of a job at most,
whatever the input's size.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from gemini_batch.local.vertex.clock import QUEUE_LIMIT_SECONDS, RUN_LIMIT_SECONDS, Stopwatch
from gemini_batch.local.vertex.engines import Engine
from gemini_batch.local.vertex.errors import (
    CANCELLED,
    DEADLINE_EXCEEDED,
    INTERNAL,
    INVALID_ARGUMENT,
    Cancelled,
    JobFailure,
    RunLimitReached,
)
from gemini_batch.local.vertex.faults import Faults
from gemini_batch.local.vertex.generate import Call, answer
from gemini_batch.local.vertex.job_io import Sink, Source
from gemini_batch.local.vertex.jsonl import JsonlSink, JsonlSource, storage_client
from gemini_batch.local.vertex.models import model_id
from gemini_batch.local.vertex.requests import batch_refusal
from gemini_batch.local.vertex.store import TERMINAL_STATES, JobNotFound, JobStore, timestamp
from gemini_batch.local.vertex.table_io import TableSink, TableSource
from gemini_batch.local.vertex.tables import BigQueryError, BigQueryRest
from gemini_batch.rules.catalog import MAX_REQUESTS_PER_JOB

if TYPE_CHECKING:
    from google.cloud import storage

log = logging.getLogger(__name__)

# Rows read per page (Storage Read stream, tabledata.list page or lines) and written per
# load job (output.OutputWriter also starts a load on size and time).
PAGE_SIZE = 25_000


class JobRunner:
    """Starts, runs, cancels and recovers jobs; at most ``max_running`` run at once."""

    def __init__(
        self,
        store: JobStore,
        *,
        bigquery_endpoint: str,
        bigquery_grpc_endpoint: str | None = None,
        engine: Engine,
        faults: Callable[[], Faults],
        max_running: int = 4,
        page_size: int = PAGE_SIZE,
        storage_endpoint: str | None = None,
        project: str = "local-project",
    ) -> None:
        self._store = store
        self._storage_endpoint = storage_endpoint
        self._project = project
        self._bigquery_endpoint = bigquery_endpoint
        self._bigquery_grpc_endpoint = bigquery_grpc_endpoint
        self._engine = engine
        self._faults = faults
        self._slots = threading.BoundedSemaphore(max_running)
        self._page_size = page_size
        self._cancel_events: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ control

    def start(self, job_id: str, *, queued_for: float = 0.0) -> None:
        """Run a job in a thread of its own; ``queued_for``: emulated seconds it counts
        as queued already (fault backdate: its createTime is that far back)."""
        with self._lock:
            self._cancel_events[job_id] = threading.Event()
            thread = threading.Thread(
                target=self._run, args=(job_id, queued_for), name=f"job-{job_id}",
                daemon=True,
            )
            self._threads[job_id] = thread
        thread.start()

    def cancel(self, job_id: str) -> None:
        """Ask a job to stop; it becomes CANCELLED once the rows done so far are written."""
        with self._lock:
            event = self._cancel_events.get(job_id)
        if event is not None:
            event.set()

    def recover(self) -> None:
        """After a restart: queued jobs run again, running ones end FAILED with a reason."""
        for job_id, job in self._store.all():
            state = job["state"]
            if state in TERMINAL_STATES:
                continue
            if state in ("JOB_STATE_QUEUED", "JOB_STATE_PENDING", "JOB_STATE_PAUSED"):
                self._store.update(job_id, state="JOB_STATE_QUEUED")
                self.start(job_id)
            elif state == "JOB_STATE_CANCELLING":
                self._finish(
                    job_id,
                    "JOB_STATE_CANCELLED",
                    {
                        "code": CANCELLED,
                        "message": "The job was cancelled; the emulator restarted while it "
                        "was cancelling. Rows written before that are in the output table.",
                    },
                )
            else:
                self._finish(
                    job_id,
                    "JOB_STATE_FAILED",
                    {
                        "code": INTERNAL,
                        "message": "The Vertex AI emulator restarted while this job was running "
                        f"({_rows_done(job)} rows had been written to the output table). "
                        "Submit the rows that have no answer in a new job.",
                    },
                )

    # ------------------------------------------------------------------ a job

    def _run(self, job_id: str, queued_for: float = 0.0) -> None:
        cancel = self._cancel_events[job_id]
        faults = self._faults()
        queued = Stopwatch(faults.time_scale, already=queued_for)
        bigquery = BigQueryRest(self._bigquery_endpoint, grpc_endpoint=self._bigquery_grpc_endpoint)
        try:
            self._queued(job_id, cancel, faults, queued)
            self._take_slot(cancel, queued)
            try:
                self._check_cancel(cancel)
                self._store.update(job_id, state="JOB_STATE_PENDING")
                job = self._store.get(job_id)
                plan = self._prepare(job, bigquery, faults)
                self._paused(job_id, cancel)
                self._check_cancel(cancel)
                self._store.update(
                    job_id,
                    state="JOB_STATE_RUNNING",
                    startTime=timestamp(),
                    outputInfo=plan.output_info,
                    completionStats=_stats(0, 0, _incomplete(faults, plan.total_rows)),
                )
                self._process(job_id, plan, bigquery, cancel, faults)
            finally:
                self._slots.release()
        except Cancelled as stop:
            done = _rows_done(self._store.get(job_id))
            why = "The job was cancelled."
            if isinstance(stop, RunLimitReached):
                why = ("The job ran for 24 hours, the limit of a batch prediction job, and was "
                       "cancelled; submit the rows without an answer in a new job.")
            self._finish(
                job_id,
                "JOB_STATE_CANCELLED",
                {
                    "code": CANCELLED,
                    "message": f"{why} The {done} rows finished before that are in the "
                    "output table.",
                },
            )
        except JobFailure as failure:
            self._finish(job_id, failure.state, {"code": failure.code, "message": failure.message})
        except JobNotFound:
            pass  # deleted while it ran
        except BigQueryError as exc:
            self._finish(
                job_id,
                "JOB_STATE_FAILED",
                {"code": INTERNAL, "message": f"A BigQuery call failed: {exc}"},
            )
        except Exception as exc:  # an emulator bug must still end the job, not hang it
            log.exception("job %s crashed", job_id)
            self._finish(
                job_id,
                "JOB_STATE_FAILED",
                {
                    "code": INTERNAL,
                    "message": f"Internal error in the Vertex AI emulator: {exc!r}",
                },
            )
        finally:
            bigquery.close()
            with self._lock:
                self._cancel_events.pop(job_id, None)
                self._threads.pop(job_id, None)

    def _queued(
        self, job_id: str, cancel: threading.Event, faults: Faults, clock: Stopwatch
    ) -> None:
        """Wait out the queue delay (emulated seconds): 72 hours of it and the job expires."""
        limit = QUEUE_LIMIT_SECONDS  # from createTime: a backdated job has waited already
        if clock.wait_until(min(faults.queue_delay, limit), cancel):
            raise Cancelled
        # Read live, not from the snapshot: clearing `hold` (or naming the job in
        # `released`) lets the jobs it holds go on.
        while self._faults().holds(job_id):
            if cancel.wait(0.05):
                raise Cancelled
        if faults.job_outcome == "EXPIRED":
            raise _expired(" (fault injected by the local emulator)")
        if clock.already + faults.queue_delay >= limit:
            raise _expired()
        if faults.job_outcome == "FAILED":
            raise JobFailure(
                INTERNAL,
                "Internal error occurred. Please retry in a few minutes. If you still "
                "experience errors, contact Vertex AI (fault injected by the local emulator).",
            )

    def _take_slot(self, cancel: threading.Event, clock: Stopwatch) -> None:
        """Wait for a running slot (``max_running``); a job queued 72 hours expires."""
        while not self._slots.acquire(timeout=0.1):
            self._check_cancel(cancel)
            if clock.elapsed() >= QUEUE_LIMIT_SECONDS:
                raise _expired()

    def _paused(self, job_id: str, cancel: threading.Event) -> None:
        """PAUSED, not an end, while the live setting ``job_outcome`` is PAUSED."""
        if self._faults().job_outcome != "PAUSED":
            return
        self._store.update(job_id, state="JOB_STATE_PAUSED")
        while self._faults().job_outcome == "PAUSED":
            if cancel.wait(0.1):
                raise Cancelled

    @staticmethod
    def _check_cancel(cancel: threading.Event) -> None:
        if cancel.is_set():
            raise Cancelled

    @staticmethod
    def _pace(clock: Stopwatch, faults: Faults, done: int, total: int,
              cancel: threading.Event) -> None:
        """Spread the rows over ``run_seconds`` (emulated); cut the job at 24 hours."""
        target = faults.run_seconds * (done / total if total else 1.0)
        if clock.wait_until(min(target, RUN_LIMIT_SECONDS), cancel):
            raise Cancelled
        if done < total and clock.elapsed() >= RUN_LIMIT_SECONDS:
            raise RunLimitReached

    def _prepare(self, job: dict[str, Any], bigquery: BigQueryRest, faults: Faults) -> _Plan:
        """Open the source, then the sink; JobFailure names what is wrong."""
        source = self._source(job, bigquery)
        if source.total_rows > MAX_REQUESTS_PER_JOB:
            raise JobFailure(INVALID_ARGUMENT, source.too_many(MAX_REQUESTS_PER_JOB))
        return _Plan(source=source, sink=self._sink(job, bigquery, source, faults),
                     model=model_id(job["model"]) or job["model"])

    # The server takes a table input with a table output, and files with files.
    def _source(self, job: dict[str, Any], bigquery: BigQueryRest) -> Source:
        if "gcsSource" in job["inputConfig"]:
            return JsonlSource(self._storage(), job).open()
        return TableSource(bigquery, job).open()

    def _sink(self, job: dict[str, Any], bigquery: BigQueryRest, source: Source,
              faults: Faults) -> Sink:
        drop = faults.drop_output
        if "gcsDestination" in job["outputConfig"]:
            return JsonlSink(self._storage(), job, drop_output=drop,
                             keep_input_fields=faults.keep_input_fields,
                             request_shape=getattr(source, "request_shape", None)).open()
        return TableSink(bigquery, job, drop_output=drop).open(source.columns)

    def _storage(self) -> storage.Client:
        return storage_client(self._storage_endpoint, self._project)

    def _process(
        self,
        job_id: str,
        plan: _Plan,
        bigquery: BigQueryRest,
        cancel: threading.Event,
        faults: Faults,
    ) -> None:
        started = time.perf_counter()
        running = Stopwatch(faults.time_scale)
        answering = 0.0
        chunk_size = _chunk_size(self._engine, faults)
        # Reading, answering and writing overlap: the next page is fetched while this one
        # is answered, and answered rows are written in another thread, so the process
        # holds at most about three pages.
        pages = _Prefetch(plan.source.pages(self._page_size), plan.source.name)
        output = plan.sink.writer(page_size=self._page_size, thread_name=f"write-{job_id}")
        # On the way out, also when cancelled: stop reading, write the rows answered.
        with output, closing(pages):
            for page in pages:
                for start in range(0, len(page), chunk_size):
                    self._check_cancel(cancel)
                    chunk = page[start : start + chunk_size]
                    clock = time.perf_counter()
                    rows, succeeded = self._answer(job_id, plan, chunk, output.rows, faults)
                    answering += time.perf_counter() - clock
                    output.add(rows, succeeded=succeeded)
                    self._store.update(
                        job_id,
                        completionStats=_stats(
                            output.succeeded,
                            output.failed,
                            _incomplete(faults, max(0, plan.total_rows - output.rows)),
                        ),
                    )
                    self._pace(running, faults, output.rows, plan.total_rows, cancel)
            self._pace(running, faults, plan.total_rows, plan.total_rows, cancel)
        log.info(
            "job %s: %d rows in %.1fs (waiting for reads %.1fs, answering %.1fs, "
            "waiting for writes %.1fs)",
            job_id,
            output.rows,
            time.perf_counter() - started,
            pages.wait_seconds,
            answering,
            output.wait_seconds,
        )
        self._check_cancel(cancel)
        if output.failed and not output.succeeded:
            raise JobFailure(
                INTERNAL, f"All {output.failed} requests failed; {plan.sink.errors_where}."
            )
        self._finish(
            job_id, "JOB_STATE_PARTIALLY_SUCCEEDED" if output.failed else "JOB_STATE_SUCCEEDED"
        )

    def _answer(
        self,
        job_id: str,
        plan: _Plan,
        rows: list[dict[str, Any]],
        first_row: int,
        faults: Faults,
    ) -> tuple[list[dict[str, Any]], int]:
        """Output rows for ``rows`` (input columns + response, status, processed_time)."""
        calls = [
            Call(row["request"], job_id, number, plan.source.place(row, number))
            for number, row in enumerate(rows, start=first_row)
        ]
        if faults.row_latency:
            time.sleep(faults.row_latency * len(rows) / faults.time_scale)
        processed_time = time.time_ns() // 1000  # TIMESTAMP, in microseconds
        results = answer(calls, engine=self._engine, faults=faults, model=plan.model,
                         refuse=batch_refusal,
                         created=datetime.fromtimestamp(processed_time / 1e6, UTC))
        succeeded = 0
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, str):
                row["response"], row["status"] = None, result
            else:
                row["response"] = orjson.dumps(result, option=orjson.OPT_SORT_KEYS).decode()
                row["status"] = ""
                succeeded += 1
            row["processed_time"] = processed_time
        return rows, succeeded

    def _finish(self, job_id: str, state: str, error: dict[str, Any] | None = None) -> None:
        """End the job. startTime stays unset if it never ran, as the service leaves it."""
        try:
            job = self._store.get(job_id)
        except JobNotFound:
            return
        stats = job.get("completionStats")
        if stats and state in ("JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"):
            stats = {**stats, "incompleteCount": "0"}
        self._store.update(
            job_id, state=state, error=error, endTime=timestamp(), completionStats=stats
        )


@dataclass(frozen=True)
class _Plan:
    source: Source
    sink: Sink
    model: str

    @property
    def total_rows(self) -> int:
        return self.source.total_rows

    @property
    def output_info(self) -> dict[str, str]:
        return self.sink.output_info


def _expired(note: str = "") -> JobFailure:
    return JobFailure(
        DEADLINE_EXCEEDED,
        "The job stayed queued for 72 hours, the limit of a batch prediction job, and expired "
        f"without processing any request{note}. Submit it again.",
        state="JOB_STATE_EXPIRED",
    )


def _incomplete(faults: Faults, rows_left: int) -> int:
    """What completionStats.incompleteCount says while a job runs (-1: not known)."""
    return -1 if faults.incomplete_unknown else rows_left


def _rows_done(job: dict[str, Any]) -> int:
    stats = job.get("completionStats", {})
    return int(stats.get("successfulCount", 0)) + int(stats.get("failedCount", 0))


def _stats(succeeded: int, failed: int, incomplete: int) -> dict[str, str]:
    # int64 fields are strings in the REST API's JSON.
    return {
        "successfulCount": str(succeeded),
        "failedCount": str(failed),
        "incompleteCount": str(incomplete),
    }


def _chunk_size(engine: Engine, faults: Faults) -> int:
    """Rows answered between cancel checks and progress updates: small when rows are slow."""
    return 10 if faults.row_latency or faults.run_seconds else engine.batch_size


class _Prefetch(Iterator[list[dict[str, Any]]]):
    """Reads the next page in a background thread while the current one is processed.

    At most one page waits in the queue. A read error surfaces in the consumer as a
    JobFailure naming the table or files; ``close`` stops the reader at its next page.
    ``wait_seconds`` is how long the consumer waited for pages.
    """

    _DONE = object()

    def __init__(self, pages: Iterator[list[dict[str, Any]]], source: str) -> None:
        self._source = source
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self.wait_seconds = 0.0
        self._thread = threading.Thread(target=self._fill, args=(pages,), daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, pages: Iterator[list[dict[str, Any]]]) -> None:
        try:
            for page in pages:
                if not self._put(page):
                    return
            self._put(self._DONE)
        except Exception as exc:  # handed to the consumer
            self._put(exc)

    def __next__(self) -> list[dict[str, Any]]:
        started = time.perf_counter()
        item = self._queue.get()
        self.wait_seconds += time.perf_counter() - started
        if item is self._DONE:
            raise StopIteration
        if isinstance(item, Exception):
            raise JobFailure(INTERNAL, f"Reading the input {self._source} failed: {item}")
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        self._stop.set()
