"""The settings of the analytics engineer's loop (state/reuse.py): which datasets answers
are read from, the sample's size, the dataset --defer points at. No server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_batch.errors import ConfigError
from gemini_batch.rules.config import BatchModel, BatchModelConfig
from gemini_batch.state.reuse import deferred_dataset, sample_size, source_datasets

MODEL = BatchModel(unique_id="model.shop.questions", name="questions", project="acme",
                   dataset="dbt_alice", config=BatchModelConfig(gemini_model="gemini-2.5-flash"))


@pytest.mark.parametrize(("value", "expected"), [
    (["acme.prod", "acme.ci"], ["acme.prod", "acme.ci"]),
    ("acme.prod, acme.ci", ["acme.prod", "acme.ci"]),
    (["acme.prod", "acme.prod", "acme.dbt_alice"], ["acme.prod"]),  # own dataset skipped
    ([], []),
])
def test_answers_from_var(value: object, expected: list[str]) -> None:
    assert source_datasets({"gemini_batch_answers_from": value}, MODEL) == expected


def test_the_var_wins_over_defer_and_defer_is_the_default() -> None:
    assert source_datasets({}, MODEL, "acme.prod") == ["acme.prod"]
    assert source_datasets({"gemini_batch_answers_from": ["acme.ci"]}, MODEL,
                           "acme.prod") == ["acme.ci"]
    assert source_datasets({}, MODEL) == []


@pytest.mark.parametrize("bad", ["prod", "a.b.c", ".prod", {"a": 1}])
def test_a_bad_dataset_name_names_the_var_and_the_shape(bad: object) -> None:
    with pytest.raises(ConfigError, match="gemini_batch_answers_from"):
        source_datasets({"gemini_batch_answers_from": bad if isinstance(bad, dict) else [bad]},
                        MODEL)


@pytest.mark.parametrize(("value", "expected"), [(None, None), (10, 10), ("25", 25)])
def test_sample_size(value: object, expected: int | None) -> None:
    assert sample_size({"gemini_batch_sample": value}) == expected


@pytest.mark.parametrize("bad", [-1, "ten", 2.5, "3x"])
def test_a_bad_sample_is_refused(bad: object) -> None:
    with pytest.raises(ConfigError, match="gemini_batch_sample"):
        sample_size({"gemini_batch_sample": bad})


def test_deferred_dataset_from_the_state_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"nodes": {
        "model.shop.questions": {"database": "acme", "schema": "analytics"}}}))
    assert deferred_dataset(str(tmp_path), "model.shop.questions") == "acme.analytics"
    assert deferred_dataset(str(tmp_path), "model.shop.other") is None
    assert deferred_dataset(str(tmp_path / "missing"), "model.shop.questions") is None
    assert deferred_dataset(None, "model.shop.questions") is None
