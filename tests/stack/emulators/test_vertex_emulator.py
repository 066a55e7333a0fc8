"""The Vertex AI batch prediction emulator, driven by the real client libraries.

Jobs read input tables and write output tables on the session's BigQuery emulator; the
assertions are on what a user sees: job resources, rows in output tables, HTTP errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1, bigquery

from gemini_batch.local.stack import (
    DEFAULT_LOCATION,
    StackState,
    free_port,
    vertex_server_command,
)
from gemini_batch.local.vertex.engines.openai import json_schema
from helpers.paths import FIXTURES
from helpers.samples import sample_requests

MODEL = "publishers/google/models/gemini-2.5-flash"
TERMINAL = {
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
}


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def client(local_stack: StackState) -> aiplatform_v1.JobServiceClient:
    return job_client(local_stack.vertex_endpoint)


def job_client(endpoint: str) -> aiplatform_v1.JobServiceClient:
    return aiplatform_v1.JobServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=endpoint),
    )


@pytest.fixture(scope="module")
def dataset(local_stack: StackState, bq: bigquery.Client) -> str:
    name = f"vertex_{uuid.uuid4().hex[:8]}"
    bq.create_dataset(name)
    return f"{local_stack.project}.{name}"


def parent(project: str) -> str:
    return f"projects/{project}/locations/{DEFAULT_LOCATION}"


def make_table(
    bq: bigquery.Client,
    table: str,
    rows: list[dict[str, Any]],
    schema: list[bigquery.SchemaField] | None = None,
) -> str:
    schema = schema or [
        bigquery.SchemaField("id", "INTEGER"),
        bigquery.SchemaField("request", "JSON"),
    ]
    bq.create_table(bigquery.Table(table, schema=schema))
    if rows:
        bq.load_table_from_json(
            rows,
            table,
            job_config=bigquery.LoadJobConfig(schema=schema, write_disposition="WRITE_APPEND"),
        ).result()
    return table


def text_request(text: str, **generation_config: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if generation_config:
        request["generationConfig"] = generation_config
    return request


def submit(
    client: aiplatform_v1.JobServiceClient,
    project: str,
    input_table: str,
    output: str,
    *,
    model: str = MODEL,
    labels: dict[str, str] | None = None,
) -> aiplatform_v1.BatchPredictionJob:
    return client.create_batch_prediction_job(
        parent=parent(project),
        batch_prediction_job=aiplatform_v1.BatchPredictionJob(
            display_name=f"test-{uuid.uuid4().hex[:6]}",
            model=model,
            input_config={
                "instances_format": "bigquery",
                "bigquery_source": {"input_uri": f"bq://{input_table}"},
            },
            output_config={
                "predictions_format": "bigquery",
                "bigquery_destination": {"output_uri": f"bq://{output}"},
            },
            labels=labels or {},
        ),
    )


def wait(
    client: aiplatform_v1.JobServiceClient,
    name: str,
    until: Any = TERMINAL,
    timeout: float = 600,
) -> aiplatform_v1.BatchPredictionJob:
    """The job once ``until`` holds (a set of states, or a test of the job). The timeout
    only catches a job that never gets there: it fails, it does not return early."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_batch_prediction_job(name=name)
        if (until(job) if callable(until) else job.state.name in until) or (
            job.state.name in TERMINAL  # it will not change: the caller's asserts say why
        ):
            return job
        assert time.monotonic() < deadline, f"{name} is still {job.state.name}"
        time.sleep(0.1)


def run(
    client: aiplatform_v1.JobServiceClient, project: str, input_table: str, output: str, **kwargs
) -> aiplatform_v1.BatchPredictionJob:
    job = submit(client, project, input_table, output, **kwargs)
    return wait(client, job.name)


def output_rows(bq: bigquery.Client, job: aiplatform_v1.BatchPredictionJob) -> list[dict]:
    dataset = job.output_info.bigquery_output_dataset.removeprefix("bq://")
    table = f"{dataset}.{job.output_info.bigquery_output_table}"
    rows = [dict(row) for row in bq.list_rows(table)]
    return sorted(rows, key=lambda row: row.get("id") or 0)


@contextlib.contextmanager
def vertex_server(
    local_stack: StackState, data_dir: Path, *args: str, storage_read: bool = True
) -> Iterator[str]:
    """A Vertex emulator process of its own, on the session's BigQuery.

    ``storage_read=False`` leaves out the gRPC endpoint: input is read with tabledata.list.
    """
    port = free_port()
    log = (data_dir / "vertex.log").open("ab")
    process = subprocess.Popen(
        vertex_server_command(
            port=port,
            data_dir=data_dir,
            project=local_stack.project,
            bigquery_endpoint=local_stack.bigquery_endpoint,
            bigquery_grpc_port=local_stack.bigquery_grpc_port if storage_read else None,
            engine="simulate",
            extra_args=args,
        ),
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("GEMINI_BATCH_")},
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # only a server that never starts
        while True:
            assert process.poll() is None, (data_dir / "vertex.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{endpoint}/v1/{parent(local_stack.project)}/batchPredictionJobs")
                break
            assert time.monotonic() < deadline, "the emulator did not start"
            time.sleep(0.1)
        yield endpoint
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait(10)
        log.close()


# ---------------------------------------------------------------------------- the output table


def test_sample_requests_give_output_rows_shaped_like_the_service(client, bq, dataset, local_stack):
    requests = sample_requests("text") + sample_requests("multimodal")
    table = make_table(
        bq, f"{dataset}.samples", [{"id": i, "request": r} for i, r in enumerate(requests)]
    )
    job = run(client, local_stack.project, table, dataset, labels={"team": "data"})

    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    assert job.completion_stats.successful_count == len(requests)
    assert job.completion_stats.failed_count == 0
    assert job.output_info.bigquery_output_dataset == f"bq://{dataset}"
    assert job.output_info.bigquery_output_table.startswith("predictions_")
    assert dict(job.labels) == {"team": "data"}
    assert job.start_time and job.end_time and job.create_time <= job.start_time

    real = [json.loads(line) for line in (FIXTURES / "batch_request_text_output.jsonl").open()]
    # The 2024 fixture (gemini-1.5) lacks what 2.5 answers carry: when, an id, thinking.
    real_response_keys = set().union(*(row["response"] for row in real)) | {
        "createTime", "responseId"}
    real_candidate_keys = set().union(*(row["response"]["candidates"][0] for row in real))
    real_usage_keys = set(real[0]["response"]["usageMetadata"])
    rows = output_rows(bq, job)
    assert [row["id"] for row in rows] == list(range(len(requests)))
    assert set(rows[0]) == {"id", "request", "response", "status", "processed_time"}
    for row, request in zip(rows, requests, strict=True):
        assert row["status"] == ""
        assert row["processed_time"] is not None
        assert row["request"] == request  # echoed as it was, parts-as-object included
        response = row["response"]
        assert set(response) <= real_response_keys
        candidate = response["candidates"][0]
        assert {"content", "finishReason", "avgLogprobs"} <= set(candidate) <= real_candidate_keys
        assert candidate["content"]["role"] == "model"
        assert candidate["finishReason"] == "STOP"
        text = candidate["content"]["parts"][0]["text"]
        assert "simulated" in text
        assert response["modelVersion"] == "gemini-2.5-flash@default"  # as the fixture's
        assert len(response["responseId"]) == 23
        assert response["createTime"].endswith("Z")
        usage = response["usageMetadata"]
        assert real_usage_keys <= set(usage)
        assert usage["trafficType"] == "ON_DEMAND"
        assert usage["thoughtsTokenCount"] > 0  # 2.5 models think by default
        assert usage["totalTokenCount"] == (
            usage["promptTokenCount"] + usage["candidatesTokenCount"] + usage["thoughtsTokenCount"]
        )
    assert len({row["response"]["responseId"] for row in rows}) == len(rows)
    # parts given as one object, and both file_data and fileData spellings, were read
    assert "banana bread" in rows[0]["response"]["candidates"][0]["content"]["parts"][0]["text"]
    office = rows[10]["response"]
    assert "office-desk.jpeg" in office["candidates"][0]["content"]["parts"][0]["text"]
    assert office["usageMetadata"]["promptTokensDetails"][1] == {
        "modality": "IMAGE", "tokenCount": 258}  # the image's allowance
    video = rows[12]["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert "animals.mp4" in video and "cricket.jpeg" in video


def test_string_request_column_and_snake_case_fields(client, bq, dataset, local_stack):
    schema = [
        bigquery.SchemaField("id", "INTEGER"),
        bigquery.SchemaField("region", "STRING"),
        bigquery.SchemaField("score", "FLOAT"),
        bigquery.SchemaField("seen_at", "TIMESTAMP"),
        bigquery.SchemaField("request", "STRING"),
    ]
    snake = {
        "contents": {"role": "user", "parts": {"text": "Name a colour."}},
        "system_instruction": {"parts": [{"text": "Answer in one word."}]},
        "generation_config": {"max_output_tokens": 1000, "candidate_count": 1},
    }
    table = make_table(
        bq,
        f"{dataset}.strings",
        [
            {
                "id": 1,
                "region": "emea",
                "score": 0.5,
                "seen_at": "2024-05-01T10:00:00Z",
                "request": json.dumps(snake),
            }
        ],
        schema,
    )
    job = run(client, local_stack.project, table, f"{dataset}.strings_out")
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    assert job.output_info.bigquery_output_table == "strings_out"
    table_schema = {
        field.name: field.field_type for field in bq.get_table(f"{dataset}.strings_out").schema
    }
    assert table_schema == {
        "id": "INTEGER",
        "region": "STRING",
        "score": "FLOAT",
        "seen_at": "TIMESTAMP",
        "request": "STRING",
        "response": "JSON",
        "status": "STRING",
        "processed_time": "TIMESTAMP",
    }
    [row] = output_rows(bq, job)
    assert (row["region"], row["score"]) == ("emea", 0.5)
    assert row["seen_at"].isoformat() == "2024-05-01T10:00:00+00:00"
    assert row["request"] == json.dumps(snake)
    text = row["response"]["candidates"][0]["content"]["parts"][0]["text"]
    assert "System instruction: Answer in one word." in text and "Name a colour." in text


@pytest.mark.parametrize("storage_read", [True, False], ids=["storage-read", "tabledata-list"])
def test_other_column_types_pass_through(bq, dataset, local_stack, tmp_path, storage_read):
    schema = [
        bigquery.SchemaField("id", "INTEGER"),
        bigquery.SchemaField("day", "DATE"),
        bigquery.SchemaField("at", "TIME"),
        bigquery.SchemaField("price", "NUMERIC"),
        bigquery.SchemaField("blob", "BYTES"),
        bigquery.SchemaField("flag", "BOOLEAN"),
        bigquery.SchemaField("extra", "JSON"),
        bigquery.SchemaField("request", "JSON"),
    ]
    source = {
        "id": 1,
        "day": "2024-02-29",
        "at": "12:34:56",
        "price": "12.50",
        "blob": "aGVsbG8=",
        "flag": True,
        "extra": {"k": [1, 2]},
        "request": text_request("types"),
    }
    name = f"types_{'storage' if storage_read else 'list'}"
    table = make_table(bq, f"{dataset}.{name}", [source, {"id": 2, "request": None}], schema)
    with vertex_server(local_stack, tmp_path, storage_read=storage_read) as endpoint:
        job = run(job_client(endpoint), local_stack.project, table, f"{dataset}.{name}_out")
    assert job.state.name == "JOB_STATE_PARTIALLY_SUCCEEDED", job.error
    inputs = sorted((dict(row) for row in bq.list_rows(table)), key=lambda row: row["id"])
    outputs = output_rows(bq, job)
    for before, after in zip(inputs, outputs, strict=True):
        assert {key: after[key] for key in before} == before  # every value as it was
    first, second = outputs
    assert str(first["day"]) == "2024-02-29" and str(first["at"]) == "12:34:56"
    assert first["price"] == Decimal("12.5") and first["flag"] is True
    assert first["extra"] == {"k": [1, 2]} and first["status"] == ""
    assert second["day"] is None and "NULL" in second["status"]


def test_large_rows_are_read_in_streams_small_enough(client, bq, dataset, local_stack):
    # 15 MB in all: one Storage Read stream would exceed bqemulator's 11.5 MB messages.
    prompt = "x" * 6000
    rows = [{"id": i, "request": text_request(f"{i} {prompt}")} for i in range(2500)]
    table = make_table(bq, f"{dataset}.large_rows", rows)
    job = run(client, local_stack.project, table, dataset)
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    assert job.completion_stats.successful_count == 2500


def test_bad_rows_get_an_error_naming_the_field_and_the_rest_go_on(
    client, bq, dataset, local_stack
):
    schema = [bigquery.SchemaField("id", "INTEGER"), bigquery.SchemaField("request", "STRING")]
    bad = {
        1: "this is not json",
        2: json.dumps({"generationConfig": {"temperature": 0}}),
        3: json.dumps({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}),
        4: json.dumps({"contents": [{"role": "user", "parts": [{"url": "gs://b/x.png"}]}]}),
        5: json.dumps({"contents": [{"role": "user", "parts": [{}]}]}),
    }
    rows = [{"id": i, "request": r} for i, r in bad.items()]
    rows.append({"id": 6, "request": json.dumps(text_request("fine"))})
    table = make_table(bq, f"{dataset}.bad_rows", rows, schema)
    job = run(client, local_stack.project, table, dataset)

    assert job.state.name == "JOB_STATE_PARTIALLY_SUCCEEDED"
    assert (job.completion_stats.successful_count, job.completion_stats.failed_count) == (1, 5)
    status = {row["id"]: row["status"] for row in output_rows(bq, job)}
    assert "Invalid JSON payload" in status[1]
    assert "request.contents" in status[2]
    assert "request.contents[0].role" in status[3] and "user, model" in status[3]
    assert "request.contents[0].parts[0].url" in status[4]
    assert (
        "request.contents[0].parts[0]" in status[5] and "text, inlineData or fileData" in status[5]
    )
    assert all("INVALID_ARGUMENT" in status[i] for i in bad)
    assert all(f"table {table}, row {i - 1}, field request" in status[i] for i in bad)
    assert status[6] == ""
    responses = {row["id"]: row["response"] for row in output_rows(bq, job)}
    assert responses[1] is None and responses[6] is not None


def test_what_google_describes_or_the_model_refuses_is_a_400_per_row(
    client, bq, dataset, local_stack
):
    # Issue 22's table: a nested typo, BigQuery type names in a response schema, and
    # thinking turned off on 2.5 Pro each fail their row with the service's 400.
    schema = {"type": "OBJECT", "properties": {"urgency": {"type": "INT64"}}}
    rows = [
        {"id": 1, "request": text_request("a", thinkingConfig={"thinkingBugdet": 512})},
        {"id": 2, "request": text_request("b", responseMimeType="application/json",
                                          responseSchema=schema)},
        {"id": 3, "request": text_request("c", thinkingConfig={"thinkingBudget": 0})},
        {"id": 4, "request": text_request("d", thinkingConfig={"thinkingBudget": 128})},
    ]
    table = make_table(bq, f"{dataset}.schema_rows", rows)
    job = run(client, local_stack.project, table, dataset,
              model="publishers/google/models/gemini-2.5-pro")

    assert (job.completion_stats.successful_count, job.completion_stats.failed_count) == (1, 3)
    status = {row["id"]: row["status"] for row in output_rows(bq, job)}
    assert status[1].startswith('Bad Request: {"error": {"code": 400, "message": "Invalid JSON '
                                'payload received. Unknown name \\"thinkingBugdet\\" at '
                                "'generation_config.thinking_config': Cannot find field.")
    assert "'generation_config.response_schema.properties.urgency.type' (TYPE_ENUM)" in status[2]
    assert "Budget 0 is invalid. This model only works in thinking mode." in status[3]
    assert all('"status": "INVALID_ARGUMENT"' in status[i] for i in (1, 2, 3))
    assert status[4] == ""


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (None, "does not exist"),
        ([bigquery.SchemaField("prompt", "STRING")], "no `request` column"),
        (
            [bigquery.SchemaField("request", "JSON"), bigquery.SchemaField("status", "STRING")],
            "column `status`",
        ),
        (
            [
                bigquery.SchemaField("request", "JSON"),
                bigquery.SchemaField("tags", "STRING", mode="REPEATED"),
            ],
            "column `tags`",
        ),
    ],
    ids=["missing-table", "no-request-column", "reserved-column", "array-column"],
)
def test_bad_input_table_fails_the_job_naming_it(
    client, bq, dataset, local_stack, columns, expected
):
    table = f"{dataset}.input_{uuid.uuid4().hex[:6]}"
    if columns is not None:
        bq.create_table(bigquery.Table(table, schema=columns))
    job = run(client, local_stack.project, table, dataset)
    assert job.state.name == "JOB_STATE_FAILED"
    assert table in job.error.message and expected in job.error.message


def test_existing_output_table_fails_the_job(client, bq, dataset, local_stack):
    table = make_table(bq, f"{dataset}.exists_in", [{"id": 1, "request": text_request("a")}])
    make_table(bq, f"{dataset}.exists_out", [])
    job = run(client, local_stack.project, table, f"{dataset}.exists_out")
    assert job.state.name == "JOB_STATE_FAILED"
    assert f"{dataset}.exists_out already exists" in job.error.message


def test_unknown_model_is_404_and_model_name_forms_are_accepted(client, bq, dataset, local_stack):
    table = make_table(bq, f"{dataset}.models_in", [{"id": 1, "request": text_request("a")}])
    with pytest.raises(api_exceptions.NotFound, match="gemini-0.1-nope"):
        submit(
            client,
            local_stack.project,
            table,
            dataset,
            model="publishers/google/models/gemini-0.1-nope",
        )
    for model in (
        f"projects/{local_stack.project}/locations/us-central1/publishers/google/models/gemini-2.5-pro",
        "gemini-2.5-flash-lite",
    ):
        job = run(client, local_stack.project, table, dataset, model=model)
        assert job.state.name == "JOB_STATE_SUCCEEDED"
        [row] = output_rows(bq, job)
        assert row["response"]["modelVersion"] == model.rsplit("/", 1)[-1] + "@default"


# ---------------------------------------------------------------------------- the simulate engine


def test_structured_output_is_valid_for_its_schema(client, bq, dataset, local_stack):
    schema = {
        "type": "OBJECT",
        "properties": {
            "sentiment": {"type": "STRING", "enum": ["positive", "negative", "neutral"]},
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "confidence": {"type": "NUMBER"},
            "topics": {"type": "ARRAY", "items": {"type": "STRING"}, "minItems": 1},
            "needs_follow_up": {"type": "BOOLEAN"},
            "owner": {"type": "STRING", "nullable": True},
            "address": {
                "type": "object",
                "properties": {"city_name": {"type": "string"}},
                "required": ["city_name"],
            },
        },
        "required": ["sentiment", "score", "topics"],
    }
    requests = [
        text_request(f"Review {i}", responseMimeType="application/json", responseSchema=schema)
        for i in range(5)
    ]
    # snake_case spelling, with property names that must stay as written
    requests.append(
        {
            "contents": [{"role": "user", "parts": [{"text": "Review snake"}]}],
            "generation_config": {
                "response_mime_type": "application/json",
                "response_schema": schema,
            },
        }
    )
    table = make_table(
        bq, f"{dataset}.schema_in", [{"id": i, "request": r} for i, r in enumerate(requests)]
    )
    job = run(client, local_stack.project, table, dataset)
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    validator = jsonschema.Draft202012Validator(json_schema(schema))
    for row in output_rows(bq, job):
        value = json.loads(row["response"]["candidates"][0]["content"]["parts"][0]["text"])
        validator.validate(value)
        assert set(value) == set(schema["properties"])


def test_generation_config_truncates_counts_and_is_deterministic(client, bq, dataset, local_stack):
    no_thinking = {"thinkingBudget": 0}
    requests = [
        text_request("Tell me everything about bread. " * 20, maxOutputTokens=5,
                     thinkingConfig=no_thinking),
        text_request("Two answers please", candidateCount=2),
        text_request("Same question"),
        text_request("Same question"),
        text_request("Think it through", maxOutputTokens=5),
    ]
    table = make_table(
        bq, f"{dataset}.config_in", [{"id": i, "request": r} for i, r in enumerate(requests)]
    )
    job = run(client, local_stack.project, table, dataset)
    truncated, two, same, again, thought_out = (row["response"] for row in output_rows(bq, job))
    assert truncated["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert truncated["usageMetadata"]["candidatesTokenCount"] <= 5
    assert len(truncated["candidates"][0]["content"]["parts"][0]["text"]) <= 20
    assert len(two["candidates"]) == 2
    assert two["candidates"][0]["content"] != two["candidates"][1]["content"]
    # Each answer has its own responseId; the rest is the same for the same request.
    assert same.pop("responseId") != again.pop("responseId")
    assert json.dumps(same, sort_keys=True) == json.dumps(again, sort_keys=True)
    # Thinking spent the 5 tokens: MAX_TOKENS with no text, status '' all the same.
    assert thought_out["candidates"][0] == {"content": {"role": "model"},
                                            "finishReason": "MAX_TOKENS"}
    assert thought_out["usageMetadata"]["thoughtsTokenCount"] == 5


# ---------------------------------------------------------------------------- jobs API


def test_list_pages_filters_and_int_enums(client, bq, dataset, local_stack):
    table = make_table(bq, f"{dataset}.list_in", [{"id": 1, "request": text_request("a")}])
    label = uuid.uuid4().hex[:8]
    done = [
        run(client, local_stack.project, table, dataset, labels={"batch": label}) for _ in range(3)
    ]
    failed = run(client, local_stack.project, f"{dataset}.nope", dataset, labels={"batch": label})
    assert failed.state.name == "JOB_STATE_FAILED"

    mine = f'labels.batch="{label}"'
    pager = client.list_batch_prediction_jobs(
        request={"parent": parent(local_stack.project), "page_size": 2, "filter": mine}
    )
    pages = list(pager.pages)
    assert [len(page.batch_prediction_jobs) for page in pages] == [2, 2]
    names = [job.name for page in pages for job in page.batch_prediction_jobs]
    assert sorted(names) == sorted(job.name for job in [*done, failed])
    ids = [name.rsplit("/", 1)[-1] for name in names]
    assert ids == sorted(ids, key=int)  # by id: the API promises no order

    only_failed = client.list_batch_prediction_jobs(
        request={
            "parent": parent(local_stack.project),
            "filter": f'state="JOB_STATE_FAILED" AND {mine}',
        }
    )
    assert [job.name for job in only_failed] == [failed.name]
    succeeded = client.list_batch_prediction_jobs(
        request={
            "parent": parent(local_stack.project),
            "filter": f"state=JOB_STATE_SUCCEEDED AND {mine}",
        }
    )
    assert len(list(succeeded)) == 3

    url = f"{local_stack.vertex_endpoint}/v1/{done[0].name}"
    assert httpx.get(url).json()["state"] == "JOB_STATE_SUCCEEDED"
    as_int = httpx.get(url, params={"$alt": "json;enum-encoding=int"}).json()
    assert as_int["state"] == 4
    assert as_int["completionStats"]["successfulCount"] == "1"
    missing = httpx.get(
        f"{local_stack.vertex_endpoint}/v1/{parent(local_stack.project)}/batchPredictionJobs/123"
    )
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"

    client.delete_batch_prediction_job(name=done[0].name).result()
    with pytest.raises(api_exceptions.NotFound):
        client.get_batch_prediction_job(name=done[0].name)


def test_cancel_stops_a_running_job_and_keeps_rows_done(client, bq, dataset, local_stack, faults):
    # 3000 rows of 20 ms: once 20 are done the job runs for another minute, however slow
    # the machine, so the cancel always comes while it runs (and the test never waits
    # for that minute).
    rows = [{"id": i, "request": text_request(f"q{i}")} for i in range(3000)]
    table = make_table(bq, f"{dataset}.cancel_in", rows)
    faults.put("/emulator/faults", json={"row_latency": 0.02}).raise_for_status()
    job = submit(client, local_stack.project, table, dataset)
    running = wait(client, job.name, until=lambda j: j.completion_stats.successful_count >= 20)
    assert running.state.name == "JOB_STATE_RUNNING"
    assert running.completion_stats.incomplete_count > 0
    client.cancel_batch_prediction_job(name=job.name)
    cancelled = wait(client, job.name)
    assert cancelled.state.name == "JOB_STATE_CANCELLED"
    done = cancelled.completion_stats.successful_count
    assert 20 <= done < 3000
    written = output_rows(bq, cancelled)
    assert len(written) == done and all(row["status"] == "" for row in written)
    with pytest.raises(api_exceptions.BadRequest, match="cannot be cancelled"):
        client.cancel_batch_prediction_job(name=job.name)


# ---------------------------------------------------------------------------- faults


def test_injected_row_failures_differ_between_jobs(client, bq, dataset, local_stack, faults):
    table = make_table(
        bq, f"{dataset}.faults_in", [{"id": i, "request": text_request(f"q{i}")} for i in range(60)]
    )
    answer = faults.put(
        "/emulator/faults", json={"row_failure_rate": 0.5, "row_failure_codes": [429, 503]}
    )
    assert answer.json()["row_failure_rate"] == 0.5
    assert faults.get("/emulator/faults").json()["row_failure_codes"] == [429, 503]
    first, second = (run(client, local_stack.project, table, dataset) for _ in range(2))
    failed_sets = []
    for job in (first, second):
        assert job.state.name == "JOB_STATE_PARTIALLY_SUCCEEDED"
        rows = output_rows(bq, job)
        failed = {row["id"] for row in rows if row["status"]}
        assert len(failed) == job.completion_stats.failed_count
        assert 10 < len(failed) < 50
        for row in rows:
            if row["status"]:
                assert row["response"] is None
                assert ("429" in row["status"] and "RESOURCE_EXHAUSTED" in row["status"]) or (
                    "503" in row["status"] and "UNAVAILABLE" in row["status"]
                )
        failed_sets.append(failed)
    assert failed_sets[0] != failed_sets[1]  # a retry in a new job can succeed


def test_injected_job_outcomes_and_bad_settings(client, bq, dataset, local_stack, faults):
    table = make_table(bq, f"{dataset}.outcome_in", [{"id": 1, "request": text_request("a")}])
    for outcome in ("EXPIRED", "FAILED"):
        faults.put("/emulator/faults", json={"job_outcome": outcome}).raise_for_status()
        job = run(client, local_stack.project, table, dataset)
        assert job.state.name == f"JOB_STATE_{outcome}"
        assert job.error.message and job.end_time
    bad = faults.put("/emulator/faults", json={"row_failure_rate": 2})
    assert bad.status_code == 400 and "row_failure_rate" in bad.json()["error"]["message"]
    bad = faults.patch("/emulator/faults", json={"hold": "maybe"})
    assert bad.status_code == 400 and "hold" in bad.json()["error"]["message"]
    unknown = faults.patch("/emulator/faults", json={"explode": True})
    assert unknown.status_code == 400 and "explode" in unknown.json()["error"]["message"]


# ---------------------------------------------------------------------------- other clients


def test_google_genai_batches(bq, dataset, local_stack, faults):
    from google import genai
    from google.genai.types import CreateBatchJobConfig, HttpOptions, JobState
    from google.oauth2.credentials import Credentials

    table = make_table(bq, f"{dataset}.genai_in", [{"id": 1, "request": text_request("a")}])
    genai_client = genai.Client(
        vertexai=True,
        project=local_stack.project,
        location=DEFAULT_LOCATION,
        credentials=Credentials(token="local"),  # any token: the emulator does not check it
        http_options=HttpOptions(base_url=local_stack.vertex_endpoint),
    )
    job = genai_client.batches.create(
        model="gemini-2.5-flash",
        src=f"bq://{table}",
        config=CreateBatchJobConfig(dest=f"bq://{dataset}", display_name="genai"),
    )
    deadline = time.monotonic() + 600  # only a job that never ends
    while job.state not in (JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        job = genai_client.batches.get(name=job.name)
    assert job.state == JobState.JOB_STATE_SUCCEEDED
    assert job.name in [listed.name for listed in genai_client.batches.list()]

    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()  # stays QUEUED
    queued = genai_client.batches.create(
        model="gemini-2.5-flash",
        src=f"bq://{table}",
        config=CreateBatchJobConfig(dest=f"bq://{dataset}"),
    )
    assert queued.state == JobState.JOB_STATE_QUEUED
    genai_client.batches.cancel(name=queued.name)
    deadline = time.monotonic() + 600
    while (
        queued := genai_client.batches.get(name=queued.name)
    ).state != JobState.JOB_STATE_CANCELLED:
        assert time.monotonic() < deadline, queued.state
        time.sleep(0.1)


def test_vertexai_batch_prediction_sdk(bq, dataset, local_stack, faults):
    import vertexai
    from vertexai.batch_prediction import BatchPredictionJob

    table = make_table(bq, f"{dataset}.sdk_in", [{"id": 1, "request": text_request("a")}])
    vertexai.init(
        project=local_stack.project,
        location=DEFAULT_LOCATION,
        api_endpoint=local_stack.vertex_endpoint,
        api_transport="rest",
        credentials=AnonymousCredentials(),
    )
    job = BatchPredictionJob.submit(
        source_model="gemini-2.5-flash",
        input_dataset=f"bq://{table}",
        output_uri_prefix=f"bq://{dataset}",
    )
    deadline = time.monotonic() + 600  # only a job that never ends
    while not job.has_ended:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        job.refresh()
    assert job.has_succeeded
    # The SDK names the table itself (predictions_<time>); the service reports it back.
    assert job.output_location.startswith("predictions_")
    assert job.resource_name in [listed.resource_name for listed in BatchPredictionJob.list()]
    [row] = list(bq.list_rows(f"{dataset}.{job.output_location}"))
    assert row["status"] == ""

    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()  # stays QUEUED
    queued = BatchPredictionJob.submit(
        source_model="gemini-2.5-flash",
        input_dataset=f"bq://{table}",
        output_uri_prefix=f"bq://{dataset}",
    )
    queued.cancel()
    deadline = time.monotonic() + 600
    while queued.state.name != "JOB_STATE_CANCELLED":
        assert time.monotonic() < deadline
        time.sleep(0.1)
        queued.refresh()


# ---------------------------------------------------------------------------- persistence


def test_jobs_survive_a_restart(bq, dataset, local_stack, tmp_path):
    table = make_table(
        bq,
        f"{dataset}.restart_in",
        [{"id": i, "request": text_request(f"q{i}")} for i in range(200)],
    )
    # These emulators read with tabledata.list (no gRPC endpoint): that path is tested too.
    with vertex_server(local_stack, tmp_path, storage_read=False) as endpoint:
        client = job_client(endpoint)
        finished = run(client, local_stack.project, table, dataset)
        assert finished.state.name == "JOB_STATE_SUCCEEDED"
    # Rows take a second each: the job is RUNNING when the process is killed; the other
    # one waits in the queue.
    with vertex_server(
        local_stack,
        tmp_path,
        "--fault-row-latency",
        "1",
        "--max-running-jobs",
        "1",
        storage_read=False,
    ) as endpoint:
        client = job_client(endpoint)
        running = submit(client, local_stack.project, table, dataset)
        assert wait(client, running.name, until={"JOB_STATE_RUNNING"}).state.name == (
            "JOB_STATE_RUNNING"
        )
        queued = submit(client, local_stack.project, table, dataset)
        assert client.get_batch_prediction_job(name=queued.name).state.name == "JOB_STATE_QUEUED"
    with vertex_server(local_stack, tmp_path, storage_read=False) as endpoint:
        client = job_client(endpoint)
        listed = {
            job.name: job
            for job in client.list_batch_prediction_jobs(parent=parent(local_stack.project))
        }
        assert set(listed) == {finished.name, running.name, queued.name}
        assert listed[finished.name].state.name == "JOB_STATE_SUCCEEDED"
        crashed = listed[running.name]
        assert crashed.state.name == "JOB_STATE_FAILED"
        assert "restarted while this job was running" in crashed.error.message
        resumed = wait(client, queued.name)
        assert resumed.state.name == "JOB_STATE_SUCCEEDED"
        assert resumed.completion_stats.successful_count == 200


# ---------------------------------------------------------------------------- openai engine


class _FakeOpenAI(BaseHTTPRequestHandler):
    """A few lines of an OpenAI-compatible server: echoes, and fails on demand."""

    received: list[dict[str, Any]] = []

    def do_GET(self) -> None:  # noqa: N802
        self._send(200, {"object": "list", "data": [{"id": "fake-llm", "object": "model"}]})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["content-length"])))
        self.received.append(body)
        last = body["messages"][-1]["content"]
        if "overload" in last:
            self._send(429, {"error": {"message": "Too many requests", "type": "rate_limit"}})
            return
        content = json.dumps({"answer": last}) if body.get("response_format") else f"echo: {last}"
        self._send(
            200,
            {
                "id": "x",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "length" if body.get("max_tokens") == 1 else "stop",
                    }
                    for i in range(body.get("n", 1))
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            },
        )

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_openai_engine_against_a_compatible_server(bq, dataset, local_stack, tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    schema = {"type": "OBJECT", "properties": {"answer": {"type": "STRING", "nullable": True}}}
    requests = {
        1: {
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "contents": [
                {"role": "user", "parts": [{"text": "Hello"}]},
                {"role": "model", "parts": [{"text": "Hi!"}]},
                {"role": "user", "parts": [{"text": "Capital of France?"}]},
            ],
            "generationConfig": {
                "temperature": 0.1,
                "topP": 0.9,
                "maxOutputTokens": 64,
                "stopSequences": ["END"],
                "candidateCount": 2,
            },
        },
        2: text_request("json please", responseMimeType="application/json", responseSchema=schema),
        3: text_request("overload me"),
    }
    table = make_table(
        bq, f"{dataset}.openai_in", [{"id": i, "request": r} for i, r in requests.items()]
    )
    try:
        with vertex_server(
            local_stack,
            tmp_path,
            "--engine",
            "openai",
            "--openai-base-url",
            f"http://127.0.0.1:{server.server_port}/v1",
            "--openai-concurrency",
            "2",
        ) as endpoint:
            client = job_client(endpoint)
            job = run(client, local_stack.project, table, dataset)
    finally:
        server.shutdown()
    assert job.state.name == "JOB_STATE_PARTIALLY_SUCCEEDED"
    rows = {row["id"]: row for row in output_rows(bq, job)}

    chat = next(body for body in _FakeOpenAI.received if "Be brief." in str(body))
    assert chat["model"] == "fake-llm"  # the server's first model
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert (chat["temperature"], chat["top_p"], chat["max_tokens"], chat["stop"], chat["n"]) == (
        0.1,
        0.9,
        64,
        ["END"],
        2,
    )
    first = rows[1]["response"]
    assert [c["content"]["parts"][0]["text"] for c in first["candidates"]] == [
        "echo: Capital of France?"
    ] * 2
    assert first["candidates"][0]["content"]["role"] == "model"
    assert first["usageMetadata"] == {
        "promptTokenCount": 11,
        "candidatesTokenCount": 7,
        "totalTokenCount": 18,
    }

    structured = next(body for body in _FakeOpenAI.received if "json please" in str(body))
    assert structured["response_format"]["type"] == "json_schema"
    assert structured["response_format"]["json_schema"]["schema"] == {
        "type": "object",
        "properties": {"answer": {"type": ["string", "null"]}},
    }
    assert json.loads(rows[2]["response"]["candidates"][0]["content"]["parts"][0]["text"])

    assert rows[3]["response"] is None
    assert "429" in rows[3]["status"] and "RESOURCE_EXHAUSTED" in rows[3]["status"]
    assert "Too many requests" in rows[3]["status"]
