"""Waits in Airflow's triggerer until the Vertex AI batch jobs of a build have ended.

Talks to the Vertex AI Job Service through its async client
(``aiplatform_v1.JobServiceAsyncClient``), all jobs of the build polled together in the
triggerer's event loop: no thread is held per job, nor per build. The endpoint follows
the rule of ``gemini_batch.clients.vertex.vertex_job_client``: ``$GEMINI_BATCH_VERTEX_ENDPOINT``
given as ``http://...`` (the local emulator) is REST over aiohttp with anonymous
credentials, ``https://...`` REST with Application Default Credentials, anything else
(or nothing: Google's regional endpoint) gRPC with Application Default Credentials.

The trigger only reads (and, with ``cancel_on_kill``, cancels) jobs: merging answers,
retries and the ledger are the operator's, when it resumes in a worker.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from google.api_core import exceptions as api_exceptions
from google.api_core import retry_async
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exceptions
from google.auth.aio import credentials as aio_credentials

from gemini_batch.clients.vertex import (
    ENDPOINT_ENV,
    READ_TIMEOUT,
    Backoff,
    JobStatus,
    google_endpoint,
)
from gemini_batch.errors import ConfigError

CLASSPATH = "gemini_batch.airflow.triggers.GeminiBatchJobTrigger"

JOB_NAME = re.compile(r"^projects/[^/]+/locations/(?P<location>[^/]+)/batchPredictionJobs/[^/]+$")

# What may pass: the read is tried again with backoff (as jobs.READ_RETRY does for the
# sync client), for up to ``unreadable_timeout`` seconds; then the job cannot be read.
_TRANSIENT = (
    api_exceptions.TooManyRequests,
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.GatewayTimeout,
    api_exceptions.DeadlineExceeded,
    auth_exceptions.TransportError,  # REST over aiohttp: connection refused, reset, timeout
    ConnectionError,
    TimeoutError,
)


# The first wait before a failed read is tried again, in seconds (then doubling, to 30).
READ_RETRY_INITIAL = 1.0


def job_location(job_name: str) -> str:
    """``us-central1`` of ``projects/P/locations/us-central1/batchPredictionJobs/ID``."""
    match = JOB_NAME.match(job_name)
    if not match:
        raise ConfigError(
            f"Not a Vertex AI batch prediction job name: {job_name!r} (expected "
            "projects/PROJECT/locations/LOCATION/batchPredictionJobs/ID)."
        )
    return match["location"]


def resolved_endpoint(endpoint: str | None) -> str | None:
    """``endpoint``, else ``$GEMINI_BATCH_VERTEX_ENDPOINT``, tidied; None for Google's."""
    return (endpoint or os.environ.get(ENDPOINT_ENV) or "").strip().rstrip("/") or None


class _AsyncAdc(aio_credentials.Credentials):
    """Application Default Credentials for the async REST transport: google-auth's aio
    package has no ADC of its own, so the sync credentials (found on first use) refresh
    in a thread when the token runs out, and their token goes on each request."""

    def __init__(self) -> None:
        super().__init__()
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    async def before_request(self, request: Any, method: str, url: str, headers: dict) -> None:
        import google.auth
        from google.auth.transport.requests import Request

        async with self._lock:
            if self._credentials is None:
                self._credentials, _ = await asyncio.to_thread(
                    google.auth.default, scopes=["https://www.googleapis.com/auth/cloud-platform"]
                )
            if not self._credentials.valid:
                await asyncio.to_thread(self._credentials.refresh, Request())
        headers["authorization"] = f"Bearer {self._credentials.token}"


def vertex_async_client(location: str, *, endpoint: str | None = None) -> Any:
    """A ``JobServiceAsyncClient`` for ``location``: the transport and host the sync
    client (``jobs.vertex_job_client``) would use for the same endpoint."""
    from google.cloud import aiplatform_v1

    endpoint = resolved_endpoint(endpoint)
    if endpoint and endpoint.startswith(("http://", "https://")):
        local = endpoint.startswith("http://")
        return aiplatform_v1.JobServiceAsyncClient(
            transport="rest_asyncio",
            credentials=aio_credentials.AnonymousCredentials() if local else _AsyncAdc(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    return aiplatform_v1.JobServiceAsyncClient(
        transport="grpc_asyncio",
        client_options=ClientOptions(api_endpoint=endpoint or google_endpoint(location)),
    )


class GeminiBatchJobTrigger(BaseTrigger):
    """Fires once every job in ``job_names`` has ended, or once one of them cannot be
    read for good (a refusal such as 403, or ``unreadable_timeout`` seconds of errors
    that may pass).

    Polls start ``poll_interval`` seconds apart and grow (``jobs.Backoff``) up to
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

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {
            "job_names": list(self.job_names),
            "endpoint": self.endpoint,
            "poll_interval": self.poll_interval,
            "max_poll_interval": self.max_poll_interval,
            "unreadable_timeout": self.unreadable_timeout,
            "cancel_on_kill": self.cancel_on_kill,
            "deferral": self.deferral,
        }

    # -- polling ---------------------------------------------------------------------

    def _retry(self) -> retry_async.AsyncRetry:
        return retry_async.AsyncRetry(
            predicate=retry_async.if_exception_type(*_TRANSIENT),
            initial=READ_RETRY_INITIAL, maximum=30.0, multiplier=2.0,
            timeout=self.unreadable_timeout,
        )

    def _clients(self) -> dict[str, Any]:
        locations = {job_location(name) for name in self.job_names}
        return {loc: vertex_async_client(loc, endpoint=self.endpoint) for loc in locations}

    async def _read(self, clients: dict[str, Any], name: str) -> JobStatus | str:
        """The job's status, or why it cannot be read."""
        client = clients[job_location(name)]
        try:
            job = await client.get_batch_prediction_job(
                name=name, retry=self._retry(), timeout=READ_TIMEOUT
            )
        except api_exceptions.NotFound:
            return JobStatus.not_found(name)
        except api_exceptions.RetryError as exc:
            cause = exc.cause or exc
            return (f"Vertex AI job {name} could not be read for "
                    f"{self.unreadable_timeout:g} s: {type(cause).__name__}: {cause}")
        except (api_exceptions.GoogleAPICallError, *_TRANSIENT) as exc:
            return f"Vertex AI refused to read job {name}: {type(exc).__name__}: {exc}"
        return JobStatus.from_proto(job)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        clients = self._clients()
        statuses: dict[str, JobStatus] = {}
        backoff = Backoff(self.poll_interval, self.max_poll_interval)
        running = list(self.job_names)
        try:
            while running:
                answers = await asyncio.gather(*(self._read(clients, name) for name in running))
                moved = False
                for name, answer in zip(running, answers, strict=True):
                    if isinstance(answer, str):
                        yield TriggerEvent(self._event("error", statuses, answer))
                        return
                    before = statuses.get(name)
                    statuses[name] = answer
                    if before is None or _progress(before) != _progress(answer):
                        moved = True
                        self.log.info("%s: %s (%d done, %d failed)", answer.job_id,
                                      answer.state, answer.succeeded, answer.failed)
                running = [name for name in running if not statuses[name].terminal]
                if running:
                    if moved:
                        backoff.reset()
                    await _sleep(backoff.next_delay())
        finally:
            await _close(clients)
        yield TriggerEvent(self._event("ended", statuses, f"{len(statuses)} job(s) ended"))

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
                try:
                    await clients[job_location(name)].cancel_batch_prediction_job(
                        name=name, retry=self._retry(), timeout=READ_TIMEOUT
                    )
                    self.log.info("cancelled %s", name)
                except (api_exceptions.NotFound, api_exceptions.FailedPrecondition,
                        api_exceptions.BadRequest):
                    pass  # gone, or ended already (400 over REST)
        finally:
            await _close(clients)


# The trigger's waits between polls (a unit test records them instead of waiting).
_sleep = asyncio.sleep


def _progress(status: JobStatus) -> tuple[str, int, int]:
    return status.state, status.succeeded, status.failed


async def _close(clients: dict[str, Any]) -> None:
    for client in clients.values():
        close = getattr(client.transport, "close", None)
        if close is not None:
            await close()


__all__ = ["GeminiBatchJobTrigger", "vertex_async_client"]
