"""The ``gemini-batch`` command: the group and its commands, one module per family."""

from gemini_batch.cli import build, diff, ledger, local, submit  # noqa: F401  (they register)
from gemini_batch.cli.app import main, run

__all__ = ["main", "run"]
