"""`transport: gcs` matches each prediction line to its request by the request the
service echoes (docs/decisions/0017). Here the service's own lines do it: the
tutorial's real outputs (tests/fixtures/vertex_samples), loaded into the local BigQuery
as the route loads prediction files, against a shard made of the tutorial's inputs.

The multimodal echoes are not the lines sent: each part gains a null member for every
field another line of the file had (`"fileData": null` next to `file_data`), so the
match leaves null members out on both sides. (Their keys come back sorted too, which
BigQuery's JSON does to every object anyway; the local BigQuery keeps the order it is
given, so the shard here holds its requests as BigQuery would: keys sorted.)
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import bigquery

from gemini_batch.clients.bigquery import quote_table
from gemini_batch.routes.gcs_lines import matched_predictions_sql, prediction_schema
from helpers.paths import FIXTURES

SAMPLES = ("batch_request_text", "batch_request_multimodal")


@pytest.fixture(scope="module")
def dataset(bq: bigquery.Client) -> Iterator[str]:
    name = f"gcs_match_{uuid.uuid4().hex[:8]}"
    bq.create_dataset(name)
    yield f"{bq.project}.{name}"
    bq.delete_dataset(name, delete_contents=True, not_found_ok=True)


def lines(path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def sorted_keys(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def load(bq: bigquery.Client, table: str, rows: list[dict[str, Any]],
         schema: list[bigquery.SchemaField]) -> None:
    data = "".join(json.dumps(row) + "\n" for row in rows).encode()
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                                    schema=schema, ignore_unknown_values=True)
    bq.load_table_from_file(io.BytesIO(data), table, job_config=config).result()


@pytest.mark.parametrize("sample", SAMPLES)
def test_each_real_prediction_line_finds_its_own_request(bq, dataset, sample):
    sent = [line["request"] for line in lines(FIXTURES / f"{sample}_input.jsonl")]
    written = lines(FIXTURES / f"{sample}_output.jsonl")
    if sample == "batch_request_multimodal":  # the premise: echoes are not what was sent
        assert [line["request"] for line in written if line["request"] not in sent]
    shard, loading = f"{dataset}.{sample}_shard", f"{dataset}.{sample}_loading"
    load(bq, shard, [{"request_id": f"r{number}", "request": sorted_keys(request)}
                     for number, request in enumerate(sent)],
         [bigquery.SchemaField("request_id", "STRING"), bigquery.SchemaField("request", "JSON")])
    load(bq, loading, written, prediction_schema())

    rows = list(bq.query(
        f"SELECT request_id, passed_request_id, echoed, TO_JSON_STRING(request) AS request "
        f"FROM ({matched_predictions_sql(loading, shard)})").result())
    assert len(rows) == len(written)
    assert all(row["echoed"] and row["passed_request_id"] is None for row in rows)
    # Every line has a request, each request one line, and it is the line's own.
    assert sorted(row["request_id"] for row in rows) == [f"r{n}" for n in range(len(sent))]
    for row in rows:
        number = int(row["request_id"][1:])
        assert without_nulls(json.loads(row["request"])) == sent[number]


def test_a_line_naming_another_request_id_or_echoing_another_request_is_not_matched(
    bq, dataset
):
    request = {"contents": [{"role": "user", "parts": [{"text": "Name a bird."}]}]}
    other = {"contents": [{"role": "user", "parts": [{"text": "Name two birds."}]}]}
    shard, loading = f"{dataset}.unmatched_shard", f"{dataset}.unmatched_loading"
    load(bq, shard, [{"request_id": "a", "request": request}, {"request_id": "b",
                                                               "request": {"contents": []}}],
         [bigquery.SchemaField("request_id", "STRING"), bigquery.SchemaField("request", "JSON")])
    load(bq, loading, [
        {"status": "", "request": request},                     # matched: a
        {"status": "", "request": request, "request_id": "a"},  # an older job's: agrees
        {"status": "", "request": request, "request_id": "b"},  # names another request
        {"status": "", "request": other},                       # not the shard's
        {"status": "Bad Request: ..."},                         # no request at all
    ], prediction_schema())
    rows = [dict(row) for row in bq.query(
        f"SELECT request_id, passed_request_id, echoed FROM "
        f"({matched_predictions_sql(loading, shard)}) ORDER BY passed_request_id, status"
    ).result()]
    assert sorted(((row["request_id"], row["passed_request_id"], row["echoed"])
                   for row in rows), key=str) == sorted([
        ("a", None, True), ("a", "a", True), (None, "b", True), (None, None, True),
        (None, None, False)], key=str)
    assert quote_table(shard)  # a table name the route would take
