"""The job ledger ``gemini_batch_jobs`` and the build locks ``gemini_batch_locks`` (BigQuery).

One ledger row per Vertex AI batch job, written right after the job is created and
before anything waits on it, updated on every state change; ``merged_at`` is set once
the job's output is in ``<model>__responses``. A killed build finds its jobs again with
:meth:`Ledger.live_jobs`. Columns: docs/ledger.md.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.cloud import bigquery

from gemini_batch.config import BatchModel
from gemini_batch.errors import GeminiBatchError
from gemini_batch.jobs import NOT_FOUND_STATE, TERMINAL_STATES
from gemini_batch.warehouse import Warehouse

LEDGER_TABLE = "gemini_batch_jobs"
LOCKS_TABLE = "gemini_batch_locks"

# States after which a job never changes again (NOT_FOUND: the service lost it).
ENDED_STATES = TERMINAL_STATES | {NOT_FOUND_STATE}
# How long a lock holds without a refresh: a killed build on another host stops
# blocking after this. A build refreshes its locks while it waits (`refresh_lock`).
DEFAULT_LOCK_TTL = timedelta(minutes=15)


class LockedError(GeminiBatchError):
    """Another build holds the lock on this batch model."""


@dataclass
class LedgerEntry:
    """One row of ``gemini_batch_jobs``: one Vertex AI batch prediction job."""

    job_name: str  # projects/.../locations/.../batchPredictionJobs/ID
    dbt_model: str  # unique_id of the batch model
    model_relation: str  # project.dataset.model
    shard_table: str
    output_table: str
    gemini_model: str
    location: str
    state: str  # JOB_STATE_* name without the prefix, e.g. 'RUNNING'
    request_count: int
    job_id: str | None = None  # last segment of job_name (derived when None)
    invocation_id: str | None = None
    succeeded_count: int | None = None
    failed_count: int | None = None
    prompt_tokens: int | None = None
    candidates_tokens: int | None = None
    thoughts_tokens: int | None = None
    total_tokens: int | None = None
    estimated_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    submitted_at: datetime | None = None  # now, when None at record time
    ended_at: datetime | None = None
    merged_at: datetime | None = None  # NULL until the output is merged into responses
    error: str | None = None
    updated_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def is_live(self) -> bool:
        """Running, or ended with its output not merged yet: a resume must handle it."""
        return not self.is_terminal or self.merged_at is None


# BigQuery type of each ledger column, in table order.
LEDGER_SCHEMA: dict[str, str] = {
    "job_name": "STRING",
    "job_id": "STRING",
    "dbt_model": "STRING",
    "model_relation": "STRING",
    "invocation_id": "STRING",
    "shard_table": "STRING",
    "output_table": "STRING",
    "gemini_model": "STRING",
    "location": "STRING",
    "state": "STRING",
    "request_count": "INT64",
    "succeeded_count": "INT64",
    "failed_count": "INT64",
    "prompt_tokens": "INT64",
    "candidates_tokens": "INT64",
    "thoughts_tokens": "INT64",
    "total_tokens": "INT64",
    "estimated_cost_usd": "FLOAT64",
    "actual_cost_usd": "FLOAT64",
    "submitted_at": "TIMESTAMP",
    "ended_at": "TIMESTAMP",
    "merged_at": "TIMESTAMP",
    "error": "STRING",
    "updated_at": "TIMESTAMP",
}


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock: shown to a second build that is refused."""

    host: str
    pid: int
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    since: datetime | None = None

    @classmethod
    def current(cls) -> LockOwner:
        """This process."""
        return cls(host=socket.gethostname(), pid=os.getpid())

    def describe(self) -> str:
        since = f" since {self.since:%Y-%m-%d %H:%M:%S} UTC" if self.since else ""
        return f"pid {self.pid} on {self.host}{since}"


class Ledger:
    """``gemini_batch_jobs`` and ``gemini_batch_locks`` in ``project.dataset``."""

    def __init__(self, client: bigquery.Client, project: str, dataset: str) -> None:
        self.client = client
        self.project = project
        self.dataset = dataset
        self.table = f"{project}.{dataset}.{LEDGER_TABLE}"
        self.locks_table = f"{project}.{dataset}.{LOCKS_TABLE}"
        self._warehouse = Warehouse(client)

    def ensure(self) -> None:
        """Create the dataset, the ledger and the locks table if missing (idempotent)."""
        raise NotImplementedError

    def record_submitted(self, entry: LedgerEntry) -> None:
        """Insert the row of a job just created (before anything waits on it)."""
        raise NotImplementedError

    def update(self, job_name: str, **fields: Any) -> None:
        """Set ledger columns of one job (e.g. state='SUCCEEDED', ended_at=...);
        ``updated_at`` is set too. Unknown column names raise ValueError."""
        raise NotImplementedError

    def get(self, job_name: str) -> LedgerEntry | None:
        """The row of one job, or None."""
        raise NotImplementedError

    def live_jobs(self, model_unique_id: str | None = None) -> list[LedgerEntry]:
        """Jobs not in a terminal state, or terminal with their output not merged yet,
        oldest first; of one model when ``model_unique_id`` is given."""
        raise NotImplementedError

    def entries(self, model_unique_id: str | None = None, limit: int = 50) -> list[LedgerEntry]:
        """The most recent jobs first, at most ``limit``."""
        raise NotImplementedError

    def observed_output_tokens(self, gemini_model: str) -> float | None:
        """Average output tokens (candidates + thoughts) per succeeded request of
        ``gemini_model`` over the ledger, or None when nothing was answered yet."""
        raise NotImplementedError

    def lock(
        self,
        model: BatchModel | str,
        owner: LockOwner | None = None,
        *,
        ttl: timedelta = DEFAULT_LOCK_TTL,
    ) -> LockOwner:
        """Claim ``model`` (a BatchModel or its unique_id) for this build, atomically.

        Free, expired, or held by a dead process on this host: the claim succeeds and
        returns the owner. Held by someone else: LockedError naming the model and the
        owner (host, pid, since). Claiming again with the same owner refreshes it.
        """
        raise NotImplementedError

    def refresh_lock(
        self, model: BatchModel | str, owner: LockOwner, *, ttl: timedelta = DEFAULT_LOCK_TTL
    ) -> None:
        """Push the expiry of our lock forward (call while waiting on long jobs)."""
        raise NotImplementedError

    def unlock(self, model: BatchModel | str, owner: LockOwner) -> None:
        """Release our lock on ``model``; a lock someone else took over is left alone."""
        raise NotImplementedError


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "DEFAULT_LOCK_TTL",
    "LEDGER_SCHEMA",
    "LEDGER_TABLE",
    "LOCKS_TABLE",
    "ENDED_STATES",
    "Ledger",
    "LedgerEntry",
    "LockOwner",
    "LockedError",
]
