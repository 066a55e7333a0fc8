"""gemini_batch.clients.vertex against the Vertex AI emulator, with the real JobServiceClient.

Each test writes a small requests table to a dataset of its own, submits it as a batch
prediction job and reads what the service reports (retries, labels and poll delays,
which need no service, are in tests/unit/test_jobs.py).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from google.cloud import bigquery

from gemini_batch.clients.polling import Backoff
from gemini_batch.clients.vertex import SUBMIT_LABEL, JobStatus, VertexJobs, job_labels
from gemini_batch.errors import JobServiceError
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


def _wait(vertex: VertexJobs, name: str, timeout: float = 600.0) -> JobStatus:
    """Until the job ends; the timeout only catches a job that never does."""
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
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()  # stays QUEUED
    table = _requests_table(bq, dataset, ["Wait for me."])
    created = vertex.submit(
        display_name="slow", gemini_model="gemini-2.5-flash", input_table=table,
        output_table=f"{dataset}.output", labels={},
    )
    assert not created.terminal
    assert vertex.get(created.name).state == "QUEUED"
    vertex.cancel(created.name)
    assert _wait(vertex, created.name).state == "CANCELLED"
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
