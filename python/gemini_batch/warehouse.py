"""BigQuery access: clients, and the statements a build runs on a batch model's tables.

Every statement runs in BigQuery (counts, shards, merges): request rows never come into
Python. Table names go through :func:`quote_table` (validated and backquoted by
sqlglot); values go in as query parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from sqlglot import exp

from gemini_batch.config import BatchModel
from gemini_batch.errors import GeminiBatchError

if TYPE_CHECKING:
    from gemini_batch.ledger import Ledger

# Status the warehouse gives requests that fail the validity check: never submitted.
INVALID_STATUS = "INVALID_REQUEST"


class WarehouseError(GeminiBatchError):
    """A BigQuery table a build needs is missing or has the wrong shape."""


def bigquery_client(
    project: str, *, api_endpoint: str | None = None, location: str | None = None
) -> bigquery.Client:
    """A BigQuery client for ``project``.

    With ``api_endpoint`` (the local emulator, or any BigQuery-compatible endpoint) the
    client uses anonymous credentials; without it, Application Default Credentials and
    Google's endpoint.
    """
    if api_endpoint:
        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=api_endpoint),
        )
    return bigquery.Client(project=project, location=location)


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


@dataclass(frozen=True)
class RequestCounts:
    """Requests of one batch model, by state; all but ``total`` count distinct request_ids.

    ``cached + pending + failed + in_flight == unique``.
    """

    total: int  # rows in <model>__requests
    unique: int  # distinct request_id (a request asked twice is answered once)
    cached: int  # answered successfully: never sent again
    pending: int  # would be submitted now (valid, attempts <= max_retries, not in flight)
    failed: int  # retries used up, or invalid
    invalid: int  # subset of failed: the request fails the validity check
    in_flight: int  # in the shard table of a live job (ledger)


@dataclass(frozen=True)
class InvalidSummary:
    """Requests that fail the validity check, now marked failed in ``<model>__responses``."""

    count: int
    examples: list[tuple[str, str]]  # up to 5 (request_id, reason)


@dataclass(frozen=True)
class Shard:
    """One job's input table: ``rows`` distinct pending requests (request_id, request)."""

    table: str
    rows: int
    index: int


@dataclass(frozen=True)
class MergeResult:
    """What one job's output table brought into ``<model>__responses``.

    Counts are distinct request_ids of the output; token totals are summed from the
    successful answers' ``usageMetadata``.
    """

    succeeded: int
    failed: int
    unanswered: int  # in the shard table but not in the output: they stay pending
    prompt_tokens: int
    candidates_tokens: int
    thoughts_tokens: int
    total_tokens: int


class Warehouse:
    """The statements a build runs on batch model tables; one per run.

    ``ledger`` tells which requests are in live jobs (so no request goes into a second
    live job); without it nothing is considered in flight.
    """

    def __init__(self, client: bigquery.Client, *, ledger: Ledger | None = None) -> None:
        self.client = client
        self.ledger = ledger

    # -- plumbing -------------------------------------------------------------------

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[bigquery.Row]:
        """Run one statement with named query parameters and wait for its rows."""
        job_config = bigquery.QueryJobConfig(
            query_parameters=[_parameter(name, value) for name, value in (params or {}).items()]
        )
        return list(self.client.query(sql, job_config=job_config).result())

    def table_exists(self, table: str) -> bool:
        """Whether ``project.dataset.table`` exists."""
        try:
            self.client.get_table(table)
        except NotFound:
            return False
        return True

    def drop_tables(self, tables: Iterable[str]) -> None:
        """Drop these tables; missing ones are fine (a redone cleanup)."""
        for table in tables:
            quote_table(table)  # refuse anything that is not a table name
            self.client.delete_table(table, not_found_ok=True)

    def dataset_location(self, project: str, dataset: str) -> str:
        """The location of ``project.dataset`` as BigQuery reports it (e.g. 'us-central1')."""
        try:
            found = self.client.get_dataset(f"{project}.{dataset}")
        except NotFound as exc:
            raise WarehouseError(
                f"Dataset {project}.{dataset} does not exist: run `dbt run` for the batch "
                "model first (it creates the dataset)."
            ) from exc
        return str(found.location or "")

    # -- batch model statements -----------------------------------------------------

    def counts(self, model: BatchModel) -> RequestCounts:
        """Requests of ``model`` by state (one query)."""
        raise NotImplementedError

    def mark_invalid(self, model: BatchModel) -> InvalidSummary:
        """Give invalid requests a failed responses row (attempts = max_retries + 1,
        status 'INVALID_REQUEST', last_error = the reason), so they are never submitted
        and the view shows them ``failed`` with the reason."""
        raise NotImplementedError

    def create_shards(
        self, model: BatchModel, run_id: str, exclude_live: bool = True
    ) -> list[Shard]:
        """Write the pending requests into shard tables of at most ``shard_size`` rows.

        Tables are ``<model>__shard_<run_id>_<n>`` (n from 0) with columns request_id and
        request, built with CREATE TABLE ... AS SELECT. ``exclude_live`` leaves out
        requests in the shard table of a live job of the ledger. No pending request: [].
        """
        raise NotImplementedError

    def merge_output(
        self,
        model: BatchModel,
        output_table: str,
        job_name: str,
        *,
        shard_table: str | None = None,
    ) -> MergeResult:
        """MERGE a job's output table into ``<model>__responses`` on request_id.

        A success replaces response/status/processed_time; a failure bumps attempts and
        sets status/last_error (never over an earlier success); requests the job did not
        answer stay as they were (pending). Merging the same job twice changes nothing.
        With ``shard_table``, ``unanswered`` counts its requests absent from the output.
        """
        raise NotImplementedError


def _parameter(
    name: str, value: Any
) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
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
    "INVALID_STATUS",
    "InvalidSummary",
    "MergeResult",
    "RequestCounts",
    "Shard",
    "Warehouse",
    "WarehouseError",
    "bigquery_client",
    "quote_table",
]
