"""Batch prediction jobs as the v1 REST API shows them, persisted under the data dir.

Each job is one JSON file, ``<data_dir>/jobs/<id>.json``, rewritten atomically on every
change, so an emulator restart lists every job it ever accepted.
"""

from __future__ import annotations

import copy
import json
import os
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# google.cloud.aiplatform.v1.JobState, by name and number (the REST API answers with the
# number when the client asks for `$alt=json;enum-encoding=int`).
JOB_STATES = {
    "JOB_STATE_UNSPECIFIED": 0,
    "JOB_STATE_QUEUED": 1,
    "JOB_STATE_PENDING": 2,
    "JOB_STATE_RUNNING": 3,
    "JOB_STATE_SUCCEEDED": 4,
    "JOB_STATE_FAILED": 5,
    "JOB_STATE_CANCELLING": 6,
    "JOB_STATE_CANCELLED": 7,
    "JOB_STATE_PAUSED": 8,
    "JOB_STATE_EXPIRED": 9,
    "JOB_STATE_UPDATING": 10,
    "JOB_STATE_PARTIALLY_SUCCEEDED": 11,
}
TERMINAL_STATES = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 in UTC with microseconds, as the REST API writes Timestamp fields."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_job_id() -> str:
    """A numeric id like the service's (19 digits), unique enough for one data dir."""
    return str(10**18 + secrets.randbelow(8 * 10**18))


class JobNotFound(KeyError):
    pass


class JobStore:
    """Thread-safe jobs keyed by id; ``update`` persists before it returns."""

    def __init__(self, data_dir: Path) -> None:
        self._dir = Path(data_dir) / "jobs"
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Any]] = {}
        for path in self._dir.glob("*.json"):
            record = json.loads(path.read_text())
            self._jobs[path.stem] = record

    def add(self, job_id: str, resource: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._jobs[job_id] = resource
            self._save(job_id)
            return copy.deepcopy(resource)

    def get(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            try:
                return copy.deepcopy(self._jobs[job_id])
            except KeyError:
                raise JobNotFound(job_id) from None

    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Set top-level fields (``None`` removes one) and stamp ``updateTime``."""
        with self._lock:
            try:
                resource = self._jobs[job_id]
            except KeyError:
                raise JobNotFound(job_id) from None
            for key, value in fields.items():
                if value is None:
                    resource.pop(key, None)
                else:
                    resource[key] = value
            resource["updateTime"] = timestamp()
            self._save(job_id)
            return copy.deepcopy(resource)

    def delete(self, job_id: str) -> None:
        with self._lock:
            if self._jobs.pop(job_id, None) is None:
                raise JobNotFound(job_id)
            (self._dir / f"{job_id}.json").unlink(missing_ok=True)

    def all(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every job, by id: the API promises no order (ids are random, so this is not
        the order of creation), and nothing may rely on one."""
        with self._lock:
            items = [(job_id, copy.deepcopy(job)) for job_id, job in self._jobs.items()]
        items.sort(key=lambda item: (len(item[0]), item[0]))
        return iter(items)

    def _save(self, job_id: str) -> None:
        path = self._dir / f"{job_id}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self._jobs[job_id], indent=1, sort_keys=True))
        os.replace(temporary, path)
