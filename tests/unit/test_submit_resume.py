"""A submit killed between writing its ledger line and hearing back from the create call
finds the job by its label instead of making another; without one it creates with the
label it wrote down. Fakes stand in for Vertex AI and Cloud Storage (no server). The
target's ledger keeps what the file keeps (its rows, read back)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gemini_batch.cli import main
from gemini_batch.clients.vertex import JobStatus
from gemini_batch.submit.command import SubmitOptions, check_lines, run_submit, submission_key
from gemini_batch.submit.ledger import Submission, SubmitLedger, ledger_row, submission_of

LINE = b'{"request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}}\n'
JOB = "projects/p/locations/us-central1/batchPredictionJobs/42"
EARLIER = "projects/p/locations/us-central1/batchPredictionJobs/41"


class FakeJobs:
    def __init__(self, made: JobStatus | None, state: str = "RUNNING") -> None:
        self.made = made
        self.state = state  # of every job asked about
        self.looked_up: list[str] = []
        self.created: list[dict[str, Any]] = []

    def made_by(self, submit_id: str) -> JobStatus | None:
        self.looked_up.append(submit_id)
        return self.made

    def submit_jsonl(self, **kwargs: Any) -> JobStatus:
        self.created.append(kwargs)
        return JobStatus(name=JOB, state="QUEUED")

    def get(self, name: str) -> JobStatus:
        return JobStatus(name=name, state=self.state)


class FakeStorage:
    """The three calls a submit makes before waiting: bucket lookup, upload."""

    def __init__(self) -> None:
        self.uploads: list[str] = []

    def lookup_bucket(self, name: str) -> object:
        return object()

    def bucket(self, name: str) -> FakeStorage:
        self._bucket = name
        return self

    def blob(self, name: str) -> FakeStorage:
        self._name = name
        return self

    def upload_from_filename(self, filename: str, **kwargs: Any) -> None:
        self.uploads.append(f"gs://{self._bucket}/{self._name}")


def killed_submit(tmp_path: Path) -> tuple[SubmitOptions, SubmitLedger, Submission]:
    """Options and the ledger a submit leaves when killed right after its first line."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(LINE)
    options = SubmitOptions(input=str(source), output="gs://bucket/out", model="gemini-2.5-flash",
                            project="p", wait=False, ledger=tmp_path / "ledger.jsonl")
    key = submission_key(options, "p", check_lines([LINE], "in").sha256)
    ledger = SubmitLedger(options.ledger)
    written = ledger.write(Submission(
        key=key, submit_id="feedc0de", input_uri="gs://bucket/out/inputs/x-in.jsonl",
        output="gs://bucket/out", model=options.model, project="p", location="us-central1",
        requests=1,
    ))
    return options, ledger, written


def test_the_job_a_lost_create_made_is_found_by_its_label(tmp_path):
    options, ledger, written = killed_submit(tmp_path)
    jobs = FakeJobs(made=JobStatus(name=JOB, state="RUNNING"))
    said: list[str] = []
    result = run_submit(options, say=said.append, jobs=jobs, client=FakeStorage())
    assert jobs.looked_up == ["feedc0de"] and jobs.created == []
    assert f"Found job {JOB}, created by an earlier submit: not creating another." in said
    assert result.job.name == JOB and result.exit_code == 75
    assert ledger.find(written.key).job_name == JOB


def test_without_a_job_the_create_carries_the_label_written_down(tmp_path):
    options, ledger, written = killed_submit(tmp_path)
    jobs = FakeJobs(made=None)
    run_submit(options, say=lambda line: None, jobs=jobs, client=FakeStorage())
    [created] = jobs.created
    assert created["submit_id"] == "feedc0de"
    assert ledger.find(written.key).job_name == JOB


@pytest.mark.parametrize("state", ["EXPIRED", "NOT_FOUND"])
def test_a_job_that_processed_nothing_is_submitted_again(tmp_path, state):
    options, ledger, written = killed_submit(tmp_path)
    ledger.write(written.with_job(job_name=EARLIER, state="QUEUED"))
    jobs = FakeJobs(made=None, state=state)
    said: list[str] = []
    run_submit(options, say=said.append, jobs=jobs, client=FakeStorage())
    assert (f"Job {EARLIER} ended {state} without processing anything: "
            "submitting a new one.") in said
    [created] = jobs.created
    assert created["submit_id"] != written.submit_id
    assert ledger.find(written.key).job_name == JOB


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED"])
def test_a_failed_or_cancelled_job_is_reported_and_nothing_is_submitted(tmp_path, state):
    options, ledger, written = killed_submit(tmp_path)
    ledger.write(written.with_job(job_name=EARLIER, state="RUNNING"))
    jobs = FakeJobs(made=None, state=state)
    said: list[str] = []
    result = run_submit(options, say=said.append, jobs=jobs, client=FakeStorage())
    assert (f"Resuming job {EARLIER} ({state}) from {ledger.where}: "
            "nothing is submitted again.") in said
    assert jobs.created == [] and result.exit_code == 3
    assert ledger.find(written.key).state == state


def test_a_row_of_the_targets_ledger_gives_back_the_submission_written():
    written = Submission(
        key="ab" * 32, submit_id="feedc0de", input_uri="gs://bucket/out/inputs/x-in.jsonl",
        output="gs://bucket/out", model="gemini-2.5-flash", project="p",
        location="us-central1", requests=3, estimated_usd=0.01,
    )
    row = ledger_row(written)  # before the create: no job to ask Vertex AI about
    assert (row.state, row.is_created, row.model_name) == ("CREATING", False, "(submit)")
    assert row.job_name == (
        "projects/p/locations/us-central1/batchPredictionJobs/creating-feedc0de")
    assert row.invocation_id == "feedc0de" and not row.dbt_model.startswith("model.")
    assert submission_of(written.key, row) == written

    collected = written.with_job(
        job_name=JOB, state="SUCCEEDED", output_directory="gs://bucket/out/prediction-model-1",
        succeeded=3, failed=0, cost_usd=0.002, collected_at="2026-12-02T04:00:00+00:00")
    row = ledger_row(collected)
    assert row.is_created and not row.is_live  # handled: out of `status`'s in-flight jobs
    assert submission_of(collected.key, row) == collected


def test_a_profile_and_a_ledger_file_are_refused_together():
    refused = CliRunner().invoke(main, [
        "submit", "in.jsonl", "--output", "gs://bucket/out", "--model", "gemini-2.5-flash",
        "--target", "dev", "--ledger", "ledger.jsonl"])
    assert refused.exit_code == 1
    assert "--ledger is the local ledger file; with a dbt profile" in refused.stderr
