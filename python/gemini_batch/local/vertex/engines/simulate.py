"""The ``simulate`` engine: deterministic answers that say plainly they are simulated.

Same request, byte-identical response: every choice (enum values, numbers, log
probabilities) comes from a hash of the request. The answer echoes what was asked and
honours the parts of ``generationConfig`` that change a response's shape:
``maxOutputTokens`` (truncation, finishReason MAX_TOKENS), ``candidateCount``, and
``responseMimeType: application/json`` with ``responseSchema`` (JSON valid for the schema).
Token counts are a stable estimate: about 4 characters a token, and a fixed allowance
for each file or inline part by its MIME type.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import orjson

from gemini_batch.local.vertex.engines import Result

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


def estimate_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def file_tokens(mime_type: str) -> int:
    for prefix, tokens in FILE_TOKENS.items():
        if mime_type.startswith(prefix):
            return tokens
    return DEFAULT_FILE_TOKENS


def prompt_tokens(request: dict[str, Any]) -> int:
    contents = list(request["contents"])
    if "systemInstruction" in request:
        contents.append(request["systemInstruction"])
    total = 0
    for content in contents:
        for part in content["parts"]:
            if "text" in part:
                total += estimate_tokens(part["text"])
            elif "fileData" in part or "inlineData" in part:
                blob = part.get("fileData") or part["inlineData"]
                total += file_tokens(blob.get("mimeType", ""))
            else:
                total += estimate_tokens(orjson.dumps(part).decode())
    return total


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


def _truncate(text: str, max_tokens: int | None) -> tuple[str, str]:
    if max_tokens is not None and estimate_tokens(text) > max_tokens:
        return text[: max(0, max_tokens) * CHARS_PER_TOKEN], "MAX_TOKENS"
    return text, "STOP"


class SimulateEngine:
    name = "simulate"
    batch_size = 10_000

    def generate(self, requests: list[dict[str, Any]], *, model: str) -> list[Result]:
        return [self.answer(request, model=model) for request in requests]

    def answer(self, request: dict[str, Any], *, model: str) -> dict[str, Any]:
        seed = hashlib.blake2b(
            orjson.dumps(request, option=orjson.OPT_SORT_KEYS) + model.encode(), digest_size=16
        ).digest()
        draws = _Draws(seed)
        config = request.get("generationConfig", {})
        count = max(1, int(config.get("candidateCount", 1)))
        max_tokens = config.get("maxOutputTokens")
        max_tokens = int(max_tokens) if max_tokens is not None else None
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
            text, finish_reason = _truncate(text, max_tokens)
            tokens = estimate_tokens(text)
            output_tokens += tokens
            candidate: dict[str, Any] = {
                "avgLogprobs": -((draws.next() % 100_000) / 1_000_000 + 0.01),
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": finish_reason,
            }
            if count > 1:
                candidate["index"] = index
            candidates.append(candidate)
        prompt = prompt_tokens(request)
        return {
            "candidates": candidates,
            "modelVersion": model,
            "usageMetadata": {
                "candidatesTokenCount": output_tokens,
                "promptTokenCount": prompt,
                "totalTokenCount": prompt + output_tokens,
            },
        }

    def close(self) -> None:
        pass
