"""The thinking trap: a thinking model thinks first, and its thinking counts against
``maxOutputTokens``; below what it typically thinks plus an answer, most answers come
back empty (finishReason MAX_TOKENS), paid for and final. ``plan`` and ``build`` warn
with the fix (docs/costs.md, The thinking trap). No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence

from gemini_batch.rules.catalog import Thinking


def trap_warning(
    gemini_model: str, thinking: Thinking, *, requests: int, limits: Sequence[int],
    expected_thinking: float, answer: float, thoughts: float,
) -> str | None:
    """The warning for ``requests`` whose maxOutputTokens (``limits``) leave thinking no
    room: ``expected_thinking`` tokens a request would think (the most of them),
    ``thoughts`` and ``answer`` the model's typical figures. None when there is none."""
    if not requests:
        return None
    needed = math.ceil(expected_thinking + answer)
    turn_off = ("0 turns it off" if thinking.can_disable
                else f"{thinking.min_budget} is the least {gemini_model} takes")
    return (
        f"{requests:,} requests leave thinking no room: maxOutputTokens "
        f"{', '.join(f'{limit:,}' for limit in sorted(set(limits)))} is below what "
        f"{gemini_model} typically thinks (~{round(thoughts):,} tokens with a dynamic or "
        f"large thinkingBudget) plus an answer (~{round(answer):,}): most answers would come "
        f"back empty (MAX_TOKENS) with their thinking billed. Fix: raise maxOutputTokens to "
        f"{needed:,} or more, or set generationConfig.thinkingConfig.thinkingBudget so "
        f"thinking + answer fit ({turn_off})."
    )


__all__ = ["trap_warning"]
