"""The build locks ``gemini_batch_locks``: one build (or submission) per model at a time.

A lock is one row, claimed by one MERGE (free, expired, ours, or left by a dead
process on this host), refreshed while a build waits, expiring by itself after a
killed build on another host. ``Ledger`` (ledger.py) claims them: the locks table
sits beside ``gemini_batch_jobs``. Why concurrent claims are safe: docs/ledger.md.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from google.api_core.exceptions import GoogleAPICallError

from gemini_batch.clients.bigquery import (
    SMALL_STATEMENT_TIMEOUT,
    BigQuery,
    is_concurrent_update,
    parameter,
    quote_table,
)
from gemini_batch.errors import LockedError
from gemini_batch.rules.config import BatchModel

LOCKS_TABLE = "gemini_batch_locks"
# How long a lock holds without a refresh: a killed build on another host stops
# blocking after this. A build refreshes its locks while it waits (`refresh_lock`).
DEFAULT_LOCK_TTL = timedelta(minutes=15)

LOCKS_SCHEMA: dict[str, str] = {
    "dbt_model": "STRING",
    "token": "STRING",
    "host": "STRING",
    "pid": "INT64",
    "since": "TIMESTAMP",
    "expires_at": "TIMESTAMP",
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


class BuildLocks:
    """The locks of ``locks_table`` through ``bq`` (attributes of the ledger)."""

    bq: BigQuery
    locks_table: str

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
        dbt_model = _model_id(model)
        owner = owner or LockOwner.current()
        holder = self.claim(dbt_model, owner, ttl=ttl)
        if holder.token != owner.token:
            raise LockedError(
                f"Model {dbt_model} is being built by another gemini-batch process "
                f"({holder.describe()}). Wait for it to finish, or stop it; a lock left by "
                f"a killed process on another host expires {_ttl_text(ttl)} after its last "
                "refresh."
            )
        return holder

    def claim(
        self, key: str, owner: LockOwner, *, ttl: timedelta = DEFAULT_LOCK_TTL
    ) -> LockOwner:
        """Claim lock ``key`` (a model's unique_id, or a submission's ``submit.<key>``)
        and return who holds it then: ``owner`` if the claim succeeded. Free, expired,
        ours, or held by a dead process on this host: the claim succeeds."""
        holder = self._claim(key, owner, ttl, stale_token=None)
        if holder.token != owner.token and holder.host == owner.host and not _pid_alive(holder.pid):
            # A process on this host that was killed: take its lock over, atomically
            # (only if that dead process still holds it).
            holder = self._claim(key, owner, ttl, stale_token=holder.token)
        return holder

    def refresh_lock(
        self, model: BatchModel | str, owner: LockOwner, *, ttl: timedelta = DEFAULT_LOCK_TTL
    ) -> None:
        """Push the expiry of our lock forward (call while waiting on long jobs)."""
        self.lock(model, owner, ttl=ttl)

    def unlock(self, model: BatchModel | str, owner: LockOwner) -> None:
        """Release our lock on ``model``; a lock someone else took over is left alone."""
        self.bq.query(
            f"DELETE FROM {quote_table(self.locks_table)} "
            "WHERE dbt_model = @dbt_model AND token = @token",
            {"dbt_model": _model_id(model), "token": owner.token},
            timeout=SMALL_STATEMENT_TIMEOUT,
        )

    def _claim(
        self, dbt_model: str, owner: LockOwner, ttl: timedelta, stale_token: str | None
    ) -> LockOwner:
        """One MERGE that takes the lock if free, expired, ours, or held by
        ``stale_token``; then the holder as stored.

        Two builds claiming at once: BigQuery runs one MERGE and refuses or queues the
        other, which then finds the row taken. A claim refused even after its retries
        lost the race all the same: the holder is whoever won it.
        """
        params = {
            "dbt_model": dbt_model,
            "token": owner.token,
            "host": owner.host,
            "pid": owner.pid,
            "ttl_seconds": int(ttl.total_seconds()),
            "stale_token": parameter("stale_token", stale_token, "STRING"),
        }
        claim = f"""
MERGE {quote_table(self.locks_table)} AS t
USING (SELECT @dbt_model AS dbt_model) AS s
ON t.dbt_model = s.dbt_model
WHEN MATCHED AND (t.token = @token OR t.expires_at < CURRENT_TIMESTAMP()
                  OR t.token = @stale_token) THEN
  UPDATE SET token = @token, host = @host, pid = @pid,
    since = IF(t.token = @token, t.since, CURRENT_TIMESTAMP()),
    expires_at = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @ttl_seconds SECOND)
WHEN NOT MATCHED THEN
  INSERT (dbt_model, token, host, pid, since, expires_at)
  VALUES (@dbt_model, @token, @host, @pid, CURRENT_TIMESTAMP(),
          TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @ttl_seconds SECOND))"""
        refused: GoogleAPICallError | None = None
        try:
            self.bq.query(claim, params, timeout=SMALL_STATEMENT_TIMEOUT)
        except GoogleAPICallError as exc:
            if not is_concurrent_update(exc):
                raise
            refused = exc
        holder = self._holder(dbt_model)
        if holder is None:  # refused with no winner, or released the moment we looked
            raise LockedError(
                f"Model {dbt_model}: its lock in {self.locks_table} could not be claimed: "
                "other builds changed that table at the same time. Run the build again."
            ) from refused
        return holder

    def _holder(self, dbt_model: str) -> LockOwner | None:
        rows = self.bq.query(
            f"SELECT token, host, pid, since FROM {quote_table(self.locks_table)} "
            "WHERE dbt_model = @dbt_model",
            {"dbt_model": dbt_model},
            timeout=SMALL_STATEMENT_TIMEOUT,
        )
        if not rows:
            return None
        row = rows[0]
        return LockOwner(
            host=row["host"], pid=int(row["pid"]), token=row["token"], since=row["since"]
        )


def _model_id(model: BatchModel | str) -> str:
    return model if isinstance(model, str) else model.unique_id


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _ttl_text(ttl: timedelta) -> str:
    minutes = int(ttl.total_seconds() // 60)
    return f"{minutes} min" if minutes else f"{int(ttl.total_seconds())} s"


__all__ = ["DEFAULT_LOCK_TTL", "LOCKS_SCHEMA", "LOCKS_TABLE", "BuildLocks", "LockOwner"]
