"""The emulator's settings: faults on purpose, emulated time, what the project may use.

Rows that fail like the service's, answers with no usable text, jobs that fail, expire
or pause, delays; ``time_scale`` (emulated seconds per real second) so tests can reach
the 24-hour run limit and the 72-hour queue expiry in seconds. Set when the emulator
starts (``--fault-*`` flags or ``GEMINI_BATCH_FAULT_*`` env vars) and changed at runtime
with ``PUT /emulator/faults``. A job takes a snapshot of the settings when it starts, so
changing them affects the next job, not one halfway through (``job_outcome: PAUSED`` is
read live).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from gemini_batch.local.vertex.answers import EMPTY_KINDS

# How the service writes a failed row's `status`: the HTTP reason, then the error body.
_ROW_ERRORS = {
    400: ("Bad Request", "INVALID_ARGUMENT"),
    429: ("Too Many Requests", "RESOURCE_EXHAUSTED"),
    500: ("Internal Server Error", "INTERNAL"),
    503: ("Service Unavailable", "UNAVAILABLE"),
    504: ("Gateway Timeout", "DEADLINE_EXCEEDED"),
}
_ROW_ERROR_MESSAGES = {
    400: "Request contains an invalid argument.",
    429: "Resource exhausted. Please try again later. Please refer to "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    500: "Internal error encountered.",
    503: "The service is currently unavailable.",
    504: "Deadline expired before operation could complete.",
}
ROW_ERROR_CODES = tuple(_ROW_ERRORS)
JOB_OUTCOMES = ("FAILED", "EXPIRED", "PAUSED")


def row_error(code: int, message: str | None = None) -> str:
    """A row's `status` for an error with HTTP ``code``, shaped like the service's."""
    reason, status = _ROW_ERRORS.get(code, ("Error", "UNKNOWN"))
    body = {
        "error": {
            "code": code,
            "message": message or _ROW_ERROR_MESSAGES.get(code, "Unknown error."),
            "status": status,
        }
    }
    return f"{reason}: {json.dumps(body)}"


def model_call_error(code: int, status: str, message: str) -> str:
    """A row's `status` when the model call behind it failed, as the service writes it
    (seen for a batch request naming a cachedContent: 404 NOT_FOUND inside this text)."""
    body = {"error": {"code": code, "message": message, "status": status}}
    return f"Internal error occurred. Failed to get generateContentResponse: {json.dumps(body)}"


# Every setting, with the help its --fault-<name> flag shows (one list for flags,
# GEMINI_BATCH_FAULT_<NAME> environment variables and PUT /emulator/faults).
SETTINGS = {
    "row_failure_rate": "Share of rows (0..1) that fail.",
    "row_failure_codes": "HTTP codes failed rows get, comma separated: 429,500,503.",
    "empty_answer_rate": "Share of answered rows (0..1) that come back with no usable text.",
    "empty_answer_kinds": "What those answers are, comma separated: finish:MAX_TOKENS, "
    "blocked:SAFETY, finish:SAFETY, finish:RECITATION, finish:PROHIBITED_CONTENT.",
    "job_outcome": "End every job FAILED or EXPIRED, or hold it PAUSED while this is set.",
    "queue_delay": "Seconds (emulated) a job stays queued; 72 hours or more: it expires.",
    "row_latency": "Seconds (emulated) each row takes.",
    "run_seconds": "Seconds (emulated) a job runs at least; past 24 hours it is cancelled.",
    "time_scale": "Emulated seconds per real second (default 1): 3600 runs an hour a second.",
    "incomplete_unknown": "true: completionStats.incompleteCount is -1 while a job runs.",
    "legacy_models": "true: the project used gemini-1.5 before, so it may still call it.",
    "lose_create_answers": "The next N create calls make their job, then answer 504 (the "
    "answer lost on its way, as after a timeout).",
    "backdate": "Emulated seconds, comma separated: the next jobs made, one value each in "
    "turn, report a createTime that far in the past, as if queued that long already "
    "(108000: 30 hours); the 72-hour queue expiry counts from it.",
    "hold": "true: jobs stay QUEUED until it is set false (read live: a test holds a job "
    "open exactly as long as it needs).",
    "released": "Job ids, comma separated, that go on while hold stays true for every other "
    "job (one job let go, the next one made still held).",
    "stop_empty_rate": "Share of answered rows (0..1) that come back finishReason STOP with no "
    "parts, as Gemini 2.5 and 3 sometimes answer (drawn per job and row: a resend may pass).",
    "drop_output": "true: jobs end SUCCEEDED with their counts but nothing where outputInfo "
    "points (the rows go to <table>__dropped or <folder>__dropped/, for a test to put back).",
    "keep_input_fields": "true: a JSONL job's prediction lines keep the other fields of their "
    "input line (request_id, key, ...), as the emulator did before; by default they are "
    "dropped, as reported of the service.",
    "model_version": "The modelVersion every answer names (e.g. gemini-2.5-flash-lite@default), "
    "as when the service answers with another model than the one asked.",
}
SETTING_NAMES = tuple(SETTINGS)
_LISTS = {"row_failure_codes": int, "empty_answer_kinds": str, "released": str,
          "backdate": float}
_FLOATS = frozenset(
    {"row_failure_rate", "empty_answer_rate", "stop_empty_rate", "queue_delay", "row_latency",
     "run_seconds", "time_scale"}
)
_BOOLS = frozenset(
    {"incomplete_unknown", "legacy_models", "hold", "drop_output", "keep_input_fields"}
)
_INTS = frozenset({"lose_create_answers"})
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


class FaultError(ValueError):
    """A fault setting that does not make sense; the message names it."""


def setting_from_text(name: str, raw: str) -> Any:
    """A setting given as text: lists are comma separated, the rest as they are."""
    return raw.split(",") if name in _LISTS else raw


def _boolean(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in (*_TRUE, *_FALSE):
        raise FaultError(f"{name} is true or false, not {value!r}")
    return text in _TRUE


@dataclass(frozen=True)
class Faults:
    """What goes wrong on purpose, how fast time passes, and what the project may use.

    All off by default: rows answered, jobs run at once, time at its real pace.
    """

    # Share of rows (0..1) that fail, chosen per (job, row): the same row fails again if
    # the same job is read again, but a retry in a new job draws again.
    row_failure_rate: float = 0.0
    # HTTP codes the failed rows get, in turn (429 RESOURCE_EXHAUSTED, 500 INTERNAL, ...).
    row_failure_codes: tuple[int, ...] = (429,)
    # Share of answered rows (0..1) whose answer has no usable text (status '' all the
    # same), drawn per (job, row) like failures; the kind is drawn from the list.
    empty_answer_rate: float = 0.0
    empty_answer_kinds: tuple[str, ...] = EMPTY_KINDS
    # Share of answered rows (0..1) that come back finishReason STOP with no parts (Gemini
    # 2.5 and 3 do so now and then; the same request sent again usually answers), drawn
    # per (job, row): the same row of a new job draws again.
    stop_empty_rate: float = 0.0
    # FAILED or EXPIRED: end every job so without processing it. PAUSED: a job pauses
    # before it runs while this is set (read live, not from the job's snapshot).
    job_outcome: str | None = None
    # Emulated seconds a job stays QUEUED before it runs (72 h or more: EXPIRED).
    queue_delay: float = 0.0
    # Emulated seconds each row takes (on top of the engine's own time).
    row_latency: float = 0.0
    # Emulated seconds a job spends RUNNING at least (its rows spread over them); a job
    # still running at 24 h is cut: CANCELLED, with the rows finished written.
    run_seconds: float = 0.0
    # Emulated seconds per real second, for the waits above and the 24 h / 72 h limits.
    time_scale: float = 1.0
    # The service may report incompleteCount -1 while a job runs.
    incomplete_unknown: bool = False
    # gemini-1.5-* are refused (404) unless the project used them before 2025-04-29.
    legacy_models: bool = False
    # How many of the next create calls make their job and then answer 504, as a call
    # whose answer was lost (a timeout, a dropped connection) does: counts down.
    lose_create_answers: int = 0
    # The next jobs made (one value each, in turn, used up as they are made) report a
    # createTime this many emulated seconds in the past, as if they had waited that long
    # already: the operator's max_queue_hours is reached without waiting, and the 72-hour
    # queue expiry counts from that createTime.
    backdate: tuple[float, ...] = ()
    # Jobs stay QUEUED while this is true, until a PUT/PATCH sets it false: a test holds
    # a job open for exactly as long as it needs, on a fast machine or a slow one. Read
    # live while a job waits, not from the job's snapshot.
    hold: bool = False
    # Job ids (the last segment of the name) let go while `hold` stays on: a test
    # releases one job and the next job made, whenever it comes, is still held.
    released: tuple[str, ...] = ()
    # A job ends SUCCEEDED with its counts and nothing where its outputInfo points: the
    # operator must not take "no output" for "no answers". What it wrote is set aside
    # (``<table>__dropped``, ``<folder>__dropped/``) so a test can make it turn up late.
    drop_output: bool = False
    # A JSONL job's prediction lines keep their input line's other fields. Off: only
    # status, processed_time, request and response, as the service is reported to write
    # (litellm#14044): an operator must not rely on a request_id passing through.
    keep_input_fields: bool = False
    # Every answer names this model as the one that answered (``modelVersion``, e.g.
    # ``gemini-2.5-flash-lite@default``), as when the service answers with another.
    model_version: str | None = None

    def holds(self, job_id: str) -> bool:
        """Whether job ``job_id`` waits in the queue now (``hold`` on, not released)."""
        return self.hold and job_id not in self.released

    def __post_init__(self) -> None:
        for name in ("row_failure_rate", "empty_answer_rate", "stop_empty_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise FaultError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if not self.row_failure_codes:
            raise FaultError("row_failure_codes needs at least one HTTP code, e.g. [429, 503]")
        unknown = [code for code in self.row_failure_codes if code not in _ROW_ERRORS]
        if unknown:
            raise FaultError(f"row_failure_codes {unknown} unknown: use {sorted(_ROW_ERRORS)}")
        kinds = [kind for kind in self.empty_answer_kinds if kind not in EMPTY_KINDS]
        if kinds or not self.empty_answer_kinds:
            raise FaultError(
                f"empty_answer_kinds {kinds} unknown: use some of {list(EMPTY_KINDS)}"
            )
        if self.job_outcome not in (None, *JOB_OUTCOMES):
            raise FaultError(
                f"job_outcome must be one of {JOB_OUTCOMES} or null, not {self.job_outcome!r}"
            )
        if min(self.queue_delay, self.row_latency, self.run_seconds) < 0:
            raise FaultError("queue_delay, row_latency and run_seconds are seconds, 0 or more")
        if any(seconds < 0 for seconds in self.backdate):
            raise FaultError(f"backdate is seconds in the past, 0 or more, not {self.backdate}")
        if self.lose_create_answers < 0:
            raise FaultError("lose_create_answers is a number of create calls, 0 or more")
        if self.time_scale <= 0:
            raise FaultError(f"time_scale must be more than 0, not {self.time_scale}")

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: Faults | None = None) -> Faults:
        """``base`` with the given fields changed; unknown fields are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FaultError(f"unknown fault settings {unknown}: use {sorted(known)}")
        values = dict(values)
        try:
            for name, kind in _LISTS.items():
                if name in values:
                    values[name] = tuple(kind(item) for item in values[name])
            for name in _FLOATS & set(values):
                values[name] = float(values[name])
            for name in _INTS & set(values):
                values[name] = int(values[name])
        except (TypeError, ValueError) as exc:
            raise FaultError(f"bad fault setting: {exc}") from exc
        for name in _BOOLS & set(values):
            values[name] = _boolean(name, values[name])
        if values.get("job_outcome") is not None:
            values["job_outcome"] = str(values["job_outcome"]).upper().removeprefix("JOB_STATE_")
        return replace(base or cls(), **values)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> dict[str, Any]:
        """Settings from ``GEMINI_BATCH_FAULT_<NAME>`` variables (lists comma separated)."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for name in SETTING_NAMES:
            raw = environ.get(f"GEMINI_BATCH_FAULT_{name.upper()}")
            if raw:
                values[name] = setting_from_text(name, raw)
        return values

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for name in _LISTS:
            values[name] = list(values[name])
        return values

    def row_failure(self, job_id: str, row_number: int) -> str | None:
        """The `status` row ``row_number`` of job ``job_id`` fails with, or None."""
        draw = _draw(self.row_failure_rate, f"{job_id}:{row_number}")
        if draw is None:
            return None
        return row_error(self.row_failure_codes[draw % len(self.row_failure_codes)])

    def empty_answer(self, job_id: str, row_number: int) -> str | None:
        """The kind of empty answer row ``row_number`` of job ``job_id`` gets, or None."""
        draw = _draw(self.empty_answer_rate, f"{job_id}:{row_number}:empty")
        if draw is None:
            return None
        return self.empty_answer_kinds[draw % len(self.empty_answer_kinds)]


    def stop_empty(self, job_id: str, row_number: int) -> bool:
        """Whether row ``row_number`` of job ``job_id`` answers STOP with no parts."""
        return _draw(self.stop_empty_rate, f"{job_id}:{row_number}:stop") is not None


def _draw(rate: float, key: str) -> int | None:
    """A number drawn from ``key`` when it falls in the share ``rate``, else None."""
    if rate <= 0.0:
        return None
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    draw = int.from_bytes(digest, "big")
    return draw if draw / 2**64 < rate else None
