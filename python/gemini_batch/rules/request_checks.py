"""What is wrong with a GenerateContentRequest: the Python side of
``gemini_batch.request_problems`` (macros/requests/request_problems.sql), for requests
that never pass through BigQuery (a JSONL file given to ``gemini-batch submit``).

Same problems, same words, same order as the SQL: the cases of the integration
project's seed ``request_problem_inputs.csv`` (whose expected column the SQL side is
tested against) are run through this module by tests/unit/test_submit_checks.py. Field
names, enum values and model rules are read from the same place as the SQL's
(request_schema.sql_rules, generated into macros/utils/_request_schema.sql).
Like BigQuery's JSON, a member set to null counts as absent and object keys are read in
sorted order.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from gemini_batch.rules import catalog, request_schema

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
_MISSING = object()
# The "type" strings of a response schema as the SQL side finds them in its JSON text.
_TYPE_TEXT = re.compile(r'[^"\\]*')


@functools.cache
def _rules() -> dict[str, Any]:
    return request_schema.sql_rules(request_schema.schema())


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


def request_problems(request: Any, *, from_text: bool = False,
                     gemini_model: str | None = None) -> str | None:
    """Every problem of ``request`` joined by "; ", or None for a request batch takes.

    ``request`` is the parsed JSON value (None: NULL), or with ``from_text`` JSON text;
    ``gemini_model`` adds that model's rules.
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
    rules = _rules()
    objects = [_object_at(request, entry["steps"]) for entry in rules["objects"]]
    problems.extend(_object_problems(objects, rules["objects"]))
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
    for item, content in enumerate(turns):
        found = [f"contents[{item}].{_unknown(key, ['parts', 'role'], 'Content')}"
                 for key in (content if isinstance(content, dict) else {})
                 if key not in ("parts", "role")]
        problems.extend(sorted(found))
        for index, part in enumerate(_parts_of(_member(content, "parts"))):
            problems.extend(_part_field_problems(part, f"contents[{item}].parts[{index}]"))
    for index, part in enumerate(_parts_of(_member(system, "parts"))):
        problems.extend(_part_field_problems(part, f"systemInstruction.parts[{index}]"))
    problems.extend(_enum_problems(request, rules))
    problems.extend(_schema_type_problems(objects, rules))
    model = catalog.lookup(gemini_model) if gemini_model else None
    if model is not None and not model.retired:
        problems.extend(str(problem) for problem in request_schema.model_problems(request, model))
    return "; ".join(problems) or None


def _object_at(request: Any, steps: list[list[str]]) -> Any:
    value = request
    for names in steps:
        value = _member(value, *names)
    return value


def _unknown(key: str, names: list[str], message: str) -> str:
    """``key: unknown field`` with the nearest name, as the SQL's _unknown_field."""
    guess = request_schema.nearest(key, names)
    return f"{key}: unknown field; did you mean {guess}?" if guess else \
        f"{key}: unknown field of a {message}"


def _object_problems(objects: list[Any], entries: list[dict[str, Any]]) -> list[str]:
    problems = []
    for value, entry in zip(objects, entries, strict=True):
        path = entry["path"]
        if path and value is not None and not isinstance(value, dict):
            problems.append(f"{path}: is not an object")
        elif isinstance(value, dict):
            prefix = f"{path}." if path else ""
            found = [f"{prefix}{_unknown(key, entry['names'], entry['message'])}"
                     for key in sorted(value) if key not in entry["fields"]]
            if found:
                problems.append("; ".join(found))
    return problems


def _part_field_problems(part: Any, where: str) -> list[str]:
    found = []
    for entry in _rules()["part_objects"]:
        value = part if not entry["path"] else _member(part, *entry["steps"][0])
        if isinstance(value, dict):
            prefix = f"{where}.{entry['path'] + '.' if entry['path'] else ''}"
            found.extend(f"{prefix}{_unknown(key, entry['names'], entry['message'])}"
                         for key in value if key not in entry["fields"])
    return sorted(found)


def _enum_problems(request: Any, rules: dict[str, Any]) -> list[str]:
    found = []
    for enum in rules["enums"]:
        if enum["path"].startswith("generationConfig.responseSchema."):
            continue  # every depth of the response schema: _schema_type_problems
        value = _object_at(request, enum["steps"])
        if isinstance(value, str) and value not in enum["accepted"]:
            guess = request_schema.nearest(value, enum["values"])
            hint = f"; did you mean {guess}?" if guess else ""
            found.append(f'{enum["path"]}: "{value}" is not one of '
                         f'{", ".join(enum["values"])}{hint}')
    return found


def _type_strings(value: Any) -> set[str]:
    """Every string under a "type" key, at any depth (the SQL reads them from the JSON
    text with a regex, free-form members such as ``example`` included)."""
    if isinstance(value, list):
        return set().union(*(_type_strings(item) for item in value)) if value else set()
    if not isinstance(value, dict):
        return set()
    found = set().union(*(_type_strings(item) for item in value.values())) if value else set()
    kind = value.get("type")
    if isinstance(kind, str) and _TYPE_TEXT.fullmatch(kind):
        found.add(kind)
    return found


def _schema_type_problems(objects: list[Any], rules: dict[str, Any]) -> list[str]:
    index = [entry["path"] for entry in rules["objects"]].index("generationConfig.responseSchema")
    names = rules["schema_types"]
    found = []
    # Lower case (OpenAPI's spelling) is taken too, as the service does.
    for kind in sorted(kind for kind in _type_strings(objects[index])
                       if kind.upper() not in {*names, "TYPE_UNSPECIFIED"}):
        guess = rules["type_synonyms"].get(kind.upper()) or request_schema.nearest(kind, names)
        hint = f"; did you mean {guess}?" if guess else ""
        found.append(f'generationConfig.responseSchema: type "{kind}" is not one of '
                     f'{", ".join(names)}{hint}')
    return found


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
