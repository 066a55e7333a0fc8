"""What is wrong with a GenerateContentRequest: the Python side of
``gemini_batch.request_problems`` (macros/requests/request_problems.sql), for requests
that never pass through BigQuery (a JSONL file given to ``gemini-batch submit``).

Same problems, same words, same order as the SQL: the cases of the integration
project's seed ``request_problem_inputs.csv`` (whose expected column the SQL side is
tested against) are run through this module by tests/unit/test_submit_checks.py, and the
GenerationConfig fields are read from macros/utils/_generation_config_keys.sql there too.
Like BigQuery's JSON, a member set to null counts as absent and object keys are read in
sorted order.
"""

from __future__ import annotations

import json
import re
from typing import Any

# The GenerationConfig fields (camelCase; the snake_case spelling is accepted too).
GENERATION_CONFIG_KEYS = (
    "audioTimestamp",
    "candidateCount",
    "enableAffectiveDialog",
    "frequencyPenalty",
    "imageConfig",
    "logprobs",
    "maxOutputTokens",
    "mediaResolution",
    "presencePenalty",
    "responseJsonSchema",
    "responseLogprobs",
    "responseMimeType",
    "responseModalities",
    "responseSchema",
    "routingConfig",
    "seed",
    "speechConfig",
    "stopSequences",
    "temperature",
    "thinkingConfig",
    "topK",
    "topP",
)
REQUEST_KEYS = frozenset(
    {
        "contents",
        "systemInstruction",
        "system_instruction",
        "generationConfig",
        "generation_config",
        "safetySettings",
        "safety_settings",
        "tools",
        "toolConfig",
        "tool_config",
        "labels",
        "cachedContent",
        "cached_content",
    }
)
# A part holds exactly one of these (either spelling).
_PART_KINDS = {
    "text": ("text",),
    "fileData": ("fileData", "file_data"),
    "inlineData": ("inlineData", "inline_data"),
    "functionCall": ("functionCall", "function_call"),
    "functionResponse": ("functionResponse", "function_response"),
}
_KIND_LIST = ", ".join(_PART_KINDS)
_ROLE_MISSING = "is missing (in a conversation of several turns each names its role, user or model)"
_CACHE = (
    "cachedContent: batch prediction does not take a context cache (remove it; repeated "
    "prompt prefixes are cached implicitly)"
)


def null_text_problem(path: str) -> str:
    """A text part whose text is NULL (the prompt expression gave NULL): the words the SQL
    check says too (_part_problem in macros/requests/request_problems.sql)."""
    what = "system instruction" if path.startswith("systemInstruction") else "prompt"
    return f"the {what} is NULL ({path}.text)"


def _snake(name: str) -> str:
    return re.sub("([A-Z])", r"_\1", name).lower()


_CONFIG_KEYS = frozenset(GENERATION_CONFIG_KEYS) | {_snake(key) for key in GENERATION_CONFIG_KEYS}
_MISSING = object()


def _member(value: Any, *names: str) -> Any:
    """The first of ``names`` that holds a value (JSON null counts as absent)."""
    if not isinstance(value, dict):
        return None
    for name in names:
        member = value.get(name)
        if member is not None:
            return member
    return None


def _scalar_text(value: Any) -> str | None:
    """BigQuery's JSON_VALUE: a scalar as text; None for null, objects and lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    return None


def _parts_of(parts: Any) -> list[Any]:
    if isinstance(parts, dict):
        return [parts]
    if isinstance(parts, list):
        return parts
    return []


def request_problems(request: Any, *, from_text: bool = False) -> str | None:
    """Every problem of ``request`` joined by "; ", or None for a request batch takes.

    ``request`` is the parsed JSON value (None: NULL), or with ``from_text`` JSON text.
    """
    if from_text and request is not None:
        try:
            request = json.loads(request)
        except (TypeError, ValueError):
            request = _MISSING
    problems: list[str] = []
    contents = _member(request, "contents")
    first = None
    if request is None:
        first = "request: is NULL"
    elif request is _MISSING:
        first = "request: is not valid JSON"
    elif not isinstance(request, dict):
        first = "request: is not a JSON object"
    elif contents is None:
        first = "contents: is missing"
    elif not isinstance(contents, list):
        first = "contents: is not a list"
    elif not contents:
        first = "contents: is empty"
    if first:
        problems.append(first)
    if not isinstance(request, dict):
        return "; ".join(problems)
    problems.extend(
        f"{key}: unknown field of a GenerateContentRequest"
        for key in sorted(request)
        if key not in REQUEST_KEYS
    )
    turns = contents if isinstance(contents, list) else []
    for item, content in enumerate(turns):
        problems.extend(_content_problems(content, item, several=len(turns) > 1))
    system = _member(request, "systemInstruction", "system_instruction")
    for index, part in enumerate(_parts_of(_member(system, "parts"))):
        problem = _part_problem(part, f"systemInstruction.parts[{index}]")
        if problem:
            problems.append(problem)
    if _member(request, "cachedContent", "cached_content") is not None:
        problems.append(_CACHE)
    config = _member(request, "generationConfig", "generation_config")
    if config is not None and not isinstance(config, dict):
        problems.append("generationConfig: is not an object")
    if isinstance(config, dict):
        problems.extend(
            f"generationConfig.{key}: unknown field of a GenerationConfig"
            for key in sorted(config)
            if key not in _CONFIG_KEYS
        )
    return "; ".join(problems) or None


def _content_problems(content: Any, item: int, *, several: bool) -> list[str]:
    where = f"contents[{item}]"
    role = _member(content, "role")
    parts = _member(content, "parts")
    problem = None
    if not isinstance(content, dict):
        problem = f"{where}: is not an object"
    elif role is not None and (_scalar_text(role) or "") not in ("user", "model"):
        shown = _scalar_text(role)
        problem = f'{where}.role: "{shown if shown is not None else json.dumps(role)}" is not ' \
            "user or model"
    elif role is None and several:
        problem = f"{where}.role: {_ROLE_MISSING}"
    elif parts is None:
        problem = f"{where}.parts: is missing"
    elif not isinstance(parts, list | dict):
        problem = f"{where}.parts: is not a list of parts"
    elif isinstance(parts, list) and not parts:
        problem = f"{where}.parts: is empty"
    found = [problem] if problem else []
    for index, part in enumerate(_parts_of(parts)):
        part_problem = _part_problem(part, f"{where}.parts[{index}]")
        if part_problem:
            found.append(part_problem)
    return found


def _part_problem(part: Any, path: str) -> str | None:
    if not isinstance(part, dict):
        return f"{path}: is not an object"
    kinds = sum(_member(part, *names) is not None for names in _PART_KINDS.values())
    if kinds == 0 and "text" in part and part["text"] is None:
        return null_text_problem(path)
    if kinds == 0:
        return f"{path}: has none of {_KIND_LIST}"
    if kinds > 1:
        return f"{path}: has more than one of {_KIND_LIST}"
    text = _member(part, "text")
    if text is not None and (isinstance(text, bool) or _scalar_text(text) is None):
        return f"{path}.text: is not a string"
    file_data = _member(part, "fileData", "file_data")
    if file_data is not None:
        file_uri = _scalar_text(_member(file_data, "fileUri", "file_uri"))
        if file_uri is None:
            return f"{path}.fileData.fileUri: is missing"
        if not file_uri.startswith(("gs://", "https://")):
            return f'{path}.fileData.fileUri: "{file_uri}" is not a gs:// or https:// URI'
        if not (_scalar_text(_member(file_data, "mimeType", "mime_type")) or ""):
            return f"{path}.fileData.mimeType: is missing"
    inline = _member(part, "inlineData", "inline_data")
    if inline is not None:
        if not (_scalar_text(_member(inline, "data")) or ""):
            return f"{path}.inlineData.data: is missing"
        if not (_scalar_text(_member(inline, "mimeType", "mime_type")) or ""):
            return f"{path}.inlineData.mimeType: is missing"
    return None
