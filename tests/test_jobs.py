"""gemini_batch.jobs against the Vertex AI emulator, with the real JobServiceClient.

Each test writes a small requests table to a dataset of its own, submits it as a batch
prediction job and reads what the service reports; retries are checked against a tiny
HTTP server that answers 429 before it answers.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from google.cloud import bigquery

from gemini_batch.errors import ConfigError, JobServiceError
from gemini_batch.jobs import (
    SUBMIT_LABEL,
    TERMINAL_STATES,
    Backoff,
    JobStatus,
    VertexJobs,
    job_labels,
    label_value,
    vertex_job_client,
)
from gemini_batch.local.stack import DEFAULT_LOCATION, StackState

pytestmark = pytest.mark.slow


@pytest.fixture()
def dataset(bq: bigquery.Client, local_stack: StackState) -> Iterator[str]:
    name = f"jobs_{uuid.uuid4().hex[:8]}"
    ds = bigquery.Dataset(f"{local_stack.project}.{name}")
    ds.location = DEFAULT_LOCATION
    bq.create_dataset(ds)
    yield f"{local_stack.project}.{name}"
    bq.delete_dataset(ds, delete_contents=True, not_found_ok=True)


@pytest.fixture()
def vertex(stack_env: dict[str, str], local_stack: StackState) -> VertexJobs:
    return VertexJobs(project=local_stack.project, location=DEFAULT_LOCATION)


@pytest.fixture()
def faults(local_stack: StackState) -> Iterator[httpx.Client]:
    client = httpx.Client(base_url=local_stack.vertex_endpoint)
    yield client
    client.put("/emulator/faults", json={})  # back to no faults for the next test
    client.close()


def _requests_table(bq: bigquery.Client, dataset: str, prompts: list[str]) -> str:
    table = f"{dataset}.shard"
    rows = ", ".join(
        f"STRUCT('r{i}' AS request_id, PARSE_JSON(@p{i}) AS request)" for i in range(len(prompts))
    )
    params = [
        bigquery.ScalarQueryParameter(
            f"p{i}", "STRING",
            json.dumps({"contents": [{"role": "user", "parts": [{"text": prompt}]}]}),
        )
        for i, prompt in enumerate(prompts)
    ]
    bq.query(
        f"CREATE TABLE `{table}` AS SELECT * FROM UNNEST([{rows}])",
        job_config=bigquery.QueryJobConfig(query_parameters=params),
    ).result()
    return table


def _wait(vertex: VertexJobs, name: str, timeout: float = 60.0) -> JobStatus:
    backoff = Backoff(initial=0.2, maximum=1.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = vertex.get(name)
        if status.terminal:
            return status
        time.sleep(backoff.next_delay())
    raise AssertionError(f"job {name} did not end within {timeout}s: {status}")


def test_submit_poll_and_read_output(
    vertex: VertexJobs, bq: bigquery.Client, dataset: str
) -> None:
    table = _requests_table(bq, dataset, ["Name a fruit.", "Name a colour.", "Name a city."])
    labels = job_labels(model_name="Recipes.V2", invocation_id="ABC-123", extra={"team": "x"})
    created = vertex.submit(
        display_name="recipes__shard_1", gemini_model="gemini-2.5-flash",
        input_table=table, output_table=f"{dataset}.output", labels=labels,
    )
    assert created.name.startswith(
        f"projects/{vertex.project}/locations/{DEFAULT_LOCATION}/batchPredictionJobs/"
    )
    assert created.state in ("QUEUED", "PENDING", "RUNNING")
    assert created.input_table == table

    ended = _wait(vertex, created.name)
    assert ended.state == "SUCCEEDED"
    assert (ended.succeeded, ended.failed) == (3, 0)
    assert ended.output_table == f"{dataset}.output"
    submit_id = ended.labels.pop(SUBMIT_LABEL)  # one per create call
    assert len(submit_id) == 16
    assert ended.labels == {
        "team": "x", "tool": "gemini-batch", "dbt_model": "recipes-v2",
        "dbt_invocation_id": "abc-123",
    }
    rows = list(bq.query(
        f"SELECT request_id, status FROM `{dataset}.output` ORDER BY request_id"
    ).result())
    assert [(r.request_id, r.status) for r in rows] == [("r0", ""), ("r1", ""), ("r2", "")]

    # The label filter finds it; another model's label does not.
    assert [j.name for j in vertex.list(labels={"dbt_model": "recipes-v2"})] == [created.name]
    assert vertex.list(labels={"dbt_model": "someone-else"}) == []


def test_cancel_a_queued_job(
    vertex: VertexJobs, bq: bigquery.Client, dataset: str, faults: httpx.Client
) -> None:
    faults.put("/emulator/faults", json={"queue_delay": 30}).raise_for_status()
    table = _requests_table(bq, dataset, ["Wait for me."])
    created = vertex.submit(
        display_name="slow", gemini_model="gemini-2.5-flash", input_table=table,
        output_table=f"{dataset}.output", labels={},
    )
    assert not created.terminal
    vertex.cancel(created.name)
    assert _wait(vertex, created.name, timeout=20).state == "CANCELLED"
    # Cancelling an ended job is not an error.
    assert vertex.cancel(created.name).state == "CANCELLED"


def test_failed_job_reports_the_error(
    vertex: VertexJobs, bq: bigquery.Client, dataset: str, faults: httpx.Client
) -> None:
    faults.put("/emulator/faults", json={"job_outcome": "FAILED"}).raise_for_status()
    table = _requests_table(bq, dataset, ["Fail."])
    created = vertex.submit(
        display_name="doomed", gemini_model="gemini-2.5-flash", input_table=table,
        output_table=f"{dataset}.output", labels={},
    )
    ended = _wait(vertex, created.name)
    assert ended.state == "FAILED" and ended.terminal and not ended.answered
    assert ended.error


def test_unknown_job_is_not_found(vertex: VertexJobs) -> None:
    name = f"{vertex.parent}/batchPredictionJobs/424242"
    status = vertex.get(name)
    assert status.state == "NOT_FOUND" and status.terminal
    assert vertex.cancel(name).state == "NOT_FOUND"


def test_refused_job_names_the_table_and_model(
    vertex: VertexJobs, bq: bigquery.Client, dataset: str
) -> None:
    table = _requests_table(bq, dataset, ["Hi."])
    with pytest.raises(JobServiceError, match="no-such-model") as refused:
        vertex.submit(
            display_name="bad", gemini_model="no-such-model", input_table=table,
            output_table=f"{dataset}.output", labels={},
        )
    assert table in str(refused.value)


class _ThrottlingHandler(BaseHTTPRequestHandler):
    """Answers 429 (then 503) before it answers a job: what a busy service does."""

    calls: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.calls.append(1)
        if len(self.calls) <= 2:
            code = 429 if len(self.calls) == 1 else 503
            body = {"error": {"code": code, "message": "busy", "status": "UNAVAILABLE"}}
        else:
            code = 200
            body = {"name": self.path.removeprefix("/v1/"), "state": "JOB_STATE_RUNNING"}
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


def test_429_and_503_are_retried() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ThrottlingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        vertex = VertexJobs(
            project="p", location="us-central1",
            client=vertex_job_client("us-central1", endpoint=endpoint),
        )
        status = vertex.get("projects/p/locations/us-central1/batchPredictionJobs/1")
        assert status.state == "RUNNING"
        assert len(_ThrottlingHandler.calls) == 3  # 429, 503, then the answer
    finally:
        server.shutdown()
        server.server_close()


def test_terminal_states_are_our_own_set() -> None:
    assert {
        "SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED",
    } == TERMINAL_STATES
    assert not JobStatus(name="j", state="CANCELLING").terminal
    assert not JobStatus(name="j", state="PAUSED").terminal  # it goes on when resumed
    assert JobStatus(name="j", state="EXPIRED").terminal
    assert JobStatus(name="j", state="PARTIALLY_SUCCEEDED").answered


def test_labels_follow_the_label_rules() -> None:
    assert label_value("My Model.V2!") == "my-model-v2"
    assert len(label_value("x" * 100)) == 63
    labels = job_labels(model_name="m", invocation_id="i", extra={"tool": "mine", "9": "a"})
    assert labels["tool"] == "gemini-batch"  # config labels never replace ours
    assert labels["k9"] == "a"


def test_multi_region_location_is_refused_for_google_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GEMINI_BATCH_VERTEX_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="regional"):
        vertex_job_client("US")


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=3.0, factor=2.0)
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
    with pytest.raises(ConfigError):
        Backoff(initial=0)
