"""BigQuery basics every other module uses: the client, table names, parameterised queries.

Talks to BigQuery (google-cloud-bigquery). Depends on no other module of the package but
``errors``: the ledger and the warehouse are both built on it. Every statement goes
through ``BigQuery.query``, which gives it a deadline and runs it again (a new job, after
a jittered exponential wait) when BigQuery refused it for a reason that passes: a
concurrent update of the same table, a rate limit (``retryable_error``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import tenacity
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import GoogleAPICallError, NotFound, TooManyRequests
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery
from sqlglot import exp

from gemini_batch.clients.endpoints import is_local
from gemini_batch.errors import WarehouseError

_log = logging.getLogger(__name__)

# Deadlines, in seconds. A statement gets a job timeout (BigQuery ends the job, which
# then changed nothing) and the client waits a little longer than that for its end.
STATEMENT_TIMEOUT = 20 * 60.0  # counts, shards, merges: up to 200,000 rows a job
SMALL_STATEMENT_TIMEOUT = 120.0  # a few ledger or lock rows (queued DML included)
_RESULT_GRACE = 30.0
API_TIMEOUT = 60.0  # one HTTP call (jobs.insert, tables.get, ...)
API_RETRY = bigquery.DEFAULT_RETRY.with_timeout(180.0)  # transport errors of those calls
# Retrying a refused statement: after the n-th refusal, a wait drawn from 0.5 s to
# min(30, 2^(n-1)) s (full jitter: statements that collided do not collide again in
# step), for up to 5 minutes: BigQuery's DML rate window is 10 s and a table queues at
# most 20 DML statements, so a refusal that lasts minutes is no passing race, and the
# ledger makes a rerun safe.
RETRY_WAIT_MIN, RETRY_WAIT_MAX, RETRY_TIMEOUT = 0.5, 30.0, 300.0

# BigQuery's message for a mutating DML statement that lost a race with another on the
# same table (after retrying it a few times itself): a 400 job error, reason invalidQuery.
_CONCURRENT_UPDATE = re.compile(r"Could not serialize access to table \S+ due to concurrent update")
# Short-term limits: BigQuery says to retry after a few seconds, with backoff.
_RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "jobRateLimitExceeded"})
_RATE_LIMIT_TEXTS = (
    "Exceeded rate limits",  # e.g. "too many table update operations for this table"
    "Too many DML statements outstanding against table",  # its DML queue (20) is full
)
# Jobs that failed inside BigQuery; its docs say to run them again as a new job.
_TRANSIENT_REASONS = frozenset({"backendError", "internalError", "jobBackendError",
                                "jobInternalError"})


def _messages(exc: GoogleAPICallError) -> list[str]:
    return [exc.message or "", *(str(e.get("message", "")) for e in _error_dicts(exc))]


def _error_dicts(exc: GoogleAPICallError) -> list[dict[str, Any]]:
    return [e for e in (exc.errors or []) if isinstance(e, dict)]


def is_concurrent_update(exc: BaseException) -> bool:
    """Whether BigQuery refused a DML statement because another one changed the table."""
    return isinstance(exc, GoogleAPICallError) and any(
        _CONCURRENT_UPDATE.search(message) for message in _messages(exc)
    )


def retryable_error(exc: BaseException) -> bool:
    """Whether a statement BigQuery refused with ``exc`` may be sent again as is: a
    concurrent update, a rate limit (rateLimitExceeded, jobRateLimitExceeded, 429, a 403
    quotaExceeded that says "Exceeded rate limits", a full DML queue) or a job that
    failed inside BigQuery. Anything else (a bad query, a missing table, a daily quota,
    a timeout) is not: sending it again would fail the same way, or might commit twice.
    """
    if not isinstance(exc, GoogleAPICallError):
        return False
    if is_concurrent_update(exc) or isinstance(exc, TooManyRequests):
        return True
    reasons = {e.get("reason") for e in _error_dicts(exc)}
    if reasons & (_RATE_LIMIT_REASONS | _TRANSIENT_REASONS):
        return True
    return any(text in message for message in _messages(exc) for text in _RATE_LIMIT_TEXTS)


def _log_retry(state: tenacity.RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    _log.info("BigQuery refused a statement (%s); attempt %d in %.1f s",
              error, state.attempt_number + 1, wait)


def statement_retry(
    *, timeout: float = RETRY_TIMEOUT, sleep: Callable[[float], None] = time.sleep
) -> tenacity.Retrying:
    """How ``BigQuery.query`` sends a refused statement again (``retryable_error``); the
    last error is raised as it is once ``timeout`` seconds have gone by."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable_error),
        wait=tenacity.wait_random_exponential(multiplier=1.0, min=RETRY_WAIT_MIN,
                                              max=RETRY_WAIT_MAX),
        stop=tenacity.stop_after_delay(timeout),
        sleep=sleep,
        before_sleep=_log_retry,
        reraise=True,
    )


def bigquery_client(
    project: str,
    *,
    api_endpoint: str | None = None,
    location: str | None = None,
    credentials: Credentials | None = None,
) -> bigquery.Client:
    """A BigQuery client for ``project``, at ``api_endpoint`` when given (else Google's).

    An emulator's endpoint (``http://``, ``clients.endpoints.is_local``) gets anonymous
    credentials; any other (Google's, a private ``https://`` one) gets ``credentials``
    (default: Application Default Credentials).
    """
    return bigquery.Client(
        project=project,
        location=location,
        credentials=AnonymousCredentials() if is_local(api_endpoint) else credentials,
        client_options=ClientOptions(api_endpoint=api_endpoint) if api_endpoint else None,
    )


def quote_table(name: str) -> str:
    """``project.dataset.table`` as backquoted BigQuery SQL; ValueError if it is not one.

    The one way table names from config or the ledger get into SQL.
    """
    parts = name.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{name!r} is not a fully qualified table name (project.dataset.table)")
    for part in parts:
        # Project ids may hold '-' and ':' (domain-scoped); dataset and table names may not
        # hold backquotes or newlines, which are the only ways out of a quoted identifier.
        if any(ch in part for ch in "`\\\n\r") or len(part) > 1024:
            raise ValueError(f"{name!r}: {part!r} is not a valid BigQuery name")
    table = exp.Table(
        catalog=exp.to_identifier(parts[0], quoted=True),
        db=exp.to_identifier(parts[1], quoted=True),
        this=exp.to_identifier(parts[2], quoted=True),
    )
    return table.sql(dialect="bigquery")


class BigQuery:
    """One BigQuery client and the calls the ledger, the warehouse and cost make with it."""

    def __init__(self, client: bigquery.Client, *, retry: tenacity.Retrying | None = None
                 ) -> None:
        self.client = client
        self.retry = retry or statement_retry()

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        timeout: float = STATEMENT_TIMEOUT,
    ) -> list[bigquery.Row]:
        """Run one statement with named query parameters and wait for its rows.

        A value is a Python value (its BigQuery type inferred; None is a STRING NULL)
        or a ready ``bigquery.ScalarQueryParameter``/``ArrayQueryParameter``. The job
        may run ``timeout`` seconds. Refused for a reason that passes
        (``retryable_error``), it is sent again as a new job: safe for every statement,
        DML included, because BigQuery runs a statement atomically (one that failed
        changed nothing). One that timed out is not sent again: it may still commit.
        """
        parameters = [
            value if isinstance(value, _PARAMETER_TYPES) else parameter(name, value)
            for name, value in (params or {}).items()
        ]
        # A copy per call: a Retrying keeps the state of the call it runs.
        return self.retry.copy()(self._run_once, sql, parameters, timeout)

    def _run_once(
        self, sql: str, parameters: list[Any], timeout: float
    ) -> list[bigquery.Row]:
        job_config = bigquery.QueryJobConfig(
            query_parameters=parameters, job_timeout_ms=int(timeout * 1000)
        )
        # The client's own job retry is off: `self.retry` is the one policy.
        job = self.client.query(sql, job_config=job_config, timeout=API_TIMEOUT,
                                retry=API_RETRY, job_retry=None)
        try:
            return list(job.result(timeout=timeout + _RESULT_GRACE, retry=API_RETRY,
                                   job_retry=None))
        except concurrent.futures.TimeoutError as exc:
            with contextlib.suppress(GoogleAPICallError):
                job.cancel(timeout=API_TIMEOUT)
            raise WarehouseError(
                f"BigQuery job {job.job_id} did not finish within {timeout:.0f} s (asked to "
                f"cancel it). The statement began: {sql.strip()[:200]}"
            ) from exc

    def table_exists(self, table: str) -> bool:
        """Whether ``project.dataset.table`` exists."""
        try:
            self.client.get_table(table, retry=API_RETRY, timeout=API_TIMEOUT)
        except NotFound:
            return False
        return True

    def keep_table(self, table: str, hours: float) -> bool:
        """Make ``table`` last at least ``hours`` from now: an expiration sooner than that
        (a dataset's default) is moved out; none, or a later one, is left. False when the
        table does not exist."""
        try:
            found = self.client.get_table(table, retry=API_RETRY, timeout=API_TIMEOUT)
        except NotFound:
            return False
        wanted = datetime.now(UTC) + timedelta(hours=hours)
        if found.expires is not None and found.expires < wanted:
            found.expires = wanted
            self.client.update_table(found, ["expires"], retry=API_RETRY, timeout=API_TIMEOUT)
        return True

    def default_expiration_hours(self, project: str, dataset: str) -> float | None:
        """The dataset's default table expiration in hours (None: none, or no dataset)."""
        try:
            found = self.client.get_dataset(f"{project}.{dataset}", retry=API_RETRY,
                                            timeout=API_TIMEOUT)
        except NotFound:
            return None
        ms = found.default_table_expiration_ms
        return int(ms) / 3_600_000 if ms else None

    def drop_tables(self, tables: Iterable[str]) -> None:
        """Drop these tables; missing ones are fine (a redone cleanup)."""
        for table in tables:
            quote_table(table)  # refuse anything that is not a table name
            self.client.delete_table(table, not_found_ok=True, retry=API_RETRY,
                                     timeout=API_TIMEOUT)

    def dataset_location(self, project: str, dataset: str) -> str:
        """The location of ``project.dataset`` as BigQuery reports it (e.g. 'us-central1')."""
        try:
            found = self.client.get_dataset(f"{project}.{dataset}", retry=API_RETRY,
                                            timeout=API_TIMEOUT)
        except NotFound as exc:
            raise WarehouseError(
                f"Dataset {project}.{dataset} does not exist: run `dbt run` for the batch "
                "model first (it creates the dataset)."
            ) from exc
        return str(found.location or "")


_PARAMETER_TYPES = (bigquery.ScalarQueryParameter, bigquery.ArrayQueryParameter)


def parameter(
    name: str, value: Any, kind: str | None = None
) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    """A named query parameter; its type is ``kind`` or inferred from ``value``
    (lists and tuples are ARRAY<STRING>; None is a STRING NULL unless ``kind`` says)."""
    if kind is not None:
        return bigquery.ScalarQueryParameter(name, kind, value)
    if isinstance(value, list | tuple):
        return bigquery.ArrayQueryParameter(name, "STRING", list(value))
    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, float):
        kind = "FLOAT64"
    elif hasattr(value, "tzinfo"):
        kind = "TIMESTAMP"
    else:
        kind = "STRING"
    return bigquery.ScalarQueryParameter(name, kind, value)


__all__ = [
    "API_RETRY",
    "API_TIMEOUT",
    "SMALL_STATEMENT_TIMEOUT",
    "STATEMENT_TIMEOUT",
    "BigQuery",
    "bigquery_client",
    "is_concurrent_update",
    "parameter",
    "quote_table",
    "retryable_error",
    "statement_retry",
]
