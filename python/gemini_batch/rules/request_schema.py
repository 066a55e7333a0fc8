"""Check a GenerateContentRequest against Google's own description of it, and the model's rules.

The schema (request_schema.json) is derived from the Vertex AI v1 discovery document by
``python -m gemini_batch.rules.request_schema_build``; its ``revision`` names the document.
``schema_problems`` finds what the service would refuse with a 400: unknown fields at
any depth (with the nearest field name), values of the wrong JSON type, enum values it
does not list (``INT64`` for a response schema type: "did you mean INTEGER?").
``model_problems`` adds the rules of the model the request goes to (catalog.py):
thinking budgets, ``thinkingLevel``, the output limit, ``candidateCount``.

Like protobuf's JSON parser, field names are read in camelCase or snake_case, a member
set to null counts as absent and one object is taken where a list is expected. The
same rules, where SQL can reach them, are in macros/utils/_request_schema.sql
(generated from ``sql_rules``); the Vertex emulator refuses with them too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemini_batch.rules import catalog

SCHEMA_FILE = Path(__file__).resolve().parent / "request_schema.json"
# BigQuery's names for the OpenAPI types a response schema takes (a common slip when
# the schema is written from a table's columns); spelling alone would not find them.
TYPE_SYNONYMS = {
    "INT64": "INTEGER", "INT": "INTEGER", "BIGINT": "INTEGER", "BOOL": "BOOLEAN",
    "FLOAT64": "NUMBER", "FLOAT": "NUMBER", "DOUBLE": "NUMBER", "NUMERIC": "NUMBER",
    "BIGNUMERIC": "NUMBER", "DECIMAL": "NUMBER", "STRUCT": "OBJECT", "RECORD": "OBJECT",
    "JSON": "OBJECT", "LIST": "ARRAY", "REPEATED": "ARRAY", "TEXT": "STRING",
}
_SNAKE = re.compile(r"_([a-z0-9])")


@dataclass(frozen=True)
class Problem:
    """One thing the service would refuse: ``path`` as ``contents[0].parts[1].text``;
    ``service``, the message of the service's 400 where known (the emulator's)."""

    path: str
    message: str
    service: str = ""

    def service_message(self) -> str:
        return self.service or f"Invalid value at '{proto_path(self.path)}': {self.message}"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_FILE.read_text())


def revision() -> str:
    return schema()["revision"]


def proto_path(path: str) -> str:
    """The path as the service's messages write it: snake_case field names."""
    return ".".join(snake(step) if step[:1].islower() else step for step in path.split("."))


def camel(name: str) -> str:
    return _SNAKE.sub(lambda match: match.group(1).upper(), name)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, as BigQuery's EDIT_DISTANCE counts it (the SQL side's)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def nearest(name: str, choices: list[str]) -> str | None:
    """The choice closest to ``name`` (case ignored) within a third of its length,
    the first in sorted order on a tie; None when nothing is that close."""
    wanted = name.lower()
    scored = sorted((edit_distance(wanted, choice.lower()), choice) for choice in choices)
    if scored and scored[0][0] <= max(1, len(name) // 3):
        return scored[0][1]
    return None


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


_TYPE_CHECKS = {
    "string": (lambda value: isinstance(value, str), "is not a string", "TYPE_STRING"),
    "bytes": (lambda value: isinstance(value, str), "is not a base64 string", "TYPE_BYTES"),
    "integer": (_is_integer, "is not an integer", "TYPE_INT32"),
    "number": (_is_number, "is not a number", "TYPE_FLOAT"),
    "boolean": (lambda value: isinstance(value, bool), "is not true or false", "TYPE_BOOL"),
}


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _walk(value: Any, field: dict[str, Any], path: str) -> Iterator[Problem]:
    kind = field["type"]
    if kind == "any":
        return
    if kind == "list":
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            if item is not None:
                yield from _walk(item, field["items"], f"{path}[{index}]")
        return
    if kind in ("map", "message") and not isinstance(value, dict):
        yield Problem(path, "is not an object", f"Invalid value at '{proto_path(path)}' "
                      f"(TYPE_MESSAGE), {json.dumps(value)}")
        return
    if kind == "map":
        for key in sorted(value):
            if value[key] is not None:
                yield from _walk(value[key], field["values"], f"{path}.{key}")
        return
    if kind == "message":
        yield from _message(value, field["ref"], path)
        return
    if kind == "enum":
        yield from _enum(value, field["values"], path)
        return
    check, words, proto = _TYPE_CHECKS[kind]
    if not check(value):
        yield Problem(path, f"{_shown(value)} {words}",
                      f"Invalid value at '{proto_path(path)}' ({proto}), {json.dumps(value)}")


def _enum(value: Any, values: list[str], path: str) -> Iterator[Problem]:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(values):
        return  # protobuf's JSON parser takes an enum's number too
    if isinstance(value, str) and value in values:
        return
    if isinstance(value, str) and "OBJECT" in values and value.upper() in values:
        return  # a schema type in OpenAPI's lower case: the service takes it (litellm#8864)
    shown = _shown(value)
    listed = [name for name in values if not name.endswith("_UNSPECIFIED")]
    guess = TYPE_SYNONYMS.get(shown.upper()) if isinstance(value, str) else None
    if guess not in values:
        guess = nearest(shown, listed) if isinstance(value, str) else None
    hint = f"; did you mean {guess}?" if guess else ""
    yield Problem(path, f'"{shown}" is not one of {", ".join(listed)}{hint}',
                  f"Invalid value at '{proto_path(path)}' (TYPE_ENUM), {json.dumps(value)}")


def _message(value: dict[str, Any], name: str, path: str) -> Iterator[Problem]:
    fields = schema()["messages"][name]
    prefix = f"{path}." if path else ""
    for key in sorted(value):
        item = value[key]
        if item is None:
            continue
        field_name = camel(key)
        field = fields.get(field_name)
        if field is None:
            guess = nearest(key, list(fields))
            at = f" at '{proto_path(path)}'" if path else ""
            yield Problem(f"{prefix}{key}",
                          f"unknown field; did you mean {guess}?" if guess
                          else f"unknown field of a {name}",
                          f'Invalid JSON payload received. Unknown name "{key}"{at}: '
                          "Cannot find field.")
            continue
        yield from _walk(item, field, f"{prefix}{field_name}")


def schema_problems(request: dict[str, Any]) -> list[Problem]:
    """What in ``request`` (a parsed JSON object) the discovery document does not allow."""
    return list(_message(request, schema()["root"], ""))


def _member(value: Any, *names: str) -> Any:
    if not isinstance(value, dict):
        return None
    for name in names:
        if value.get(name) is not None:
            return value[name]
    return None


def model_problems(request: dict[str, Any], model: catalog.Model) -> list[Problem]:
    """What ``model`` refuses in a request whose fields are well-formed."""
    problems: list[Problem] = []
    config = _member(request, "generationConfig", "generation_config")
    thinking_config = _member(config, "thinkingConfig", "thinking_config")
    budget = _member(thinking_config, "thinkingBudget", "thinking_budget")
    level = _member(thinking_config, "thinkingLevel", "thinking_level")
    thinking = model.thinking
    where = "generationConfig.thinkingConfig"
    if _is_integer(budget):
        message = thinking.budget_problem(int(budget), model.name)
        if message:
            service = ("Budget 0 is invalid. This model only works in thinking mode."
                       if int(budget) == 0 else
                       "Unable to submit request because thinking_budget is out of range; "
                       f"supported values are integers from {thinking.min_budget} to "
                       f"{thinking.max_budget}. Learn more: "
                       "https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini")
            problems.append(Problem(f"{where}.thinkingBudget", message, service))
    if level is not None and not thinking.levels:
        problems.append(Problem(f"{where}.thinkingLevel", f"{model.name} does not take a "
                                "thinking level (Gemini 3 models do); set thinkingBudget",
                                "thinking_level is not supported by this model; use "
                                "thinking_budget."))
    elif isinstance(level, str) and level not in thinking.levels:
        problems.append(Problem(f"{where}.thinkingLevel", f'"{level}" is not a level '
                                f"{model.name} takes: {', '.join(thinking.levels)}"))
    if level is not None and budget is not None and thinking.levels:
        problems.append(Problem(where, "thinkingBudget and thinkingLevel cannot both be set; "
                                "keep one", "thinking_level and thinking_budget cannot be used "
                                "in the same request."))
    limit = _member(config, "maxOutputTokens", "max_output_tokens")
    if _is_integer(limit) and not 1 <= int(limit) <= model.max_output_tokens:
        problems.append(Problem("generationConfig.maxOutputTokens", f"{int(limit)} is outside "
                                f"1 to {model.max_output_tokens}, what {model.name} takes"))
    candidates = _member(config, "candidateCount", "candidate_count")
    if _is_integer(candidates) and not 1 <= int(candidates) <= model.max_candidates:
        problems.append(Problem("generationConfig.candidateCount", f"{int(candidates)} is "
                                f"outside 1 to {model.max_candidates}, what {model.name} takes"))
    return problems


def sql_rules(derived: dict[str, Any]) -> dict[str, Any]:
    """The facts the SQL check (and its Python twin, request_checks.py) reads, for
    macros/utils/_request_schema.sql. SQL reaches a member only by a constant JSON
    path, so the walk goes where no list and no map is on the way: ``objects``, the
    messages at such paths from the request (each its path, the spellings of each step,
    its message and field names); ``part_objects`` the same from a part of a turn;
    ``enums`` the enum fields at such paths. ``schema_types``: the response schema's
    type names and the BigQuery names to suggest them for; ``models``: catalog.py's
    per-model rules."""
    messages = derived["messages"]
    objects: list[dict[str, Any]] = []
    enums: list[dict[str, Any]] = []
    _static(messages, derived["root"], [], objects, enums)
    part_objects: list[dict[str, Any]] = []
    _static(messages, "Part", [], part_objects, [])
    types = messages["Schema"]["type"]["values"]
    return {
        "revision": derived["revision"],
        "objects": objects,
        "part_objects": part_objects,
        "enums": enums,
        "schema_types": [name for name in types if not name.endswith("_UNSPECIFIED")],
        "type_synonyms": {key: value for key, value in sorted(TYPE_SYNONYMS.items())
                          if value in types},
        "models": catalog.sql_rules(),
    }


def snake(name: str) -> str:
    return re.sub("([A-Z])", r"_\1", name).lower()


def spellings(name: str) -> list[str]:
    """A field's names as protobuf's JSON parser reads them: camelCase, snake_case."""
    return [name] if snake(name) == name else [name, snake(name)]


def _static(messages: dict[str, Any], name: str, steps: list[str], objects: list[dict[str, Any]],
            enums: list[dict[str, Any]]) -> None:
    fields = messages[name]
    objects.append({"path": ".".join(steps), "steps": [spellings(step) for step in steps],
                    "message": name, "fields": sorted({s for f in fields for s in spellings(f)}),
                    "names": sorted(fields)})
    for field_name, field in fields.items():
        if field["type"] == "message" and field["ref"] != name:  # Schema.items: stop
            _static(messages, field["ref"], [*steps, field_name], objects, enums)
        elif field["type"] == "enum":
            path = [*steps, field_name]
            enums.append({"path": ".".join(path), "steps": [spellings(step) for step in path],
                          "values": [v for v in field["values"] if not v.endswith("_UNSPECIFIED")],
                          "accepted": field["values"]})
