"""The jobs of `gemini-batch submit`, in a local file: one JSON line per event, the last
line of a submission saying where it is.

A submission is keyed by what it sends (the input's content hash, model, project,
location, output prefix). Its line is written before the job is created, with the label
value the create call carries, so a submit killed at any point finds its job again
(by name, or by that label) instead of paying for the same requests twice. A lock file
per submission keeps two submits of the same input from creating a job each.
Talks to no service.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from gemini_batch.errors import LockedError

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
    written_at: str = ""

    def with_job(self, **changes: str | None) -> Submission:
        return replace(self, **changes)


class SubmitLedger:
    """``path``: the ledger file (its folder is made when first written)."""

    def __init__(self, path: Path = DEFAULT_LEDGER) -> None:
        self.path = Path(path)

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
                holder = lock.read().strip() or "another process"
                raise LockedError(
                    f"Another `gemini-batch submit` of the same input ({holder}) is running. "
                    "Wait for it, or stop it: the next submit resumes its job."
                ) from None
            lock.seek(0)
            lock.truncate()
            lock.write(f"pid {os.getpid()}")
            lock.flush()
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
