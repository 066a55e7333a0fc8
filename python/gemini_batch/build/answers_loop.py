"""What a build does for the analytics engineer's loop on one batch model (ADR 0016):
copy the answers other datasets hold before a round, and send only the sample.

The SQL is :mod:`gemini_batch.state.reuse`'s; this decides when it runs and counts it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from gemini_batch.build.workspace import Workspace
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.reuse import AnswerSources, deferred_dataset, sample_size, source_datasets
from gemini_batch.state.warehouse import RequestCounts

if TYPE_CHECKING:
    from gemini_batch.build.context import BatchContext


class AnswersLoop:
    """Answers sources (var gemini_batch_answers_from, else the --defer dataset) and the
    sample (var gemini_batch_sample, `--sample`) of one model in one build."""

    def __init__(self, ctx: BatchContext, model: BatchModel, say: Callable[[str], None]) -> None:
        self.ws: Workspace = ctx.workspace
        self.model, self.invocation_id, self.say = model, ctx.invocation_id, say
        self.sample = sample_size(self.ws.dbt_vars)
        self.datasets = source_datasets(self.ws.dbt_vars, model, deferred_dataset(
            ctx.settings.defer_state, model.unique_id))

    def copy_answers(self, live_shards: Sequence[str], location: str) -> int:
        """Copy the answers the sources hold for the pending requests, a ledger row per
        source; how many were copied."""
        if not self.datasets:
            return 0
        pending, params = self.ws.warehouse.pending_query(self.model, live_shards)
        copied = AnswerSources(self.ws.bq, self.say).copy(
            self.model, self.datasets, pending, params,
            ledger=self.ws.ledger, invocation_id=self.invocation_id, location=location)
        return sum(reused.requests for reused in copied)

    def to_send(self, counts: RequestCounts, live_shards: Sequence[str]) -> int:
        """The pending requests the build may send: those of the sample, if any."""
        if self.sample is None or counts.pending == 0:
            return counts.pending
        return sample_count(self.ws, self.model, live_shards, self.sample)


def sample_count(ws: Workspace, model: BatchModel, live_shards: Sequence[str], sample: int,
                 planned: str | None = None) -> int:
    """How many pending requests the sample of ``sample`` rows holds (``planned``: as in
    :meth:`Warehouse.counts`)."""
    sql, params = ws.warehouse.pending_query(model, live_shards, sample=sample, planned=planned)
    return int(ws.bq.query(f"SELECT COUNT(*) AS n FROM ({sql})", params)[0]["n"])


__all__ = ["AnswersLoop", "sample_count"]
