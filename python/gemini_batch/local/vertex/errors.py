"""The Vertex AI emulator's own exceptions, in one small hierarchy.

The emulator is a program apart from the operator (``gemini_batch.errors`` holds the
operator's): an ``ApiError`` becomes an HTTP answer, a ``JobFailure`` ends one job.

``Cancelled`` is not an error: it is how a job's thread learns that the job was
cancelled (by a client, or by the 24-hour run limit: ``RunLimitReached``), and it is
kept out of the hierarchy so that ``except EmulatorError`` never swallows it.
"""

from __future__ import annotations

# google.rpc.Code values of a job's `error`.
CANCELLED, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, INTERNAL = (
    1, 3, 4, 5, 6, 13,
)
# google.rpc.Code names of the HTTP codes the emulator answers with.
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    500: "INTERNAL",
    504: "DEADLINE_EXCEEDED",
}


class EmulatorError(Exception):
    """Base class: something the emulator refuses or a job cannot do."""


class ApiError(EmulatorError):
    """A request refused: answered as Google's error body with ``code`` and ``status``."""

    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS_NAMES.get(code, "UNKNOWN")


class JobFailure(EmulatorError):
    """Ends a job FAILED (or another state) with a google.rpc.Status error."""

    def __init__(self, code: int, message: str, state: str = "JOB_STATE_FAILED") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.state = state


class Cancelled(Exception):  # noqa: N818 - a signal, not an error
    """Control flow: the job was cancelled; it ends CANCELLED once its rows are written."""


class RunLimitReached(Cancelled):
    """Control flow: the job ran into the service's 24-hour limit; the service cancels
    it then, so it ends CANCELLED once the rows finished are written."""


__all__ = ["ApiError", "Cancelled", "EmulatorError", "JobFailure", "RunLimitReached"]
