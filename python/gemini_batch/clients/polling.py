"""How a job is watched: the delays between polls, and what counts as a job moving.

Shared by every loop that waits on batch jobs (a build's rounds, `gemini-batch wait`,
`gemini-batch submit`, the Airflow trigger).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from gemini_batch.errors import ConfigError

# The first poll's delay of `gemini-batch build|run` when --poll-interval is not given
# (the local stack sets it: its jobs end in moments, and polling it costs nothing).
POLL_INTERVAL_ENV = "GEMINI_BATCH_POLL_INTERVAL"


class Progress(NamedTuple):
    """What of a job is worth telling when it changes: its state and its counts."""

    state: str
    succeeded: int
    failed: int


@dataclass
class Backoff:
    """Poll delays: start at ``initial`` seconds, grow by ``factor`` up to ``maximum``.

    ``reset`` after a state change: a job that moved is likely to move again soon.
    """

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 1.5
    _current: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ConfigError(
                f"poll interval must be > 0 and at most its cap "
                f"(initial {self.initial}s, cap {self.maximum}s)"
            )
        self._current = self.initial

    def next_delay(self) -> float:
        delay = self._current
        self._current = min(self.maximum, self._current * self.factor)
        return delay

    def reset(self) -> None:
        self._current = self.initial


__all__ = ["POLL_INTERVAL_ENV", "Backoff", "Progress"]
