"""Batch model config as the Python side reads it from target/manifest.json."""

from __future__ import annotations

import pytest

from gemini_batch.errors import ConfigError
from gemini_batch.rules.config import MAX_SHARD_SIZE, BatchModel, ledger_dataset


def _node(**config: object) -> dict:
    return {
        "unique_id": "model.shop.product_summaries",
        "name": "product_summaries",
        "alias": "summaries",
        "database": "my-project",
        "schema": "shop_us_central1",
        "config": {"materialized": "gemini_batch", "enabled": True, "tags": [], **config},
    }


def test_defaults_and_table_names() -> None:
    model = BatchModel.from_manifest_node(_node(gemini_model="gemini-2.5-flash"))
    assert model.config.max_retries == 2
    assert model.config.shard_size == MAX_SHARD_SIZE == 200_000
    assert model.config.max_concurrent_jobs == 4
    assert model.config.max_cost_usd is None
    assert model.config.keep_job_tables is False
    assert model.config.labels == {}
    assert model.config.fail_on_failed_rows is True
    assert model.config.max_queue_hours is None  # no deadline: up to the 72-hour expiry
    assert BatchModel.from_manifest_node(_node(
        gemini_model="g", meta={"max_queue_hours": 24})).config.max_queue_hours == 24
    # The alias names the relations.
    assert model.view == "my-project.shop_us_central1.summaries"
    assert model.requests_table == "my-project.shop_us_central1.summaries__requests"
    assert model.responses_table == "my-project.shop_us_central1.summaries__responses"
    assert model.shard_table("r1", 0) == "my-project.shop_us_central1.summaries__shard_r1_0"
    assert model.output_table("r1", 2) == "my-project.shop_us_central1.summaries__output_r1_2"


def test_keys_under_meta_are_read_and_meta_wins_over_the_top() -> None:
    node = _node(meta={"gemini_model": "gemini-2.5-pro", "max_retries": 5}, max_retries=1,
                 max_cost_usd=3)
    model = BatchModel.from_manifest_node(node)
    assert model.config.gemini_model == "gemini-2.5-pro"
    assert model.config.max_retries == 5
    assert model.config.max_cost_usd == 3


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "gemini_model: Field required"),
        ({"gemini_model": "gemini 2.5"}, "is not a Gemini model name"),
        ({"gemini_model": "g", "shard_size": 300_000}, "shard_size: Input should be less than"),
        ({"gemini_model": "g", "max_retries": -1}, "max_retries: Input should be greater"),
        ({"gemini_model": "g", "labels": {"Team": "x"}}, "is not a valid Vertex AI label"),
        ({"gemini_model": "g", "location": "us central"}, "is not a Google Cloud region"),
        ({"gemini_model": "g", "max_queue_hours": 0}, "max_queue_hours: Input should be greater"),
        ({"gemini_model": "g", "max_queue_hours": -1}, "max_queue_hours: Input should be greater"),
        ({"gemini_model": "g", "max_queue_hours": "24"}, "max_queue_hours: Input should be a"),
        ({"gemini_model": "g", "max_queue_hours": True}, "max_queue_hours: Input should be a"),
        ({"gemini_model": "g", "max_queue_hours": 100}, "max_queue_hours: Input should be less"),
    ],
)
def test_bad_config_names_the_model(config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        BatchModel.from_manifest_node(_node(**config))
    assert "model.shop.product_summaries" in str(error.value)
    assert message in str(error.value)


def test_job_location() -> None:
    model = BatchModel.from_manifest_node(_node(gemini_model="g"))
    assert model.job_location("us-central1") == "us-central1"
    with pytest.raises(ConfigError, match="multi-region 'US'.*regional dataset"):
        model.job_location("US")
    pinned = BatchModel.from_manifest_node(_node(gemini_model="g", location="europe-west4"))
    assert pinned.job_location("europe-west4") == "europe-west4"
    with pytest.raises(ConfigError, match="location='europe-west4' but dataset"):
        pinned.job_location("us-central1")


def test_ledger_dataset() -> None:
    assert ledger_dataset({}, "analytics") == "analytics"
    assert ledger_dataset({"gemini_batch_ledger_dataset": "ops"}, "analytics") == "ops"
