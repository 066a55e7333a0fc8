"""Where `gemini-batch submit` remembers its jobs: a :class:`SubmissionStore`, either a
local file (:class:`SubmitLedger`, one JSON line per event, the last line of a
submission saying where it is) or the dbt target's ledger table ``gemini_batch_jobs``
(:class:`TargetSubmitLedger`, one row per job).

A submission is keyed by what it sends (the input's content hash, model, project,
location, output prefix). It is written before the job is created, with the label
value the create call carries, so a submit killed at any point finds its job again
(by name, or by that label) instead of paying for the same requests twice. A lock per
submission (a lock file, or a row of ``gemini_batch_locks``) keeps two submits of the
same input from creating a job each. The file talks to no service; the target's
ledger is BigQuery, through ``ledger.Ledger``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gemini_batch.errors import LockedError

if TYPE_CHECKING:
    from gemini_batch.state.ledger import Ledger, LedgerEntry

DEFAULT_LEDGER = Path(".gemini_batch/submit-jobs.jsonl")


@dataclass(frozen=True)
class Submission:
    key: str
    submit_id: str
    input_uri: str
    output: str
    model: str
    project: str
    location: str
    requests: int
    job_name: str | None = None
    state: str | None = None
    output_directory: str | None = None
    estimated_usd: float | None = None
    # Set once the job ended and the submit read its results.
    succeeded: int | None = None
    failed: int | None = None
    cost_usd: float | None = None
    error: str | None = None
    collected_at: str | None = None
    written_at: str = ""

    def with_job(self, **changes: Any) -> Submission:
        return replace(self, **changes)


class SubmissionStore(Protocol):
    """What `submit`'s resume needs of a ledger; ``where`` names it in messages."""

    where: str

    def find(self, key: str) -> Submission | None:
        """The last word on submission ``key`` (its newest job), or None."""

    def write(self, submission: Submission) -> Submission:
        """Record the submission as it is now, durably, before returning."""

    def locked(self, key: str) -> AbstractContextManager[None]:
        """Hold submission ``key`` for this process; LockedError naming the holder if
        another process holds it."""


def _refused(holder: str) -> LockedError:
    return LockedError(
        f"Another `gemini-batch submit` of the same input ({holder}) is deciding on or "
        "creating its job. Wait for it, or stop it: the next submit resumes its job."
    )


class SubmitLedger:
    """``path``: the ledger file (its folder is made when first written)."""

    def __init__(self, path: Path = DEFAULT_LEDGER) -> None:
        self.path = Path(path)
        self.where = str(self.path)

    def find(self, key: str) -> Submission | None:
        """The last word on submission ``key``, or None if it was never written."""
        if not self.path.is_file():
            return None
        found = None
        with self.path.open() as lines:
            for line in lines:
                if line.strip():
                    entry = json.loads(line)
                    if entry.get("key") == key:
                        found = entry
        return Submission(**found) if found else None

    def write(self, submission: Submission) -> Submission:
        """Append the submission as it is now (flushed to disk before returning)."""
        written = replace(submission, written_at=datetime.now(UTC).isoformat())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as out:
            out.write(json.dumps(asdict(written), sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return written

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        """Hold submission ``key`` for this process; LockedError if another holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.path.parent / f".submit-{key[:16]}.lock"
        with lock_path.open("a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise _refused(lock.read().strip() or "another process") from None
            lock.seek(0)
            lock.truncate()
            lock.write(f"pid {os.getpid()}")
            lock.flush()
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class TargetSubmitLedger:
    """Submissions as rows of the dbt target's ``gemini_batch_jobs`` (one per job, so an
    expired job and the one submitted after it are both there) and their locks as rows
    of ``gemini_batch_locks``. Column by column: docs/ledger.md ("Submit jobs")."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.where = ledger.table

    def find(self, key: str) -> Submission | None:
        from gemini_batch.state.ledger import SUBMIT_PREFIX

        rows = self.ledger.entries(SUBMIT_PREFIX + key, limit=1)
        return submission_of(key, rows[0]) if rows else None

    def write(self, submission: Submission) -> Submission:
        written = replace(submission, written_at=datetime.now(UTC).isoformat())
        entry = ledger_row(written)
        if written.job_name is None:
            self.ledger.record_submitted(entry)
        else:  # the row may still hold the placeholder name it had before the create
            self.ledger.rename(_placeholder(written), entry.job_name, **{
                name: getattr(entry, name) for name in (
                    "job_id", "state", "output_table", "succeeded_count", "failed_count",
                    "actual_cost_usd", "ended_at", "merged_at", "error")
            })
        return written

    @contextlib.contextmanager
    def locked(self, key: str) -> Iterator[None]:
        from gemini_batch.state.ledger import SUBMIT_PREFIX, LockOwner

        self.ledger.ensure()
        owner = LockOwner.current()
        holder = self.ledger.claim(SUBMIT_PREFIX + key, owner)
        if holder.token != owner.token:
            raise _refused(f"{holder.describe()}, lock in {self.ledger.locks_table}")
        try:
            yield
        finally:
            self.ledger.unlock(SUBMIT_PREFIX + key, owner)


def _placeholder(submission: Submission) -> str:
    from gemini_batch.state.ledger import CREATING_JOB

    return CREATING_JOB.format(project=submission.project, location=submission.location,
                               submit_id=submission.submit_id)


def ledger_row(submission: Submission) -> LedgerEntry:
    """The ledger row of a submission: its input in ``shard_table``, its output prefix
    in ``model_relation``, the create call's label value in ``invocation_id``."""
    from gemini_batch.state.ledger import CREATING_STATE, SUBMIT_PREFIX, LedgerEntry

    collected = _timestamp(submission.collected_at)
    return LedgerEntry(
        job_name=submission.job_name or _placeholder(submission),
        job_id=(submission.job_name or _placeholder(submission)).rsplit("/", 1)[-1],
        dbt_model=SUBMIT_PREFIX + submission.key,
        model_relation=submission.output,
        invocation_id=submission.submit_id,
        shard_table=submission.input_uri,
        output_table=submission.output_directory,  # type: ignore[arg-type]
        gemini_model=submission.model,
        location=submission.location,
        state=submission.state or CREATING_STATE,
        request_count=submission.requests,
        succeeded_count=submission.succeeded,
        failed_count=submission.failed,
        estimated_cost_usd=submission.estimated_usd,
        actual_cost_usd=submission.cost_usd,
        ended_at=collected,
        merged_at=collected,  # nothing to merge: handled once the submit read the results
        error=submission.error,
    )


def submission_of(key: str, row: LedgerEntry) -> Submission:
    """The submission ``key`` as its ledger row holds it (``ledger_row`` read back)."""
    created = row.is_created
    return Submission(
        key=key, submit_id=row.invocation_id or "", input_uri=row.shard_table,
        output=row.model_relation, model=row.gemini_model,
        project=row.job_name.split("/")[1], location=row.location,
        requests=row.request_count, job_name=row.job_name if created else None,
        state=row.state if created else None, output_directory=row.output_table or None,
        estimated_usd=row.estimated_cost_usd, succeeded=row.succeeded_count,
        failed=row.failed_count, cost_usd=row.actual_cost_usd, error=row.error,
        collected_at=row.merged_at.isoformat() if row.merged_at else None,
        written_at=row.updated_at.isoformat() if row.updated_at else "",
    )


def _timestamp(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
