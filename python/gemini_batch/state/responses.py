"""``<model>__responses``: its columns, and a job's answers merged into it.

The statements on a batch model's tables share ``ModelStatements`` (a transient table,
a statement that names the model when its tables are missing); ``AnswerMerges`` folds
a job's output table into the responses table, one pass of the answer rules per
answer (ADR 0011). ``Warehouse`` (warehouse.py) is the rest of a build's statements.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from gemini_batch.clients.bigquery import BigQuery, quote_table
from gemini_batch.errors import WarehouseError
from gemini_batch.rules.answers import (
    answered_sql,
    empty_answer_sql,
    error_code_sql,
    failure_reason_sql,
)
from gemini_batch.rules.catalog import LONG_CONTEXT_TOKENS
from gemini_batch.rules.config import BatchModel

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
    # `attempts` when `gemini-batch retry` asked for the request again (NULL: never);
    # answers.failed_for_good_sql reads it (state/retries.py writes it).
    "retry_at_attempt": "INT64",
    # project.dataset.table an answer was copied from (var gemini_batch_answers_from;
    # state/reuse.py), NULL for an answer this target paid for.
    "reused_from": "STRING",
}



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
    # What the bill prices apart (bill.actual_cost): prompt tokens served from the
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
    # The modelVersion the answers name, when they all name one (bill.answered_by).
    model_version: str | None = None


_MERGE_FIELDS = [f.name for f in fields(MergeResult) if f.type == "int"]


def _merge_result(stats: Any) -> MergeResult:
    """The counts of merge_output's first query, and the one model the answers name."""
    versions = {stats["first_model_version"], stats["last_model_version"]} - {None}
    return MergeResult(**{name: int(stats[name] or 0) for name in _MERGE_FIELDS},
                       model_version=versions.pop() if len(versions) == 1 else None)


class ModelStatements:
    """Statements on one BigQuery client's batch model tables."""

    def __init__(self, bq: BigQuery) -> None:
        self.bq = bq

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



class AnswerMerges(ModelStatements):
    """A job's output table folded into ``<model>__responses``."""

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
  MIN(IF(succeeded, JSON_VALUE(response, '$.modelVersion'), NULL)) AS first_model_version,
  MAX(IF(succeeded, JSON_VALUE(response, '$.modelVersion'), NULL)) AS last_model_version,
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
        new_row = responses_row(
            request_id="s.request_id", response="s.response",
            status="s.status", processed_time="s.processed_time", attempts="1",
            last_error="IF(s.succeeded, NULL, s.error)", job_name="@job_name",
            updated_at="CURRENT_TIMESTAMP()", answered="s.succeeded",
            empty_answer="s.empty_answer", error_code="s.error_code",
            retry_at_attempt="NULL", reused_from="NULL")
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
            return _merge_result(stats)
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
  AND NOT {answered("t")} THEN
  UPDATE SET response = s.response, status = s.status, processed_time = s.processed_time,
    attempts = COALESCE(t.attempts, 0) + 1, last_error = s.error, job_name = @job_name,
    updated_at = CURRENT_TIMESTAMP(), answered = FALSE, empty_answer = s.empty_answer,
    error_code = s.error_code
WHEN NOT MATCHED THEN
  INSERT ({", ".join(RESPONSES_SCHEMA)})
  VALUES ({new_row})""",
            {"job_name": job_name},
        )
        return _merge_result(stats)

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


def answered(alias: str) -> str:
    """A responses row (``alias``, NULL when there is none) holds an answer (its kept rule)."""
    return f"COALESCE({alias}.answered, FALSE)"


def responses_row(**values: str) -> str:
    """A new <model>__responses row: one SQL value per column of RESPONSES_SCHEMA, in its
    order (a missing or unknown column is a bug: ValueError)."""
    if set(values) != set(RESPONSES_SCHEMA):
        raise ValueError(f"responses columns {sorted(values)} != {sorted(RESPONSES_SCHEMA)}")
    return ", ".join(values[name] for name in RESPONSES_SCHEMA)


def insert_responses_row(**values: str) -> str:
    """The INSERT clause of a MERGE into <model>__responses (see responses_row)."""
    return f"INSERT ({', '.join(RESPONSES_SCHEMA)})\n  VALUES ({responses_row(**values)})"


def _usage_sum(field_name: str, only: str | None = None) -> str:
    """SQL: the sum of a usageMetadata count over the answers (those where the boolean
    column ``only`` is true, when given)."""
    value = f"LAX_INT64(JSON_QUERY(response, '$.usageMetadata.{field_name}'))"
    return f"COALESCE(SUM({f'IF({only}, {value}, 0)' if only else value}), 0)"


__all__ = [
    "RESPONSES_SCHEMA",
    "AnswerMerges",
    "MergeResult",
    "ModelStatements",
    "answered",
    "insert_responses_row",
    "responses_row",
]
