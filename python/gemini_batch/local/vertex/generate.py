"""The one path from a GenerateContentRequest to its answer, for every local service.

The Vertex AI emulator's batch jobs (runner.py) and the local BigQuery's ``AI.GENERATE``
(local/ai_generate) both answer through :func:`answer`: the row faults first, then the
request read and checked as the service reads it (:func:`read_request`, the one place a
request is validated), the engine (``simulate`` or ``openai``), the empty-answer faults,
and the fields the service stamps on each answer (``createTime``, ``responseId``).

A result is a GenerateContentResponse (a dict in REST field names) or the failed row's
`status` as Vertex AI batch prediction writes it (``faults.row_error``); a service that
words its failures otherwise (BigQuery) rewords that status from its code and message.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gemini_batch.local.vertex.answers import empty_answer
from gemini_batch.local.vertex.engines import Engine, Result
from gemini_batch.local.vertex.faults import Faults
from gemini_batch.local.vertex.models import output_limit
from gemini_batch.local.vertex.requests import RequestError, parse_request
from gemini_batch.local.vertex.store import timestamp


@dataclass(frozen=True)
class Call:
    """One request to answer.

    ``scope`` and ``number`` key the fault draws and the ``responseId`` (a batch job and
    its row; for AI.GENERATE, the request's hash and its attempt); ``place`` is where the
    request came from, named in a 400 status (a table row, a file line).
    """

    request: Any  # JSON text, bytes, or a dict already parsed
    scope: str
    number: int
    place: str


# What refuses a well-formed request all the same (requests.batch_refusal for batch jobs):
# the `status` it fails with, or None.
Refusal = Callable[[dict[str, Any]], str | None]


def read_request(raw: Any, place: str, refuse: Refusal | None = None,
                 model: str | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """(the normalised request, None), or (None, the `status` the row fails with): the
    request is checked against Google's schema and ``model``'s rules (``parse_request``)."""
    try:
        request = parse_request(raw, model)
    except RequestError as exc:
        return None, exc.status_at(place)
    status = refuse(request) if refuse else None
    return (None, status) if status else (request, None)


def answer(calls: Sequence[Call], *, engine: Engine, faults: Faults, model: str,
           refuse: Refusal | None = None, created: datetime | None = None) -> list[Result]:
    """The answer to each call, in order: a response, or a failed row's `status`.

    ``created`` is stamped as each answer's ``createTime`` (default: now).
    """
    results: list[Result | None] = []
    requests: list[dict[str, Any]] = []
    for call in calls:
        status = faults.row_failure(call.scope, call.number)
        request = None
        if status is None:
            request, status = read_request(call.request, call.place, refuse, model)
        if request is not None:
            requests.append(request)
        results.append(status)
    generated = iter(zip(requests, engine.generate(requests, model=model), strict=True))
    create_time = timestamp(created)
    for index, (call, status) in enumerate(zip(calls, results, strict=True)):
        if status is not None:
            continue
        request, result = next(generated)
        if not isinstance(result, str):
            kind = faults.empty_answer(call.scope, call.number) or (
                "finish:STOP" if faults.stop_empty(call.scope, call.number) else None)
            if kind:
                result = empty_answer(result, kind, limit=output_limit(request, model))
            # What the service stamps on each answer: when, and a unique id.
            result["createTime"] = create_time
            result["responseId"] = response_id(call.scope, call.number)
            if faults.model_version:
                result["modelVersion"] = faults.model_version
        results[index] = result
    return results  # type: ignore[return-value]  # every None was replaced


def response_id(scope: str, number: int) -> str:
    """A responseId like the service's (23 URL-safe characters), unique per (scope, number)."""
    digest = hashlib.blake2b(f"{scope}:{number}".encode(), digest_size=17).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


__all__ = ["Call", "Refusal", "answer", "read_request", "response_id"]
