"""The canary's arithmetic and verdict without a server: its size, what passes, what the
stop says, how its jobs are told apart. The round that sends it runs on the local stack
(tests/stack/commands/test_canary_and_cap.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gemini_batch.build.canary import (
    CanaryVerdict,
    Gate,
    canary_size,
    gate,
    is_canary_shard,
    stop_message,
)
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.state.ledger import LedgerEntry


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


# -- the gate: the decision from the ledger's canary jobs and their answers kept ---------


class FakeLedger:
    def __init__(self, entries: list[LedgerEntry]) -> None:
        self._entries = entries

    def entries(self, model_unique_id: str, limit: int = 50) -> list[LedgerEntry]:
        return self._entries[:limit]


class FakeWarehouse:
    def __init__(self, outcomes: dict[str, int]) -> None:
        self.outcomes = outcomes
        self.asked: list[list[str]] = []

    def job_outcomes(self, model: BatchModel, job_names: list[str]) -> dict[str, int]:
        self.asked.append(list(job_names))
        return dict(self.outcomes) if job_names else {"requests": 0, "bad": 0}


MODEL = BatchModel(unique_id="model.shop.labels", name="labels", project="p", dataset="d",
                   config=config())


def entry(name: str, shard: str, *, merged: bool = True) -> LedgerEntry:
    return LedgerEntry(
        job_name=f"projects/p/locations/l/batchPredictionJobs/{name}", job_id=name,
        dbt_model=MODEL.unique_id, model_relation=MODEL.view, invocation_id="i",
        shard_table=f"p.d.labels__shard_{shard}", output_table="p.d.labels__output_x",
        gemini_model="gemini-2.5-flash", location="us-central1",
        state="SUCCEEDED" if merged else "RUNNING", request_count=100,
        merged_at=datetime.now(UTC) if merged else None,
    )


def decide(entries: list[LedgerEntry], outcomes: dict[str, int], pending: int = 2_500,
           model: BatchModel = MODEL) -> tuple[Gate, FakeWarehouse]:
    warehouse = FakeWarehouse(outcomes)
    return gate(FakeLedger(entries), warehouse, model, pending), warehouse  # type: ignore[arg-type]


def test_no_canary_yet_sends_a_sample_and_small_rounds_go_whole() -> None:
    word, warehouse = decide([entry("1", "20261206t050000_ab12_0")], {})
    assert word == Gate(sample=100)
    assert warehouse.asked == [[]]  # the plain job is not a canary
    assert decide([], {}, pending=2_000)[0] == Gate()


def test_a_canary_still_running_holds_the_round() -> None:
    word, _ = decide([entry("7", "20261206t050000_ab12_canary_0", merged=False)], {})
    assert word.hold and "canary job 7 is still running" in word.hold
    assert not word.sample and not word.stop


def test_the_verdict_of_the_canary_answers_passes_or_stops() -> None:
    canary = [entry("7", "20261206t050000_ab12_canary_0")]
    passed, warehouse = decide(canary, {"requests": 100, "bad": 20, "BLOCKED: SAFETY": 20})
    assert warehouse.asked == [[canary[0].job_name]]
    assert passed.sample == 0 and not passed.stop
    assert passed.note == ("canary passed (20 of 100 failed for good or empty): sending the "
                           "other 2,500 requests")
    stopped, _ = decide(canary, {"requests": 100, "bad": 90, "EMPTY_ANSWER: MAX_TOKENS": 90})
    assert stopped.stop and "EMPTY_ANSWER: MAX_TOKENS: 90" in stopped.stop
    # The canary's requests are gone (a new prompt): a new canary.
    assert decide(canary, {"requests": 0, "bad": 0})[0] == Gate(sample=100)
    # canary: false decides nothing.
    off = BatchModel(unique_id="m", name="m", project="p", dataset="d",
                     config=config(canary=False))
    assert decide(canary, {"requests": 100, "bad": 100}, model=off)[0] == Gate()
