"""What a job's answers cost as the bill reads it: from their usageMetadata, at the
rates of the model that answered. Arithmetic only: no I/O (the usage is summed by
``ModelStatements.merge_output``, state/responses.py).
"""

from __future__ import annotations

from typing import Protocol

from gemini_batch.rules import catalog
from gemini_batch.rules.pricing import PriceTable


class Usage(Protocol):
    """Tokens of a job's answers as their usageMetadata counts them (``MergeResult``);
    ``long_*``: of the requests over LONG_CONTEXT_TOKENS (output: candidates and
    thoughts)."""

    prompt_tokens: int
    candidates_tokens: int
    thoughts_tokens: int
    cached_tokens: int
    audio_prompt_tokens: int
    long_prompt_tokens: int
    long_output_tokens: int
    long_cached_tokens: int
    long_audio_tokens: int
    model_version: str | None  # the model that answered, when the answers name one


def answered_by(requested: str, model_version: str | None,
                prices: PriceTable | None = None) -> str | None:
    """The model that answered (the answers' ``modelVersion``) when it is priced apart
    from the one ``requested``, else None: ``gemini-2.0-flash-001@default`` answering
    for ``gemini-2.0-flash`` is the same model; another model is billed at its rates."""
    if not model_version:
        return None
    answered = catalog.lookup(model_version, extended=True)
    asked = catalog.lookup(requested, extended=True)
    if answered is None or asked is None or answered.name == asked.name:
        return None
    if (prices or PriceTable()).price_for(model_version) is None:
        return None
    return catalog.bare_name(model_version)


def answered_by_note(requested: str, model_version: str | None,
                     prices: PriceTable | None = None) -> str:
    """``; answered by gemini-2.5-flash-lite, not gemini-2.5-flash: priced at its rates``
    when another model answered (``answered_by``), else ''."""
    other = answered_by(requested, model_version, prices)
    return f"; answered by {other}, not {requested}: priced at its rates" if other else ""


def actual_cost(
    gemini_model: str, usage: Usage, *, prices: PriceTable | None = None
) -> float | None:
    """Batch cost of a job's answers as the bill reads it (from their usageMetadata):
    requests over LONG_CONTEXT_TOKENS at the long-context rates, audio prompt tokens at
    the audio rate, cached tokens at the cached rate (no batch discount on top), at the
    rates of the model that answered (``usage.model_version``, see ``answered_by``).
    None if the model has no price."""
    gemini_model = answered_by(gemini_model, usage.model_version, prices) or gemini_model
    price = (prices or PriceTable()).price_for(gemini_model)
    if price is None:
        return None
    output = usage.candidates_tokens + usage.thoughts_tokens
    short = price.batch_usd(
        usage.prompt_tokens - usage.long_prompt_tokens,
        output - usage.long_output_tokens,
        audio_tokens=usage.audio_prompt_tokens - usage.long_audio_tokens,
        cached_tokens=usage.cached_tokens - usage.long_cached_tokens,
    )
    long = price.batch_usd(
        usage.long_prompt_tokens,
        usage.long_output_tokens,
        audio_tokens=usage.long_audio_tokens,
        cached_tokens=usage.long_cached_tokens,
        long_context=True,
    )
    return short + long


__all__ = ["Usage", "actual_cost", "answered_by", "answered_by_note"]
