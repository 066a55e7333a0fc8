"""The canary before a big send, and the build-wide cost cap, at the level of a round.

A round of more than ``canary_min_rows`` requests first sends a sample (the lowest
request_ids, so a rerun picks the same), and the rest only when the sample's verdict
passes. The verdict is read from what came back (``<model>__responses`` rows of the
canary's jobs, joined to the current requests), not from memory: a ``--no-wait``
build leaves the canary in flight and the next build decides. Canary jobs are told
apart by their run id (``..._canary``), which names their shard tables in the ledger.
docs/costs.md explains the canary and the cap.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gemini_batch.build.estimate import estimate
from gemini_batch.build.workspace import Workspace
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.rules.pricing import CostEstimate
from gemini_batch.state.ledger import Ledger
from gemini_batch.state.warehouse import Warehouse

# The suffix of a canary round's run id: its shard tables are <model>__shard_<run>_canary_<n>.
CANARY_RUN_SUFFIX = "_canary"


def is_canary_shard(shard_table: str) -> bool:
    """Whether a job's shard table is a canary's."""
    return f"{CANARY_RUN_SUFFIX}_" in shard_table.rsplit("__shard_", 1)[-1]


def canary_size(pending: int, config: BatchModelConfig) -> int:
    """How many requests the canary of a round of ``pending`` sends; 0: no canary (it is
    off, or the round is not over canary_min_rows)."""
    if not config.canary or pending <= config.canary_min_rows:
        return 0
    wanted = math.ceil(pending * config.canary_share)
    return min(max(wanted, config.canary_min_sample), config.canary_max_sample, pending)


@dataclass(frozen=True)
class CanaryVerdict:
    """What the canary's requests brought back."""

    sample: int  # requests of the canary still in <model>__requests
    bad: int  # of them, failed for good or answered empty
    reasons: Mapping[str, int] = field(default_factory=dict)  # of the bad, most first

    def passed(self, config: BatchModelConfig) -> bool:
        return self.bad <= config.canary_max_failed_share * self.sample


def _fix(reasons: Sequence[str]) -> str:
    """What to do about the canary's top reason."""
    top = reasons[0] if reasons else ""
    if "MAX_TOKENS" in top:
        return ("raise generationConfig.maxOutputTokens, or set "
                "generationConfig.thinkingConfig.thinkingBudget low (0 where the model "
                "can turn thinking off) so the answer has room")
    if top.startswith("EMPTY_ANSWER"):
        return ("read the sample's answers in the responses table (finishReason, "
                "promptFeedback) and fix the prompt or safetySettings")
    if top.startswith("400") or "INVALID" in top:
        return "fix the requests the service refuses (the sample's last_error says how)"
    return "read the sample's rows in the responses table and fix the requests"


def stop_message(model_id: str, verdict: CanaryVerdict, config: BatchModelConfig,
                 held_back: int) -> str:
    """Why the build stops after a failed canary, the top reasons and the fix."""
    top = list(verdict.reasons)[:3]
    reasons = "; ".join(f"{reason}: {verdict.reasons[reason]:,}" for reason in top)
    return (
        f"Model {model_id}: the canary failed: {verdict.bad:,} of its {verdict.sample:,} "
        f"requests failed for good or came back empty "
        f"({verdict.bad / max(verdict.sample, 1):.0%} > canary_max_failed_share "
        f"{config.canary_max_failed_share:g}; {reasons or 'no reason given'}). "
        f"The other {held_back:,} pending requests were not sent; the sample's answers "
        f"are kept. Fix: {_fix(top)}; then rebuild the model (or set canary: false to "
        "send everything anyway)."
    )


@dataclass(frozen=True)
class Gate:
    """What a round may send: everything (``sample`` 0), a canary of ``sample``
    requests, or nothing (``hold``: a canary is still running; ``stop``: it failed)."""

    sample: int = 0
    hold: str | None = None
    stop: str | None = None
    note: str | None = None  # what to tell the user of it


# How many of a model's latest ledger rows are searched for its canary jobs.
_CANARY_LOOKBACK = 1_000


def gate(ledger: Ledger, warehouse: Warehouse, model: BatchModel, pending: int,
         say: Callable[[str], None] = lambda text: None) -> Gate:
    """The canary's word on a round of ``pending`` requests (its note given to ``say``):
    the verdict of the model's canary jobs whose requests are still current (answers
    kept across builds), else a new canary. A prompt change makes new request_ids, and
    so a new canary."""
    word = _gate(ledger, warehouse, model, pending)
    if word.note:
        say(word.note)
    return word


def _gate(ledger: Ledger, warehouse: Warehouse, model: BatchModel, pending: int) -> Gate:
    size = canary_size(pending, model.config)
    if size == 0:
        return Gate()
    canaries = [entry for entry in ledger.entries(model.unique_id, limit=_CANARY_LOOKBACK)
                if is_canary_shard(entry.shard_table)]
    running = [entry.job_id for entry in canaries if entry.merged_at is None]
    if running:
        hold = (f"canary job {', '.join(running)} is still running: the next build decides "
                f"whether the other {pending:,} requests are sent")
        return Gate(hold=hold, note=hold)
    outcomes = dict(warehouse.job_outcomes(model, [entry.job_name for entry in canaries]))
    requests, bad = outcomes.pop("requests"), outcomes.pop("bad")
    if requests == 0:
        return Gate(sample=size)
    verdict = CanaryVerdict(sample=requests, bad=bad, reasons=outcomes)
    if not verdict.passed(model.config):
        return Gate(stop=stop_message(model.unique_id, verdict, model.config, pending),
                    note="the canary failed: nothing more is sent")
    return Gate(note=f"canary passed ({bad:,} of {requests:,} failed for good or empty): "
                     f"sending the other {pending:,} requests")


def priced_round(
    tables: contextlib.ExitStack, ws: Workspace, model: BatchModel, run_id: str,
    live_shards: Sequence[str], sample: int, answers_sample: int | None = None,
) -> tuple[str, CostEstimate, CostEstimate]:
    """A round's snapshot table of what it sends (entered on ``tables``), the estimate of
    every pending request (the build's estimate, and its thinking-trap warning), and the
    estimate of what is sent, which the cap checks: with a canary (``sample`` > 0), the
    sample's. ``answers_sample``: --sample N, the pending requests of that sample only.
    One read of the pending requests: the estimate is of exactly what is cut."""
    snapshot = tables.enter_context(
        ws.warehouse.pending_snapshot(model, run_id, live_shards, answers_sample))
    observed = ws.ledger.observed_tokens(model.config.gemini_model, model.unique_id)
    whole = estimate(ws.warehouse, model, prices=ws.prices, pending_snapshot=snapshot,
                     observed=observed)
    if not sample:
        return snapshot, whole, whole
    snapshot = tables.enter_context(ws.warehouse.sample_snapshot(model, run_id, snapshot, sample))
    return snapshot, whole, estimate(ws.warehouse, model, prices=ws.prices,
                                     pending_snapshot=snapshot, observed=observed)


__all__ = [
    "Gate",
    "gate",
    "CANARY_RUN_SUFFIX",
    "CanaryVerdict",
    "canary_size",
    "is_canary_shard",
    "priced_round",
    "stop_message",
]
