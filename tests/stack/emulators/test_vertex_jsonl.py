"""Cloud Storage JSONL in and out of the Vertex AI emulator, with the three clients the
tutorial's flow can be written with: aiplatform_v1, the vertexai SDK (as main.py calls
it) and google-genai's client.batches. The files are the tutorial's own; what is
asserted is what a user finds in the bucket.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1, storage

from gemini_batch.local.stack import DEFAULT_LOCATION, StackState
from helpers.paths import FIXTURES

MODEL = "publishers/google/models/gemini-2.5-flash"
TERMINAL = {
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
}
TEXT = FIXTURES / "batch_request_text_input.jsonl"
MULTIMODAL = FIXTURES / "batch_request_multimodal_input.jsonl"


@pytest.fixture(scope="module")
def gcs(local_stack: StackState) -> storage.Client:
    return storage.Client(
        project=local_stack.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": local_stack.storage_endpoint},
    )


@pytest.fixture(scope="module")
def bucket(gcs: storage.Client) -> storage.Bucket:
    """A bucket of this module's, holding the tutorial's two input files under in/."""
    made = gcs.create_bucket(f"jsonl-{uuid.uuid4().hex[:8]}")
    made.blob("in/batch_request_text_input.jsonl").upload_from_filename(TEXT)
    made.blob("in/batch_request_multimodal_input.jsonl").upload_from_filename(MULTIMODAL)
    return made


@pytest.fixture(scope="module")
def client(local_stack: StackState) -> aiplatform_v1.JobServiceClient:
    return aiplatform_v1.JobServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=local_stack.vertex_endpoint),
    )


def submit(client, project: str, uris: list[str], prefix: str) -> aiplatform_v1.BatchPredictionJob:
    return client.create_batch_prediction_job(
        parent=f"projects/{project}/locations/{DEFAULT_LOCATION}",
        batch_prediction_job=aiplatform_v1.BatchPredictionJob(
            display_name=f"jsonl-{uuid.uuid4().hex[:6]}",
            model=MODEL,
            input_config={"instances_format": "jsonl", "gcs_source": {"uris": uris}},
            output_config={
                "predictions_format": "jsonl",
                "gcs_destination": {"output_uri_prefix": prefix},
            },
        ),
    )


def wait(client, name: str) -> aiplatform_v1.BatchPredictionJob:
    deadline = time.monotonic() + 600  # only a job that never ends
    while (job := client.get_batch_prediction_job(name=name)).state.name not in TERMINAL:
        assert time.monotonic() < deadline, f"{name} is still {job.state.name}"
        time.sleep(0.1)
    return job


def prediction_lines(gcs: storage.Client, directory: str) -> dict[str, list[dict[str, Any]]]:
    """Each file under a job's output directory, as its parsed lines."""
    bucket_name, _, prefix = directory.removeprefix("gs://").partition("/")
    return {
        blob.name.removeprefix(prefix + "/"): [
            json.loads(line) for line in blob.download_as_text().splitlines()
        ]
        for blob in gcs.list_blobs(bucket_name, prefix=prefix + "/")
    }


def requests_of(path) -> list[dict[str, Any]]:
    return [json.loads(line)["request"] for line in path.read_text().splitlines() if line]


def _echoes(lines: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(line["request"]) for line in lines)


def _echoes_the_service_wrote(*samples: str) -> list[str]:
    """The requests of the real outputs (keys in their order), as sorted JSON texts."""
    return sorted(json.dumps(request) for sample in samples
                  for request in requests_of(FIXTURES / f"batch_request_{sample}_output.jsonl"))


def test_a_wildcard_over_both_tutorial_files_gives_predictions_shaped_like_the_service(
    client, gcs, bucket, local_stack
):
    job = wait(
        client,
        submit(
            client,
            local_stack.project,
            [f"gs://{bucket.name}/in/*.jsonl"],
            f"gs://{bucket.name}/out",
        ).name,
    )
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    assert job.completion_stats.successful_count == 13
    directory = job.output_info.gcs_output_directory
    assert directory.startswith(f"gs://{bucket.name}/out/prediction-model-")
    files = prediction_lines(gcs, directory)
    assert list(files) == ["predictions.jsonl"]
    lines = files["predictions.jsonl"]
    # Every line has what the real outputs have, in the same order.
    real = json.loads((FIXTURES / "batch_request_text_output.jsonl").read_text().splitlines()[0])
    assert {tuple(line) for line in lines} == {tuple(real)}
    # Each request echoed as the service wrote it (the fixtures' outputs: keys sorted, a
    # null member for a field other lines have there), in the input's order.
    assert _echoes(lines) == _echoes_the_service_wrote("multimodal", "text")
    assert {line["status"] for line in lines} == {""}
    for line in lines:
        assert line["processed_time"].endswith("+00:00")
        assert line["response"]["candidates"][0]["content"]["parts"][0]["text"]
        assert line["response"]["modelVersion"] == "gemini-2.5-flash@default"


def test_a_bad_line_fails_alone_naming_its_file_and_line(client, gcs, bucket, local_stack):
    blob = bucket.blob("bad/mixed.jsonl")
    blob.upload_from_string(
        '{"request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, "id": 7}\n'
        "not json\n"
        '{"request": {"contents": []}}\n'
    )
    job = wait(
        client,
        submit(
            client, local_stack.project, [f"gs://{bucket.name}/bad/mixed.jsonl"],
            f"gs://{bucket.name}/bad-out/",
        ).name,
    )
    assert job.state.name == "JOB_STATE_PARTIALLY_SUCCEEDED"
    [lines] = prediction_lines(gcs, job.output_info.gcs_output_directory).values()
    good, not_json, empty = lines
    # What the service writes, as reported: the line's other fields (id) are dropped.
    assert good["status"] == "" and list(good) == ["status", "processed_time", "request",
                                                   "response"]
    assert "response" not in not_json and "response" not in empty
    where = f"gs://{bucket.name}/bad/mixed.jsonl, line"
    assert "Invalid JSON payload" in not_json["status"] and f"{where} 2" in not_json["status"]
    assert f"{where} 3" in empty["status"] and "contents" in empty["status"]


def test_a_lines_other_fields_are_kept_only_when_the_setting_asks(
    client, gcs, bucket, local_stack, faults
):
    faults.patch("/emulator/faults", json={"keep_input_fields": True}).raise_for_status()
    blob = bucket.blob("keep/in.jsonl")
    blob.upload_from_string(
        '{"request_id": "ab12", "request": {"contents": [{"parts": [{"text": "hi"}]}]}}\n')
    job = wait(client, submit(client, local_stack.project, [f"gs://{bucket.name}/keep/in.jsonl"],
                              f"gs://{bucket.name}/keep-out").name)
    [[line]] = prediction_lines(gcs, job.output_info.gcs_output_directory).values()
    assert line["request_id"] == "ab12"


def test_a_string_request_is_read_as_a_plain_text_prompt(client, gcs, bucket, local_stack):
    """As reported of the service (python-aiplatform#4074): the whole string, a JSON text
    included, is the user's text; the line echoes the string."""
    as_text = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    bucket.blob("text/in.jsonl").upload_from_string(
        json.dumps({"request": "Give me a recipe for banana bread."}) + "\n"
        + json.dumps({"request": as_text}) + "\n")
    job = wait(client, submit(client, local_stack.project, [f"gs://{bucket.name}/text/in.jsonl"],
                              f"gs://{bucket.name}/text-out").name)
    assert job.state.name == "JOB_STATE_SUCCEEDED", job.error
    [lines] = prediction_lines(gcs, job.output_info.gcs_output_directory).values()
    assert [line["request"] for line in lines] == [
        "Give me a recipe for banana bread.", as_text]
    answers = [line["response"]["candidates"][0]["content"]["parts"][0]["text"]
               for line in lines]
    # The simulated answer quotes what it was asked: the text, the JSON text as text.
    assert "You asked: Give me a recipe for banana bread." in answers[0]
    assert f"You asked: {as_text}" in answers[1]


def test_an_input_that_matches_nothing_fails_the_job_naming_it(client, bucket, local_stack):
    missing = f"gs://{bucket.name}/nowhere/*.jsonl"
    job = wait(
        client, submit(client, local_stack.project, [missing], f"gs://{bucket.name}/o").name
    )
    assert job.state.name == "JOB_STATE_FAILED"
    assert job.error.message == f"Failed to import data: no object matches {missing}."


def test_vertexai_sdk_as_the_tutorials_main_py_calls_it(gcs, bucket, local_stack):
    import vertexai
    from vertexai.batch_prediction import BatchPredictionJob

    vertexai.init(
        project=local_stack.project,
        location=DEFAULT_LOCATION,
        api_endpoint=local_stack.vertex_endpoint,
        api_transport="rest",
        credentials=AnonymousCredentials(),
    )
    job = BatchPredictionJob.submit(
        source_model="gemini-2.5-flash",
        input_dataset=f"gs://{bucket.name}/in/batch_request_text_input.jsonl",
        output_uri_prefix=f"gs://{bucket.name}/sdk",
    )
    deadline = time.monotonic() + 600
    while not job.has_ended:
        assert time.monotonic() < deadline
        time.sleep(0.1)
        job.refresh()
    assert job.has_succeeded
    assert job.output_location.startswith(f"gs://{bucket.name}/sdk/prediction-model-")
    [lines] = prediction_lines(gcs, job.output_location).values()
    assert [line["request"] for line in lines] == requests_of(TEXT)


def test_google_genai_batches_with_gs_sources(gcs, bucket, local_stack):
    from google import genai
    from google.genai.types import CreateBatchJobConfig, HttpOptions, JobState
    from google.oauth2.credentials import Credentials

    genai_client = genai.Client(
        vertexai=True,
        project=local_stack.project,
        location=DEFAULT_LOCATION,
        credentials=Credentials(token="local"),  # any token: the emulator does not check it
        http_options=HttpOptions(base_url=local_stack.vertex_endpoint),
    )
    job = genai_client.batches.create(
        model="gemini-2.5-flash",
        src=f"gs://{bucket.name}/in/batch_request_multimodal_input.jsonl",
        config=CreateBatchJobConfig(dest=f"gs://{bucket.name}/genai", display_name="genai"),
    )
    deadline = time.monotonic() + 600
    while job.state not in (JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        job = genai_client.batches.get(name=job.name)
    assert job.state == JobState.JOB_STATE_SUCCEEDED, job.error
    # google-genai reports the prefix it was given; the job's folder is under it.
    assert job.dest.gcs_uri == f"gs://{bucket.name}/genai"
    [(name, lines)] = prediction_lines(gcs, job.dest.gcs_uri).items()
    assert name.startswith("prediction-model-") and name.endswith("/predictions.jsonl")
    assert _echoes(lines) == _echoes_the_service_wrote("multimodal")
