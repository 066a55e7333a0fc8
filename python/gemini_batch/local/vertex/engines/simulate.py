"""The ``simulate`` engine: deterministic answers that say plainly they are simulated.

Same request, byte-identical response: every choice (enum values, numbers, log
probabilities, thinking tokens) comes from a hash of the request. The answer echoes what
was asked and honours the parts of ``generationConfig`` that change a response's shape:
``thinkingConfig`` (engines/thinking.py: thinking models think by default, and their
thinking counts against the output limit), ``maxOutputTokens`` (thinking first, then the
text is cut: finishReason MAX_TOKENS, with no text when thinking spent it all),
``candidateCount``, and ``responseMimeType: application/json`` with ``responseSchema``
(JSON valid for the schema). A marker in the prompt asks for an answer with no usable
text or a row error (answers.py). Token counts are a stable estimate: about 4 characters
a token, and a fixed allowance for each file or inline part by its MIME type, reported
by modality as the service does.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson

from gemini_batch.local.vertex.answers import empty_answer, marker
from gemini_batch.local.vertex.engines import Result, thinking
from gemini_batch.local.vertex.faults import ROW_ERROR_CODES, row_error
from gemini_batch.local.vertex.models import output_limit
from gemini_batch.local.vertex.requests import RequestError

CHARS_PER_TOKEN = 4
# Tokens counted for one file/inline part, by MIME type prefix (the service counts 258
# tokens an image; media are counted here as if they lasted 30 seconds).
FILE_TOKENS = {
    "image/": 258,
    "video/": 30 * 263,
    "audio/": 30 * 32,
    "application/pdf": 258 * 5,
    "text/": 500,
}
DEFAULT_FILE_TOKENS = 258
# Gemini 3 reads media at its default media resolution: 1,120 tokens an image, 560 a
# PDF page (whatever the file's size).
GEMINI_3_FILE_TOKENS = {**FILE_TOKENS, "image/": 1_120, "application/pdf": 560 * 5}
# What the model reads besides the contents, counted as prompt text as the service
# counts it: tool declarations and the response schema.
DECLARED = (("tools",), ("toolConfig",), ("generationConfig", "responseSchema"),
            ("generationConfig", "responseJsonSchema"))
# usageMetadata's modality of a file part, by MIME type prefix (TEXT otherwise).
MODALITIES = {"image/": "IMAGE", "video/": "VIDEO", "audio/": "AUDIO",
              "application/pdf": "DOCUMENT"}
# What usageMetadata.trafficType says for a batch row (the enum has no batch value).
TRAFFIC_TYPE = "ON_DEMAND"


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _by_prefix(table: dict[str, Any], mime_type: str, default: Any) -> Any:
    return next((value for prefix, value in table.items() if mime_type.startswith(prefix)),
                default)


def file_tokens(mime_type: str, model: str = "") -> int:
    table = GEMINI_3_FILE_TOKENS if model.startswith("gemini-3") else FILE_TOKENS
    return int(_by_prefix(table, mime_type, DEFAULT_FILE_TOKENS))


def _declared(request: dict[str, Any]) -> list[Any]:
    values = []
    for path in DECLARED:
        value: Any = request
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            values.append(value)
    return values


def prompt_tokens_by_modality(request: dict[str, Any], model: str = "") -> dict[str, int]:
    """Prompt tokens per modality (TEXT, IMAGE, VIDEO, AUDIO, DOCUMENT), in that order:
    the contents, the system instruction, tool declarations and the response schema."""
    contents = list(request["contents"])
    if "systemInstruction" in request:
        contents.append(request["systemInstruction"])
    counts = dict.fromkeys(("TEXT", "IMAGE", "VIDEO", "AUDIO", "DOCUMENT"), 0)
    for content in contents:
        for part in content["parts"]:
            if "text" in part:
                counts["TEXT"] += estimate_tokens(part["text"])
            elif "fileData" in part or "inlineData" in part:
                mime_type = (part.get("fileData") or part["inlineData"]).get("mimeType", "")
                counts[_by_prefix(MODALITIES, mime_type, "TEXT")] += file_tokens(
                    mime_type, model)
            else:
                counts["TEXT"] += estimate_tokens(orjson.dumps(part).decode())
    for value in _declared(request):
        counts["TEXT"] += estimate_tokens(orjson.dumps(value).decode())
    return {modality: tokens for modality, tokens in counts.items() if tokens}


def prompt_tokens(request: dict[str, Any], model: str = "") -> int:
    return sum(prompt_tokens_by_modality(request, model).values())


class _Draws:
    """A stream of deterministic numbers seeded by the request."""

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def next(self) -> int:
        self._counter += 1
        digest = hashlib.blake2b(self._seed + self._counter.to_bytes(4, "big"), digest_size=8)
        return int.from_bytes(digest.digest(), "big")


def _describe(part: dict[str, Any]) -> str:
    if "text" in part:
        return str(part["text"])
    if "fileData" in part:
        blob = part["fileData"]
        return f"[file {blob['fileUri']} ({blob['mimeType']})]"
    if "inlineData" in part:
        blob = part["inlineData"]
        return f"[inline {blob['mimeType']} data, {len(blob['data'])} base64 characters]"
    kind = next(iter(part))
    return f"[{kind}: {orjson.dumps(part[kind]).decode()}]"


def _echo(request: dict[str, Any], model: str) -> str:
    lines = [
        f"This is a simulated response from {model} (local Vertex AI emulator); "
        "no model was called."
    ]
    if "systemInstruction" in request:
        system = " ".join(_describe(part) for part in request["systemInstruction"]["parts"])
        lines.append(f"System instruction: {system}")
    last_user = next(
        (c for c in reversed(request["contents"]) if c.get("role", "user") == "user"),
        request["contents"][-1],
    )
    asked = "\n".join(_describe(part) for part in last_user["parts"])
    lines.append(f"You asked: {asked}")
    return "\n".join(lines)


def _schema_type(schema: dict[str, Any]) -> str:
    kind = schema.get("type", "")
    if isinstance(kind, list):  # JSON-schema style ["string", "null"]
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    kind = str(kind).upper()
    if not kind:
        if "properties" in schema:
            return "OBJECT"
        if "items" in schema:
            return "ARRAY"
        if "enum" in schema:
            return "STRING"
    return kind or "STRING"


def value_for_schema(schema: dict[str, Any], draws: _Draws, name: str = "value") -> Any:
    """A value valid for an OpenAPI-subset schema (the Gemini ``responseSchema``)."""
    for combinator in ("anyOf", "oneOf"):
        if schema.get(combinator):
            options = schema[combinator]
            return value_for_schema(options[draws.next() % len(options)], draws, name)
    if schema.get("enum"):
        options = schema["enum"]
        return options[draws.next() % len(options)]
    kind = _schema_type(schema)
    if kind == "OBJECT":
        properties: dict[str, Any] = schema.get("properties", {})
        order = list(schema.get("propertyOrdering") or [])
        order += [key for key in properties if key not in order]
        return {
            key: value_for_schema(properties[key], draws, key) for key in order if key in properties
        }
    if kind == "ARRAY":
        low = int(schema.get("minItems", 1))
        high = max(low, int(schema.get("maxItems", max(low, 3))))
        count = low + draws.next() % (high - low + 1)
        item = schema.get("items", {"type": "STRING"})
        return [value_for_schema(item, draws, name) for _ in range(count)]
    if kind in ("INTEGER", "NUMBER"):
        low = float(schema.get("minimum", 0))
        high = float(schema.get("maximum", low + 100))
        if kind == "INTEGER":
            low_int, high_int = math.ceil(low), math.floor(high)
            return low_int + draws.next() % max(1, high_int - low_int + 1)
        return round(low + (draws.next() % 10_000) / 10_000 * (high - low), 4)
    if kind == "BOOLEAN":
        return bool(draws.next() % 2)
    if kind == "NULL":
        return None
    text = f"simulated {name} {draws.next() % 1000}"
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2025-01-01T00:00:00Z"
    if fmt == "date":
        return "2025-01-01"
    min_length = int(schema.get("minLength", 0))
    max_length = int(schema.get("maxLength", max(min_length, len(text))))
    return text.ljust(min_length, "x")[:max_length]


def _truncate(text: str, max_tokens: int) -> tuple[str, str]:
    if estimate_tokens(text) > max_tokens:
        return text[: max(0, max_tokens) * CHARS_PER_TOKEN], "MAX_TOKENS"
    return text, "STOP"


def _details(counts: dict[str, int]) -> list[dict[str, Any]]:
    return [{"modality": modality, "tokenCount": tokens}
            for modality, tokens in counts.items() if tokens]


class SimulateEngine:
    name = "simulate"
    batch_size = 10_000

    def generate(self, requests: list[dict[str, Any]], *, model: str) -> list[Result]:
        return [self.answer(request, model=model) for request in requests]

    def answer(self, request: dict[str, Any], *, model: str) -> Result:
        """The response to ``request``, or the `status` of a row the service fails."""
        asked = marker(request)
        if asked and asked[0] == "error" and int(asked[1]) in ROW_ERROR_CODES:
            return row_error(int(asked[1]))
        try:
            plan = thinking.plan(request, model)
        except RequestError as exc:
            return row_error(400, f"{exc.message} (field request.{exc.field})")
        seed = hashlib.blake2b(
            orjson.dumps(request, option=orjson.OPT_SORT_KEYS) + model.encode(), digest_size=16
        ).digest()
        draws = _Draws(seed)
        limit = output_limit(request, model)
        thoughts = min(limit, thinking.thought_tokens(plan, model, draws.next()))
        response = self._response(request, model, draws, thoughts, limit - thoughts, plan)
        if asked and asked[0] != "error":
            return empty_answer(response, ":".join(asked), limit=limit)
        if thoughts >= limit:  # thinking spent the whole output limit
            return empty_answer(response, "finish:MAX_TOKENS", limit=limit)
        return response

    def _response(
        self,
        request: dict[str, Any],
        model: str,
        draws: _Draws,
        thoughts: int,
        room: int,
        plan: thinking.ThinkingPlan,
    ) -> dict[str, Any]:
        """The answer's candidates (``room`` tokens of text each) and usage."""
        config = request.get("generationConfig", {})
        count = max(1, int(config.get("candidateCount", 1)))
        mime_type = config.get("responseMimeType", "text/plain")
        schema = config.get("responseSchema")
        candidates = []
        output_tokens = 0
        for index in range(count):
            if mime_type == "application/json":
                value = (
                    value_for_schema(schema, draws)
                    if schema
                    else {"simulated": True, "answer": _echo(request, model)}
                )
                text = orjson.dumps(value).decode()
            elif mime_type == "text/x.enum" and schema and schema.get("enum"):
                text = str(value_for_schema(schema, draws))
            else:
                text = _echo(request, model)
                if count > 1:
                    text += f"\n(candidate {index + 1} of {count})"
            text, finish_reason = _truncate(text, room)
            output_tokens += estimate_tokens(text)
            parts = [{"text": text}]
            if plan.include_thoughts and thoughts:
                parts.insert(0, {"text": _thought_summary(request, thoughts), "thought": True})
            candidate: dict[str, Any] = {
                "avgLogprobs": -((draws.next() % 100_000) / 1_000_000 + 0.01),
                "content": {"parts": parts, "role": "model"},
                "finishReason": finish_reason,
            }
            if count > 1:
                candidate["index"] = index
            candidates.append(candidate)
        prompt = prompt_tokens_by_modality(request, model)
        prompt_total = sum(prompt.values())
        # Proto JSON leaves out zero counts, as the service's answers do.
        usage: dict[str, Any] = {"promptTokenCount": prompt_total}
        if output_tokens:
            usage["candidatesTokenCount"] = output_tokens
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] = prompt_total + output_tokens + thoughts
        usage["trafficType"] = TRAFFIC_TYPE
        usage["promptTokensDetails"] = _details(prompt)
        if output_tokens:
            usage["candidatesTokensDetails"] = _details({"TEXT": output_tokens})
        return {
            "candidates": candidates,
            "modelVersion": f"{model}@default",
            "usageMetadata": usage,
        }

    def close(self) -> None:
        pass


def _thought_summary(request: dict[str, Any], thoughts: int) -> str:
    asked = _describe(request["contents"][-1]["parts"][0])[:80]
    return f"**Simulated thinking** ({thoughts} tokens, no model was called) about: {asked}"
