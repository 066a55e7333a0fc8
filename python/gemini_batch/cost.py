"""Token and cost estimates before a job is sent, actual cost after, and the budget cap.

Prices are USD per million tokens at the online (standard) rate; batch jobs are billed
at ``1 - batch_discount`` of it (50% off). Override or add models with the dbt var
``gemini_batch_prices``. The table, the estimate method and the cap: docs/costs.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gemini_batch.config import BatchModel
from gemini_batch.errors import BudgetExceededError, ConfigError
from gemini_batch.warehouse import Warehouse

PRICES_VAR = "gemini_batch_prices"
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


class PriceTable:
    """Prices by model name: the package's PRICES, overridden by the dbt var."""

    def __init__(self, prices: Mapping[str, Price] | None = None) -> None:
        self.prices = dict(PRICES if prices is None else prices)

    @classmethod
    def from_vars(cls, dbt_vars: Mapping[str, Any] | None) -> PriceTable:
        """PRICES plus var ``gemini_batch_prices``:
        ``{model: {input: usd_per_million, output: usd_per_million, batch_discount: 0.5}}``.
        """
        table = cls()
        overrides = (dbt_vars or {}).get(PRICES_VAR) or {}
        if not isinstance(overrides, Mapping):
            raise ConfigError(
                f"var {PRICES_VAR} must map model names to {{input: ..., output: ...}} "
                f"(USD per million tokens), got {overrides!r}"
            )
        for name, spec in overrides.items():
            try:
                table.prices[str(name)] = Price(
                    input_per_million=_non_negative(spec["input"]),
                    output_per_million=_non_negative(spec["output"]),
                    batch_discount=_non_negative(spec.get("batch_discount", BATCH_DISCOUNT)),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(
                    f"var {PRICES_VAR}: the price of {name!r} must be "
                    "{input: <USD per 1M input tokens>, output: <USD per 1M output tokens>"
                    f"[, batch_discount: 0.5]}}, got {spec!r}"
                ) from exc
            if table.prices[str(name)].batch_discount > 1:
                raise ConfigError(
                    f"var {PRICES_VAR}: batch_discount of {name!r} is a fraction (0.5 = 50% off)"
                )
        return table

    def price_for(self, gemini_model: str) -> Price | None:
        """Price of a model name (publisher path and version suffix allowed), or None."""
        name = gemini_model.rsplit("/", 1)[-1].split("@", 1)[0].lower()
        matches = [known for known in self.prices if name.startswith(known.lower())]
        return self.prices[max(matches, key=len)] if matches else None


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
    live_shards: Sequence[str] = (),
    prices: PriceTable | None = None,
    observed_output_tokens: float | None = None,
) -> CostEstimate:
    """Estimate tokens and cost of ``model``'s pending requests, in one BigQuery query.

    Input: text characters / 4 plus FILE_PART_TOKENS per file part. Output per request:
    its generationConfig.maxOutputTokens, else ``observed_output_tokens`` (the ledger's
    average for the Gemini model), else DEFAULT_OUTPUT_TOKENS. Requests in
    ``live_shards`` (live jobs) are not pending.
    """
    prices = prices or PriceTable()
    gemini_model = model.config.gemini_model
    default_output = (
        round(observed_output_tokens) if observed_output_tokens is not None
        else DEFAULT_OUTPUT_TOKENS
    )
    pending, params = warehouse.pending_query(model, live_shards)
    file_kinds = {f"file_parts_{n}": prefix for n, prefix in enumerate(FILE_PART_TOKENS)}
    part_counts = ",\n    ".join(
        f"{_mime_count(prefix)} AS {column}" for column, prefix in file_kinds.items()
    )
    file_tokens = " + ".join(
        f"{FILE_PART_TOKENS[prefix]} * {column}" for column, prefix in file_kinds.items()
    )
    other_parts = " - ".join(["file_parts_all", *file_kinds])
    row = warehouse.bq.query(
        f"""
SELECT
  COUNT(*) AS requests,
  COALESCE(SUM(CEIL(text_chars / {CHARS_PER_TOKEN}) + {file_tokens}
               + {OTHER_FILE_PART_TOKENS} * ({other_parts})), 0) AS input_tokens,
  COALESCE(SUM(output_tokens), 0) AS output_tokens
FROM (
  SELECT
    LENGTH(ARRAY_TO_STRING(REGEXP_EXTRACT_ALL(body, {_TEXT_VALUE}), '')) AS text_chars,
    {part_counts},
    {_mime_count("")} AS file_parts_all,
    output_tokens
  FROM (
    SELECT
      TO_JSON_STRING(request) AS body,
      COALESCE(
        LAX_INT64(JSON_QUERY(request, '$.generationConfig.maxOutputTokens')),
        LAX_INT64(JSON_QUERY(request, '$.generation_config.max_output_tokens')),
        @default_output_tokens
      ) AS output_tokens
    FROM ({pending})
  )
)""",
        {**params, "default_output_tokens": default_output},
    )[0]
    price = prices.price_for(gemini_model)
    input_tokens, output_tokens = int(row["input_tokens"]), int(row["output_tokens"])
    return CostEstimate(
        gemini_model=gemini_model,
        requests=int(row["requests"]),
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        usd=price.batch_usd(input_tokens, output_tokens) if price else None,
    )


def actual_cost(
    model_name: str,
    prompt_tokens: int | None,
    candidates_tokens: int | None,
    thoughts_tokens: int | None,
    *,
    prices: PriceTable | None = None,
) -> float | None:
    """Batch cost of answered tokens (from usageMetadata); None if the model has no price."""
    price = (prices or PriceTable()).price_for(model_name)
    if price is None:
        return None
    return price.batch_usd(prompt_tokens or 0, (candidates_tokens or 0) + (thoughts_tokens or 0))


def check_budget(model: BatchModel, cost: CostEstimate) -> None:
    """Refuse (BudgetExceededError) when the estimate is over ``max_cost_usd``; a cap on a
    model with no known price is a ConfigError (the cap could not be enforced)."""
    cap = model.config.max_cost_usd
    if cap is None or cost.requests == 0:
        return
    if cost.usd is None:
        raise ConfigError(
            f"Model {model.unique_id} sets max_cost_usd={cap} but no price is known for "
            f"{cost.gemini_model!r}: add it to var {PRICES_VAR} "
            "({input: <USD per 1M tokens>, output: <USD per 1M tokens>})."
        )
    if cost.usd > cap:
        raise BudgetExceededError(
            f"Model {model.unique_id}: {cost.requests} pending requests are estimated at "
            f"${cost.usd:.4f} ({cost.input_tokens} input + {cost.output_tokens} output "
            f"tokens of {cost.gemini_model}), over max_cost_usd=${cap:.4f}. Nothing was "
            "submitted: raise max_cost_usd, or select fewer rows."
        )


# A "text" string value anywhere in the request (contents, systemInstruction): its
# characters, escapes included. A regular expression on the JSON text reads parts given
# as a list or as one object alike.
_TEXT_VALUE = r"""r'"text":"((?:[^"\\]|\\.)*)"'"""


def _mime_count(prefix: str) -> str:
    """SQL: how many file parts of the request JSON text ``body`` have a mime type
    starting with ``prefix`` (fileData/mimeType and file_data/mime_type alike)."""
    if not re.fullmatch(r"[a-z/]*", prefix):
        raise ValueError(f"mime type prefix {prefix!r}")
    return f"""ARRAY_LENGTH(REGEXP_EXTRACT_ALL(body, r'"mime_?[tT]ype":"{prefix}'))"""


def _non_negative(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("negative price")
    return number


__all__ = [
    "BATCH_DISCOUNT",
    "DEFAULT_OUTPUT_TOKENS",
    "FILE_PART_TOKENS",
    "PRICES",
    "PRICES_VAR",
    "CostEstimate",
    "Price",
    "PriceTable",
    "actual_cost",
    "check_budget",
    "estimate",
]
