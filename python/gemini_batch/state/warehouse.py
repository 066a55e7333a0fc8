"""The statements a build runs on a batch model's tables (BigQuery, SQL via sqlglot).

Every statement runs in BigQuery (counts, shards, merges): request rows never come into
Python. Table names go through :func:`~gemini_batch.clients.bigquery.quote_table`; values go in as
query parameters. Which requests are in live jobs is the caller's to say (the shard
tables of the ledger's live jobs, read once per round): this module reads no ledger.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from gemini_batch.clients.bigquery import BigQuery, quote_table
from gemini_batch.errors import WarehouseError
from gemini_batch.rules.answers import (
    INVALID_STATUS,
    answered_sql,
    empty_answer_sql,
    error_code_sql,
    failure_class_sql,
    failure_reason_sql,
    final_failure_sql,
)
from gemini_batch.rules.catalog import LONG_CONTEXT_TOKENS
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.reuse import sample_sql

# Columns of <model>__responses, in table order: the materialization creates the table
# (_gemini_batch_responses_ddl); tests/unit/test_rules_agree.py holds the two together.
# `answered`, `empty_answer` and `error_code` are the rules of answers.py evaluated when
# the row was written (ADR 0011): what reads the table reads them, not the response JSON.
RESPONSES_SCHEMA: dict[str, str] = {
    "request_id": "STRING",
    "response": "JSON",
    "status": "STRING",
    "processed_time": "TIMESTAMP",
    "attempts": "INT64",
    "last_error": "STRING",
    "job_name": "STRING",
    "updated_at": "TIMESTAMP",
    "answered": "BOOL",
    "empty_answer": "BOOL",
    "error_code": "INT64",
    # project.dataset.table an answer was copied from (var gemini_batch_answers_from;
    # state/reuse.py), NULL for an answer this target paid for.
    "reused_from": "STRING",
}


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
    # What the bill prices apart (cost.actual_cost): prompt tokens served from the
    # implicit cache (cachedContentTokenCount) and audio prompt tokens (the AUDIO entry of
    # promptTokensDetails); then the tokens of requests over the long-context threshold
    # (catalog.LONG_CONTEXT_TOKENS), which bill at the long rates. Output: candidates
    # and thoughts.
    cached_tokens: int = 0
    audio_prompt_tokens: int = 0
    long_prompt_tokens: int = 0
    long_output_tokens: int = 0
    long_cached_tokens: int = 0
    long_audio_tokens: int = 0


class Warehouse:
    """The statements a build runs on batch model tables."""

    def __init__(self, bq: BigQuery) -> None:
        self.bq = bq

    # -- batch model statements -----------------------------------------------------

    def check_tables(self, model: BatchModel) -> None:
        """WarehouseError naming what to run when dbt has not built the model's tables,
        or built ``<model>__responses`` with an older package that lacks columns this
        operator writes (the model's next ``dbt run`` adds and fills them)."""
        if not self.bq.table_exists(model.requests_table):
            raise WarehouseError(
                f"{model.requests_table} does not exist: dbt did not build {model.unique_id}. "
                f"Run `dbt run --select {model.name}` first (it builds the batch model's tables)."
            )
        try:
            columns = {f.name for f in self.bq.client.get_table(model.responses_table).schema}
        except NotFound as exc:
            raise WarehouseError(
                f"{model.responses_table} does not exist: dbt did not build "
                f"{model.unique_id}. Run `dbt run --select {model.name}` first."
            ) from exc
        missing = [name for name in RESPONSES_SCHEMA if name not in columns]
        if missing:
            raise WarehouseError(
                f"Model {model.unique_id}: {model.responses_table} has no column "
                f"{', '.join(missing)}: an older version of the gemini_batch dbt package "
                f"made it. Install the package version of this gemini-batch (packages.yml, "
                f"then `dbt deps`) and run `dbt run --select {model.name}`: it adds the "
                "columns and fills them from the answers kept. Nothing was submitted."
            )

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
      WHEN {_answered("s")} THEN 'cached'
      WHEN r.invalid THEN 'invalid'
      WHEN COALESCE(s.attempts, 0) > @max_retries OR {_final(model, "s")} THEN 'failed'
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

    def failure_reasons(self, model: BatchModel) -> dict[str, int]:
        """Requests of ``model`` that ended failed, by class of reason (``EMPTY_ANSWER:
        MAX_TOKENS``, ``400 INVALID_ARGUMENT``, ``invalid request``...), most first."""
        rows = self._query_model(
            model,
            f"""
SELECT reason, COUNT(*) AS requests
FROM (
  SELECT
    IF(s.request_id IS NULL, 'invalid request',
       {failure_class_sql("s.status", "s.last_error")}) AS reason
  FROM (
    SELECT request_id, LOGICAL_OR(request_problem IS NOT NULL) AS invalid
    FROM {quote_table(model.requests_table)}
    GROUP BY request_id
  ) AS r
  LEFT JOIN {quote_table(model.responses_table)} AS s ON s.request_id = r.request_id
  WHERE NOT {_answered("s")}
    AND (r.invalid OR COALESCE(s.attempts, 0) > @max_retries OR {_final(model, "s")})
)
GROUP BY reason
ORDER BY requests DESC, reason""",
            {"max_retries": model.config.max_retries},
        )
        return {str(row["reason"]): int(row["requests"]) for row in rows}

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
WHEN MATCHED AND NOT {_answered("t")}
  AND (COALESCE(t.status, '') != @invalid_status OR COALESCE(t.last_error, '') != s.reason
       OR COALESCE(t.attempts, 0) <= @max_retries) THEN
  UPDATE SET status = @invalid_status, last_error = s.reason,
    attempts = GREATEST(COALESCE(t.attempts, 0), @max_retries + 1),
    answered = FALSE, empty_answer = FALSE, error_code = NULL,
    updated_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN
  {_insert_responses_row(
      request_id="s.request_id", response="NULL", status="@invalid_status",
      processed_time="NULL", attempts="@max_retries + 1", last_error="s.reason",
      job_name="NULL", updated_at="CURRENT_TIMESTAMP()", answered="FALSE",
      empty_answer="FALSE", error_code="NULL", reused_from="NULL")}""",
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
        """Write the pending requests into shard tables of at most ``shard_size`` rows
        (:meth:`pending_snapshot`, then :meth:`cut_shards`). No pending request: []."""
        with self.pending_snapshot(model, run_id, live_shards) as snapshot:
            return self.cut_shards(model, run_id, snapshot)

    @contextlib.contextmanager
    def pending_snapshot(
        self, model: BatchModel, run_id: str, live_shards: Sequence[str] = (),
        sample: int | None = None,
    ) -> Iterator[str]:
        """A table of the pending requests as they are now (request_id, request, shard:
        numbered by request_id and cut every ``shard_size``), dropped on exit; it expires
        by itself if this process dies first. One read of the pending set serves the
        estimate and the shards, which are then disjoint and exactly sized even if
        responses change meanwhile. Requests in ``live_shards`` (the shard tables of
        live jobs) are left out; with ``sample``, those of the sample only
        (:func:`~gemini_batch.state.reuse.sample_sql`)."""
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run_id {run_id!r}: use lowercase letters, digits and '_'")
        pending, params = self.pending_query(model, live_shards, sample)
        with self._transient_table(
            model,
            f"{model.project}.{model.dataset}.{model.name}__pending_{run_id}",
            f"""
SELECT request_id, request, DIV(position, @shard_size) AS shard
FROM (
  SELECT request_id, request, ROW_NUMBER() OVER (ORDER BY request_id) - 1 AS position
  FROM ({pending})
)""",
            {**params, "shard_size": model.config.shard_size},
        ) as snapshot:
            yield snapshot

    def cut_shards(self, model: BatchModel, run_id: str, snapshot: str) -> list[Shard]:
        """The shard tables ``<model>__shard_<run_id>_<n>`` (n from 0; columns request_id
        and request) of a :meth:`pending_snapshot`, each made with CREATE TABLE ... AS
        SELECT. An empty snapshot: []."""
        sizes = self.bq.query(
            f"SELECT shard, COUNT(*) AS row_count FROM {quote_table(snapshot)} "
            "GROUP BY shard ORDER BY shard"
        )
        shards = []
        for row in sizes:
            index = int(row["shard"])
            table = model.shard_table(run_id, index)
            self.bq.query(
                f"CREATE TABLE {quote_table(table)} AS "
                f"SELECT request_id, request FROM {quote_table(snapshot)} WHERE shard = @shard",
                {"shard": index},
            )
            shards.append(Shard(table=table, rows=int(row["row_count"]), index=index))
        return shards

    def merge_output(
        self,
        model: BatchModel,
        output_table: str,
        job_name: str,
        *,
        shard_table: str | None = None,
    ) -> MergeResult:
        """Fold a job's output table into ``<model>__responses`` on request_id.

        A success replaces response/status/processed_time; a failure bumps attempts and
        sets status/last_error (never over an earlier success); requests the job did not
        answer stay as they were (pending). Merging the same job twice changes nothing.
        With ``shard_table``, ``unanswered`` counts its requests absent from the output.

        When no answer's request_id has a responses row yet (a first build, the changed
        rows of a rerun), the answers are inserted: BigQuery bills an INSERT for what it
        reads, a MERGE that may update for the whole target table too (ADR 0011).
        """
        # The rules run once per answer, into a table both statements below read (the
        # output's JSON is read once; on BigQuery, billed once).
        with self._transient_table(
            model, f"{output_table}__answers", self._answers_sql(model, output_table)
        ) as answers_table:
            return self._merge_answers(
                model, f"SELECT * FROM {quote_table(answers_table)}", job_name, shard_table)

    def _merge_answers(
        self, model: BatchModel, answers: str, job_name: str, shard_table: str | None
    ) -> MergeResult:
        """merge_output's statements over ``answers`` (a SELECT of the job's answers)."""
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
  {_usage_sum("totalTokenCount")} AS total_tokens,
  {_usage_sum("cachedContentTokenCount")} AS cached_tokens,
  COALESCE(SUM(audio_prompt_tokens), 0) AS audio_prompt_tokens,
  {_usage_sum("promptTokenCount", "long_context")} AS long_prompt_tokens,
  {_usage_sum("candidatesTokenCount", "long_context")}
    + {_usage_sum("thoughtsTokenCount", "long_context")} AS long_output_tokens,
  {_usage_sum("cachedContentTokenCount", "long_context")} AS long_cached_tokens,
  COALESCE(SUM(IF(long_context, audio_prompt_tokens, 0)), 0) AS long_audio_tokens,
  (SELECT COUNT(*) FROM answers WHERE request_id IN (
     SELECT request_id FROM {quote_table(model.responses_table)})) AS known
FROM (
  SELECT succeeded, response,
    (SELECT SUM(LAX_INT64(JSON_QUERY(detail, '$.tokenCount')))
     FROM UNNEST(JSON_QUERY_ARRAY(response, '$.usageMetadata.promptTokensDetails')) AS detail
     WHERE JSON_VALUE(detail, '$.modality') = 'AUDIO') AS audio_prompt_tokens,
    COALESCE(LAX_INT64(JSON_QUERY(response, '$.usageMetadata.promptTokenCount')), 0)
      > @long_context_tokens AS long_context
  FROM answers
)""",
            {"long_context_tokens": LONG_CONTEXT_TOKENS},
        )[0]
        new_row = _responses_row(
            request_id="s.request_id", response="s.response",
            status="s.status", processed_time="s.processed_time", attempts="1",
            last_error="IF(s.succeeded, NULL, s.error)", job_name="@job_name",
            updated_at="CURRENT_TIMESTAMP()", answered="s.succeeded",
            empty_answer="s.empty_answer", error_code="s.error_code", reused_from="NULL")
        if not stats["known"]:
            # NOT IN keeps it idempotent, and safe if a row appeared since the count.
            self._query_model(
                model,
                f"""
INSERT INTO {quote_table(model.responses_table)} ({", ".join(RESPONSES_SCHEMA)})
SELECT {new_row}
FROM ({answers}) AS s
WHERE s.request_id NOT IN (SELECT request_id FROM {quote_table(model.responses_table)})""",
                {"job_name": job_name},
            )
            return MergeResult(**{name: int(stats[name] or 0) for name in _MERGE_FIELDS})
        self._query_model(
            model,
            f"""
MERGE {quote_table(model.responses_table)} AS t
USING ({answers}) AS s
ON t.request_id = s.request_id
WHEN MATCHED AND COALESCE(t.job_name, '') != @job_name AND s.succeeded THEN
  UPDATE SET response = s.response, status = '', processed_time = s.processed_time,
    attempts = COALESCE(t.attempts, 0) + 1, last_error = NULL, job_name = @job_name,
    updated_at = CURRENT_TIMESTAMP(), answered = TRUE, empty_answer = FALSE, error_code = NULL,
    reused_from = NULL
WHEN MATCHED AND COALESCE(t.job_name, '') != @job_name AND NOT s.succeeded
  AND NOT {_answered("t")} THEN
  UPDATE SET response = s.response, status = s.status, processed_time = s.processed_time,
    attempts = COALESCE(t.attempts, 0) + 1, last_error = s.error, job_name = @job_name,
    updated_at = CURRENT_TIMESTAMP(), answered = FALSE, empty_answer = s.empty_answer,
    error_code = s.error_code
WHEN NOT MATCHED THEN
  INSERT ({", ".join(RESPONSES_SCHEMA)})
  VALUES ({new_row})""",
            {"job_name": job_name},
        )
        return MergeResult(**{name: int(stats[name] or 0) for name in _MERGE_FIELDS})

    def pending_query(
        self, model: BatchModel, live_shards: Sequence[str] = (), sample: int | None = None
    ) -> tuple[str, dict[str, Any]]:
        """SELECT of the pending requests (request_id, request; one row per request_id)
        and its parameters: valid, no success, attempts <= max_retries and, with
        in none of ``live_shards`` (the shard tables of live jobs); with ``sample``,
        only those among the sample's first ``sample`` request_ids."""
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
      AND NOT {_answered("s")}
      AND COALESCE(s.attempts, 0) <= @max_retries
      AND NOT {_final(model, "s")}
      {not_live}
  )
  WHERE copy = 1"""
        if sample is not None:
            sql = sample_sql(sql, quote_table(model.requests_table), sample)
        return sql, {"max_retries": model.config.max_retries}

    def pending_count(
        self, model: BatchModel, live_shards: Sequence[str] = (), sample: int | None = None
    ) -> int:
        """How many requests :meth:`pending_query` selects."""
        sql, params = self.pending_query(model, live_shards, sample)
        return int(self._query_model(model, f"SELECT COUNT(*) AS n FROM ({sql})", params)[0]["n"])

    # -- helpers --------------------------------------------------------------------

    @contextlib.contextmanager
    def _transient_table(
        self, model: BatchModel, table: str, select: str,
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """``table`` made from ``select`` for the statements of the block, dropped at its
        end; it expires after a day by itself if this process dies first."""
        self._query_model(
            model,
            f"""
CREATE OR REPLACE TABLE {quote_table(table)}
OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 1 DAY))
AS {select}""",
            params,
        )
        try:
            yield table
        finally:
            self.bq.drop_tables([table])

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
        # The service echoes the input columns: the request tells maxOutputTokens.
        request = (
            "SAFE.PARSE_JSON(request)" if schema.get("request") == "STRING"
            else "request" if "request" in schema else "CAST(NULL AS JSON)"
        )
        return f"""
  SELECT request_id, response, status, processed_time, succeeded,
    {empty_answer_sql("status", "response")} AS empty_answer,
    {error_code_sql("status")} AS error_code,
    IF(succeeded, NULL, {failure_reason_sql("status", "response", "request")}) AS error
  FROM (
    SELECT request_id, response, request, status, processed_time, succeeded,
      ROW_NUMBER() OVER (
        PARTITION BY request_id ORDER BY IF(succeeded, 0, 1), processed_time DESC
      ) AS answer_rank
    FROM (
      SELECT request_id, response, request, status, processed_time,
        {answered_sql("status", "response")} AS succeeded
      FROM (
        SELECT request_id, {response} AS response, {request} AS request,
          COALESCE(status, '') AS status, CAST({processed} AS TIMESTAMP) AS processed_time
        FROM {quote_table(output_table)}
        WHERE request_id IS NOT NULL
      )
    )
  )
  WHERE answer_rank = 1"""


_RUN_ID = re.compile(r"^[a-z0-9_]{1,40}$")
_COUNT_FIELDS = [f.name for f in fields(RequestCounts)]
_MERGE_FIELDS = [f.name for f in fields(MergeResult)]


def _answered(alias: str) -> str:
    """A responses row (``alias``, NULL when there is none) holds an answer (its kept rule)."""
    return f"COALESCE({alias}.answered, FALSE)"


def _final(model: BatchModel, alias: str) -> str:
    """The model's rule for a responses row (``alias``) failed for good."""
    return final_failure_sql(
        f"{alias}.status", f"{alias}.error_code", f"{alias}.empty_answer",
        retry_empty_answers=model.config.retry_empty_answers,
    )


def _responses_row(**values: str) -> str:
    """A new <model>__responses row: one SQL value per column of RESPONSES_SCHEMA, in its
    order (a missing or unknown column is a bug: ValueError)."""
    if set(values) != set(RESPONSES_SCHEMA):
        raise ValueError(f"responses columns {sorted(values)} != {sorted(RESPONSES_SCHEMA)}")
    return ", ".join(values[name] for name in RESPONSES_SCHEMA)


def _insert_responses_row(**values: str) -> str:
    """The INSERT clause of a MERGE into <model>__responses (see _responses_row)."""
    return f"INSERT ({', '.join(RESPONSES_SCHEMA)})\n  VALUES ({_responses_row(**values)})"


def _union_request_ids(tables: list[str]) -> str:
    return " UNION ALL ".join(f"SELECT request_id FROM {quote_table(t)}" for t in tables)


def _usage_sum(field_name: str, only: str | None = None) -> str:
    """SQL: the sum of a usageMetadata count over the answers (those where the boolean
    column ``only`` is true, when given)."""
    value = f"LAX_INT64(JSON_QUERY(response, '$.usageMetadata.{field_name}'))"
    return f"COALESCE(SUM({f'IF({only}, {value}, 0)' if only else value}), 0)"


__all__ = [
    "RESPONSES_SCHEMA",
    "InvalidSummary",
    "MergeResult",
    "RequestCounts",
    "Shard",
    "Warehouse",
]
