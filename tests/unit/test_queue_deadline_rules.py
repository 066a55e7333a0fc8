"""The queue deadline's rule (rules/queue_deadline.py): which jobs are past it, and the
reason the ledger keeps, which a later build reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gemini_batch.rules.queue_deadline import (
    cancel_reason,
    cancelled_for_queue,
    hours_queued,
    past_deadline,
)

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _created(hours: float) -> datetime:
    return NOW - timedelta(hours=hours)


@pytest.mark.parametrize(("state", "hours", "limit", "past"), [
    ("QUEUED", 30, 24, 30.0),
    ("PENDING", 24.5, 24, 24.5),
    ("QUEUED", 24, 24, None),  # at the deadline, not past it
    ("QUEUED", 23.9, 24, None),
    ("QUEUED", 30, None, None),  # no deadline set
    ("RUNNING", 30, 24, None),  # it started: answering, not waiting
    ("PAUSED", 30, 24, None),
    ("CANCELLING", 30, 24, None),
    ("SUCCEEDED", 30, 24, None),
    ("QUEUED", 0.6, 0.5, 0.6),  # fractions of an hour
])
def test_a_job_is_past_its_deadline_only_while_it_waits_in_the_queue(
    state: str, hours: float, limit: float | None, past: float | None,
) -> None:
    waited = past_deadline(state, _created(hours), limit, NOW)
    assert waited == (pytest.approx(past) if past is not None else None)


def test_the_age_is_the_service_create_time_against_now() -> None:
    assert hours_queued(_created(1.5), NOW) == pytest.approx(1.5)
    assert hours_queued(NOW + timedelta(minutes=5), NOW) == 0.0  # a clock behind the service
    assert past_deadline("QUEUED", None, 24, NOW) is None  # nothing to measure from


def test_the_reason_is_read_back_whatever_follows_it() -> None:
    reason = cancel_reason(30.04, 24)
    assert reason == "cancelled: queued 30.0 h, past max_queue_hours 24"
    assert cancelled_for_queue(reason) == (30.0, 24.0)
    assert cancelled_for_queue(f"{reason}; its requests went to a new job") == (30.0, 24.0)
    assert cancelled_for_queue(cancel_reason(0.75, 0.5)) == (0.8, 0.5)
    assert cancelled_for_queue("The job was cancelled.") is None
    assert cancelled_for_queue(None) is None
