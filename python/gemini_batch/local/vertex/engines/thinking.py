"""How the simulated model thinks: the budget a request gets and the tokens it spends.

From the model's ``catalog.Thinking`` and the request's
``generationConfig.thinkingConfig``: ``thinkingBudget`` -1 is dynamic, 0 turns thinking
off where the model allows it (2.5 Pro and Gemini 3 Pro answer 400 "Budget 0 is
invalid. This model only works in thinking mode."), other values are clamped to the
model's range; ``thinkingLevel`` (Gemini 3 only; not with a budget) scales the dynamic
amount; ``includeThoughts`` asks for thought parts. A model that does not think ignores
the config. The tokens spent are a stable function of the request: 0.6 to 1.2 times the
model's ``typical_tokens``, never more than the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemini_batch.local.vertex import models
from gemini_batch.local.vertex.requests import RequestError
from gemini_batch.rules import catalog

# thinkingLevel → share of the model's dynamic thinking.
LEVELS = {"MINIMAL": 0.1, "LOW": 0.4, "MEDIUM": 0.7, "HIGH": 1.0}
_FIELD = "generationConfig.thinkingConfig"


@dataclass(frozen=True)
class ThinkingPlan:
    """What one request gets: ``budget`` -1 dynamic, 0 off, N at most N tokens."""

    budget: int
    scale: float = 1.0
    include_thoughts: bool = False


OFF = ThinkingPlan(budget=0)


def spec(model: str) -> catalog.Thinking:
    found = models.spec(model)
    return found.thinking if found else catalog.NO_THINKING


def plan(request: dict[str, Any], model: str) -> ThinkingPlan:
    """The thinking ``request`` gets from ``model``; RequestError for a config the
    service refuses (the message is the service's where known)."""
    thinking = spec(model)
    if thinking.max_budget == 0:
        return OFF
    config = request.get("generationConfig", {}).get("thinkingConfig") or {}
    requested, level = config.get("thinkingBudget"), config.get("thinkingLevel")
    include = bool(config.get("includeThoughts", False))
    scale = 1.0
    if level is not None:
        if not model.startswith("gemini-3"):
            raise RequestError(
                f"{_FIELD}.thinkingLevel",
                "thinking_level is not supported by this model; use thinking_budget.",
            )
        if requested is not None:
            raise RequestError(
                f"{_FIELD}.thinkingLevel",
                "thinking_level and thinking_budget cannot be used in the same request.",
            )
        if str(level).upper() not in LEVELS:
            raise RequestError(
                f"{_FIELD}.thinkingLevel",
                f"Invalid thinking_level {level!r}: use one of {', '.join(LEVELS)}.",
            )
        scale = LEVELS[str(level).upper()]
    if requested is not None and int(requested) == 0 and not thinking.can_disable:
        raise RequestError(
            f"{_FIELD}.thinkingBudget",
            "Budget 0 is invalid. This model only works in thinking mode.",
        )
    budget = thinking.budget(None if requested is None else int(requested))
    return ThinkingPlan(budget=budget, scale=scale, include_thoughts=include and budget != 0)


def thought_tokens(request_plan: ThinkingPlan, model: str, draw: int) -> int:
    """Tokens spent thinking, from ``draw`` (a number from the request's hash)."""
    if request_plan.budget == 0:
        return 0
    thinking = spec(model)
    typical = thinking.typical_tokens or thinking.min_budget
    spread = 0.6 + 0.6 * (draw % 10_000) / 10_000
    tokens = max(1, round(typical * request_plan.scale * spread))
    cap = thinking.max_budget if request_plan.budget < 0 else request_plan.budget
    return min(tokens, cap)


__all__ = ["LEVELS", "OFF", "ThinkingPlan", "plan", "spec", "thought_tokens"]
