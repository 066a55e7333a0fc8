"""A submit killed between writing its ledger line and hearing back from the create call
finds the job by its label instead of making another; without one it creates with the
label it wrote down. Fakes stand in for Vertex AI and Cloud Storage (no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gemini_batch.jobs import JobStatus
from gemini_batch.submit import SubmitOptions, check_lines, run_submit, submission_key
from gemini_batch.submit_ledger import Submission, SubmitLedger

LINE = b'{"request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}}\n'
JOB = "projects/p/locations/us-central1/batchPredictionJobs/42"


class FakeJobs:
    def __init__(self, made: JobStatus | None) -> None:
        self.made = made
        self.looked_up: list[str] = []
        self.created: list[dict[str, Any]] = []

    def made_by(self, submit_id: str) -> JobStatus | None:
        self.looked_up.append(submit_id)
        return self.made

    def submit_jsonl(self, **kwargs: Any) -> JobStatus:
        self.created.append(kwargs)
        return JobStatus(name=JOB, state="QUEUED")

    def get(self, name: str) -> JobStatus:
        return JobStatus(name=name, state="RUNNING")


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
