"""Emulated time for a job: the service's limits, reached in seconds when tests ask.

``time_scale`` is emulated seconds per real second (the setting of that name): at 3600 a
job queued for 72 hours expires after 72 real seconds, and one running for 24 hours is
cut after 24. Only waits and limits are scaled; the timestamps a job reports
(createTime, startTime, endTime) stay real.
"""

from __future__ import annotations

import threading
import time

# A job still queued after this long expires (JOB_STATE_EXPIRED) without running.
QUEUE_LIMIT_SECONDS = 72 * 3600
# A job still running after this long is cut: CANCELLED, with the rows finished written.
RUN_LIMIT_SECONDS = 24 * 3600


class Stopwatch:
    """Emulated seconds since it was made; waits that a cancel ends early."""

    def __init__(self, time_scale: float) -> None:
        self._scale = time_scale
        self._started = time.monotonic()

    def elapsed(self) -> float:
        return (time.monotonic() - self._started) * self._scale

    def wait_until(self, emulated: float, cancel: threading.Event) -> bool:
        """Wait until ``emulated`` seconds have passed; True if cancelled meanwhile."""
        return cancel.wait(max(0.0, emulated - self.elapsed()) / self._scale)


__all__ = ["QUEUE_LIMIT_SECONDS", "RUN_LIMIT_SECONDS", "Stopwatch"]
