"""BigQuery access: clients, and the statements a build runs on a batch model's tables.

Every statement runs in BigQuery (counts, shards, merges): request rows never come into
Python. Table names go through :func:`quote_table` (validated and backquoted by
sqlglot); values go in as query parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
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

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[bigquery.Row]:
        """Run one statement with named query parameters and wait for its rows.

        A value is a Python value (its BigQuery type inferred; None is a STRING NULL)
        or a ready ``bigquery.ScalarQueryParameter``/``ArrayQueryParameter``.
        """
        job_config = bigquery.QueryJobConfig(
            query_parameters=[
                value if isinstance(value, _PARAMETER_TYPES) else _parameter(name, value)
                for name, value in (params or {}).items()
            ]
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
        live = self._live_shard_tables(model)
        in_live = f"r.request_id IN ({_union_request_ids(live)})" if live else "FALSE"
        sql = f"""
WITH ids AS (
  SELECT request_id, COUNT(*) AS copies, LOGICAL_OR(request_problem IS NOT NULL) AS invalid
  FROM {quote_table(model.requests_table)}
  GROUP BY request_id
), states AS (
  SELECT
    r.copies,
    CASE
      WHEN {_SUCCEEDED.format(t="s")} THEN 'cached'
      WHEN r.invalid THEN 'invalid'
      WHEN COALESCE(s.attempts, 0) > @max_retries THEN 'failed'
      WHEN {in_live} THEN 'in_flight'
      ELSE 'pending'
    END AS state
  FROM ids AS r
  LEFT JOIN {quote_table(model.responses_table)} AS s ON s.request_id = r.request_id
)
SELECT
  COALESCE(SUM(copies), 0) AS total,
  COUNT(*) AS `unique`,
  COUNTIF(state = 'cached') AS cached,
  COUNTIF(state = 'pending') AS pending,
  COUNTIF(state IN ('failed', 'invalid')) AS failed,
  COUNTIF(state = 'invalid') AS invalid,
  COUNTIF(state = 'in_flight') AS in_flight
FROM states"""
        row = self._query_model(model, sql, {"max_retries": model.config.max_retries})[0]
        return RequestCounts(**{name: int(row[name] or 0) for name in _COUNT_FIELDS})

    def mark_invalid(self, model: BatchModel) -> InvalidSummary:
        """Give invalid requests a failed responses row (attempts = max_retries + 1,
        status 'INVALID_REQUEST', last_error = the reason), so they are never submitted
        and the view shows them ``failed`` with the reason."""
        invalid = f"""
  SELECT request_id, MIN(request_problem) AS reason
  FROM {quote_table(model.requests_table)}
  WHERE request_problem IS NOT NULL
  GROUP BY request_id"""
        self._query_model(
            model,
            f"""
MERGE {quote_table(model.responses_table)} AS t
USING ({invalid}
) AS s
ON t.request_id = s.request_id
WHEN MATCHED AND NOT {_SUCCEEDED.format(t="t")}
  AND (COALESCE(t.status, '') != @invalid_status OR COALESCE(t.last_error, '') != s.reason
       OR COALESCE(t.attempts, 0) <= @max_retries) THEN
  UPDATE SET status = @invalid_status, last_error = s.reason,
    attempts = GREATEST(COALESCE(t.attempts, 0), @max_retries + 1),
    updated_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN
  INSERT (request_id, response, status, processed_time, attempts, last_error, job_name,
          updated_at)
  VALUES (s.request_id, NULL, @invalid_status, NULL, @max_retries + 1, s.reason, NULL,
          CURRENT_TIMESTAMP())""",
            {"max_retries": model.config.max_retries, "invalid_status": INVALID_STATUS},
        )
        rows = self._query_model(
            model,
            f"SELECT request_id, reason, COUNT(*) OVER () AS invalid_count FROM ({invalid}\n)"
            " ORDER BY request_id LIMIT 5",
        )
        return InvalidSummary(
            count=int(rows[0]["invalid_count"]) if rows else 0,
            examples=[(row["request_id"], row["reason"]) for row in rows],
        )

    def create_shards(
        self, model: BatchModel, run_id: str, exclude_live: bool = True
    ) -> list[Shard]:
        """Write the pending requests into shard tables of at most ``shard_size`` rows.

        Tables are ``<model>__shard_<run_id>_<n>`` (n from 0) with columns request_id and
        request, built with CREATE TABLE ... AS SELECT. ``exclude_live`` leaves out
        requests in the shard table of a live job of the ledger. No pending request: [].
        """
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run_id {run_id!r}: use lowercase letters, digits and '_'")
        pending, params = self.pending_query(model, exclude_live=exclude_live)
        # One snapshot of the pending set, numbered, so that the shards are disjoint and
        # exactly sized even if responses change meanwhile; dropped below, and expires by
        # itself if this process dies first.
        staging = f"{model.project}.{model.dataset}.{model.name}__pending_{run_id}"
        self._query_model(
            model,
            f"""
CREATE OR REPLACE TABLE {quote_table(staging)}
OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 1 DAY))
AS
SELECT request_id, request, DIV(position, @shard_size) AS shard
FROM (
  SELECT request_id, request, ROW_NUMBER() OVER (ORDER BY request_id) - 1 AS position
  FROM ({pending})
)""",
            {**params, "shard_size": model.config.shard_size},
        )
        try:
            sizes = self.query(
                f"SELECT shard, COUNT(*) AS row_count FROM {quote_table(staging)} "
                "GROUP BY shard ORDER BY shard"
            )
            shards = []
            for row in sizes:
                index = int(row["shard"])
                table = model.shard_table(run_id, index)
                self.query(
                    f"CREATE TABLE {quote_table(table)} AS "
                    f"SELECT request_id, request FROM {quote_table(staging)} WHERE shard = @shard",
                    {"shard": index},
                )
                shards.append(Shard(table=table, rows=int(row["row_count"]), index=index))
        finally:
            self.drop_tables([staging])
        return shards

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
        answers = self._answers_sql(model, output_table)
        unanswered = (
            f"""(SELECT COUNT(DISTINCT request_id) FROM {quote_table(shard_table)}
   WHERE request_id NOT IN (SELECT request_id FROM answers))"""
            if shard_table
            else "0"
        )
        stats = self.query(
            f"""
WITH answers AS ({answers})
SELECT
  COUNTIF(succeeded) AS succeeded,
  COUNTIF(NOT succeeded) AS failed,
  {unanswered} AS unanswered,
  {_usage_sum("promptTokenCount")} AS prompt_tokens,
  {_usage_sum("candidatesTokenCount")} AS candidates_tokens,
  {_usage_sum("thoughtsTokenCount")} AS thoughts_tokens,
  {_usage_sum("totalTokenCount")} AS total_tokens
FROM answers"""
        )[0]
        self._query_model(
            model,
            f"""
MERGE {quote_table(model.responses_table)} AS t
USING ({answers}) AS s
ON t.request_id = s.request_id
WHEN MATCHED AND COALESCE(t.job_name, '') != @job_name AND s.succeeded THEN
  UPDATE SET response = s.response, status = '', processed_time = s.processed_time,
    attempts = COALESCE(t.attempts, 0) + 1, last_error = NULL, job_name = @job_name,
    updated_at = CURRENT_TIMESTAMP()
WHEN MATCHED AND COALESCE(t.job_name, '') != @job_name AND NOT s.succeeded
  AND NOT {_SUCCEEDED.format(t="t")} THEN
  UPDATE SET status = s.status, processed_time = s.processed_time,
    attempts = COALESCE(t.attempts, 0) + 1, last_error = s.error, job_name = @job_name,
    updated_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN
  INSERT (request_id, response, status, processed_time, attempts, last_error, job_name,
          updated_at)
  VALUES (s.request_id, IF(s.succeeded, s.response, NULL), s.status, s.processed_time, 1,
          IF(s.succeeded, NULL, s.error), @job_name, CURRENT_TIMESTAMP())""",
            {"job_name": job_name},
        )
        return MergeResult(**{name: int(stats[name] or 0) for name in _MERGE_FIELDS})

    def pending_query(
        self, model: BatchModel, *, exclude_live: bool = True
    ) -> tuple[str, dict[str, Any]]:
        """SELECT of the pending requests (request_id, request; one row per request_id)
        and its parameters: valid, no success, attempts <= max_retries and, with
        ``exclude_live``, in no live job's shard table."""
        live = self._live_shard_tables(model) if exclude_live else []
        not_live = f"AND r.request_id NOT IN ({_union_request_ids(live)})" if live else ""
        sql = f"""
  SELECT request_id, request
  FROM (
    SELECT r.request_id, r.request,
      ROW_NUMBER() OVER (PARTITION BY r.request_id) AS copy
    FROM {quote_table(model.requests_table)} AS r
    LEFT JOIN {quote_table(model.responses_table)} AS s ON s.request_id = r.request_id
    WHERE r.request_problem IS NULL
      AND NOT {_SUCCEEDED.format(t="s")}
      AND COALESCE(s.attempts, 0) <= @max_retries
      {not_live}
  )
  WHERE copy = 1"""
        return sql, {"max_retries": model.config.max_retries}

    # -- helpers --------------------------------------------------------------------

    def _query_model(
        self, model: BatchModel, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[bigquery.Row]:
        """Run a statement on a batch model's tables; a missing table names the model."""
        try:
            return self.query(sql, params)
        except NotFound as exc:
            missing = [
                table
                for table in (model.requests_table, model.responses_table)
                if not self.table_exists(table)
            ]
            if not missing:
                raise
            raise WarehouseError(
                f"Model {model.unique_id}: {' and '.join(missing)} "
                f"{'does' if len(missing) == 1 else 'do'} not exist. Run "
                f"`dbt run --select {model.name}` first (it builds the batch model's tables)."
            ) from exc

    def _live_shard_tables(self, model: BatchModel) -> list[str]:
        """Shard tables of the model's live jobs (that still exist)."""
        if self.ledger is None:
            return []
        tables = {job.shard_table for job in self.ledger.live_jobs(model.unique_id)}
        return sorted(table for table in tables if table and self.table_exists(table))

    def _answers_sql(self, model: BatchModel, output_table: str) -> str:
        """One answer per request_id of an output table, the success first if any."""
        try:
            schema = {
                field.name: field.field_type for field in self.client.get_table(output_table).schema
            }
        except NotFound as exc:
            raise WarehouseError(
                f"Model {model.unique_id}: output table {output_table} does not exist; the "
                "job wrote no output (see its error in the ledger)."
            ) from exc
        missing = {"request_id", "response", "status"} - set(schema)
        if missing:
            raise WarehouseError(
                f"Model {model.unique_id}: output table {output_table} lacks "
                f"{', '.join(sorted(missing))}; it is not a Vertex AI batch output table."
            )
        # Vertex writes `response` as JSON; read a STRING one too (older outputs).
        response = "SAFE.PARSE_JSON(response)" if schema["response"] == "STRING" else "response"
        processed = "processed_time" if "processed_time" in schema else "CURRENT_TIMESTAMP()"
        return f"""
  SELECT request_id, response, status, processed_time, succeeded,
    IF(succeeded, NULL, COALESCE(NULLIF(status, ''), 'no response')) AS error
  FROM (
    SELECT request_id, response, status, processed_time, succeeded,
      ROW_NUMBER() OVER (
        PARTITION BY request_id ORDER BY IF(succeeded, 0, 1), processed_time DESC
      ) AS answer_rank
    FROM (
      SELECT request_id, {response} AS response, status,
        CAST({processed} AS TIMESTAMP) AS processed_time,
        (COALESCE(status, '') = '' AND {response} IS NOT NULL) AS succeeded
      FROM {quote_table(output_table)}
      WHERE request_id IS NOT NULL
    )
  )
  WHERE answer_rank = 1"""


# A responses row (alias {t}) that holds a successful answer: never sent again.
_SUCCEEDED = "COALESCE({t}.status = '' AND {t}.response IS NOT NULL, FALSE)"
_PARAMETER_TYPES = (bigquery.ScalarQueryParameter, bigquery.ArrayQueryParameter)
_RUN_ID = re.compile(r"^[a-z0-9_]{1,40}$")
_COUNT_FIELDS = [f.name for f in fields(RequestCounts)]
_MERGE_FIELDS = [f.name for f in fields(MergeResult)]


def _union_request_ids(tables: list[str]) -> str:
    return " UNION ALL ".join(f"SELECT request_id FROM {quote_table(t)}" for t in tables)


def _usage_sum(field_name: str) -> str:
    return f"COALESCE(SUM(LAX_INT64(JSON_QUERY(response, '$.usageMetadata.{field_name}'))), 0)"


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
