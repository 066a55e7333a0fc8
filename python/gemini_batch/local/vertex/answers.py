"""Answers with no usable text, as the service writes them (with `status` ''), and the
markers in a prompt that ask the ``simulate`` engine for one.

Kinds, named as in the markers:

- ``finish:MAX_TOKENS``: the output limit was spent, thinking first: a candidate with
  ``finishReason: MAX_TOKENS``, content with no text part, ``thoughtsTokenCount`` equal
  to the limit (on a model that does not think: ``candidatesTokenCount`` equal to it);
- ``finish:<reason>`` (SAFETY, RECITATION, PROHIBITED_CONTENT, SPII, BLOCKLIST, ...): a
  candidate stopped for that reason with no content (``safetyRatings`` for SAFETY);
- ``blocked:<reason>`` (SAFETY, PROHIBITED_CONTENT, BLOCKLIST, OTHER, ...): the prompt was
  blocked: ``promptFeedback.blockReason``, no candidates, only the prompt counted.

A prompt text holding ``[[gemini-batch:finish:RECITATION]]`` (or ``blocked:SAFETY``, or
``error:429`` for a failed row) is answered so by the simulate engine; the fault
``empty_answer_rate`` turns a share of any engine's answers into one of these.
"""

from __future__ import annotations

import re
from typing import Any

EMPTY_KINDS = (
    "finish:MAX_TOKENS",
    "blocked:SAFETY",
    "finish:SAFETY",
    "finish:RECITATION",
    "finish:PROHIBITED_CONTENT",
)
# google.cloud.aiplatform.v1 Candidate.FinishReason values that leave no text, and
# GenerateContentResponse.PromptFeedback.BlockedReason values.
STOP_REASONS = ("MAX_TOKENS", "SAFETY", "RECITATION", "PROHIBITED_CONTENT", "SPII",
                "BLOCKLIST", "IMAGE_SAFETY", "OTHER")
BLOCK_REASONS = ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "OTHER", "IMAGE_SAFETY",
                 "MODEL_ARMOR", "JAILBREAK")
_MARKER = re.compile(
    r"\[\[gemini-batch:(?:(?P<kind>finish|blocked):(?P<reason>[A-Z_]+)|error:(?P<code>\d{3}))\]\]"
)
_HARM_CATEGORIES = ("HARM_CATEGORY_HATE_SPEECH", "HARM_CATEGORY_DANGEROUS_CONTENT",
                    "HARM_CATEGORY_HARASSMENT", "HARM_CATEGORY_SEXUALLY_EXPLICIT")
_BLOCKED_CATEGORY = "HARM_CATEGORY_DANGEROUS_CONTENT"


def marker(request: dict[str, Any]) -> tuple[str, str] | None:
    """The first marker in the request's text parts: ("finish", "RECITATION"),
    ("blocked", "SAFETY") or ("error", "429"); None without one (or with a reason the
    service does not have)."""
    contents = [*request["contents"], request.get("systemInstruction", {"parts": []})]
    for content in contents:
        for part in content["parts"]:
            for match in _MARKER.finditer(part.get("text") or ""):
                if match["code"]:
                    return "error", match["code"]
                reasons = STOP_REASONS if match["kind"] == "finish" else BLOCK_REASONS
                if match["reason"] in reasons:
                    return match["kind"], match["reason"]
    return None


def safety_ratings(blocked: bool) -> list[dict[str, Any]]:
    """Vertex AI's ratings: every category negligible but one, high (and blocked) if so."""
    ratings = []
    for category in _HARM_CATEGORIES:
        high = blocked and category == _BLOCKED_CATEGORY
        rating: dict[str, Any] = {
            "category": category,
            "probability": "HIGH" if high else "NEGLIGIBLE",
            "probabilityScore": 0.92 if high else 0.03,
            "severity": "HARM_SEVERITY_HIGH" if high else "HARM_SEVERITY_NEGLIGIBLE",
            "severityScore": 0.87 if high else 0.02,
        }
        if high:
            rating["blocked"] = True
        ratings.append(rating)
    return ratings


def empty_answer(response: dict[str, Any], kind: str, *, limit: int) -> dict[str, Any]:
    """``response`` (a normal answer) made into an answer of ``kind`` with no usable text.

    ``limit`` is the request's output limit (maxOutputTokens or the model's). Usage keeps
    the prompt; thinking stays counted (and billed) when a candidate was stopped after it.
    """
    family, _, reason = kind.partition(":")
    usage = dict(response.get("usageMetadata", {}))
    for name in ("candidatesTokenCount", "candidatesTokensDetails"):
        usage.pop(name, None)
    answer = {key: value for key, value in response.items() if key != "candidates"}
    if family == "blocked":
        usage.pop("thoughtsTokenCount", None)
        feedback: dict[str, Any] = {
            "blockReason": reason,
            "blockReasonMessage": f"The prompt was blocked ({reason}) by the simulated "
            "model's filters (local Vertex AI emulator).",
        }
        if reason == "SAFETY":
            feedback["safetyRatings"] = safety_ratings(blocked=True)
        answer["promptFeedback"] = feedback
    elif reason == "MAX_TOKENS":
        first = response["candidates"][0]
        thoughts = [p for p in first.get("content", {}).get("parts", []) if p.get("thought")]
        content: dict[str, Any] = {"role": "model"}
        if thoughts:
            content["parts"] = thoughts
        usage["thoughtsTokenCount" if usage.get("thoughtsTokenCount") else
              "candidatesTokenCount"] = limit
        answer["candidates"] = [{"content": content, "finishReason": "MAX_TOKENS"}]
    elif reason == "STOP":  # as Gemini 2.5 and 3 sometimes answer: a content, no parts
        answer["candidates"] = [{"content": {"role": "model"}, "finishReason": "STOP"}]
    else:
        candidate: dict[str, Any] = {"finishReason": reason}
        if reason == "SAFETY":
            candidate["safetyRatings"] = safety_ratings(blocked=True)
        answer["candidates"] = [candidate]
    usage["totalTokenCount"] = (
        usage.get("promptTokenCount", 0)
        + usage.get("candidatesTokenCount", 0)
        + usage.get("thoughtsTokenCount", 0)
    )
    answer["usageMetadata"] = usage
    return answer


__all__ = ["BLOCK_REASONS", "EMPTY_KINDS", "STOP_REASONS", "empty_answer", "marker",
           "safety_ratings"]
