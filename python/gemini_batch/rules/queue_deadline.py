"""The queue deadline (config ``max_queue_hours``): when a batch job has waited too long.

A job's age is the service's ``createTime`` against now, not the time a build sent it: a
resumed build, or another machine, measures the same age. Only a job that has not
started is cancelled for it (``QUEUED``, ``PENDING``): one that runs is answering, and
the service's own limits end it (24 hours running). Why it was cancelled is written in
the ledger's ``error`` column, in words a later build recognises (a ``--no-wait`` build
cancels, the next one merges). ADR 0018; the build's side: build/queue_deadline.py.
"""

from __future__ import annotations

import re
from datetime import datetime

# States of a job that waits in the service's queue, not yet answering anything.
QUEUED_STATES = frozenset({"QUEUED", "PENDING"})
# How the ledger's `error` of a job cancelled for the queue starts.
CANCEL_PREFIX = "cancelled: queued "
_REASON = re.compile(rf"^{CANCEL_PREFIX}([0-9.]+) h, past max_queue_hours ([0-9.]+)")


def hours_queued(create_time: datetime, now: datetime) -> float:
    """Hours since the service created the job (0 for a clock behind the service's)."""
    return max(0.0, (now - create_time).total_seconds() / 3600)


def past_deadline(state: str, create_time: datetime | None, max_queue_hours: float | None,
                  now: datetime) -> float | None:
    """The hours a job has waited when it is past ``max_queue_hours`` and still waiting
    in the queue (so it is to be cancelled); None otherwise: no deadline, a job that
    started or ended, or no ``createTime`` to measure from."""
    if max_queue_hours is None or state not in QUEUED_STATES or create_time is None:
        return None
    waited = hours_queued(create_time, now)
    return waited if waited > max_queue_hours else None


def cancel_reason(waited_hours: float, max_queue_hours: float) -> str:
    """The ledger's `error` of a job cancelled for the queue, e.g.
    ``cancelled: queued 30.0 h, past max_queue_hours 24``."""
    return f"{CANCEL_PREFIX}{waited_hours:.1f} h, past max_queue_hours {max_queue_hours:g}"


def cancelled_for_queue(error: str | None) -> tuple[float, float] | None:
    """(hours queued, max_queue_hours) when a ledger `error` says a build cancelled the
    job for the queue (:func:`cancel_reason`, whatever follows it); else None."""
    found = _REASON.match(error or "")
    return (float(found[1]), float(found[2])) if found else None


__all__ = [
    "CANCEL_PREFIX",
    "QUEUED_STATES",
    "cancel_reason",
    "cancelled_for_queue",
    "hours_queued",
    "past_deadline",
]
