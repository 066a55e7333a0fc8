"""Waits in Airflow's triggerer until the Vertex AI batch jobs of a build have ended.

Talks to the Vertex AI Job Service through the async client of
``gemini_batch.clients.vertex_async`` (the endpoint, credentials and retry rules of the
sync client), all jobs of the build polled together in the triggerer's event loop: no
thread is held per job, nor per build.

The trigger only reads (and, with ``cancel_on_kill``, cancels) jobs: merging answers,
retries and the ledger are the operator's, when it resumes in a worker.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from google.api_core import exceptions as api_exceptions

from gemini_batch.clients.polling import Backoff, JobWatch
from gemini_batch.clients.retries import TRANSIENT
from gemini_batch.clients.vertex import JobStatus
from gemini_batch.clients.vertex_async import AsyncVertexJobs, vertex_async_client
from gemini_batch.errors import ConfigError
from gemini_batch.rules.queue_deadline import past_deadline

CLASSPATH = "gemini_batch.airflow.triggers.GeminiBatchJobTrigger"

JOB_NAME = re.compile(r"^projects/[^/]+/locations/(?P<location>[^/]+)/batchPredictionJobs/[^/]+$")


def job_location(job_name: str) -> str:
    """``us-central1`` of ``projects/P/locations/us-central1/batchPredictionJobs/ID``."""
    match = JOB_NAME.match(job_name)
    if not match:
        raise ConfigError(
            f"Not a Vertex AI batch prediction job name: {job_name!r} (expected "
            "projects/PROJECT/locations/LOCATION/batchPredictionJobs/ID)."
        )
    return match["location"]


class GeminiBatchJobTrigger(BaseTrigger):
    """Fires once every job in ``job_names`` has ended, or once one of them cannot be
    read for good (a refusal such as 403, or ``unreadable_timeout`` seconds of errors
    that may pass), or once a job of ``queue_deadlines`` (job name -> its model's
    ``max_queue_hours``) is still queued past it, measured from its ``createTime``: the
    operator's next step cancels it and sends its requests again (ADR 0018).

    Polls start ``poll_interval`` seconds apart and grow (``clients.polling.Backoff``) up to
    ``max_poll_interval``; a job that changed resets them. ``deferral`` counts the
    operator's deferrals and comes back in the event. With ``cancel_on_kill``, a user
    killing the deferred task (mark failed, clear) cancels the jobs still running.
    """

    def __init__(
        self,
        *,
        job_names: Sequence[str],
        endpoint: str | None = None,
        poll_interval: float = 30.0,
        max_poll_interval: float = 600.0,
        unreadable_timeout: float = 600.0,
        cancel_on_kill: bool = False,
        deferral: int = 1,
        queue_deadlines: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        if not job_names:
            raise ConfigError("GeminiBatchJobTrigger needs at least one job name.")
        self.job_names = list(job_names)
        for name in self.job_names:
            job_location(name)
        Backoff(poll_interval, max_poll_interval)  # refuses impossible intervals now
        if unreadable_timeout <= 0:
            raise ConfigError(f"unreadable_timeout must be > 0 seconds, not {unreadable_timeout}")
        self.endpoint = endpoint
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval)
        self.unreadable_timeout = float(unreadable_timeout)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.deferral = int(deferral)
        self.queue_deadlines = {name: float(hours)
                                for name, hours in (queue_deadlines or {}).items()}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "job_names": list(self.job_names),
            "endpoint": self.endpoint,
            "poll_interval": self.poll_interval,
            "max_poll_interval": self.max_poll_interval,
            "unreadable_timeout": self.unreadable_timeout,
            "cancel_on_kill": self.cancel_on_kill,
            "deferral": self.deferral,
            "queue_deadlines": dict(self.queue_deadlines),
        }

    # -- polling ---------------------------------------------------------------------

    def _clients(self) -> dict[str, AsyncVertexJobs]:
        locations = {job_location(name) for name in self.job_names}
        return {loc: AsyncVertexJobs(loc, endpoint=self.endpoint,
                                     retry_timeout=self.unreadable_timeout)
                for loc in locations}

    async def _read(self, clients: dict[str, AsyncVertexJobs], name: str) -> JobStatus | str:
        """The job's status, or why it cannot be read."""
        try:
            return await clients[job_location(name)].get(name)
        except api_exceptions.RetryError as exc:
            cause = exc.cause or exc
            return (f"Vertex AI job {name} could not be read for "
                    f"{self.unreadable_timeout:g} s: {type(cause).__name__}: {cause}")
        except (api_exceptions.GoogleAPICallError, *TRANSIENT) as exc:
            return f"Vertex AI refused to read job {name}: {type(exc).__name__}: {exc}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        clients = self._clients()
        # The rounds of clients.polling.watch_jobs, the polls of a round at once.
        watch: JobWatch[JobStatus] = JobWatch(Backoff(self.poll_interval, self.max_poll_interval))
        running = list(self.job_names)
        try:
            while running:
                answers = await asyncio.gather(*(self._read(clients, name) for name in running))
                moved = False
                for name, answer in zip(running, answers, strict=True):
                    if isinstance(answer, str):
                        yield TriggerEvent(self._event("error", watch.statuses, answer))
                        return
                    if watch.seen(name, answer):
                        moved = True
                        self.log.info("%s: %s (%d done, %d failed)", answer.job_id,
                                      answer.state, answer.succeeded, answer.failed)
                late = self._past_deadline(watch.statuses)
                if late:
                    event = self._event("queue_deadline", watch.statuses, "; ".join(late.values()))
                    yield TriggerEvent({**event, "past_deadline": list(late)})
                    return
                running = watch.running(running)
                if running:
                    await _sleep(watch.delay(moved))
        finally:
            await _close(clients)
        yield TriggerEvent(self._event("ended", watch.statuses,
                                       f"{len(watch.statuses)} job(s) ended"))

    def _past_deadline(self, statuses: dict[str, JobStatus]) -> dict[str, str]:
        """The jobs still queued past their deadline, each with what it is."""
        now = datetime.now(UTC)
        late = {}
        for name, hours in self.queue_deadlines.items():
            status = statuses.get(name)
            if status is None:
                continue
            waited = past_deadline(status.state, status.create_time, hours, now)
            if waited is not None:
                late[name] = (f"job {status.job_id} still {status.state} after {waited:.1f} h, "
                              f"past max_queue_hours {hours:g}")
        return late

    def _event(self, status: str, statuses: dict[str, JobStatus], message: str) -> dict:
        return {
            "status": status,
            "message": message,
            "deferral": self.deferral,
            "jobs": [
                {"name": s.name, "state": s.state, "succeeded": s.succeeded,
                 "failed": s.failed, "error": s.error}
                for s in statuses.values()
            ],
        }

    async def on_kill(self) -> None:
        """A user killed the deferred task: with ``cancel_on_kill``, cancel the jobs
        still running (the next build merges what they answered); else leave them to
        the next run, which resumes them from the ledger."""
        if not self.cancel_on_kill:
            return
        clients = self._clients()
        try:
            for name in self.job_names:
                if await clients[job_location(name)].cancel(name):
                    self.log.info("cancelled %s", name)
        finally:
            await _close(clients)


# The trigger's waits between polls (a unit test records them instead of waiting).
_sleep = asyncio.sleep


async def _close(clients: dict[str, AsyncVertexJobs]) -> None:
    for client in clients.values():
        await client.close()


__all__ = ["GeminiBatchJobTrigger", "vertex_async_client"]
