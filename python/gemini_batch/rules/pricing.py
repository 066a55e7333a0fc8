"""What batch requests cost: prices (the catalog's, with var ``gemini_batch_prices``), the
token and cost estimate from pending requests grouped by what prices them, and the
budget cap (what answers cost once back: :mod:`gemini_batch.rules.bill`). Arithmetic
only: no I/O.

Prices and model facts (how a model thinks, its output limit, where it is served) come
from :mod:`gemini_batch.rules.catalog`. The estimate's query is
``Warehouse.pending_price_groups``; the method, the tiers and the cap: docs/costs.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gemini_batch.errors import BudgetExceededError, ConfigError
from gemini_batch.rules import catalog
from gemini_batch.rules.catalog import LONG_CONTEXT_TOKENS, Price
from gemini_batch.rules.config import BatchModel
from gemini_batch.rules.thinking_room import trap_warning

PRICES_VAR = "gemini_batch_prices"
# Answer tokens (candidates, thinking excluded) assumed per request until the ledger has
# answers of that Gemini model: a short paragraph. Row-wise batch work (labels,
# extracted fields, one-sentence summaries) answers in tens to a few hundred tokens;
# thinking, counted apart, is most of the output of a 2.5+ model (docs/costs.md).
DEFAULT_ANSWER_TOKENS = 200
# The output limit of a model the catalog does not know (the common Gemini 2.5+ limit).
UNKNOWN_MAX_OUTPUT_TOKENS = 65_536
# Input tokens per character of text: Gemini's rule of thumb (about 4 characters/token).
CHARS_PER_TOKEN = 4
# Input tokens counted per file part, by mime type, for Gemini 2.x (the size, duration
# or page count of a file is not known before the job runs): an image is one 258-token
# tile (2.x tiles an image over 384 px at 258 per 768x768 tile); video and audio are
# assumed 60 s long (263 and 32 tokens per second); a PDF 10 pages of 258 tokens.
FILE_PART_TOKENS: dict[str, int] = {
    "image/": 258,
    "video/": 60 * 263,
    "audio/": 60 * 32,
    "application/pdf": 10 * 258,
    "text/": 258,
}
# Gemini 3 reads media at its default media resolution: 1,120 tokens per image (HIGH)
# and 560 per PDF page (MEDIUM), whatever the file's size.
GEMINI_3_FILE_PART_TOKENS: dict[str, int] = {
    **FILE_PART_TOKENS, "image/": 1_120, "application/pdf": 10 * 560,
}
# Any other mime type.
OTHER_FILE_PART_TOKENS = 258
# The fields a price in var gemini_batch_prices may set (catalog.Price's).
_PRICE_FIELDS = tuple(f.name for f in dataclasses.fields(Price))


def file_part_tokens(gemini_model: str) -> dict[str, int]:
    """Input tokens per file part, by mime type prefix, at the model generation's rates."""
    if gemini_model.rsplit("/", 1)[-1].lower().startswith("gemini-3"):
        return GEMINI_3_FILE_PART_TOKENS
    return FILE_PART_TOKENS


class PriceTable:
    """Prices by model name: the catalog's, with var gemini_batch_prices applied."""

    def __init__(
        self, prices: Mapping[str, Price] | None = None, *, from_var: Sequence[str] = ()
    ) -> None:
        self.prices = dict(
            {name: m.price for name, m in catalog.NAMES.items()} if prices is None
            else prices
        )
        # Names priced by the var: the user vouches for them (a model the catalog does
        # not know yet, a tuned model), so the model check lets them through.
        self.from_var = tuple(from_var)

    @classmethod
    def from_vars(cls, dbt_vars: Mapping[str, Any] | None) -> PriceTable:
        """The catalog's prices plus var ``gemini_batch_prices``: ``{model: {input: ...,
        output: ..., long_input, long_output, audio_input, cached_input, batch_discount}}``
        in USD per million tokens. The fields an entry leaves out are those of the
        catalog model it names (or extends); a model the catalog does not know needs
        ``input`` and ``output``."""
        overrides = (dbt_vars or {}).get(PRICES_VAR) or {}
        if not isinstance(overrides, Mapping):
            raise ConfigError(
                f"var {PRICES_VAR} must map model names to {{input: ..., output: ...}} "
                f"(USD per million tokens), got {overrides!r}"
            )
        table = cls(from_var=[str(name) for name in overrides])
        for name, spec in overrides.items():
            table.prices[str(name)] = _var_price(str(name), spec, table.price_for(str(name)))
        return table

    def price_for(self, gemini_model: str) -> Price | None:
        """Price of a model name (publisher path and version suffix allowed), or None."""
        known = catalog.longest_prefix(gemini_model, self.prices)
        return self.prices[known] if known else None

    def priced_by_var(self, gemini_model: str) -> bool:
        """Whether var gemini_batch_prices prices this model (or a name it extends)."""
        return catalog.longest_prefix(gemini_model, self.from_var) is not None


def _var_price(name: str, spec: Any, base: Price | None) -> Price:
    """One entry of var gemini_batch_prices, over the catalog price ``base``."""
    expected = (
        "{input: <USD per 1M input tokens>, output: <USD per 1M output tokens>"
        "[, long_input, long_output, audio_input, cached_input, batch_discount: 0.5]}"
    )
    if not isinstance(spec, Mapping):
        raise ConfigError(f"var {PRICES_VAR}: the price of {name!r} must be {expected}, "
                          f"got {spec!r}")
    unknown = sorted(set(map(str, spec)) - set(_PRICE_FIELDS))
    missing = [] if base else [key for key in ("input", "output") if key not in spec]
    if unknown or missing:
        problem = (f"unknown field(s) {', '.join(unknown)}" if unknown
                   else f"{' and '.join(missing)} missing (the catalog does not know it)")
        raise ConfigError(f"var {PRICES_VAR}: the price of {name!r}: {problem}; "
                          f"expected {expected}, got {spec!r}")
    try:
        given = {str(key): _non_negative(value) for key, value in spec.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"var {PRICES_VAR}: the price of {name!r} must be {expected} with "
                          f"numbers >= 0, got {spec!r}") from exc
    if given.get("batch_discount", 0) > 1:
        raise ConfigError(
            f"var {PRICES_VAR}: batch_discount of {name!r} is a fraction (0.5 = 50% off)"
        )
    return dataclasses.replace(base, **given) if base else Price(**given)


def model_problem(model: BatchModel, location: str, prices: PriceTable) -> str | None:
    """Why Vertex AI would refuse ``model``'s jobs in ``location`` (the catalog's check,
    with a "did you mean"), or None. A model priced in var gemini_batch_prices passes:
    the user vouches for a model the catalog does not know (yet)."""
    gemini_model = model.config.gemini_model
    if prices.priced_by_var(gemini_model):
        return None
    problem = catalog.check_model(gemini_model, location)
    if problem is None:
        return None
    return (
        f"Model {model.unique_id}: gemini_model {problem} If the catalog is behind (a new "
        f"release, a tuned model), give the model a price in var {PRICES_VAR} and it is "
        "accepted as known."
    )


@dataclass(frozen=True)
class CostEstimate:
    """What submitting the pending requests of one batch model would cost.

    ``usd`` is the estimate; ``worst_case_usd`` the upper bound where every request
    writes all the output it may (its maxOutputTokens, else the model's limit). Both
    are None when no price is known for the model.
    """

    gemini_model: str
    requests: int
    input_tokens: int
    thinking_tokens: int
    answer_tokens: int
    usd: float | None
    worst_case_output_tokens: int = 0
    worst_case_usd: float | None = None
    long_context_requests: int = 0  # prompts over LONG_CONTEXT_TOKENS: the long tier
    audio_tokens: int = 0  # of input_tokens, priced as audio
    # Why requests would leave thinking no room for an answer, with the fix (None: none).
    thinking_trap: str | None = None
    # BigQuery ML data processing (route AI.GENERATE), included in usd and worst_case_usd.
    processing_usd: float = 0.0

    @property
    def output_tokens(self) -> int:
        """Thinking and answer: both bill at the output price."""
        return self.thinking_tokens + self.answer_tokens


def estimate_groups(
    gemini_model: str,
    rows: Sequence[Any],
    *,
    prices: PriceTable | None = None,
    observed: tuple[float, float] | None = None,
) -> CostEstimate:
    """Tokens and cost of pending requests, from the rows of the estimate's query
    (``Warehouse.pending_price_groups``: requests grouped by what prices them) or one
    row per request (``request_price_row``, for requests outside BigQuery).

    Input: text characters / 4 plus FILE_PART_TOKENS per file part. Output per request:
    thinking (its thinkingBudget as the catalog model takes it; a dynamic budget spends
    the observed thoughts, else the model's typical_tokens) plus the answer (observed,
    else DEFAULT_ANSWER_TOKENS), thinking first within maxOutputTokens. ``observed`` is
    the ledger's (answer, thoughts) tokens per answered request of this Gemini model."""
    prices = prices or PriceTable()
    price = prices.price_for(gemini_model)
    facts = catalog.lookup(gemini_model, extended=True)
    # A model the catalog does not know: assume it thinks as Gemini 2.5+ models do.
    thinking = facts.thinking if facts else catalog.Thinking()
    answer, thoughts = (
        observed if observed is not None else (DEFAULT_ANSWER_TOKENS, thinking.typical_tokens)
    )
    groups = [
        _Group.of(row, thinking, answer=answer, thoughts=thoughts,
                  max_output=facts.max_output_tokens if facts else UNKNOWN_MAX_OUTPUT_TOKENS)
        for row in rows
    ]
    starved = [g for g in groups if g.starved_limit is not None]

    def bill(output: Callable[[_Group], float]) -> float | None:
        if price is None:
            return None
        return sum(
            price.batch_usd(g.input_tokens, output(g), audio_tokens=g.audio_tokens,
                            long_context=g.long_context)
            for g in groups
        )

    return CostEstimate(
        gemini_model=gemini_model,
        requests=sum(g.requests for g in groups),
        input_tokens=sum(g.input_tokens for g in groups),
        thinking_tokens=round(sum(g.thinking_tokens for g in groups)),
        answer_tokens=round(sum(g.answer_tokens for g in groups)),
        usd=bill(lambda g: g.thinking_tokens + g.answer_tokens),
        worst_case_output_tokens=sum(g.worst_case_output_tokens for g in groups),
        worst_case_usd=bill(lambda g: g.worst_case_output_tokens),
        long_context_requests=sum(g.requests for g in groups if g.long_context),
        audio_tokens=sum(g.audio_tokens for g in groups),
        thinking_trap=trap_warning(
            gemini_model, thinking, requests=sum(g.requests for g in starved),
            limits=[g.starved_limit for g in starved if g.starved_limit is not None],
            expected_thinking=max((g.expected_thinking for g in starved), default=0.0),
            answer=answer, thoughts=thoughts),
    )


@dataclass(frozen=True)
class _Group:
    """Pending requests that price alike (one row of the estimate's query): tokens in
    total over the group."""

    requests: int
    input_tokens: int
    audio_tokens: int
    long_context: bool
    thinking_tokens: float
    answer_tokens: float
    worst_case_output_tokens: int
    # maxOutputTokens when it leaves the expected thinking no room for the answer.
    starved_limit: int | None = None
    expected_thinking: float = 0.0  # per request, before maxOutputTokens cuts it

    @classmethod
    def of(
        cls, row: Any, thinking: catalog.Thinking, *, answer: float, thoughts: float,
        max_output: int,
    ) -> _Group:
        """``answer`` and ``thoughts``: tokens a request spends on each (observed, or
        assumed); ``max_output``: the model's output limit."""
        count, limit = int(row["requests"]), row["max_output_tokens"]
        # Output is written, and billed, for every candidate (candidateCount).
        candidates = max(1, int(row.get("candidate_count") or 1))
        budget = thinking.budget(row["requested_budget"])
        # 0: off; -1: dynamic; a fixed budget bounds what the model would spend anyway.
        expected = think = 0.0 if budget == 0 else thoughts if budget == -1 else min(
            budget, thoughts or budget)
        reply = float(answer)
        if limit is not None:  # thinking counts against maxOutputTokens, and comes first
            think = min(think, limit)
            reply = min(reply, max(0.0, limit - think))
        starved = limit is not None and expected > 0 and limit < expected + answer
        per_candidate = min(limit, max_output) if limit is not None else max_output
        return cls(
            requests=count,
            input_tokens=int(row["input_tokens"]),
            audio_tokens=int(row["audio_tokens"]),
            long_context=bool(row["long_context"]),
            thinking_tokens=count * candidates * think,
            answer_tokens=count * candidates * reply,
            worst_case_output_tokens=count * candidates * per_candidate,
            starved_limit=int(limit) if starved else None,
            expected_thinking=expected,
        )


def check_budget(model: BatchModel, cost: CostEstimate, *, spent_usd: float = 0.0) -> None:
    """Refuse (BudgetExceededError) when what the model's build already spent
    (``spent_usd``: actual cost of the answers its earlier rounds brought back) plus
    the estimate, or with ``max_cost_mode: worst_case`` the worst case, of the next
    round is over ``max_cost_usd``; a cap on a model with no known price is a
    ConfigError (the cap could not be enforced)."""
    cap, mode = model.config.max_cost_usd, model.config.max_cost_mode
    if cap is None or cost.requests == 0:
        return
    if cost.usd is None or cost.worst_case_usd is None:
        raise ConfigError(
            f"Model {model.unique_id} sets max_cost_usd={cap} but no price is known for "
            f"{cost.gemini_model!r}: add it to var {PRICES_VAR} "
            "({input: <USD per 1M tokens>, output: <USD per 1M tokens>})."
        )
    spent = (f"${spent_usd:.4f} already spent by this build's earlier rounds + "
             if spent_usd else "")
    nothing = ("Nothing more was submitted (the answers already back are kept)" if spent_usd
               else "Nothing was submitted")
    if mode == "worst_case" and spent_usd + cost.worst_case_usd > cap:
        raise BudgetExceededError(
            f"Model {model.unique_id}: {spent}{cost.requests} pending requests cost at most "
            f"${cost.worst_case_usd:.4f} ({cost.input_tokens} input + "
            f"{cost.worst_case_output_tokens} output tokens of {cost.gemini_model}: every "
            "candidate writes its maxOutputTokens, or the model's limit where unset), over "
            f"max_cost_usd=${cap:.4f} with max_cost_mode='worst_case' (the estimate is "
            f"${cost.usd:.4f}). {nothing}: set or lower maxOutputTokens, raise "
            "max_cost_usd, or select fewer rows."
        )
    if mode == "estimate" and spent_usd + cost.usd > cap:
        raise BudgetExceededError(
            f"Model {model.unique_id}: {spent}{cost.requests} pending requests are "
            f"estimated at ${cost.usd:.4f} ({cost.input_tokens} input + "
            f"{cost.output_tokens} output tokens of {cost.gemini_model}, "
            f"{cost.thinking_tokens} of them thinking), over max_cost_usd=${cap:.4f}. "
            f"{nothing}: raise max_cost_usd, or select fewer rows."
        )


# A "text" string value anywhere in the request (contents, systemInstruction): its
# characters, escapes included. A regular expression on the compact JSON text reads
# parts given as a list or as one object alike; the estimate's SQL uses the same ones.
TEXT_VALUE = r'"text":"((?:[^"\\]|\\.)*)"'


def mime_type_pattern(prefix: str) -> str:
    """The regular expression of a file part whose mime type starts with ``prefix``
    (fileData/mimeType and file_data/mime_type alike)."""
    if not re.fullmatch(r"[a-z/]*", prefix):
        raise ValueError(f"mime type prefix {prefix!r}")
    return f'"mime_?[tT]ype":"{prefix}'


def request_price_row(request: Any, gemini_model: str = "") -> dict[str, Any]:
    """One request to ``gemini_model`` as a row of the estimate's query, computed as that
    SQL computes it (the same regular expressions over the compact JSON text), for
    ``estimate_groups``."""
    rates = file_part_tokens(gemini_model)
    body = json.dumps(request, separators=(",", ":"), ensure_ascii=False)
    text_chars = sum(len(match) for match in re.findall(TEXT_VALUE, body))

    def mime_count(prefix: str) -> int:
        return len(re.findall(mime_type_pattern(prefix), body))

    file_parts = {prefix: mime_count(prefix) for prefix in rates}
    other_parts = mime_count("") - sum(file_parts.values())
    declared = sum(
        len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        for value in _declared_values(request)
    )
    prompt_tokens = (
        math.ceil(text_chars / CHARS_PER_TOKEN)
        + math.ceil(declared / CHARS_PER_TOKEN)
        + sum(rates[prefix] * count for prefix, count in file_parts.items())
        + OTHER_FILE_PART_TOKENS * other_parts
    )
    config = _first(request, "generationConfig", "generation_config") or {}
    thinking = _first(config, "thinkingConfig", "thinking_config") or {}
    return {
        "requests": 1,
        "input_tokens": prompt_tokens,
        "audio_tokens": rates["audio/"] * file_parts["audio/"],
        "long_context": prompt_tokens > LONG_CONTEXT_TOKENS,
        "requested_budget": _lax_int(_first(thinking, "thinkingBudget", "thinking_budget")),
        "max_output_tokens": _lax_int(_first(config, "maxOutputTokens", "max_output_tokens")),
        "candidate_count": _lax_int(_first(config, "candidateCount", "candidate_count")) or 1,
    }


# What the model reads besides the contents, billed as prompt tokens: the tool
# declarations and the response schema (JSON paths, camelCase and snake_case alike).
DECLARED_PATHS = (
    ("tools",), ("toolConfig",), ("tool_config",),
    ("generationConfig", "responseSchema"), ("generationConfig", "responseJsonSchema"),
    ("generation_config", "response_schema"), ("generation_config", "response_json_schema"),
)


def _declared_values(request: Any) -> list[Any]:
    values = []
    for path in DECLARED_PATHS:
        value = request
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return values


def _first(value: Any, *names: str) -> Any:
    if not isinstance(value, dict):
        return None
    return next((value[name] for name in names if value.get(name) is not None), None)


def _lax_int(value: Any) -> int | None:
    """BigQuery's LAX_INT64 for the values a request holds: numbers and numeric text."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return round(float(value))
    except (TypeError, ValueError):
        return None


def _non_negative(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("a price is a number")
    number = float(value)
    if number < 0:
        raise ValueError("negative price")
    return number


__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_ANSWER_TOKENS",
    "FILE_PART_TOKENS",
    "GEMINI_3_FILE_PART_TOKENS",
    "OTHER_FILE_PART_TOKENS",
    "PRICES_VAR",
    "UNKNOWN_MAX_OUTPUT_TOKENS",
    "TEXT_VALUE",
    "DECLARED_PATHS",
    "CostEstimate",
    "PriceTable",
    "check_budget",
    "estimate_groups",
    "file_part_tokens",
    "mime_type_pattern",
    "model_problem",
    "request_price_row",
]
