"""Vertex AI batch jobs read and cancelled from an event loop (the Airflow triggerer).

``aiplatform_v1.JobServiceAsyncClient`` built from the same rule as the sync client
(``clients/endpoints.py``: the endpoint, REST or gRPC, anonymous for an emulator) and
retried by the same policy (``clients/retries.py``); answers come back as the sync
client's ``JobStatus``. google-auth's aio package has no Application Default
Credentials of its own: ``_AsyncAdc`` lends the sync ones to the REST transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.aio import credentials as aio_credentials

from gemini_batch.clients.endpoints import vertex_endpoint
from gemini_batch.clients.retries import READ_RETRY_TIMEOUT, READ_TIMEOUT, async_read_retry
from gemini_batch.clients.vertex import JobStatus


class _AsyncAdc(aio_credentials.Credentials):
    """Application Default Credentials for the async REST transport: the sync credentials
    (found on first use) refresh in a thread when the token runs out, and their token
    goes on each request."""

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
    """A ``JobServiceAsyncClient`` for ``location``: the host, transport and credentials
    rule of the sync ``vertex_job_client`` for the same endpoint."""
    from google.cloud import aiplatform_v1

    where = vertex_endpoint(location, endpoint)
    if where.rest:
        return aiplatform_v1.JobServiceAsyncClient(
            transport="rest_asyncio",
            credentials=aio_credentials.AnonymousCredentials() if where.local else _AsyncAdc(),
            client_options=ClientOptions(api_endpoint=where.host),
        )
    return aiplatform_v1.JobServiceAsyncClient(
        transport="grpc_asyncio", client_options=ClientOptions(api_endpoint=where.host)
    )


class AsyncVertexJobs:
    """Batch prediction jobs of one location, read from an event loop.

    A read that may pass is tried again for ``retry_timeout`` seconds; then
    google-api-core's ``RetryError`` is raised (its ``cause`` the last error)."""

    def __init__(self, location: str, *, endpoint: str | None = None,
                 retry_timeout: float = READ_RETRY_TIMEOUT) -> None:
        self.client = vertex_async_client(location, endpoint=endpoint)
        self.retry_timeout = retry_timeout

    async def get(self, job_name: str) -> JobStatus:
        """The job's status; ``NOT_FOUND`` state when the service lost it."""
        try:
            job = await self.client.get_batch_prediction_job(
                name=job_name, retry=async_read_retry(self.retry_timeout), timeout=READ_TIMEOUT
            )
        except api_exceptions.NotFound:
            return JobStatus.not_found(job_name)
        return JobStatus.from_proto(job)

    async def cancel(self, job_name: str) -> bool:
        """Ask the service to cancel; False when the job is gone or has ended already
        (400 over REST, FAILED_PRECONDITION over gRPC)."""
        try:
            await self.client.cancel_batch_prediction_job(
                name=job_name, retry=async_read_retry(self.retry_timeout), timeout=READ_TIMEOUT
            )
        except (api_exceptions.NotFound, api_exceptions.FailedPrecondition,
                api_exceptions.BadRequest):
            return False
        return True

    async def close(self) -> None:
        close = getattr(self.client.transport, "close", None)
        if close is not None:
            await close()


__all__ = ["AsyncVertexJobs", "vertex_async_client"]
