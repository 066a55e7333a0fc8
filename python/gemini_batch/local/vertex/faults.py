"""Fault injection: rows that fail like the service's, jobs that fail or expire, delays.

Set when the emulator starts (``--fault-*`` flags or ``GEMINI_BATCH_FAULT_*`` env vars)
and changed at runtime with ``PUT /emulator/faults``. A job takes a snapshot of the faults
when it starts, so changing them affects the next job, not one halfway through; only
``hold`` is read while a job waits, so that clearing it releases the jobs it holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

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
JOB_OUTCOMES = ("FAILED", "EXPIRED")


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


# The settings that can be given as text (flags, environment variables), in order.
SETTING_NAMES = ("row_failure_rate", "row_failure_codes", "job_outcome", "queue_delay",
                 "row_latency")


def setting_from_text(name: str, raw: str) -> Any:
    """A setting given as text: row_failure_codes is comma separated, the rest as they are."""
    return raw.split(",") if name == "row_failure_codes" else raw


class FaultError(ValueError):
    """A fault setting that does not make sense; the message names it."""


@dataclass(frozen=True)
class Faults:
    """What goes wrong, on purpose. All off by default."""

    # Share of rows (0..1) that fail, chosen per (job, row): the same row fails again if
    # the same job is read again, but a retry in a new job draws again.
    row_failure_rate: float = 0.0
    # HTTP codes the failed rows get, in turn (429 RESOURCE_EXHAUSTED, 500 INTERNAL, ...).
    row_failure_codes: tuple[int, ...] = (429,)
    # End every job in this state instead of processing it: FAILED or EXPIRED.
    job_outcome: str | None = None
    # Seconds a job stays QUEUED/PENDING before it runs.
    queue_delay: float = 0.0
    # Seconds each row takes (on top of the engine's own time).
    row_latency: float = 0.0
    # Jobs stay QUEUED while this is true, until a PUT/PATCH sets it false: a test holds
    # a job open for exactly as long as it needs, on a fast machine or a slow one.
    hold: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.row_failure_rate <= 1.0:
            raise FaultError(
                f"row_failure_rate must be between 0 and 1, not {self.row_failure_rate}"
            )
        if not self.row_failure_codes:
            raise FaultError("row_failure_codes needs at least one HTTP code, e.g. [429, 503]")
        unknown = [code for code in self.row_failure_codes if code not in _ROW_ERRORS]
        if unknown:
            raise FaultError(f"row_failure_codes {unknown} unknown: use {sorted(_ROW_ERRORS)}")
        if self.job_outcome not in (None, *JOB_OUTCOMES):
            raise FaultError(
                f"job_outcome must be one of {JOB_OUTCOMES} or null, not {self.job_outcome!r}"
            )
        if self.queue_delay < 0 or self.row_latency < 0:
            raise FaultError("queue_delay and row_latency are seconds, 0 or more")

    @classmethod
    def from_dict(cls, values: dict[str, Any], base: Faults | None = None) -> Faults:
        """``base`` with the given fields changed; unknown fields are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise FaultError(f"unknown fault settings {unknown}: use {sorted(known)}")
        values = dict(values)
        if not isinstance(values.get("hold", False), bool):
            raise FaultError(f"hold is true or false, not {values['hold']!r}")
        try:
            if "row_failure_codes" in values:
                values["row_failure_codes"] = tuple(int(c) for c in values["row_failure_codes"])
            for name in ("row_failure_rate", "queue_delay", "row_latency"):
                if name in values:
                    values[name] = float(values[name])
        except (TypeError, ValueError) as exc:
            raise FaultError(f"bad fault setting: {exc}") from exc
        if values.get("job_outcome") is not None:
            values["job_outcome"] = str(values["job_outcome"]).upper().removeprefix("JOB_STATE_")
        return replace(base or cls(), **values)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> dict[str, Any]:
        """Settings from ``GEMINI_BATCH_FAULT_<NAME>`` variables (codes comma separated)."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for name in SETTING_NAMES:
            raw = environ.get(f"GEMINI_BATCH_FAULT_{name.upper()}")
            if raw:
                values[name] = setting_from_text(name, raw)
        return values

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["row_failure_codes"] = list(self.row_failure_codes)
        return values

    def row_failure(self, job_id: str, row_number: int) -> str | None:
        """The `status` row ``row_number`` of job ``job_id`` fails with, or None."""
        if self.row_failure_rate <= 0.0:
            return None
        digest = hashlib.blake2b(f"{job_id}:{row_number}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big")
        if draw / 2**64 >= self.row_failure_rate:
            return None
        return row_error(self.row_failure_codes[draw % len(self.row_failure_codes)])
