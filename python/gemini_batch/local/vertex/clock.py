"""Emulated time for a job: the service's limits, reached in seconds when tests ask.

``time_scale`` is emulated seconds per real second (the setting of that name): at 3600 a
job queued for 72 hours expires after 72 real seconds, and one running for 24 hours is
cut after 24. Only waits and limits are scaled; the timestamps a job reports
(createTime, startTime, endTime) stay real, but for the fault ``backdate``, which sets a
new job's createTime in the past and its queue clock as far ahead.
"""

from __future__ import annotations

import threading
import time

from gemini_batch.rules.catalog import QUEUE_LIMIT_HOURS

# A job still queued after this long expires (JOB_STATE_EXPIRED) without running.
QUEUE_LIMIT_SECONDS = QUEUE_LIMIT_HOURS * 3600
# A job still running after this long is cut: CANCELLED, with the rows finished written.
RUN_LIMIT_SECONDS = 24 * 3600


class Stopwatch:
    """Emulated seconds since it was made (plus ``already``: a backdated job's queue
    counts from its createTime); waits that a cancel ends early."""

    def __init__(self, time_scale: float, *, already: float = 0.0) -> None:
        self._scale = time_scale
        self._started = time.monotonic()
        self.already = already

    def elapsed(self) -> float:
        return self.already + (time.monotonic() - self._started) * self._scale

    def wait_until(self, emulated: float, cancel: threading.Event) -> bool:
        """Wait until ``emulated`` seconds have passed; True if cancelled meanwhile."""
        return cancel.wait(max(0.0, emulated - self.elapsed()) / self._scale)


__all__ = ["QUEUE_LIMIT_SECONDS", "RUN_LIMIT_SECONDS", "Stopwatch"]
