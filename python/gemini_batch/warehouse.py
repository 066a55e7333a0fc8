"""The statements a build runs on a batch model's tables (BigQuery, SQL via sqlglot).

Every statement runs in BigQuery (counts, shards, merges): request rows never come into
Python. Table names go through :func:`~gemini_batch.bq.quote_table`; values go in as
query parameters. Which requests are in live jobs is the caller's to say (the shard
tables of the ledger's live jobs, read once per round): this module reads no ledger.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from gemini_batch.bq import BigQuery, quote_table
from gemini_batch.config import BatchModel
from gemini_batch.errors import WarehouseError

# Status the warehouse gives requests that fail the validity check: never submitted.
INVALID_STATUS = "INVALID_REQUEST"

# Columns of <model>__responses, in table order: the materialization creates the table
# (_gemini_batch_responses_ddl); tests/unit/test_rules_agree.py holds the two together.
RESPONSES_SCHEMA: dict[str, str] = {
    "request_id": "STRING",
    "response": "JSON",
    "status": "STRING",
    "processed_time": "TIMESTAMP",
    "attempts": "INT64",
    "last_error": "STRING",
    "job_name": "STRING",
    "updated_at": "TIMESTAMP",
}


def answered_sql(alias: str) -> str:
    """SQL that is TRUE when the responses row ``alias`` holds a successful answer (never
    sent again); the view's batch_state and the is_success macro use the same rule."""
    return f"COALESCE({alias}.status = '' AND {alias}.response IS NOT NULL, FALSE)"


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
    """The statements a build runs on batch model tables."""

    def __init__(self, bq: BigQuery) -> None:
        self.bq = bq

    # -- batch model statements -----------------------------------------------------

    def counts(self, model: BatchModel, live_shards: Sequence[str] = ()) -> RequestCounts:
        """Requests of ``model`` by state (one query); ``live_shards`` are the shard
        tables of its live jobs (their requests count as in flight)."""
        live = list(live_shards)
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
      WHEN {answered_sql("s")} THEN 'cached'
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
WHEN MATCHED AND NOT {answered_sql("t")}
  AND (COALESCE(t.status, '') != @invalid_status OR COALESCE(t.last_error, '') != s.reason
       OR COALESCE(t.attempts, 0) <= @max_retries) THEN
  UPDATE SET status = @invalid_status, last_error = s.reason,
    attempts = GREATEST(COALESCE(t.attempts, 0), @max_retries + 1),
    updated_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN
  {_insert_responses_row(
      request_id="s.request_id", response="NULL", status="@invalid_status",
      processed_time="NULL", attempts="@max_retries + 1", last_error="s.reason",
      job_name="NULL", updated_at="CURRENT_TIMESTAMP()")}""",
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
        self, model: BatchModel, run_id: str, live_shards: Sequence[str] = ()
    ) -> list[Shard]:
        """Write the pending requests into shard tables of at most ``shard_size`` rows.

        Tables are ``<model>__shard_<run_id>_<n>`` (n from 0) with columns request_id and
        request, built with CREATE TABLE ... AS SELECT. Requests in ``live_shards`` (the
        shard tables of live jobs) are left out. No pending request: [].
        """
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run_id {run_id!r}: use lowercase letters, digits and '_'")
        pending, params = self.pending_query(model, live_shards)
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
            sizes = self.bq.query(
                f"SELECT shard, COUNT(*) AS row_count FROM {quote_table(staging)} "
                "GROUP BY shard ORDER BY shard"
            )
            shards = []
            for row in sizes:
                index = int(row["shard"])
                table = model.shard_table(run_id, index)
                self.bq.query(
                    f"CREATE TABLE {quote_table(table)} AS "
                    f"SELECT request_id, request FROM {quote_table(staging)} WHERE shard = @shard",
                    {"shard": index},
                )
                shards.append(Shard(table=table, rows=int(row["row_count"]), index=index))
        finally:
            self.bq.drop_tables([staging])
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
        stats = self.bq.query(
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
  AND NOT {answered_sql("t")} THEN
  UPDATE SET status = s.status, processed_time = s.processed_time,
    attempts = COALESCE(t.attempts, 0) + 1, last_error = s.error, job_name = @job_name,
    updated_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN
  {_insert_responses_row(
      request_id="s.request_id", response="IF(s.succeeded, s.response, NULL)",
      status="s.status", processed_time="s.processed_time", attempts="1",
      last_error="IF(s.succeeded, NULL, s.error)", job_name="@job_name",
      updated_at="CURRENT_TIMESTAMP()")}""",
            {"job_name": job_name},
        )
        return MergeResult(**{name: int(stats[name] or 0) for name in _MERGE_FIELDS})

    def pending_query(
        self, model: BatchModel, live_shards: Sequence[str] = ()
    ) -> tuple[str, dict[str, Any]]:
        """SELECT of the pending requests (request_id, request; one row per request_id)
        and its parameters: valid, no success, attempts <= max_retries and, with
        in none of ``live_shards`` (the shard tables of live jobs)."""
        live = list(live_shards)
        not_live = f"AND r.request_id NOT IN ({_union_request_ids(live)})" if live else ""
        sql = f"""
  SELECT request_id, request
  FROM (
    SELECT r.request_id, r.request,
      ROW_NUMBER() OVER (PARTITION BY r.request_id) AS copy
    FROM {quote_table(model.requests_table)} AS r
    LEFT JOIN {quote_table(model.responses_table)} AS s ON s.request_id = r.request_id
    WHERE r.request_problem IS NULL
      AND NOT {answered_sql("s")}
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
            return self.bq.query(sql, params)
        except NotFound as exc:
            missing = [
                table
                for table in (model.requests_table, model.responses_table)
                if not self.bq.table_exists(table)
            ]
            if not missing:
                raise
            raise WarehouseError(
                f"Model {model.unique_id}: {' and '.join(missing)} "
                f"{'does' if len(missing) == 1 else 'do'} not exist. Run "
                f"`dbt run --select {model.name}` first (it builds the batch model's tables)."
            ) from exc

    def _answers_sql(self, model: BatchModel, output_table: str) -> str:
        """One answer per request_id of an output table, the success first if any."""
        try:
            schema = {
                field.name: field.field_type
                for field in self.bq.client.get_table(output_table).schema
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


_RUN_ID = re.compile(r"^[a-z0-9_]{1,40}$")
_COUNT_FIELDS = [f.name for f in fields(RequestCounts)]
_MERGE_FIELDS = [f.name for f in fields(MergeResult)]


def _insert_responses_row(**values: str) -> str:
    """The INSERT clause of a MERGE into <model>__responses: one SQL value per column of
    RESPONSES_SCHEMA, in its order (a missing or unknown column is a bug: ValueError)."""
    if set(values) != set(RESPONSES_SCHEMA):
        raise ValueError(f"responses columns {sorted(values)} != {sorted(RESPONSES_SCHEMA)}")
    columns = ", ".join(RESPONSES_SCHEMA)
    row = ", ".join(values[name] for name in RESPONSES_SCHEMA)
    return f"INSERT ({columns})\n  VALUES ({row})"


def _union_request_ids(tables: list[str]) -> str:
    return " UNION ALL ".join(f"SELECT request_id FROM {quote_table(t)}" for t in tables)


def _usage_sum(field_name: str) -> str:
    return f"COALESCE(SUM(LAX_INT64(JSON_QUERY(response, '$.usageMetadata.{field_name}'))), 0)"


__all__ = [
    "INVALID_STATUS",
    "RESPONSES_SCHEMA",
    "InvalidSummary",
    "MergeResult",
    "RequestCounts",
    "Shard",
    "Warehouse",
    "answered_sql",
]
