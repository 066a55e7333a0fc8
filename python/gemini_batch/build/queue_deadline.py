"""A batch model's jobs still queued past ``max_queue_hours`` in one build: cancelled,
and their requests sent again (ADR 0018; the rule itself: rules/queue_deadline.py).

``ModelRun`` asks on each poll of a job that has not ended whether it is past its
deadline (:meth:`QueueDeadline.check`): such a job is cancelled, and why is written to
the ledger at once (a ``--no-wait`` build leaves it cancelling; the next build reads
the reason there). The job is polled on until the service says it ended: one that
started before the cancel landed may have answered rows, which are merged as any job's
(:meth:`ended` gives the merge its reason). Only once no job can answer them any more
are its unanswered requests sent again (:meth:`resend`): by the next round (a new job),
or, for route ``auto``, through AI.GENERATE in a dbt run of the model first (its cap and
the cache hold as in any run; what it leaves goes by the next round). Once per build: a
job of that resend cancelled for the queue again leaves its requests pending, and the
build says so (exit 1).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from google.api_core.exceptions import GoogleAPICallError

from gemini_batch.build.summary import ModelSummary, QueueCancel, counted
from gemini_batch.errors import GeminiBatchError
from gemini_batch.rules.config import BatchModel
from gemini_batch.rules.queue_deadline import cancel_reason, cancelled_for_queue, past_deadline

if TYPE_CHECKING:
    from gemini_batch.clients.vertex import JobStatus
    from gemini_batch.routes.base import Route
    from gemini_batch.state.ledger import Ledger, LedgerEntry
    from gemini_batch.state.warehouse import MergeResult

# Runs the model's dbt materialization again (route auto answers what is pending through
# AI.GENERATE within its cap); returns that dbt invocation's id (stages.py gives it).
AiGenerateRun = Callable[[BatchModel], str | None]


class QueueDeadline:
    """The queue deadline of one batch model in one build."""

    def __init__(self, model: BatchModel, ledger: Ledger, summary: ModelSummary,
                 say: Callable[[str], None], ai_generate: AiGenerateRun | None = None
                 ) -> None:
        self.model = model
        self.ledger = ledger
        self.summary = summary
        self._say = say
        self._ai_generate = ai_generate
        self._cancelled: dict[str, float] = {}  # job name -> hours queued, cancelled by us
        self._refused: set[str] = set()  # cancels the service refused: not asked again
        self._ended: list[tuple[str, QueueCancel]] = []  # ended since the last resend
        self._resent = False

    def check(self, entry: LedgerEntry, route: Route, status: JobStatus) -> None:
        """Cancel ``entry``'s job if it is still queued past max_queue_hours (once)."""
        limit = self.model.config.max_queue_hours
        name = entry.job_name
        if (limit is None or name in self._cancelled or name in self._refused
                or cancelled_for_queue(entry.error)):
            return
        waited = past_deadline(status.state, status.create_time, limit, datetime.now(UTC))
        if waited is None:
            return
        try:
            route.cancel(status)
        except (GeminiBatchError, GoogleAPICallError) as exc:
            self._refused.add(name)
            self._say(f"job {status.job_id} is still {status.state} after {waited:.1f} h, past "
                      f"max_queue_hours {limit:g}, but could not be cancelled ({exc}): "
                      "waiting for it")
            return
        self._cancelled[name] = waited
        self.ledger.update(name, error=cancel_reason(waited, limit))
        self._say(f"job {status.job_id} still {status.state} after {waited:.1f} h, past "
                  f"max_queue_hours {limit:g}: cancelled; its requests are sent again once "
                  "the service confirms it ended")

    def ended(self, entry: LedgerEntry, status: JobStatus, merge: MergeResult | None
              ) -> str | None:
        """The ledger `error` of an ended job that was cancelled for the queue (by this
        build or an earlier one), for its merge to write; None for any other job (one
        that ended otherwise before the cancel landed is an ordinary job)."""
        waited = self._cancelled.pop(entry.job_name, None)
        earlier = cancelled_for_queue(entry.error)
        if status.state != "CANCELLED" or (waited is None and earlier is None):
            return None
        limit = self.model.config.max_queue_hours or 0.0
        if waited is None and earlier is not None:
            waited, limit = earlier
        cancel = QueueCancel(
            job_id=status.job_id, queued_hours=waited or 0.0, max_queue_hours=limit,
            requests=entry.request_count, answered=merge.succeeded if merge else 0)
        self.summary.queue_cancelled.append(cancel)
        self._ended.append((entry.job_name, cancel))
        return cancel_reason(cancel.queued_hours, limit)

    def resend(self) -> bool:
        """After a wait: whether the requests of the jobs cancelled for the queue that
        ended since go again in this build (the caller's next round sends what is still
        pending; route auto: AI.GENERATE has answered what it may first). Not the second
        time in a build: they stay pending, the job counts as failed."""
        ended, self._ended = self._ended, []
        if not ended:
            return False
        if self._resent:
            for _, cancel in ended:
                self.summary.failed_jobs.append(
                    f"{cancel.job_id} was cancelled for the queue again: its "
                    f"{counted(cancel.requests, 'request')} were not sent a third time")
            self._note(ended, "its requests stay pending (a second cancel in one build)")
            return False
        self._resent = True
        resent_by = "batch"
        if self.model.config.route == "auto" and self._ai_generate is not None:
            self._say("route auto: the requests of the cancelled "
                      f"{'job' if len(ended) == 1 else 'jobs'} go to AI.GENERATE "
                      f"(up to ai_generate_max_rows={self.model.config.ai_generate_max_rows})")
            invocation = self._ai_generate(self.model)
            entries = (self.ledger.ai_generate_entries(self.model.unique_id, invocation)
                       if invocation else [])
            if self.summary.add_ai_generate(entries):
                resent_by = "ai_generate"
        for _, cancel in ended:
            cancel.resent_by = resent_by
        self._note(ended, "its requests went to AI.GENERATE" if resent_by == "ai_generate"
                   else "its requests went to a new job")
        return True

    def _note(self, ended: list[tuple[str, QueueCancel]], what: str) -> None:
        """Add what became of the requests to the cancelled jobs' ledger `error`."""
        self.ledger.update_many({
            name: {"error": f"{cancel_reason(cancel.queued_hours, cancel.max_queue_hours)}; "
                            f"{what}"}
            for name, cancel in ended
        })


__all__ = ["AiGenerateRun", "QueueDeadline"]
