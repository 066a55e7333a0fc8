"""`gemini-batch submit`: the tutorial's two JSONL files through one command on the local
stack, as a user runs it: what it prints, its exit code, the result files, the jobs the
Vertex emulator was given (never one too many)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1, storage

from gemini_batch.cli import main
from gemini_batch.local.stack import DEFAULT_LOCATION
from helpers.dbt_projects import environment
from helpers.paths import FIXTURES

TEXT = FIXTURES / "batch_request_text_input.jsonl"
MULTIMODAL = FIXTURES / "batch_request_multimodal_input.jsonl"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def bucket(local_stack) -> str:
    client = storage.Client(
        project=local_stack.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": local_stack.storage_endpoint},
    )
    made = client.create_bucket(f"submit-{uuid.uuid4().hex[:8]}")
    made.blob("in/batch_request_multimodal_input.jsonl").upload_from_filename(MULTIMODAL)
    return made.name


@pytest.fixture(scope="module")
def vertex(local_stack) -> aiplatform_v1.JobServiceClient:
    return aiplatform_v1.JobServiceClient(
        transport="rest",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=local_stack.vertex_endpoint),
    )


def jobs_made(vertex, project: str) -> int:
    parent = f"projects/{project}/locations/{DEFAULT_LOCATION}"
    return len(list(vertex.list_batch_prediction_jobs(parent=parent)))


def submit(local_stack, ledger: Path, *args: str):
    with environment(local_stack.environment()):
        return CliRunner().invoke(
            main, ["submit", *args, "--model", "gemini-2.5-flash", "--ledger", str(ledger)]
        )


def test_the_text_file_is_answered_and_a_rerun_submits_nothing(
    local_stack, bucket, vertex, tmp_path
):
    ledger, results = tmp_path / "ledger.jsonl", tmp_path / "results.jsonl"
    before = jobs_made(vertex, local_stack.project)
    done = submit(local_stack, ledger, str(TEXT), "--output", f"gs://{bucket}/text",
                  "--download", str(results))
    assert done.exit_code == 0, done.output
    assert "10 requests, every line valid; estimated cost $" in done.stderr
    assert f"Uploaded {TEXT} to gs://{bucket}/text/inputs/" in done.stderr
    assert "ended SUCCEEDED: 10 answered, 0 failed of 10." in done.stdout
    assert f"Results: gs://{bucket}/text/prediction-model-" in done.stdout
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert [line["request"] for line in lines] == [
        json.loads(line)["request"] for line in TEXT.read_text().splitlines()
    ]
    assert all(line["status"] == "" and line["response"]["candidates"] for line in lines)

    again = submit(local_stack, ledger, str(TEXT), "--output", f"gs://{bucket}/text")
    assert again.exit_code == 0, again.output
    assert "nothing is submitted again" in again.stderr
    assert jobs_made(vertex, local_stack.project) == before + 1


def test_a_gs_input_with_no_wait_exits_75_and_the_next_run_collects(
    local_stack, bucket, vertex, tmp_path, faults
):
    ledger = tmp_path / "ledger.jsonl"
    uri = f"gs://{bucket}/in/batch_request_multimodal_input.jsonl"
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()  # stays QUEUED
    queued = submit(local_stack, ledger, uri, "--output", f"gs://{bucket}/mm", "--no-wait")
    assert queued.exit_code == 75, queued.output
    assert "Uploaded" not in queued.stderr  # a gs:// input is read where it is
    assert "is QUEUED: it runs on without this process" in queued.stdout
    faults.put("/emulator/faults", json={}).raise_for_status()
    collected = submit(local_stack, ledger, uri, "--output", f"gs://{bucket}/mm")
    assert collected.exit_code == 0, collected.output
    assert "ended SUCCEEDED: 3 answered, 0 failed of 3." in collected.stdout


def test_bad_lines_are_refused_by_number_before_any_job(local_stack, bucket, vertex, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        TEXT.read_text().splitlines()[0] + "\n"
        "{not json\n"
        '{"request": {"contents": [{"role": "user", "parts": []}]}}\n'
    )
    before = jobs_made(vertex, local_stack.project)
    refused = submit(local_stack, tmp_path / "ledger.jsonl", str(bad), "--output",
                     f"gs://{bucket}/bad")
    assert refused.exit_code == 1
    assert f"{bad}: 2 of 3 lines cannot be sent, so nothing was submitted" in refused.stderr
    assert "line 2: is not JSON" in refused.stderr
    assert "line 3: contents[0].parts: is empty" in refused.stderr
    assert jobs_made(vertex, local_stack.project) == before


def test_a_killed_submit_resumes_its_job(local_stack, bucket, vertex, tmp_path, faults):
    ledger = tmp_path / "ledger.jsonl"
    args = ["submit", str(MULTIMODAL), "--output", f"gs://{bucket}/killed",
            "--model", "gemini-2.5-flash", "--ledger", str(ledger)]
    before = jobs_made(vertex, local_stack.project)
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()
    process = subprocess.Popen(
        [str(BIN / "gemini-batch"), *args],
        env={**os.environ, **local_stack.environment()},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        for line in process.stdout:  # waits on the job once it says it submitted it
            if line.startswith("Job ") and "QUEUED" in line:
                break
        else:
            pytest.fail(f"submit ended first (exit {process.wait()})")
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    faults.put("/emulator/faults", json={}).raise_for_status()
    resumed = submit(local_stack, ledger, str(MULTIMODAL), "--output", f"gs://{bucket}/killed")
    assert resumed.exit_code == 0, resumed.output
    assert "Resuming job" in resumed.stderr
    assert "ended SUCCEEDED: 3 answered" in resumed.stdout
    assert jobs_made(vertex, local_stack.project) == before + 1
