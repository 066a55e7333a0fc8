"""The exit codes of ``gemini-batch`` (the table in docs/cli.md), in one place."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every batch model answered (or nothing to do)
    ERROR = 1  # dbt failed, bad config, budget cap, the service refused, a lock is held
    USAGE = 2  # wrong command-line usage (click exits with it)
    FAILED_ROWS = 3  # rows ended failed, a job ended without answers, or a canary failed
    IN_FLIGHT = 75  # --no-wait (or wait --timeout): jobs still running; the next build collects
    INTERRUPTED = 130  # Ctrl-C: live jobs stay in the ledger, the next build resumes them


    @property
    def reason(self) -> str:
        """The exit code in a word, for --json documents."""
        return _REASONS[self]


_REASONS = {
    ExitCode.OK: "answered",
    ExitCode.ERROR: "error",
    ExitCode.USAGE: "usage",
    ExitCode.FAILED_ROWS: "failed_rows",
    ExitCode.IN_FLIGHT: "in_flight",
    ExitCode.INTERRUPTED: "interrupted",
}


__all__ = ["ExitCode"]
