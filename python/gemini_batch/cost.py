"""Token and cost estimates before a job is sent, actual cost after, and the budget cap.

Prices are USD per million tokens at the online (standard) rate; batch jobs are billed
at ``1 - batch_discount`` of it (50% off). Override or add models with the dbt var
``gemini_batch_prices``. The table, the estimate method and the cap: docs/costs.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gemini_batch.config import BatchModel
from gemini_batch.errors import ConfigError, GeminiBatchError

if TYPE_CHECKING:
    from gemini_batch.ledger import Ledger
    from gemini_batch.warehouse import Warehouse

BATCH_DISCOUNT = 0.5
# Output tokens assumed per request when it sets no maxOutputTokens and the ledger has
# no answers of that Gemini model yet.
DEFAULT_OUTPUT_TOKENS = 500
# Input tokens per character of text: Gemini's rule of thumb (about 4 characters/token).
CHARS_PER_TOKEN = 4
# Input tokens counted per file part, by mime type (the duration or page count of a
# file is not known before the job runs): an image is 258 tokens; video and audio are
# assumed 60 s long (263 and 32 tokens per second); a PDF 10 pages of 258 tokens.
FILE_PART_TOKENS: dict[str, int] = {
    "image/": 258,
    "video/": 60 * 263,
    "audio/": 60 * 32,
    "application/pdf": 10 * 258,
    "text/": 258,
}
# Any other mime type.
OTHER_FILE_PART_TOKENS = 258


@dataclass(frozen=True)
class Price:
    """Online USD per million tokens; output includes thinking tokens."""

    input_per_million: float
    output_per_million: float
    batch_discount: float = BATCH_DISCOUNT

    def batch_usd(self, input_tokens: float, output_tokens: float) -> float:
        """What a batch job with these token counts costs."""
        online = (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1_000_000
        return online * (1 - self.batch_discount)


# Online prices (≤ 200k-token prompts) as published for Vertex AI; the longest matching
# prefix of a model name wins, so 'gemini-2.5-flash-001' uses 'gemini-2.5-flash'.
PRICES: dict[str, Price] = {
    "gemini-3-pro": Price(2.00, 12.00),
    "gemini-2.5-pro": Price(1.25, 10.00),
    "gemini-2.5-flash": Price(0.30, 2.50),
    "gemini-2.5-flash-lite": Price(0.10, 0.40),
    "gemini-2.0-flash": Price(0.15, 0.60),
    "gemini-2.0-flash-lite": Price(0.075, 0.30),
    "gemini-1.5-pro": Price(1.25, 5.00),
    "gemini-1.5-flash": Price(0.075, 0.30),
}


class BudgetExceededError(GeminiBatchError):
    """The estimated cost of the pending requests is over the model's ``max_cost_usd``."""


class PriceTable:
    """Prices by model name: the package's PRICES, overridden by the dbt var."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self.prices = dict(PRICES if prices is None else prices)

    @classmethod
    def from_vars(cls, dbt_vars: Mapping[str, Any] | None) -> PriceTable:
        """PRICES plus var ``gemini_batch_prices``:
        ``{model: {input: usd_per_million, output: usd_per_million, batch_discount: 0.5}}``.
        """
        raise NotImplementedError

    def price_for(self, gemini_model: str) -> Price | None:
        """Price of a model name (publisher path and version suffix allowed), or None."""
        raise NotImplementedError


@dataclass(frozen=True)
class CostEstimate:
    """What submitting the pending requests of one batch model would cost."""

    gemini_model: str
    requests: int
    input_tokens: int
    output_tokens: int
    usd: float | None  # None when no price is known for the model


def estimate(
    warehouse: Warehouse,
    model: BatchModel,
    *,
    prices: PriceTable | None = None,
    ledger: Ledger | None = None,
) -> CostEstimate:
    """Estimate tokens and cost of ``model``'s pending requests, in one BigQuery query.

    Input: text characters / 4 plus FILE_PART_TOKENS per file part. Output per request:
    its generationConfig.maxOutputTokens, else the ledger's observed average for the
    Gemini model, else DEFAULT_OUTPUT_TOKENS.
    """
    raise NotImplementedError


def actual_cost(
    model_name: str,
    prompt_tokens: int | None,
    candidates_tokens: int | None,
    thoughts_tokens: int | None,
    *,
    prices: PriceTable | None = None,
) -> float | None:
    """Batch cost of answered tokens (from usageMetadata); None if the model has no price."""
    raise NotImplementedError


def check_budget(model: BatchModel, cost: CostEstimate) -> None:
    """Refuse (BudgetExceededError) when the estimate is over ``max_cost_usd``; a cap on a
    model with no known price is a ConfigError (the cap could not be enforced)."""
    raise NotImplementedError


__all__ = [
    "BATCH_DISCOUNT",
    "DEFAULT_OUTPUT_TOKENS",
    "FILE_PART_TOKENS",
    "PRICES",
    "BudgetExceededError",
    "ConfigError",
    "CostEstimate",
    "Price",
    "PriceTable",
    "actual_cost",
    "check_budget",
    "estimate",
]
