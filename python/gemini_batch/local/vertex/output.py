"""A job's output table, written as the rows are answered: buffered, one load at a time.

``OutputWriter`` holds the flush policy (when buffered rows go to the table) and the
job's counts. Loads run in a thread of their own, so answering the next rows overlaps
writing the last ones; starting a load first waits for the one in flight, so at most
one buffer is being written while another fills.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

Rows = list[dict[str, Any]]

# A load is also started once this many bytes of rows are waiting.
WRITE_BYTES = 64 * 1024 * 1024
# ... or once rows have waited this long, so a slow job's table still fills as it goes.
WRITE_INTERVAL = 2.0


class OutputWriter:
    """Buffers a job's answered rows and appends them to its output table with ``load``.

    A load starts when ``page_size`` rows or ``max_bytes`` bytes are buffered, or when
    ``max_interval`` seconds have passed since the last load started; ``close`` writes
    what is left (also when the job was cancelled) and waits for it. A failed load
    raises its error from the next ``add`` that flushes, or from ``close``.
    """

    def __init__(
        self,
        load: Callable[[Rows], None],
        *,
        page_size: int,
        max_bytes: int = WRITE_BYTES,
        max_interval: float = WRITE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        thread_name: str = "write",
    ) -> None:
        self._load = load
        self._page_size = page_size
        self._max_bytes = max_bytes
        self._max_interval = max_interval
        self._clock = clock
        self._loads = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._in_flight: Future[None] | None = None
        self._buffer: Rows = []
        self._buffered_bytes = 0
        self._last_load = clock()
        # What the job reports in completionStats, and how long it waited for loads.
        self.succeeded = 0
        self.failed = 0
        self.wait_seconds = 0.0

    @property
    def rows(self) -> int:
        """Rows added so far: the position of the next row in the order the input was read."""
        return self.succeeded + self.failed

    def add(self, rows: Rows, *, succeeded: int) -> None:
        """Buffer answered rows (``succeeded`` of them with a response); flush when due."""
        self._buffer.extend(rows)
        self._buffered_bytes += _approximate_bytes(rows)
        self.succeeded += succeeded
        self.failed += len(rows) - succeeded
        if self._flush_due():
            self.flush()

    def _flush_due(self) -> bool:
        return (
            len(self._buffer) >= self._page_size
            or self._buffered_bytes >= self._max_bytes
            or self._clock() - self._last_load > self._max_interval
        )

    def flush(self) -> None:
        """Wait for the load in flight, then start one for the buffered rows, if any."""
        started = time.perf_counter()
        if self._in_flight is not None:
            self._in_flight.result()
            self._in_flight = None
        self.wait_seconds += time.perf_counter() - started
        if self._buffer:
            self._in_flight = self._loads.submit(self._load, self._buffer)
            self._buffer, self._buffered_bytes, self._last_load = [], 0, self._clock()

    def close(self) -> None:
        """Write the rows still buffered and wait until every load has ended."""
        try:
            self.flush()  # start the last load
            self.flush()  # and wait for it
        finally:
            self._loads.shutdown()

    def __enter__(self) -> OutputWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _approximate_bytes(rows: Rows) -> int:
    """The size of rows' text and bytes values (numbers are small enough to ignore)."""
    return sum(
        len(value) for row in rows for value in row.values() if isinstance(value, str | bytes)
    )
