"""The exit codes of ``gemini-batch`` (the table in docs/cli.md), in one place."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # every batch model answered (or nothing to do)
    ERROR = 1  # dbt failed, bad config, budget cap, the service refused, a lock is held
    USAGE = 2  # wrong command-line usage (click exits with it)
    FAILED_ROWS = 3  # rows ended failed, or a job ended without answers
    INTERRUPTED = 130  # Ctrl-C: live jobs stay in the ledger, the next build resumes them


__all__ = ["ExitCode"]
