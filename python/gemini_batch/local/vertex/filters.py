"""The ``filter`` of ``batchPredictionJobs.list``: which jobs a list call returns.

The service documents it as "the standard list filter" (Google's AIP-160 filtering) on
these fields of ``ListBatchPredictionJobsRequest``: ``display_name`` (= != and the :
wildcard), ``model_display_name`` (= !=), ``state`` (= !=), ``create_time`` (= != < <=
> >=, RFC 3339) and ``labels.<key>`` (``labels.k=v``; ``labels.k:*`` for "has the
key"), e.g. ``state="JOB_STATE_SUCCEEDED" AND labels.team="data"`` or
``NOT display_name="my_job"``.

This module implements the subset clients use, with these differences from AIP-160:

- no parentheses, and ``AND`` binds tighter than ``OR`` (in AIP-160 ``OR`` does);
- ``:`` is key existence with ``*`` and equality otherwise (no ``"my_job_*"`` prefixes);
- every field takes every comparison, compared as text; ``update_time`` is accepted
  too, and ``model_display_name`` compares the job's model resource name;
- a state may be written without its prefix (``SUCCEEDED``) or as its enum number.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from gemini_batch.local.vertex.errors import ApiError
from gemini_batch.local.vertex.models import publisher_model_name
from gemini_batch.local.vertex.store import JOB_STATES

JobPredicate = Callable[[dict[str, Any]], bool]

_TERM = re.compile(
    r'^\s*(?P<field>[A-Za-z_.]+)\s*(?P<op>!=|=|:|>=|<=|>|<)\s*(?P<value>"[^"]*"|\S+)\s*$'
)
# Filter field → the job resource's field.
_FIELDS = {
    "state": "state",
    "display_name": "displayName",
    "displayName": "displayName",
    "model_display_name": "model",
    "model": "model",
    "create_time": "createTime",
    "createTime": "createTime",
    "update_time": "updateTime",
    "updateTime": "updateTime",
}
_COMPARE: dict[str, Callable[[str, str], bool]] = {
    "=": lambda a, b: a == b,
    ":": lambda a, b: b == "*" and a != "" or a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


def job_filter(expression: str) -> JobPredicate:
    """A predicate for the list filter: ``state="JOB_STATE_RUNNING" AND labels.k="v"``.

    Terms compare ``state``, ``display_name``, ``model``, ``create_time``,
    ``update_time`` or ``labels.<key>`` with = != : > < >= <=, joined by AND or OR
    (AND binds tighter), optionally preceded by NOT (or ``-``). An empty filter keeps
    every job; a term it cannot read raises ``ApiError`` (400) naming it.
    """
    expression = expression.strip()
    if not expression:
        return lambda job: True
    alternatives = [
        [_term(term) for term in re.split(r"\s+AND\s+", branch)]
        for branch in re.split(r"\s+OR\s+", expression)
    ]
    return lambda job: any(all(term(job) for term in branch) for branch in alternatives)


def _term(text: str) -> JobPredicate:
    negate = False
    stripped = text.strip()
    if stripped.startswith("NOT "):
        negate, stripped = True, stripped[4:]
    elif stripped.startswith("-"):
        negate, stripped = True, stripped[1:]
    match = _TERM.match(stripped)
    if not match:
        raise ApiError(
            400,
            f"Unsupported filter term {text.strip()!r}: write e.g. "
            'state="JOB_STATE_SUCCEEDED" or labels.team="data".',
        )
    name, op, value = match["field"], match["op"], match["value"].strip('"')
    read = _reader(name)
    if name == "state" and value.isdigit():
        value = next((n for n, i in JOB_STATES.items() if i == int(value)), value)
    elif name == "state" and not value.startswith("JOB_STATE_") and value != "*":
        value = f"JOB_STATE_{value}"
    if name == "model" and not value.startswith("publishers/") and "/" not in value:
        value = publisher_model_name(value)
    compare = _COMPARE[op]

    def term(job: dict[str, Any]) -> bool:
        return compare(read(job), value) != negate

    return term


def _reader(name: str) -> Callable[[dict[str, Any]], str]:
    """How to read a filter field from a job resource, as text ('' when absent)."""
    if name.startswith("labels."):
        label = name.removeprefix("labels.")
        return lambda job: str((job.get("labels") or {}).get(label, ""))
    if name in _FIELDS:
        key = _FIELDS[name]
        return lambda job: str(job.get(key, ""))
    raise ApiError(
        400,
        f"Unsupported filter field {name!r}: use state, display_name, "
        "model, create_time, update_time or labels.<key>.",
    )
