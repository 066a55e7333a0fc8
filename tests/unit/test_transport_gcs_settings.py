"""Which batch models travel through Cloud Storage, where, and the BigQuery statements
that move their rows there on BigQuery (parsed by sqlglot; the local stack's streamed
path runs in tests/stack/commands/test_transport_gcs.py)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlglot

from gemini_batch.clients.storage import GcsPath
from gemini_batch.errors import ConfigError
from gemini_batch.routes.gcs import GcsStaging, model_transport, staging_for
from gemini_batch.rules.config import BatchModel, BatchModelConfig

SHARD = "p.ds.reviews__shard_20260101t000000_ab12_0"


def model(**settings: Any) -> BatchModel:
    return BatchModel(unique_id="model.x.reviews", name="reviews", project="p", dataset="ds",
                      config=BatchModelConfig(gemini_model="gemini-2.5-flash"), **settings)


@pytest.mark.parametrize(
    ("settings", "dbt_vars", "location", "transport"),
    [
        ({}, {}, "us-central1", "bigquery"),
        ({}, {}, "global", "gcs"),  # batch on global takes no BigQuery tables
        ({"transport": "gcs"}, {}, "us-central1", "gcs"),
        ({}, {"gemini_batch_transport": "gcs"}, "europe-west4", "gcs"),
        ({"transport": "bigquery"}, {"gemini_batch_transport": "gcs"}, "us-central1", "bigquery"),
    ],
)
def test_the_transport_of_a_model(settings, dbt_vars, location, transport):
    assert model_transport(model(**settings), location, dbt_vars) == transport


def test_bigquery_on_global_and_unknown_transports_are_refused():
    with pytest.raises(ConfigError, match="batch jobs on 'global' take no BigQuery tables"):
        model_transport(model(transport="bigquery"), "global", {})
    with pytest.raises(ConfigError, match="transport 'ftp' is not one of bigquery, gcs"):
        model_transport(model(transport="ftp"), "us-central1", {})


def test_cloud_storage_needs_a_staging_uri_that_is_one():
    with pytest.raises(ConfigError, match="has no staging_uri: set meta staging_uri="):
        staging_for(model(), "global", {}, local=False)
    with pytest.raises(ConfigError, match="staging_uri 's3://b/x' is not a Cloud Storage"):
        staging_for(model(transport="gcs", staging_uri="s3://b/x"), "us-central1", {},
                    local=False)
    staging = staging_for(model(), "global", {"gemini_batch_staging_uri": "gs://bkt/st"},
                          local=False)
    assert staging is not None and staging.root == GcsPath("bkt", "st")


def test_each_job_has_a_folder_named_by_its_shard_and_is_recognised_by_it():
    staging = GcsStaging(root=GcsPath("bkt", "st"), project="p", local=False)
    assert staging.input_uri(SHARD) == f"gs://bkt/st/{SHARD}/input/*.jsonl"
    assert staging.output_prefix(SHARD) == f"gs://bkt/st/{SHARD}/output"
    assert staging.shard_of([staging.input_uri(SHARD)]) == SHARD
    assert staging.shard_of(["gs://other/in.jsonl"]) is None


class RecordingBigQuery:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def query(self, sql: str, params: Any = None) -> list[Any]:
        self.statements.append(sql)
        return []


class Buckets:
    def lookup_bucket(self, name: str) -> object:
        return object()


def test_on_bigquery_a_shard_is_exported_by_one_statement():
    staging = GcsStaging(root=GcsPath("bkt", "st"), project="p", local=False,
                         _client=Buckets())  # type: ignore[arg-type]
    bq = RecordingBigQuery()
    assert staging.export_shard(bq, SHARD) == f"gs://bkt/st/{SHARD}/input/*.jsonl"  # type: ignore[arg-type]
    [statement] = bq.statements
    parsed = sqlglot.parse_one(statement, read="bigquery")
    assert parsed.key == "export"
    assert f"uri = 'gs://bkt/st/{SHARD}/input/*.jsonl'" in statement
    assert f"SELECT request_id, request FROM `p`.`ds`.`{SHARD.rsplit('.', 1)[1]}`" in statement
