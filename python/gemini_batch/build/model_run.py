"""One batch model's jobs in one build: resume, count, submit rounds, wait, merge.

Talks to BigQuery (ledger, warehouse) and to the model's route (routes/base.py) only.
Every job is in the ledger before anything waits on it; answers are merged as each job
ends. A stage's ``ModelRun``s run side by side (a thread each); their closing counts
(:meth:`ModelRun.report`) run beside the next dbt stage.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.api_core.exceptions import GoogleAPICallError

from gemini_batch.build import canary
from gemini_batch.build.answers_loop import AnswersLoop
from gemini_batch.build.context import BatchContext
from gemini_batch.build.orphans import record_orphans
from gemini_batch.build.queue_deadline import QueueDeadline
from gemini_batch.build.summary import ModelSummary, Reporter, all_failed_reason, counted
from gemini_batch.build.workspace import Workspace
from gemini_batch.clients.polling import Backoff
from gemini_batch.clients.vertex import JobStatus, job_labels
from gemini_batch.errors import BuildInterrupted, ConfigError, GeminiBatchError
from gemini_batch.routes.choice import route_for
from gemini_batch.rules import bill, pricing
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.ledger import LedgerEntry, LedgerUpdates
from gemini_batch.state.warehouse import RequestCounts, Shard

if TYPE_CHECKING:
    from gemini_batch.routes.base import Route

# Which route a model's jobs take in a location (routes/choice.py; a test gives a fake).
RouteChooser = Callable[[Workspace, BatchModel, str], "Route"]


def new_run_id() -> str:
    """Short and sortable, e.g. 20261125t063012_ab12: names one round's shard tables."""
    return f"{datetime.now(UTC):%Y%m%dt%H%M%S}_{secrets.token_hex(2)}"


@dataclass
class _Tracked:
    """A job this build waits on."""

    entry: LedgerEntry
    route: Route  # the one that made the job: polls, collects and cleans up after it
    backoff: Backoff
    next_poll: float = 0.0
    status: JobStatus | None = None
    rows_back: int = 0  # rows of its output merged (answers and row errors)
    answered: int = 0  # of them, answers


class ModelRun:
    """The jobs of one batch model in one build: resume, count, submit rounds, merge."""

    def __init__(
        self, ctx: BatchContext, model: BatchModel, *, routes: RouteChooser = route_for
    ) -> None:
        self.ctx = ctx
        self.ws = ctx.workspace
        self.model = model
        assert ctx.reporter is not None, "set ctx.reporter before running jobs"
        self.reporter: Reporter = ctx.reporter
        self.summary = ModelSummary(model=model.name,
                                    max_queue_hours=model.config.max_queue_hours)
        self._live_shards: list[str] = []
        # What report() needs: the answers before this build's jobs, and the counts if
        # nothing changed since they were taken (None: count again).
        self._cached_before = 0
        self._counts: RequestCounts | None = None
        self._routes = routes
        self.route: Route  # the model's route, chosen once its location is known (_run)
        self._loop = AnswersLoop(ctx, model, self._say)
        # Jobs still queued past max_queue_hours: cancelled, their requests sent again.
        self._deadline = QueueDeadline(model, self.ws.ledger, self.summary, self._say,
                                       ctx.ai_generate)

    def _say(self, text: str) -> None:
        self.reporter.message(self.model.name, text)

    def _location(self) -> str:
        dataset_location = self.ws.bq.dataset_location(self.model.project, self.model.dataset)
        return self.model.job_location(dataset_location)

    def _count(self, live: list[LedgerEntry] | None = None) -> RequestCounts:
        """Counts of the model's requests; reads the live jobs' shard tables once (of
        ``live``, the live jobs if just read), and keeps them for the round that follows
        (nothing is submitted in between)."""
        self._live_shards = self.ws.ledger.live_shard_tables(self.model.unique_id, live)
        return self.ws.warehouse.counts(self.model, self._live_shards)

    def _sleep(self, seconds: float) -> None:
        if self.ctx.stop.wait(max(0.0, seconds)):
            raise BuildInterrupted("interrupted")

    # -- the flow ------------------------------------------------------------------

    def run(self) -> ModelSummary:
        """The model's jobs: resume, submit rounds, wait, merge. Then :meth:`report`."""
        with self._noted():
            self._run()
        return self.summary

    def collect(self, entry: LedgerEntry) -> ModelSummary:
        """Merge one ended job of the model (``gemini-batch collect``): as a build does."""
        with self._noted():
            self.route = self._routes(self.ws, self.model, self._location())
            self._wait([self._track(entry, announce=True)], queue=[])
        return self.summary

    def report(self) -> ModelSummary:
        """The summary's closing counts and failure reasons, once the jobs are merged
        (nothing if :meth:`run` stopped on an error)."""
        if self.summary.error is None:
            with self._noted():
                counts = self._count() if self._counts is None else self._counts
                self._finish_summary(counts, self._cached_before)
        return self.summary

    @contextlib.contextmanager
    def _noted(self) -> Iterator[None]:
        """An error of the model goes to its summary (an interruption goes on up); the
        time it took adds to its wall time."""
        started = time.monotonic()
        try:
            yield
        except BuildInterrupted:
            self.summary.interrupt()
            raise
        except GeminiBatchError as exc:
            self.summary.error = str(exc)
        except GoogleAPICallError as exc:
            self.summary.error = f"{type(exc).__name__} from Google Cloud: {exc.message or exc}"
        finally:
            self.summary.wall_seconds += time.monotonic() - started

    def _run(self) -> None:
        model = self.model
        self.ws.warehouse.check_tables(model)
        location = self._location()
        self.route = self._routes(self.ws, model, location)
        # What AI.GENERATE answered in the model's dbt run just before (route ai_generate
        # or auto) is this build's: the rest is sent by batch jobs.
        by_ai_generate = self.summary.add_ai_generate(
            self.ws.ledger.ai_generate_entries(model.unique_id, self.ctx.invocation_id))
        live = self.ws.ledger.live_jobs(model.unique_id)
        if self._loop.datasets and self._count(live).pending:  # copies, before any count
            self.summary.reused = self._loop.copy_answers(self._live_shards, location)
        cached_before: int | None = None
        if live:
            cached_before = self._count().cached
            resumed = sum(entry.request_count for entry in live)
            self._say(f"resuming {counted(len(live), 'job')} of an earlier build "
                      f"({counted(resumed, 'request')})")
            self.summary.resumed = resumed
            waited = self._wait([self._track(entry, announce=True) for entry in live], queue=[])
            self._deadline.resend()  # jobs cancelled for the queue: the rounds send again
            # Merged once waited on, unless unreadable (live); --no-wait leaves some running.
            live = ([job.entry for job in waited if job.entry.is_live] if self.ctx.settings.wait
                    else self.ws.ledger.live_jobs(model.unique_id))

        counts = self._count(live)
        if counts.invalid:  # marking scans every request: only when there is one to mark
            invalid = self.ws.warehouse.mark_invalid(model)
            self.summary.invalid_examples = [f"{row}: {reason}" for row, reason in invalid.examples]
            are = "is" if counts.invalid == 1 else "are"
            self._say(f"{counted(counts.invalid, 'invalid request')} {are} not submitted "
                      f"(e.g. {'; '.join(self.summary.invalid_examples)})")
            counts = self._count()
        if counts.pending and self._adopt_orphans():
            counts = self._count()
        if cached_before is None:
            cached_before = counts.cached
        cached_before -= by_ai_generate

        final: RequestCounts | None = counts
        attempt = 0
        while attempt <= model.config.max_retries:
            if (sendable := self._loop.to_send(counts, self._live_shards)) == 0:
                break
            if not self.ctx.settings.wait and self._free_slots() == 0:
                break  # every slot holds a running job: the next build submits
            word = canary.gate(self.ws.ledger, self.ws.warehouse, model, sendable, self._say)
            if word.hold or word.stop:
                self.summary.canary_stopped = word.stop
                break
            if attempt and not word.sample:
                pending = counted(sendable, "request")
                self._say(f"retry round {attempt}: {pending} still pending")
            round_ok, all_answered = self._submit_round(self.route, counts, word.sample)
            if self._deadline.resend():  # its jobs cancelled for the queue: a round more
                counts = final = self._count()
                continue
            if word.sample:  # not a retry: the next turn's verdict decides what follows
                counts = final = self._count()
                if round_ok and self.ctx.settings.wait:
                    continue
                break
            attempt += 1
            if all_answered and self.ctx.settings.wait:
                # Every request the round cut (all that were pending) has its answer:
                # no retry to decide; report() counts.
                final = None
                break
            counts = final = self._count()
            if not round_ok or not self.ctx.settings.wait:
                # Nothing came back from a job (another round would fail alike), or the
                # build does not wait: a later build merges this round and retries.
                break

        self._counts, self._cached_before = final, cached_before

    def _adopt_orphans(self) -> bool:
        """Merge jobs of this model the ledger does not know, waiting on live ones
        (orphans.py): their requests would otherwise be sent again."""
        adopted = record_orphans(self.ws, self.model, self.route, self._say)
        if adopted:
            self.summary.resumed += sum(entry.request_count for entry in adopted)
            self._wait([self._track(entry, announce=True) for entry in adopted], queue=[])
        return bool(adopted)

    def _finish_summary(self, counts: RequestCounts, cached_before: int) -> None:
        self.summary.requests = counts.unique
        self.summary.cached = cached_before
        self.summary.succeeded = counts.cached - cached_before
        self.summary.failed = counts.failed
        self.summary.invalid = counts.invalid
        self.summary.pending = counts.pending + counts.in_flight
        self.summary.outside_sample = counts.pending - self._loop.to_send(counts, self._live_shards)
        if counts.failed:
            self.summary.failure_reasons = self.ws.warehouse.failure_reasons(self.model)

    def _submit_round(self, route: Route, counts: RequestCounts, sample: int = 0
                      ) -> tuple[bool, bool]:
        """One round (a canary: the ``sample`` lowest request_ids only): shards, jobs, wait,
        merge. Whether every job brought rows back, and every request cut has its answer."""
        model, ws = self.model, self.ws
        problem = pricing.model_problem(model, route.location, ws.prices)
        if problem:  # before any job is created: the service would refuse every one
            raise ConfigError(problem)
        run_id = new_run_id() + (canary.CANARY_RUN_SUFFIX if sample else "")
        # One read of the pending requests: the estimate is of exactly what is cut.
        with contextlib.ExitStack() as tables:
            snapshot, whole, estimate = canary.priced_round(
                tables, ws, model, run_id, self._live_shards, sample, self._loop.sample)
            if self.summary.estimated_cost_usd is None:  # the build's first round
                self.summary.estimated_cost_usd = whole.usd
                if whole.thinking_trap:
                    self._say(f"warning: {whole.thinking_trap}")
            pricing.check_budget(model, estimate, spent_usd=self.summary.cost_usd)
            shards = ws.warehouse.cut_shards(model, run_id, snapshot)
        if not shards:
            return True, False
        usd = f", est. ${estimate.usd:,.4f}" if estimate.usd is not None else ""
        self._say(
            ("canary: " if sample else "")
            + f"{counted(sum(s.rows for s in shards), 'request')} in {counted(len(shards), 'job')} "
            f"(~{estimate.input_tokens:,} input / ~{estimate.output_tokens:,} output tokens, "
            f"{estimate.thinking_tokens:,} of them thinking{usd})"
        )
        queue = [
            (shard, (estimate.usd or 0.0) * shard.rows / max(estimate.requests, 1))
            for shard in shards
        ]
        jobs = self._wait([], queue=queue, route=route, run_id=run_id)
        answered = sum(job.answered for job in jobs) == sum(shard.rows for shard in shards)
        return all(job.rows_back for job in jobs), answered

    # -- submit and wait -----------------------------------------------------------

    def _submit(self, route: Route, run_id: str, shard: Shard, estimated_usd: float
                ) -> _Tracked:
        ctx, model = self.ctx, self.model
        output_table = model.output_table(run_id, shard.index)
        labels = job_labels(
            model_name=model.name, invocation_id=ctx.invocation_id, extra=model.config.labels,
        )
        status = route.submit(shard, output_table=output_table, labels=labels)
        entry = LedgerEntry(
            job_name=status.name, job_id=status.job_id, dbt_model=model.unique_id,
            model_relation=model.view, invocation_id=ctx.invocation_id,
            shard_table=shard.table, output_table=output_table,
            gemini_model=model.config.gemini_model, location=route.location,
            state=status.state, request_count=shard.rows, estimated_cost_usd=estimated_usd,
        )
        try:
            self.ws.ledger.record_submitted(entry)
        except Exception:
            # A job the ledger does not know could be paid for twice: take it back.
            route.cancel(status)
            raise
        self.summary.submitted += shard.rows
        self.summary.jobs += 1
        self.reporter.job_started(model.name, status.name, shard.rows)
        tracked = self._track(entry, route)
        tracked.status = status
        # The create call just said where the job is: the first poll can wait.
        tracked.next_poll = time.monotonic() + tracked.backoff.next_delay()
        return tracked

    def _track(self, entry: LedgerEntry, route: Route | None = None, *,
               announce: bool = False) -> _Tracked:
        """Start waiting on a job (made by ``route``, else by the model's); ``announce``
        one this build did not submit."""
        self.summary.job_names.append(entry.job_name)
        self.summary.took("batch")
        if announce:
            self.reporter.job_started(self.model.name, entry.job_name, entry.request_count,
                                      resumed=True)
        settings = self.ctx.settings
        return _Tracked(entry=entry, route=route or self.route,
                        backoff=Backoff(settings.poll_initial, settings.poll_max))

    def _free_slots(self) -> int:
        return max(0, self.model.config.max_concurrent_jobs - len(self.summary.in_flight_jobs))

    def _wait(self, active: list[_Tracked], *, queue: list[tuple[Shard, float]],
              route: Route | None = None, run_id: str | None = None) -> list[_Tracked]:
        """Submit ``queue`` with at most max_concurrent_jobs in flight; wait until every
        job ended and is merged. Returns every job handled.

        State and count changes reach the ledger together, at most every
        ``ledger.FLUSH_SECONDS`` and before returning (a submit and a merge write theirs
        at once). Left by an error, what is held is dropped: the ledger has every job,
        and the next build polls each again."""
        if not self.ctx.settings.wait:
            return self._poll_once(active, queue=queue, route=route, run_id=run_id)
        handled = list(active)
        active = list(active)
        queue = list(queue)
        limit = self.model.config.max_concurrent_jobs
        updates = LedgerUpdates(self.ws.ledger)
        while active or queue:
            while queue and len(active) < limit:
                shard, usd = queue.pop(0)
                assert route is not None and run_id is not None
                tracked = self._submit(route, run_id, shard, usd)
                active.append(tracked)
                handled.append(tracked)
            due = min(job.next_poll for job in active)
            self._sleep(due - time.monotonic())
            now = time.monotonic()
            for job in [j for j in active if j.next_poll <= now]:
                if self._poll(job, updates):
                    active.remove(job)
            updates.flush_if_due()
        updates.flush()
        return handled

    def _poll_once(self, active: list[_Tracked], *, queue: list[tuple[Shard, float]],
                   route: Route | None, run_id: str | None) -> list[_Tracked]:
        """--no-wait: poll each job once (merging the ended ones), submit what the free
        slots take, and leave the rest in flight for a later build. Shards no slot takes
        are dropped: their requests stay pending and go in a later round."""
        updates = LedgerUpdates(self.ws.ledger)
        running = [job for job in active if not self._poll(job, updates)]
        updates.flush()
        self.summary.in_flight_jobs.extend(job.entry.job_name for job in running)
        handled = list(active)
        for index, (shard, usd) in enumerate(queue):
            if self._free_slots() == 0:
                self.ws.bq.drop_tables(s.table for s, _ in queue[index:])
                break
            assert route is not None and run_id is not None
            tracked = self._submit(route, run_id, shard, usd)
            self.summary.in_flight_jobs.append(tracked.entry.job_name)
            handled.append(tracked)
        return handled

    def _poll(self, job: _Tracked, updates: LedgerUpdates) -> bool:
        """Poll once; True once the job ended and its output is merged. A change of a
        running job goes to ``updates``."""
        entry = job.entry
        if entry.is_terminal:  # ended while no build was watching: merge only
            status = JobStatus(
                name=entry.job_name, state=entry.state, error=entry.error,
                succeeded=entry.succeeded_count or 0, failed=entry.failed_count or 0,
            )
        else:
            status = job.route.status(entry)
            self._deadline.check(entry, job.route, status)  # queued past max_queue_hours?
        changed = job.status is None or status.progress != job.status.progress
        job.status = status
        self.reporter.job_update(self.model.name, status)
        if changed and not status.terminal:
            updates.set(
                entry.job_name, state=status.state,
                succeeded_count=status.succeeded, failed_count=status.failed,
            )
            job.backoff.reset()
        if not status.terminal:
            job.next_poll = time.monotonic() + job.backoff.next_delay()
            return False
        updates.discard(entry.job_name)  # the merge writes its final row
        self._merge(job, status)
        return True

    def _merge(self, job: _Tracked, status: JobStatus) -> None:
        """Collect an ended job's output into responses; ledger; clean up after it."""
        model, entry = self.model, job.entry
        ended_at = status.end_time or entry.ended_at or datetime.now(UTC)
        # Even a FAILED or EXPIRED job may have answered some rows: they were paid.
        merge = job.route.collect(entry)
        queued = self._deadline.ended(entry, status, merge)  # cancelled for the queue: why
        fields: dict[str, Any] = {"state": status.state, "ended_at": ended_at,
                                  "error": queued or status.error}
        if status.succeeded and (merge is None or not merge.succeeded + merge.failed):
            self._output_missing(job, status, fields)
            return
        note = status.state
        if merge is not None:
            usd = bill.actual_cost(entry.gemini_model, merge, prices=self.ws.prices)
            fields.update(
                succeeded_count=merge.succeeded, failed_count=merge.failed,
                prompt_tokens=merge.prompt_tokens, candidates_tokens=merge.candidates_tokens,
                thoughts_tokens=merge.thoughts_tokens, total_tokens=merge.total_tokens,
                actual_cost_usd=usd,
            )
            self.summary.tokens += merge.total_tokens
            self.summary.succeeded += merge.succeeded  # so far (report() counts)
            self.summary.cost_usd += usd or 0.0
            note = (f"{status.state}: merged {counted(merge.succeeded, 'answer')}, "
                    f"{counted(merge.failed, 'failed row')}, {merge.unanswered:,} unanswered"
                    + bill.answered_by_note(entry.gemini_model, merge.model_version,
                                               self.ws.prices))
            job.rows_back, job.answered = merge.succeeded + merge.failed, merge.succeeded
        if not status.answered:
            reason = queued or status.error or "no error given"
            if job.rows_back and not queued and not model.config.keep_job_tables:
                reason = all_failed_reason(model.view, entry.output_table)  # not the dropped table
            note = f"{note} ({reason})"
            if not job.rows_back and not queued:
                # Nothing came back: its requests stay pending, and the build failed.
                self.summary.failed_jobs.append(
                    f"{status.job_id} ended {status.state} without answers: {reason}"
                )
        fields["merged_at"] = datetime.now(UTC)
        self.ws.ledger.update(entry.job_name, **fields)
        job.entry = replace(entry, state=status.state, merged_at=fields["merged_at"])
        if not model.config.keep_job_tables:
            job.route.clean_up(entry)
        self.reporter.job_finished(model.name, status, note)

    def _output_missing(self, job: _Tracked, status: JobStatus, fields: dict[str, Any]
                        ) -> None:
        """Answered rows and no output where it should be: the job stays unmerged (its
        requests in flight, shard, output and files kept) until one can be read."""
        entry, counts = job.entry, {"succeeded_count": status.succeeded,
                                    "failed_count": status.failed}
        self.ws.ledger.update(entry.job_name, **fields, **counts)
        job.entry = replace(entry, state=status.state, **counts)
        note = job.route.locate(entry).missing(status, entry)  # the build exits 1
        self.summary.error = f"{self.summary.error}; {note}" if self.summary.error else note
        self.reporter.job_finished(self.model.name, status,
                                   f"{status.state}: output not found, not merged")


__all__ = ["ModelRun", "new_run_id"]
