"""The Gemini models Vertex AI batch prediction serves: where, how they think, what they cost.

One table for the operator (model names checked before submitting, cost estimates and
actual cost) and for the local Vertex AI emulator (which models it serves where, how
much the simulated model thinks). Talks to no service.

Facts as read from Google's Vertex AI docs (model pages, locations, thinking, batch
prediction and pricing) on CHECKED; docs/costs.md prints the price table and
docs/local-stack.md what is uncertain. Prices are online USD per million tokens; batch
bills ``1 - BATCH_DISCOUNT`` of them, except cached input tokens, which bill at the
cached price (the implicit-cache discount replaces the batch discount, it does not
stack). Add or override models with the dbt var ``gemini_batch_prices`` (pricing.py).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

CHECKED = "2026-12-02"
BATCH_DISCOUNT = 0.5
# Prompts longer than this bill at a model's long-context prices (per request).
LONG_CONTEXT_TOKENS = 200_000
# Google's batch page: on the `global` location batch jobs read and write Cloud Storage
# JSONL only, not BigQuery. Uncertain (docs/local-stack.md): one switch, here.
GLOBAL_BATCH_TAKES_BIGQUERY = False
GLOBAL = "global"
# Vertex AI refuses a batch job with more requests than this.
MAX_REQUESTS_PER_JOB = 200_000
# A batch job still queued after this many hours expires (JOB_STATE_EXPIRED) unanswered.
QUEUE_LIMIT_HOURS = 72
# BigQuery multi-region locations: batch jobs need a regional dataset (and a region).
MULTI_REGIONS = frozenset({"us", "eu"})

# Where the GA 2.0 and 2.5 models serve batch jobs (Google's "Deployments and
# endpoints" page, United States, Europe and Asia Pacific regions).
GA_REGIONS = frozenset({
    "us-central1", "us-east1", "us-east4", "us-east5", "us-south1", "us-west1", "us-west4",
    "northamerica-northeast1", "southamerica-east1",
    "europe-central2", "europe-north1", "europe-southwest1", "europe-west1", "europe-west2",
    "europe-west3", "europe-west4", "europe-west6", "europe-west8", "europe-west9",
    "asia-east1", "asia-east2", "asia-northeast1", "asia-northeast3", "asia-south1",
    "asia-southeast1", "australia-southeast1", "me-central1", "me-west1",
})


@dataclass(frozen=True)
class Thinking:
    """How a model thinks when the request says nothing, and what ``thinkingBudget`` takes.

    ``default_budget``: -1 dynamic (the model decides; the common default), 0 off.
    ``typical_tokens``: thinking tokens per request a dynamic budget spends on a short
    prompt, for estimates before the ledger has observed the model (and for the
    emulator's simulated thinking).
    """

    default_budget: int = -1
    min_budget: int = 1
    max_budget: int = 24_576
    can_disable: bool = True
    typical_tokens: int = 1_000
    # The thinkingLevel values the model takes (Gemini 3); empty: it takes none.
    levels: tuple[str, ...] = ()

    def budget_problem(self, requested: int, model: str) -> str | None:
        """Why ``model`` refuses ``thinkingBudget: requested``, or None."""
        if not self.max_budget:
            return None if requested == 0 else f"{model} does not think; remove thinkingBudget"
        if requested == -1:
            return None
        allowed = f"use {self.min_budget} to {self.max_budget}, or -1 (dynamic)"
        if requested == 0:
            return None if self.can_disable else (
                f"0 turns thinking off, which {model} cannot do; {allowed}")
        if not self.min_budget <= requested <= self.max_budget:
            return f"{requested} is outside what {model} takes; {allowed}" + (
                ", or 0 (off)" if self.can_disable else "")
        return None

    def budget(self, requested: int | None) -> int:
        """The budget a request gets: ``requested`` clamped to what the model takes;
        0 where the model cannot turn thinking off becomes its minimum."""
        if requested is None:
            return self.default_budget
        if requested == -1:
            return -1
        if requested == 0:
            return 0 if self.can_disable else self.min_budget
        return max(self.min_budget, min(self.max_budget, requested))


NO_THINKING = Thinking(default_budget=0, min_budget=0, max_budget=0, can_disable=True,
                       typical_tokens=0)


@dataclass(frozen=True)
class Price:
    """Online USD per million tokens. Output includes thinking tokens. ``long_*`` apply
    to a request whose prompt is over LONG_CONTEXT_TOKENS; ``audio_input`` to audio
    prompt tokens; ``cached_input`` to prompt tokens served from the implicit cache."""

    input: float
    output: float
    long_input: float | None = None
    long_output: float | None = None
    audio_input: float | None = None
    cached_input: float | None = None
    batch_discount: float = BATCH_DISCOUNT

    def rates(self, prompt_tokens: int) -> tuple[float, float]:
        """(input, output) online rates for a request with ``prompt_tokens``."""
        if prompt_tokens > LONG_CONTEXT_TOKENS and self.long_input is not None:
            return self.long_input, self.long_output or self.output
        return self.input, self.output

    def batch_usd(
        self,
        input_tokens: float,
        output_tokens: float,
        *,
        audio_tokens: float = 0,
        cached_tokens: float = 0,
        long_context: bool = False,
    ) -> float:
        """The batch bill for tokens of requests of one context tier: ``input_tokens``
        include the audio and cached ones (as ``promptTokenCount`` does)."""
        rate_in, rate_out = self.rates(LONG_CONTEXT_TOKENS + 1 if long_context else 0)
        audio_rate = rate_in if self.audio_input is None or long_context else self.audio_input
        # The cache discount is a share of the input rate that applies: cached tokens of
        # a long prompt bill at that share of the long rate (2.5 Pro: $0.125 -> $0.25).
        cached_rate = (
            None if self.cached_input is None
            else self.cached_input * rate_in / self.input if self.input
            else self.cached_input
        )
        billed_cached = cached_tokens if cached_rate is not None else 0
        plain = max(0.0, input_tokens - audio_tokens - billed_cached)
        batch = 1 - self.batch_discount
        usd = (plain * rate_in + audio_tokens * audio_rate + output_tokens * rate_out) * batch
        if billed_cached:
            usd += billed_cached * (cached_rate or 0.0)  # no batch discount on top
        return usd / 1_000_000


@dataclass(frozen=True)
class Model:
    """One Gemini model as Vertex AI batch prediction serves it."""

    name: str
    price: Price
    thinking: Thinking = NO_THINKING
    locations: frozenset[str] = GA_REGIONS
    stage: str = "ga"  # "ga" or "preview"
    max_output_tokens: int = 65_536
    # Offered to new projects; gemini-1.5-* are not (since 2025-04-29).
    for_new_projects: bool = True
    aliases: tuple[str, ...] = field(default=())
    max_candidates: int = 8
    # Past its retirement date (YYYY-MM-DD): refused, naming ``replacement``. Kept here
    # for the prices of jobs the ledger already holds.
    retired: str | None = None
    replacement: str | None = None
    # The Google page the entry follows and the day it was read.
    source: str = ""
    read: str = CHECKED

    def serves(self, location: str) -> bool:
        return location.lower() in self.locations


_FLASH_THINKING = Thinking(default_budget=-1, min_budget=1, max_budget=24_576,
                           can_disable=True, typical_tokens=800)
_PRO_THINKING = Thinking(default_budget=-1, min_budget=128, max_budget=32_768,
                         can_disable=False, typical_tokens=1_500)
_GEMINI_3_THINKING = Thinking(default_budget=-1, min_budget=128, max_budget=32_768,
                              can_disable=False, typical_tokens=2_000, levels=("LOW", "HIGH"))

_MODEL_PAGE = "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/"
_LIFECYCLE = "https://docs.cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"

MODELS: dict[str, Model] = {
    model.name: model
    for model in (
        Model("gemini-3-pro-preview",
              Price(2.00, 12.00, long_input=4.00, long_output=18.00, cached_input=0.20),
              thinking=_GEMINI_3_THINKING, locations=frozenset({GLOBAL}), stage="preview",
              source=_MODEL_PAGE + "3-pro", read="2026-12-06"),
        Model("gemini-3-flash-preview",
              Price(0.50, 3.00, audio_input=1.00, cached_input=0.05),
              thinking=Thinking(default_budget=-1, min_budget=0, max_budget=24_576,
                                can_disable=True, typical_tokens=1_000,
                                levels=("MINIMAL", "LOW", "MEDIUM", "HIGH")),
              locations=frozenset({GLOBAL}), stage="preview", source=_MODEL_PAGE + "3-flash"),
        Model("gemini-2.5-pro",
              Price(1.25, 10.00, long_input=2.50, long_output=15.00, cached_input=0.125),
              thinking=_PRO_THINKING, source=_MODEL_PAGE + "2-5-pro"),
        Model("gemini-2.5-flash",
              Price(0.30, 2.50, audio_input=1.00, cached_input=0.03),
              thinking=_FLASH_THINKING, source=_MODEL_PAGE + "2-5-flash"),
        Model("gemini-2.5-flash-lite",
              Price(0.10, 0.40, audio_input=0.30, cached_input=0.01),
              thinking=Thinking(default_budget=0, min_budget=512, max_budget=24_576,
                                can_disable=True, typical_tokens=0),
              source=_MODEL_PAGE + "2-5-flash-lite"),
        Model("gemini-2.0-flash-001", Price(0.15, 0.60, audio_input=1.00, cached_input=0.0375),
              max_output_tokens=8_192, aliases=("gemini-2.0-flash",),
              source=_MODEL_PAGE + "2-0-flash"),
        Model("gemini-2.0-flash-lite-001", Price(0.075, 0.30),
              max_output_tokens=8_192, aliases=("gemini-2.0-flash-lite",),
              source=_MODEL_PAGE + "2-0-flash-lite"),
        # Retired 2025-09-24 (the lifecycle page's "Retired models"); new projects could
        # not use them from 2025-04-29.
        Model("gemini-1.5-pro-002", Price(1.25, 5.00, long_input=2.50, long_output=10.00),
              max_output_tokens=8_192, for_new_projects=False, aliases=("gemini-1.5-pro",),
              retired="2025-09-24", replacement="gemini-2.5-pro", source=_LIFECYCLE,
              read="2026-12-06"),
        Model("gemini-1.5-flash-002", Price(0.075, 0.30, long_input=0.15, long_output=0.60),
              max_output_tokens=8_192, for_new_projects=False, aliases=("gemini-1.5-flash",),
              retired="2025-09-24", replacement="gemini-2.5-flash", source=_LIFECYCLE,
              read="2026-12-06"),
    )
}
# Retired before this catalog began: names only, for the refusal.
RETIRED_NAMES = {
    "gemini-1.5-pro-001": ("2025-05-24", "gemini-2.5-pro"),
    "gemini-1.5-flash-001": ("2025-05-24", "gemini-2.5-flash"),
    "gemini-1.0-pro-001": ("2025-04-09", "gemini-2.5-flash"),
    "gemini-1.0-pro-002": ("2025-04-09", "gemini-2.5-flash"),
    "gemini-1.0-pro-vision-001": ("2025-04-09", "gemini-2.5-flash"),
    "gemini-1.0-pro": ("2025-04-09", "gemini-2.5-flash"),
}
# Every name a model goes by (its name and its aliases): the one list of known names.
NAMES: dict[str, Model] = {
    name: model for model in MODELS.values() for name in (model.name, *model.aliases)
}
_MODEL_NAME = re.compile(
    r"^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/models/)?"
    r"(?P<model>[^/@]+)(?:@(?P<version>[^/]+))?$"
)


def model_id(name: str) -> str | None:
    """``gemini-2.5-flash`` from any way a job may name it (a bare id, a publisher path,
    a full resource name, an ``@version``), or None if it is not a model name."""
    match = _MODEL_NAME.match(name.strip())
    return match["model"] if match else None


def bare_name(name: str) -> str:
    """``gemini-2.5-flash`` from ``publishers/google/models/gemini-2.5-flash@001``."""
    return name.rsplit("/", 1)[-1].split("@", 1)[0].lower()


def longest_prefix(name: str, names: Iterable[str]) -> str | None:
    """The longest of ``names`` the bare ``name`` starts with, so that
    'gemini-2.5-flash-preview-09-2025' finds 'gemini-2.5-flash'."""
    bare = bare_name(name)
    matches = [known for known in names if bare.startswith(bare_name(known))]
    return max(matches, key=len) if matches else None


def lookup(name: str, *, extended: bool = False) -> Model | None:
    """The catalog entry for ``name`` (any form ``model_id`` reads), or None. With
    ``extended``, a name the catalog lacks finds the model whose name it extends (a
    dated preview of it: its thinking and limits, for estimates)."""
    wanted = model_id(name)
    found = NAMES.get(wanted) if wanted else None
    if found is None and extended:
        near = longest_prefix(name, NAMES)
        found = NAMES[near] if near else None
    return found


def suggestions(name: str, location: str | None = None) -> list[str]:
    """Close catalog names for a mistyped one (served in ``location``, when given)."""
    names = [n for n, m in NAMES.items()
             if not m.retired and (location is None or m.serves(location))]
    return difflib.get_close_matches(model_id(name) or name, names, n=3, cutoff=0.6)


def check_model(name: str, location: str) -> str | None:
    """Why a batch job for ``name`` in ``location`` would be refused, or None if it is
    served there. Names the locations that do serve it, or what was meant."""
    model = lookup(name)
    retired = (model.retired, model.replacement) if model and model.retired else \
        RETIRED_NAMES.get(model_id(name) or "")
    if retired:
        return (f"{model_id(name)} was retired on {retired[0]} (Google's model versions and "
                f"lifecycle page); use {retired[1]}.")
    if model is None:
        near = suggestions(name, location) or suggestions(name)
        hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        return f"{name!r} is not a Gemini model Vertex AI batch prediction serves.{hint}"
    if not model.serves(location):
        where = ", ".join(sorted(model.locations)[:6])
        more = ", ..." if len(model.locations) > 6 else ""
        return (f"{model.name} is not served for batch prediction in {location!r}; it is "
                f"served in {where}{more}.")
    return None


def sql_rules() -> dict[str, dict[str, object]]:
    """The per-model request rules, by every name a model goes by, for the SQL check
    (macros/utils/_request_schema.sql, generated by request_schema_build)."""
    return {
        name: {
            "model": model.name,
            "min_budget": model.thinking.min_budget,
            "max_budget": model.thinking.max_budget,
            "can_disable": model.thinking.can_disable,
            "levels": list(model.thinking.levels),
            "max_output_tokens": model.max_output_tokens,
            "max_candidates": model.max_candidates,
        }
        for name, model in sorted(NAMES.items())
        if not model.retired
    }


__all__ = [
    "BATCH_DISCOUNT",
    "CHECKED",
    "GA_REGIONS",
    "GLOBAL",
    "GLOBAL_BATCH_TAKES_BIGQUERY",
    "LONG_CONTEXT_TOKENS",
    "MAX_REQUESTS_PER_JOB",
    "MODELS",
    "MULTI_REGIONS",
    "NAMES",
    "Model",
    "NO_THINKING",
    "Price",
    "RETIRED_NAMES",
    "Thinking",
    "bare_name",
    "check_model",
    "longest_prefix",
    "lookup",
    "model_id",
    "sql_rules",
    "suggestions",
]
