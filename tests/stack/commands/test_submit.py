"""`gemini-batch submit`: the tutorial's two JSONL files through one command on the local
stack, as a user runs it: what it prints, its exit code, the result files, the jobs the
Vertex emulator was given (never one too many); with a dbt profile, the rows of the
target's ledger, what `status` / `jobs` show, and a build beside it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1, storage

from gemini_batch.cli import main
from gemini_batch.clients.bigquery import BigQuery, bigquery_client
from gemini_batch.local.stack import DEFAULT_LOCATION
from gemini_batch.state.ledger import Ledger, LockOwner
from helpers.build_project import new_build_project
from helpers.dbt_projects import DbtProjects, DbtTestProject, cli_ok, environment
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


@pytest.fixture(scope="module")
def dbt_project(dbt_projects: DbtProjects) -> Iterator[DbtTestProject]:
    """prompts → questions (a batch model) → answers: the target whose ledger a submit
    with a profile writes to, and a build beside it."""
    project = new_build_project(dbt_projects)
    yield project
    project.drop()


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


def test_with_a_profile_the_targets_ledger_resumes_the_job_and_a_build_leaves_it(
    local_stack, bucket, vertex, dbt_project, faults
):
    output = ["--output", f"gs://{bucket}/target", "--model", "gemini-2.5-flash"]
    before = jobs_made(vertex, local_stack.project)
    faults.put("/emulator/faults", json={"hold": True}).raise_for_status()
    stopped = dbt_project.cli("submit", str(MULTIMODAL), *output, "--no-wait")
    assert stopped.exit_code == 75, stopped.output

    # The row is the target's, with the label value the job carries.
    (row,) = dbt_project.rows(
        "select * from `{ds}.gemini_batch_jobs` where starts_with(dbt_model, 'submit.')")
    job = dbt_project.vertex().get(row["job_name"])
    assert job.labels["gemini_batch_submit"] == row["invocation_id"]
    assert (row["state"], row["request_count"], row["gemini_model"]) == (
        "QUEUED", 3, "gemini-2.5-flash")
    assert row["shard_table"].startswith(f"gs://{bucket}/target/inputs/")
    assert row["merged_at"] is None

    status = cli_ok(dbt_project.cli("status"))
    line = next(line for line in status.splitlines() if job.job_id in line)
    assert "(submit)" in line and "QUEUED" in line

    # A build beside it neither adopts nor cancels the submit's job.
    built = dbt_project.cli("build", "--no-wait", "-s", "+questions")
    cli_ok(built, code=75)
    assert "adopting" not in built.output
    assert dbt_project.vertex().get(job.name).state == "QUEUED"
    (model_job,) = dbt_project.jobs()
    assert {entry["dbt_model"]: entry["job_name"] for entry in dbt_project.rows(
        "select dbt_model, job_name from `{ds}.gemini_batch_jobs`")} == {
        "model.e2e.questions": model_job.name, row["dbt_model"]: job.name}

    # Another process holding the submission: refused, saying who.
    ledger = Ledger(BigQuery(bigquery_client(
        local_stack.project, api_endpoint=local_stack.bigquery_endpoint)),
        local_stack.project, dbt_project.dataset)
    other = LockOwner(host="other-host", pid=4242)
    ledger.claim(row["dbt_model"], other)
    try:
        refused = dbt_project.cli("submit", str(MULTIMODAL), *output)
    finally:
        ledger.unlock(row["dbt_model"], other)
    assert refused.exit_code == 1, refused.output
    assert "Another `gemini-batch submit` of the same input (pid 4242 on other-host" in (
        refused.stderr)

    faults.put("/emulator/faults", json={}).raise_for_status()
    resumed = dbt_project.cli("submit", str(MULTIMODAL), *output)
    assert resumed.exit_code == 0, resumed.output
    assert f"Resuming job {job.name} (" in resumed.stderr
    assert f"from {ledger.table}: nothing is submitted again." in resumed.stderr
    assert "ended SUCCEEDED: 3 answered, 0 failed of 3." in resumed.stdout
    assert jobs_made(vertex, local_stack.project) == before + 2  # the submit's, the build's
    (row,) = dbt_project.rows(
        "select * from `{ds}.gemini_batch_jobs` where starts_with(dbt_model, 'submit.')")
    assert (row["state"], row["succeeded_count"], row["failed_count"]) == ("SUCCEEDED", 3, 0)
    assert row["merged_at"] is not None  # handled: no longer in flight
    listed = cli_ok(dbt_project.cli("jobs"))
    line = next(line for line in listed.splitlines() if job.job_id in line)
    assert "(submit)" in line and "SUCCEEDED" in line
