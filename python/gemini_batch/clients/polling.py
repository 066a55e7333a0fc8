"""How a job is watched: the delays between polls, and what counts as a job moving.

Shared by every loop that waits on batch jobs (a build's rounds, `gemini-batch wait`,
`gemini-batch submit`, the Airflow trigger).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, Protocol, TypeVar

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


class Watched(Protocol):
    """A job's status as a watch loop needs it (``clients.vertex.JobStatus``)."""

    @property
    def terminal(self) -> bool: ...
    @property
    def progress(self) -> Progress: ...


S = TypeVar("S", bound=Watched)


@dataclass
class JobWatch(Generic[S]):
    """What a loop waiting on jobs knows: the last status of each, and its poll delays.

    One round: ``seen`` each answer, by the name the job was asked by (the service may
    spell it otherwise: a project number for its id); True when the job is new to the
    watch or moved. Then ``delay(moved)``: a round where a job moved starts the backoff
    over."""

    backoff: Backoff
    statuses: dict[str, S] = field(default_factory=dict)

    def seen(self, name: str, status: S) -> bool:
        before = self.statuses.get(name)
        self.statuses[name] = status
        return before is None or before.progress != status.progress

    def running(self, names: Iterable[str]) -> list[str]:
        """Of ``names``, the jobs not known to have ended."""
        return [name for name in names
                if name not in self.statuses or not self.statuses[name].terminal]

    def delay(self, moved: bool) -> float:
        if moved:
            self.backoff.reset()
        return self.backoff.next_delay()


def watch_jobs(
    names: Iterable[str],
    get: Callable[[str], S],
    *,
    backoff: Backoff,
    on_change: Callable[[str, S], None] = lambda name, status: None,
    after_round: Callable[[], None] = lambda: None,
    sleep: Callable[[float], bool | None] | None = None,
    deadline: float | None = None,
    known: Mapping[str, S] | None = None,
) -> dict[str, S]:
    """Poll ``names`` with ``get`` until every job has ended: each change of a job's
    progress goes to ``on_change`` (with the job's name as asked); ``after_round`` runs
    after each round of polls. Stops early when ``sleep`` returns True (a stop event's
    ``wait``) or at ``deadline`` (``time.monotonic()``); by default it is ``time.sleep``.
    ``known``: statuses already in hand, by name (not read again first). Returns the last
    status of each job polled, by name."""
    watch: JobWatch[S] = JobWatch(backoff)
    moved = False
    for name, status in (known or {}).items():
        watch.seen(name, status)
        on_change(name, status)
        moved = True
    running = watch.running(names)
    if known:
        if not running:
            return watch.statuses
        if _slept(watch.delay(moved), sleep, deadline):
            return watch.statuses
    while running:
        moved = False
        for name in running:
            status = get(name)
            if watch.seen(name, status):
                moved = True
                on_change(name, status)
        after_round()
        running = watch.running(running)
        if running and _slept(watch.delay(moved), sleep, deadline):
            break
    return watch.statuses


def _slept(delay: float, sleep: Callable[[float], bool | None] | None,
           deadline: float | None) -> bool:
    """Wait ``delay`` (cut at ``deadline``); True when the watch is to stop."""
    if deadline is not None:
        delay = min(delay, deadline - time.monotonic())
        if delay <= 0:
            return True
    return bool((sleep or time.sleep)(delay))


__all__ = ["POLL_INTERVAL_ENV", "Backoff", "JobWatch", "Progress", "watch_jobs"]
