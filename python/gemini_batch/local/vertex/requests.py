"""Read one row's `request` as the service does: a GenerateContentRequest, normalised.

The service parses the JSON into its protobuf message, so it accepts what protobuf's JSON
parser accepts: snake_case as well as camelCase field names (``file_data``,
``mime_type``, ``generation_config`` ...), a single object where a list is expected
(``"parts": {"text": ...}``), and ``null`` for an absent field. ``normalise_request``
returns the same request in canonical camelCase, or raises ``RequestError`` naming the
field that is wrong. Names chosen by the user (the properties of a response schema, the
arguments of a function call) are kept as they are.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import orjson

from gemini_batch.local.vertex.faults import model_call_error, row_error
from gemini_batch.rules import catalog, request_schema

ROLES = ("user", "model")
# Part fields that carry content; a part needs one of them.
_PART_DATA = (
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
)
_PART_FIELDS = frozenset({*_PART_DATA, "thought", "thoughtSignature", "videoMetadata"})
_REQUEST_FIELDS = frozenset(
    {
        "contents",
        "systemInstruction",
        "generationConfig",
        "safetySettings",
        "tools",
        "toolConfig",
        "labels",
        "cachedContent",
        "model",
    }
)
# Schema fields whose value is a map of user-chosen names to schemas.
_SCHEMA_MAPS = frozenset({"properties", "$defs", "defs"})
_SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
_SCHEMA_ONE = frozenset({"items", "additionalProperties", "not"})
# Values that are free-form JSON: kept verbatim.
_VERBATIM = frozenset(
    {
        "args",
        "response",
        "labels",
        "example",
        "default",
        "enum",
        "required",
        "propertyOrdering",
        "responseJsonSchema",
        "parametersJsonSchema",
    }
)

_SNAKE = re.compile(r"_([a-z0-9])")


class RequestError(ValueError):
    """A request the service would refuse; ``field`` is its path, e.g. contents[0].role."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def status(self, table: object, row: int) -> str:
        """The row's `status`, as the service writes a 400 for one request.

        It also names the table, the row (its position in the order the table was read)
        and the field, so the request can be found and fixed.
        """
        return self.status_at(f"table {table}, row {row}")

    def status_at(self, place: str) -> str:
        """The row's `status`, naming ``place`` (a JSONL file and line, or a table row)."""
        where = f"request.{self.field}" if self.field else "request"
        return row_error(400, f"{self.message} ({place}, field {where})")


@functools.lru_cache(maxsize=4096)
def camel(name: str) -> str:
    return _SNAKE.sub(lambda match: match.group(1).upper(), name)


def parse_request(raw: Any, model: str | None = None) -> dict[str, Any]:
    """The `request` column's value (JSON text, or already parsed) as a normalised dict,
    checked against the discovery document's schema and ``model``'s rules."""
    if isinstance(raw, str | bytes):
        try:
            raw = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RequestError("", f"Invalid JSON payload received: {exc}") from None
    if raw is None:
        raise RequestError("", "The request is empty (NULL): write a GenerateContentRequest.")
    request = normalise_request(raw)
    check_request(raw, model)
    return request


def check_request(raw: dict[str, Any], model: str | None) -> None:
    """Raise RequestError with the service's 400 for the first thing in ``raw`` (a JSON
    object) that Google's API description or ``model``'s rules refuse: one validator
    (request_schema.py) for the operator's checks, this emulator and the local
    BigQuery's AI.GENERATE."""
    problems = request_schema.schema_problems(raw)
    found = catalog.lookup(model) if model else None
    if not problems and found is not None:
        problems = request_schema.model_problems(raw, found)
    if problems:
        raise RequestError(problems[0].path, problems[0].service_message())


def batch_refusal(request: dict[str, Any]) -> str | None:
    """The `status` of a well-formed request that batch prediction fails all the same.

    ``cachedContent``: batch jobs do not take context caches; the service writes the
    model call's 404 for the cache (as seen in real outputs), whatever the cache is.
    """
    cache = request.get("cachedContent")
    if cache:
        cache_id = str(cache).rsplit("/")[-1]
        return model_call_error(
            404, "NOT_FOUND", f"Not found: cached content metadata for {cache_id}."
        )
    return None


def _as_list(value: Any) -> list[Any]:
    """Protobuf's JSON parser takes one object where a repeated field is expected."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RequestError(
            where,
            f"Invalid JSON payload received: {where or 'request'} must be an object, "
            f"not {type(value).__name__}.",
        )
    # Most keys are camelCase already: skip the conversion call for them (hot path).
    return {
        (camel(key) if "_" in key else key): item for key, item in value.items() if item is not None
    }


def normalise_request(request: Any) -> dict[str, Any]:
    body = _object(request, "")
    unknown = sorted(set(body) - _REQUEST_FIELDS)
    if unknown:
        raise RequestError(
            unknown[0],
            f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.',
        )
    contents = _as_list(body.get("contents"))
    if not contents:
        raise RequestError(
            "contents",
            "Unable to submit request because it has no contents: "
            "write at least one content with parts.",
        )
    body["contents"] = [
        _content(content, f"contents[{index}]", system=False)
        for index, content in enumerate(contents)
    ]
    if "systemInstruction" in body:
        body["systemInstruction"] = _content(
            body["systemInstruction"], "systemInstruction", system=True
        )
    if "generationConfig" in body:
        body["generationConfig"] = _generation_config(body["generationConfig"])
    if "safetySettings" in body:
        body["safetySettings"] = [
            _object(setting, f"safetySettings[{index}]")
            for index, setting in enumerate(_as_list(body["safetySettings"]))
        ]
    if "tools" in body:
        body["tools"] = [
            _tool(tool, f"tools[{index}]") for index, tool in enumerate(_as_list(body["tools"]))
        ]
    if "toolConfig" in body:
        body["toolConfig"] = _keys(body["toolConfig"])
    return body


def _content(value: Any, where: str, *, system: bool) -> dict[str, Any]:
    content = _object(value, where)
    role = content.get("role")
    if not system and role is not None and role not in ROLES:
        raise RequestError(
            f"{where}.role", f"Please use a valid role: {', '.join(ROLES)} (not {role!r})."
        )
    unknown = sorted(set(content) - {"role", "parts"})
    if unknown:
        raise RequestError(
            f"{where}.{unknown[0]}",
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}': "
            "Cannot find field.",
        )
    parts = _as_list(content.get("parts"))
    if not parts:
        raise RequestError(
            f"{where}.parts",
            "Unable to submit request because it must include at least one "
            "parts field, which describes the prompt input.",
        )
    content["parts"] = [_part(part, f"{where}.parts[{index}]") for index, part in enumerate(parts)]
    return content


def _part(value: Any, where: str) -> dict[str, Any]:
    part = _object(value, where)
    unknown = sorted(set(part) - _PART_FIELDS)
    if unknown:
        raise RequestError(
            f"{where}.{unknown[0]}",
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}': "
            "Cannot find field.",
        )
    data = [name for name in _PART_DATA if name in part]
    if not data:
        raise RequestError(
            where,
            "A part must contain one of text, inlineData or fileData "
            "(or a function call/response).",
        )
    if len(data) > 1:
        raise RequestError(
            where, f"A part holds one kind of data, but this one has {' and '.join(data)}."
        )
    kind = data[0]
    if kind == "text":
        if not isinstance(part["text"], str):
            raise RequestError(f"{where}.text", "text must be a string.")
        if not part["text"]:
            raise RequestError(
                f"{where}.text",
                "Unable to submit request because it has an empty text "
                "parameter. Add a value to the parameter and try again.",
            )
    elif kind in ("fileData", "inlineData"):
        blob = _object(part[kind], f"{where}.{kind}")
        needed = ("fileUri", "mimeType") if kind == "fileData" else ("data", "mimeType")
        for name in needed:
            if not blob.get(name):
                raise RequestError(f"{where}.{kind}.{name}", f"{kind}.{name} is required.")
        part[kind] = blob
    else:
        part[kind] = _keys(part[kind])
    return part


def _generation_config(value: Any) -> dict[str, Any]:
    config = _object(value, "generationConfig")
    for name in ("responseSchema",):
        if name in config:
            config[name] = _schema(config[name], f"generationConfig.{name}")
    if "stopSequences" in config:
        config["stopSequences"] = _as_list(config["stopSequences"])
    for name, item in list(config.items()):
        if name not in ("responseSchema", "stopSequences") and isinstance(item, dict):
            config[name] = _keys(item)
    return config


def _tool(value: Any, where: str) -> dict[str, Any]:
    tool = _object(value, where)
    if "functionDeclarations" in tool:
        declarations = []
        for index, item in enumerate(_as_list(tool["functionDeclarations"])):
            declaration = _object(item, f"{where}.functionDeclarations[{index}]")
            for name in ("parameters", "response"):
                if name in declaration:
                    declaration[name] = _schema(declaration[name], f"{where}.{name}")
            declarations.append(declaration)
        tool["functionDeclarations"] = declarations
    for name, item in list(tool.items()):
        if name != "functionDeclarations":
            tool[name] = _keys(item)
    return tool


def _schema(value: Any, where: str) -> dict[str, Any]:
    """An OpenAPI-subset schema: keywords camelCased, property names kept."""
    schema = _object(value, where)
    for name, item in list(schema.items()):
        if name in _SCHEMA_MAPS and isinstance(item, dict):
            schema[name] = {key: _schema(sub, f"{where}.{name}.{key}") for key, sub in item.items()}
        elif name in _SCHEMA_LISTS:
            schema[name] = [
                _schema(sub, f"{where}.{name}[{i}]") for i, sub in enumerate(_as_list(item))
            ]
        elif name in _SCHEMA_ONE and isinstance(item, dict):
            schema[name] = _schema(item, f"{where}.{name}")
    return schema


def _keys(value: Any) -> Any:
    """camelCase every key of a message, recursively, except in free-form values."""
    if isinstance(value, dict):
        return {
            camel(key): (item if camel(key) in _VERBATIM else _keys(item))
            for key, item in value.items()
            if item is not None
        }
    if isinstance(value, list):
        return [_keys(item) for item in value]
    return value
