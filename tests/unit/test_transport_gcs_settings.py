"""Which batch models travel through Cloud Storage, where, and how their rows get there
on BigQuery: the EXPORT DATA statement (parsed by sqlglot), the parts it writes joined
into the job's one input file, and that file's lines checked before a job is made (a
Cloud Storage kept in memory; the local stack's streamed path runs in
tests/stack/commands/test_transport_gcs.py)."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import sqlglot

from gemini_batch.clients.storage import COMPOSE_LIMIT, GcsPath
from gemini_batch.errors import ConfigError, InputError
from gemini_batch.routes.gcs import GcsStaging, model_transport, staging_for
from gemini_batch.routes.gcs_lines import check_request_lines
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
    # One file per job, as Google's batch page says a job takes.
    assert staging.input_uri(SHARD) == f"gs://bkt/st/{SHARD}/input/requests.jsonl"
    assert staging.output_prefix(SHARD) == f"gs://bkt/st/{SHARD}/output"
    assert staging.shard_of([staging.input_uri(SHARD)]) == SHARD
    # A job an older version made, with a wildcard over its export, is still known.
    assert staging.shard_of([f"gs://bkt/st/{SHARD}/input/*.jsonl"]) == SHARD
    assert staging.shard_of(["gs://other/in.jsonl"]) is None
    assert staging.shard_of([f"gs://bkt/st/{SHARD}/input/part-1.jsonl"]) is None


class Blob:
    """An object of ``Storage``, with the calls the staging code makes."""

    def __init__(self, store: Storage, name: str) -> None:
        self.store, self.name, self.content_type = store, name, None

    @property
    def size(self) -> int:
        return len(self.store.objects[self.name])

    def upload_from_string(self, data: bytes, **kwargs: Any) -> None:
        self.store.objects[self.name] = data

    def download_as_bytes(self, start: int = 0) -> bytes:
        return self.store.objects[self.name][start:]

    def compose(self, sources: list[Blob]) -> None:
        assert len(sources) <= COMPOSE_LIMIT, "Cloud Storage composes 32 sources at most"
        self.store.composed.append(len(sources))
        self.store.objects[self.name] = b"".join(self.store.objects[s.name] for s in sources)

    def delete(self) -> None:
        del self.store.objects[self.name]

    def open(self, mode: str, **kwargs: Any) -> io.BytesIO:
        assert mode == "rb"
        return io.BytesIO(self.store.objects[self.name])


class Storage:
    """A bucket kept in memory (any bucket name is this one)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.composed: list[int] = []

    def lookup_bucket(self, name: str) -> object:
        return object()

    def bucket(self, name: str) -> Storage:
        return self

    def blob(self, name: str) -> Blob:
        return Blob(self, name)

    def list_blobs(self, bucket: str, prefix: str = "") -> list[Blob]:
        return [Blob(self, name) for name in sorted(self.objects) if name.startswith(prefix)]


class ExportingBigQuery:
    """Runs EXPORT DATA as BigQuery may: the shard's lines in ``parts`` files, each
    named by the URI's one ``*``."""

    def __init__(self, storage: Storage, parts: list[bytes]) -> None:
        self.storage, self.parts = storage, parts
        self.statements: list[str] = []

    def query(self, sql: str, params: Any = None) -> list[Any]:
        self.statements.append(sql)
        [uri] = re.findall(r"uri = '([^']+)'", sql)
        name = uri.removeprefix("gs://bkt/")
        assert name.count("*") == 1  # EXPORT DATA takes one wildcard
        for number, data in enumerate(self.parts):
            self.storage.objects[name.replace("*", f"{number:012d}")] = data
        return []


def request_line(text: str) -> bytes:
    return json.dumps({"request": {"contents": [{"parts": [{"text": text}]}]}}).encode() + b"\n"


def export(parts: list[bytes]) -> tuple[str, Storage, ExportingBigQuery]:
    storage = Storage()
    storage.objects[f"st/{SHARD}/input/requests.jsonl.join-0-0"] = b"left by an earlier try"
    staging = GcsStaging(root=GcsPath("bkt", "st"), project="p", local=False,
                         _client=storage)  # type: ignore[arg-type]
    bq = ExportingBigQuery(storage, parts)
    return staging.export_shard(bq, SHARD), storage, bq  # type: ignore[arg-type]


def test_on_bigquery_a_shard_is_exported_by_one_statement_into_one_file():
    # 70 parts: more than one compose call takes, so they are joined in rounds; one
    # part is empty, one's last line has no line break.
    parts = [request_line(f"q{number}") for number in range(70)]
    parts[3], parts[5] = b"", parts[5].rstrip(b"\n")
    uri, storage, bq = export(parts)
    assert uri == f"gs://bkt/st/{SHARD}/input/requests.jsonl"
    [statement] = bq.statements
    parsed = sqlglot.parse_one(statement, read="bigquery")
    assert parsed.key == "export"
    assert f"uri = 'gs://bkt/st/{SHARD}/input/part-*.jsonl'" in statement
    # The line is the request alone, as Google's page shows one.
    assert f"SELECT request FROM `p`.`ds`.`{SHARD.rsplit('.', 1)[1]}`" in statement
    # The parts, the steps of the join and what an earlier try left are gone.
    assert list(storage.objects) == [f"st/{SHARD}/input/requests.jsonl"]
    lines = storage.objects[f"st/{SHARD}/input/requests.jsonl"].splitlines()
    assert [json.loads(line)["request"]["contents"][0]["parts"][0]["text"]
            for line in lines] == [f"q{number}" for number in range(70) if number != 3]
    assert max(storage.composed) <= COMPOSE_LIMIT and len(storage.composed) == 4


def test_a_request_exported_as_a_string_is_refused_before_any_job():
    """The service would read it as a plain-text prompt (python-aiplatform#4074)."""
    as_text = json.dumps({"request": json.dumps({"contents": []})}).encode() + b"\n"
    with pytest.raises(InputError) as refused:
        export([request_line("q0"), as_text])
    message = str(refused.value)
    assert f"The requests of {SHARD} were written to gs://bkt/st/{SHARD}/input/requests.jsonl"\
        in message
    assert "line 2 has `request` as a JSON string, not an object" in message
    assert "plain-text prompt (python-aiplatform#4074), so no job was created" in message


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ([b'{"request": {"contents": []}}\n'] * 3, None),
        ([b"\n", b'{"request": "Give me a recipe."}\n'], "line 2 has `request` as a JSON string"),
        ([b'{"request_id": "ab"}\n'], "line 1 has no `request`"),
        ([b'{"request": [1]}\n'], "line 1 has `request` as a JSON array"),
        ([b'{"request": {}}\n', b"not json\n"], "line 2 is not JSON"),
        ([b'["request"]\n'], "line 1 has no `request`"),
        ([], "holds no line: no job was created"),
    ],
)
def test_the_input_lines_must_hold_a_request_object(lines, problem):
    path = GcsPath("bkt", "in.jsonl")
    if problem is None:
        check_request_lines(lines, shard_table=SHARD, path=path)
        return
    with pytest.raises(InputError, match=re.escape(problem)):
        check_request_lines(lines, shard_table=SHARD, path=path)
