"""The Vertex AI emulator behaves like the 2026 service, seen through the real client
(google.cloud.aiplatform_v1 JobServiceClient over REST) on the local stack: models
refused where they are not served, thinking and answers without text in the output
table, the 24-hour cut and the 72-hour expiry in emulated time, PAUSED as a state that
is not an end. Assertions are on states reached and rows written; timeouts only guard.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1, bigquery

from gemini_batch.local.stack import DEFAULT_LOCATION, StackState

pytestmark = pytest.mark.slow

ENDED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED",
         "JOB_STATE_EXPIRED", "JOB_STATE_PARTIALLY_SUCCEEDED"}
Job = aiplatform_v1.BatchPredictionJob


class Vertex:
    """The session's Vertex AI emulator through the aiplatform client, and a dataset."""

    def __init__(self, stack: StackState, bq: bigquery.Client, dataset: str) -> None:
        self.stack, self.bq, self.dataset = stack, bq, dataset
        self.client = aiplatform_v1.JobServiceClient(
            transport="rest", credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=stack.vertex_endpoint))

    def table(self, requests: list[dict[str, Any]]) -> str:
        """A new input table: one row per request, ids from 0."""
        table = f"{self.dataset}.in_{uuid.uuid4().hex[:8]}"
        schema = [bigquery.SchemaField("id", "INTEGER"), bigquery.SchemaField("request", "JSON")]
        self.bq.create_table(bigquery.Table(table, schema=schema))
        rows = [{"id": i, "request": request} for i, request in enumerate(requests)]
        self.bq.load_table_from_json(rows, table, job_config=bigquery.LoadJobConfig(
            schema=schema, write_disposition="WRITE_APPEND")).result()
        return table

    def submit(self, table: str, model: str = "gemini-2.5-flash",
               location: str = DEFAULT_LOCATION) -> Job:
        return self.client.create_batch_prediction_job(
            parent=f"projects/{self.stack.project}/locations/{location}",
            batch_prediction_job=Job(
                display_name=f"t-{uuid.uuid4().hex[:6]}",
                model=f"publishers/google/models/{model}",
                input_config={"instances_format": "bigquery",
                              "bigquery_source": {"input_uri": f"bq://{table}"}},
                output_config={"predictions_format": "bigquery",
                               "bigquery_destination": {"output_uri": f"bq://{self.dataset}"}},
            ),
        )

    def until(self, job: Job, reached: Callable[[Job], bool], timeout: float = 180) -> Job:
        """Poll until ``reached``; the timeout only stops a test that would hang."""
        deadline = time.monotonic() + timeout
        while not reached(job := self.client.get_batch_prediction_job(name=job.name)):
            assert time.monotonic() < deadline, f"{job.name} stayed {job.state.name}"
            time.sleep(0.1)
        return job

    def ended(self, job: Job) -> Job:
        return self.until(job, lambda j: j.state.name in ENDED)

    def output(self, job: Job) -> dict[int, dict[str, Any]]:
        dataset = job.output_info.bigquery_output_dataset.removeprefix("bq://")
        rows = self.bq.list_rows(f"{dataset}.{job.output_info.bigquery_output_table}")
        return {row["id"]: dict(row) for row in rows}


@pytest.fixture(scope="module")
def vertex(local_stack: StackState, bq: bigquery.Client) -> Vertex:
    name = f"vertex2026_{uuid.uuid4().hex[:8]}"
    dataset = bigquery.Dataset(f"{local_stack.project}.{name}")
    dataset.location = DEFAULT_LOCATION
    bq.create_dataset(dataset)
    return Vertex(local_stack, bq, f"{local_stack.project}.{name}")


def ask(text: str, **generation_config: Any) -> dict[str, Any]:
    request: dict[str, Any] = {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    if generation_config:
        request["generationConfig"] = generation_config
    return request


def usable_text(response: dict[str, Any] | None) -> list[str]:
    return [part["text"] for candidate in (response or {}).get("candidates", [])
            for part in candidate.get("content", {}).get("parts", [])
            if "text" in part and not part.get("thought")]


# ---------------------------------------------------------------------------- models by location


def test_a_model_is_refused_where_it_is_not_served(vertex, faults):
    table = vertex.table([ask("Name a fruit.")])
    with pytest.raises(api_exceptions.NotFound,
                       match="gemini-3-pro-preview` was not found or your project does not "
                       "have access to it"):
        vertex.submit(table, "gemini-3-pro-preview")  # a global-only preview
    with pytest.raises(api_exceptions.BadRequest, match="Cloud Storage only"):
        vertex.submit(table, "gemini-3-pro-preview", location="global")
    with pytest.raises(api_exceptions.NotFound, match="not available to new projects"):
        vertex.submit(table, "gemini-1.5-flash-002")

    faults.patch("/emulator/faults", json={"legacy_models": True}).raise_for_status()
    job = vertex.ended(vertex.submit(table, "gemini-1.5-flash-002"))
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    [row] = vertex.output(job).values()
    assert row["response"]["modelVersion"] == "gemini-1.5-flash-002@default"
    assert "thoughtsTokenCount" not in row["response"]["usageMetadata"]  # 1.5 does not think


# ---------------------------------------------------------------------------- answers


def test_thinking_empty_answers_and_row_errors_in_the_output_table(vertex):
    requests = {
        "default": ask("Name a fruit."),
        "thoughts": ask("Name a city.", thinkingConfig={"includeThoughts": True}),
        "off": ask("Name a river.", thinkingConfig={"thinkingBudget": 0}),
        "spent": ask("Name a hill.", maxOutputTokens=100),
        "blocked": ask("[[gemini-batch:blocked:SAFETY]] Name a weapon."),
        "recitation": ask("Sing a song. [[gemini-batch:finish:RECITATION]]"),
        "throttled": ask("[[gemini-batch:error:429]]"),
        "cached": {**ask("Summarise it."), "cachedContent": "projects/p/locations/"
                   "us-central1/cachedContents/42"},
    }
    job = vertex.ended(vertex.submit(vertex.table(list(requests.values()))))
    assert job.state.name == "JOB_STATE_PARTIALLY_SUCCEEDED", job.error
    # Answers with no usable text are successes to the service: status ''.
    assert (job.completion_stats.successful_count, job.completion_stats.failed_count) == (6, 2)
    output = vertex.output(job)
    rows = {name: output[i] for i, name in enumerate(requests)}

    default = rows["default"]["response"]
    usage = default["usageMetadata"]
    assert usage["thoughtsTokenCount"] > 0
    assert usage["totalTokenCount"] == (usage["promptTokenCount"] + usage["candidatesTokenCount"]
                                        + usage["thoughtsTokenCount"])
    assert default["candidates"][0]["content"]["parts"][0].get("thought") is None
    parts = rows["thoughts"]["response"]["candidates"][0]["content"]["parts"]
    assert [part.get("thought", False) for part in parts] == [True, False]
    assert "thoughtsTokenCount" not in rows["off"]["response"]["usageMetadata"]

    for name in ("spent", "blocked", "recitation"):
        assert rows[name]["status"] == "" and usable_text(rows[name]["response"]) == [], name
    spent = rows["spent"]["response"]
    assert spent["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert spent["usageMetadata"]["thoughtsTokenCount"] == 100
    assert rows["blocked"]["response"]["promptFeedback"]["blockReason"] == "SAFETY"
    assert "candidates" not in rows["blocked"]["response"]
    assert rows["recitation"]["response"]["candidates"][0]["finishReason"] == "RECITATION"

    assert rows["throttled"]["response"] is None
    assert rows["throttled"]["status"].startswith('Too Many Requests: {"error": {"code": 429')
    assert rows["cached"]["status"].startswith(
        'Internal error occurred. Failed to get generateContentResponse: {"error": '
        '{"code": 404, "message": "Not found: cached content metadata for 42."')


def test_a_pro_model_refuses_a_zero_budget_and_thinks_past_a_small_limit(vertex):
    requests = [ask("Name a fruit.", thinkingConfig={"thinkingBudget": 0}),
                ask("Name a colour.", maxOutputTokens=512)]
    job = vertex.ended(vertex.submit(vertex.table(requests), "gemini-2.5-pro"))
    refused, spent = (vertex.output(job)[i] for i in range(2))
    assert refused["status"].startswith(
        'Bad Request: {"error": {"code": 400, "message": "Budget 0 is invalid. This model only '
        'works in thinking mode.')
    assert spent["status"] == "" and usable_text(spent["response"]) == []
    assert spent["response"]["usageMetadata"]["thoughtsTokenCount"] == 512


def test_a_share_of_answers_comes_back_empty_when_asked(vertex, faults):
    faults.put("/emulator/faults", json={
        "empty_answer_rate": 1.0, "empty_answer_kinds": ["finish:MAX_TOKENS", "blocked:SAFETY"]
    }).raise_for_status()
    job = vertex.ended(vertex.submit(vertex.table([ask(f"Question {i}") for i in range(20)])))
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    rows = vertex.output(job).values()
    assert all(row["status"] == "" and usable_text(row["response"]) == [] for row in rows)
    kinds = {"blocked" if "promptFeedback" in row["response"] else
             row["response"]["candidates"][0]["finishReason"] for row in rows}
    assert kinds == {"blocked", "MAX_TOKENS"}


# ---------------------------------------------------------------------------- time


def test_a_job_queues_runs_and_is_cut_at_24_hours_with_its_rows_written(vertex, faults):
    # 10,000 emulated seconds a real one: an hour queued, 48 hours of work, cut at 24.
    faults.put("/emulator/faults", json={
        "time_scale": 10_000, "queue_delay": 3_600, "run_seconds": 48 * 3600,
        "incomplete_unknown": True,
    }).raise_for_status()
    job = vertex.submit(vertex.table([ask(f"Question {i}") for i in range(100)]))
    assert job.state.name == "JOB_STATE_QUEUED"
    running = vertex.until(job, lambda j: j.state.name == "JOB_STATE_RUNNING")
    assert running.completion_stats.incomplete_count == -1  # the service may not know yet
    cut = vertex.ended(job)
    assert cut.state.name == "JOB_STATE_CANCELLED"  # not EXPIRED
    assert "24 hours" in cut.error.message
    done = cut.completion_stats.successful_count
    assert 0 < done < 100
    assert len(vertex.output(cut)) == done  # what finished is in the table


def test_a_job_still_queued_after_72_hours_expires(vertex, faults):
    faults.put("/emulator/faults", json={"time_scale": 100_000, "queue_delay": 100 * 3600}
                 ).raise_for_status()
    job = vertex.submit(vertex.table([ask("Name a fruit.")]))
    assert job.state.name == "JOB_STATE_QUEUED"
    expired = vertex.ended(job)
    assert expired.state.name == "JOB_STATE_EXPIRED"
    assert "72 hours" in expired.error.message
    assert not expired.start_time and not expired.output_info.bigquery_output_table


def test_paused_is_not_an_end(vertex, faults):
    faults.put("/emulator/faults", json={"job_outcome": "PAUSED"}).raise_for_status()
    job = vertex.submit(vertex.table([ask("Name a fruit.")]))
    paused = vertex.until(job, lambda j: j.state.name == "JOB_STATE_PAUSED")
    assert not paused.end_time
    with pytest.raises(api_exceptions.BadRequest, match="cancel it and wait"):
        vertex.client.delete_batch_prediction_job(name=job.name)  # not ended: not deletable
    faults.patch("/emulator/faults", json={"job_outcome": None}).raise_for_status()
    resumed = vertex.ended(job)
    assert resumed.state.name == "JOB_STATE_SUCCEEDED", resumed.error


def test_jobs_are_listed_by_id_whatever_their_age(vertex):
    table = vertex.table([ask("Name a fruit.")])
    made = [vertex.ended(vertex.submit(table)) for _ in range(3)]
    parent = f"projects/{vertex.stack.project}/locations/{DEFAULT_LOCATION}"
    listed = [job.name for job in vertex.client.list_batch_prediction_jobs(parent=parent)
              if job.name in {m.name for m in made}]
    assert listed == sorted((m.name for m in made), key=lambda n: int(n.rsplit("/", 1)[-1]))
