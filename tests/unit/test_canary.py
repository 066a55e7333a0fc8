"""The canary's arithmetic and verdict without a server: its size, what passes, what the
stop says, how its jobs are told apart. The round that sends it runs on the local stack
(tests/stack/commands/test_canary_and_cap.py)."""

from __future__ import annotations

from typing import Any

import pytest

from gemini_batch.build.canary import (
    CanaryVerdict,
    canary_size,
    is_canary_shard,
    stop_message,
)
from gemini_batch.rules.config import BatchModelConfig


def config(**keys: Any) -> BatchModelConfig:
    return BatchModelConfig(gemini_model="gemini-2.5-flash", **keys)


@pytest.mark.parametrize(("pending", "sample"), [
    (2_000, 0),  # not over canary_min_rows: no canary
    (2_001, 100),  # 1% is 21: at least 100
    (2_500, 100),
    (50_000, 500),  # 1%
    (1_000_000, 1_000),  # at most 1,000
])
def test_the_default_canary_is_one_percent_within_100_and_1000(pending: int, sample: int) -> None:
    assert canary_size(pending, config()) == sample


def test_the_canary_follows_its_settings_and_can_be_turned_off() -> None:
    small = config(canary_min_rows=10, canary_share=0.1, canary_min_sample=3, canary_max_sample=5)
    assert [canary_size(n, small) for n in (10, 11, 40, 60, 500)] == [0, 3, 4, 5, 5]
    assert canary_size(1_000_000, config(canary=False)) == 0
    # A sample never exceeds the round.
    assert canary_size(4, config(canary_min_rows=1, canary_min_sample=10)) == 4


def test_the_verdict_allows_up_to_the_failed_share() -> None:
    assert CanaryVerdict(sample=100, bad=20).passed(config())
    assert not CanaryVerdict(sample=100, bad=21).passed(config())
    assert CanaryVerdict(sample=10, bad=0).passed(config(canary_max_failed_share=0))
    assert not CanaryVerdict(sample=10, bad=1).passed(config(canary_max_failed_share=0))


def test_a_failed_canary_says_the_top_reasons_what_was_held_and_the_fix() -> None:
    verdict = CanaryVerdict(sample=100, bad=97, reasons={
        "EMPTY_ANSWER: MAX_TOKENS": 90, "400 INVALID_ARGUMENT": 4, "BLOCKED: SAFETY": 2,
        "500 INTERNAL": 1})
    message = stop_message("model.shop.labels", verdict, config(), held_back=2_400)
    assert message.startswith("Model model.shop.labels: the canary failed: 97 of its 100")
    assert "97% > canary_max_failed_share 0.2" in message
    assert ("EMPTY_ANSWER: MAX_TOKENS: 90; 400 INVALID_ARGUMENT: 4; BLOCKED: SAFETY: 2)"
            in message)
    assert "500 INTERNAL" not in message  # the top three
    assert "The other 2,400 pending requests were not sent" in message
    assert "raise generationConfig.maxOutputTokens" in message
    assert "thinkingBudget" in message and "canary: false" in message
    refused = stop_message("m", CanaryVerdict(100, 50, {"400 INVALID_ARGUMENT": 50}),
                           config(), held_back=1)
    assert "fix the requests the service refuses" in refused


def test_canary_jobs_are_told_apart_by_their_shard_tables() -> None:
    assert is_canary_shard("p.d.labels__shard_20261206t053000_ab12_canary_0")
    assert not is_canary_shard("p.d.labels__shard_20261206t053000_ab12_0")
    assert not is_canary_shard("p.d.my_canary_labels__shard_20261206t053000_ab12_0")
