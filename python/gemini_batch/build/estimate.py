"""The cost estimate of a batch model's pending requests: the warehouse's one query,
priced by :mod:`gemini_batch.rules.pricing`."""

from __future__ import annotations

from collections.abc import Sequence

from gemini_batch.rules.config import BatchModel
from gemini_batch.rules.pricing import CostEstimate, PriceTable, estimate_groups
from gemini_batch.state.warehouse import Warehouse


def estimate(
    warehouse: Warehouse,
    model: BatchModel,
    *,
    live_shards: Sequence[str] = (),
    prices: PriceTable | None = None,
    observed: tuple[float, float] | None = None,
    pending_snapshot: str | None = None,
    sample: int | None = None,
    planned: str | None = None,
) -> CostEstimate:
    """Tokens and cost of ``model``'s pending requests (those of ``pending_snapshot``, a
    :meth:`Warehouse.pending_snapshot` table, when given; requests in ``live_shards``,
    the shard tables of live jobs, are not pending), in one BigQuery query.
    ``observed``: the ledger's (answer, thoughts) tokens per answered request of the
    model's Gemini model (``pricing.estimate_groups``). With ``sample``, the sample's
    pending requests alone (var gemini_batch_sample). ``planned``: the requests as a
    build would make them now (:meth:`Warehouse.counts`)."""
    return estimate_groups(
        model.config.gemini_model,
        warehouse.pending_price_groups(model, live_shards, pending_snapshot,
                                       sample=sample, planned=planned),
        prices=prices,
        observed=observed,
    )


__all__ = ["estimate"]
