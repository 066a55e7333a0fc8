"""When a call to Vertex AI is sent again: one list of answers that may pass, one policy
(google-api-core's exponential backoff), for the sync and the async Job Service client.
"""

from __future__ import annotations

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.api_core import retry_async
from google.auth import exceptions as auth_exceptions

# 429 means the service did not take the call: safe to send again, even a create.
THROTTLED: tuple[type[BaseException], ...] = (api_exceptions.TooManyRequests,)
# Anything else that may be passing: safe to retry for reads and cancels (idempotent);
# after a create, the job may exist all the same (VertexJobs.submit looks it up first).
TRANSIENT: tuple[type[BaseException], ...] = (
    *THROTTLED,
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.GatewayTimeout,
    api_exceptions.DeadlineExceeded,
    requests.exceptions.ConnectionError,  # REST (sync): refused, reset
    requests.exceptions.Timeout,
    auth_exceptions.TransportError,  # REST over aiohttp: refused, reset, timeout
    ConnectionError,
    TimeoutError,
)
# Deadlines of one call, in seconds (a retried call gets each attempt this long).
CREATE_TIMEOUT = 60.0
READ_TIMEOUT = 30.0
LIST_TIMEOUT = 60.0
# How long reads are tried again by default, in seconds.
READ_RETRY_TIMEOUT = 300.0
# The backoff between tries: from INITIAL seconds, doubling, to MAXIMUM.
INITIAL = 1.0
MAXIMUM = 30.0
MULTIPLIER = 2.0


def read_retry(timeout: float = READ_RETRY_TIMEOUT) -> api_retry.Retry:
    """Reads and cancels of the sync client: TRANSIENT answers tried again for ``timeout``
    seconds."""
    return api_retry.Retry(
        predicate=api_retry.if_exception_type(*TRANSIENT),
        initial=INITIAL, maximum=MAXIMUM, multiplier=MULTIPLIER, timeout=timeout,
    )


def async_read_retry(timeout: float = READ_RETRY_TIMEOUT) -> retry_async.AsyncRetry:
    """``read_retry`` for the async client (INITIAL read when called: a test shortens it)."""
    return retry_async.AsyncRetry(
        predicate=retry_async.if_exception_type(*TRANSIENT),
        initial=INITIAL, maximum=MAXIMUM, multiplier=MULTIPLIER, timeout=timeout,
    )


READ_RETRY = read_retry()

__all__ = [
    "CREATE_TIMEOUT",
    "LIST_TIMEOUT",
    "READ_RETRY",
    "READ_TIMEOUT",
    "THROTTLED",
    "TRANSIENT",
    "async_read_retry",
    "read_retry",
]
