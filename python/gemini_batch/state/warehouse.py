"""The statements a build runs on a batch model's tables (BigQuery, SQL via sqlglot).

Every statement runs in BigQuery (counts, shards, merges): request rows never come into
Python. Table names go through :func:`~gemini_batch.clients.bigquery.quote_table`; values go in as
query parameters. Which requests are in live jobs is the caller's to say (the shard
tables of the ledger's live jobs, read once per round): this module reads no ledger.
The responses table's columns and the merges of a job's answers: responses.py.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from gemini_batch.clients.bigquery import quote_table
from gemini_batch.clients.vertex import SHARD_TABLE_HOURS
from gemini_batch.errors import WarehouseError
from gemini_batch.rules.answers import INVALID_STATUS, failed_for_good_sql, failure_class_sql
from gemini_batch.rules.catalog import LONG_CONTEXT_TOKENS
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.estimate_query import estimate_groups_sql
from gemini_batch.state.responses import (
    RESPONSES_SCHEMA,
    AnswerMerges,
    MergeResult,
    answered,
    insert_responses_row,
)
from gemini_batch.state.reuse import sample_sql
from gemini_batch.state.rows import key_columns, quote_column, requests_columns, row_label


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
    examples: list[tuple[str, str]]  # up to 5 (the row by its key columns, reason)


@dataclass(frozen=True)
class Shard:
    """One job's input table: ``rows`` distinct pending requests (request_id, request)."""

    table: str
    rows: int
    index: int


class Warehouse(AnswerMerges):
    """The statements a build runs on batch model tables (merges: ``AnswerMerges``)."""

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

    def counts(self, model: BatchModel, live_shards: Sequence[str] = (), *,
               planned: str | None = None) -> RequestCounts:
        """Requests of ``model`` by state (one query); ``live_shards`` are the shard
        tables of its live jobs (their requests count as in flight). ``planned``: a
        SELECT of the requests as a build would make them now, read in place of
        ``<model>__requests`` (``plan``)."""
        live = list(live_shards)
        in_live = f"r.request_id IN ({_union_request_ids(live)})" if live else "FALSE"
        requests, responses = self._sources(model, planned)
        sql = f"""
WITH ids AS (
  SELECT request_id, COUNT(*) AS copies, LOGICAL_OR(request_problem IS NOT NULL) AS invalid
  FROM {requests}
  GROUP BY request_id
), states AS (
  SELECT
    r.copies,
    CASE
      WHEN {answered("s")} THEN 'cached'
      WHEN r.invalid THEN 'invalid'
      WHEN {failed_for_good(model, "s")} THEN 'failed'
      WHEN {in_live} THEN 'in_flight'
      ELSE 'pending'
    END AS state
  FROM ids AS r
  LEFT JOIN {responses} AS s ON s.request_id = r.request_id
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
  WHERE NOT {answered("s")}
    AND (r.invalid OR {failed_for_good(model, "s")})
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
WHEN MATCHED AND NOT {answered("t")}
  AND (COALESCE(t.status, '') != @invalid_status OR COALESCE(t.last_error, '') != s.reason
       OR COALESCE(t.attempts, 0) <= @max_retries) THEN
  UPDATE SET status = @invalid_status, last_error = s.reason,
    attempts = GREATEST(COALESCE(t.attempts, 0), @max_retries + 1),
    answered = FALSE, empty_answer = FALSE, error_code = NULL,
    updated_at = CURRENT_TIMESTAMP()
WHEN NOT MATCHED THEN
  {insert_responses_row(
      request_id="s.request_id", response="NULL", status="@invalid_status",
      processed_time="NULL", attempts="@max_retries + 1", last_error="s.reason",
      job_name="NULL", updated_at="CURRENT_TIMESTAMP()", answered="FALSE",
      empty_answer="FALSE", error_code="NULL", retry_at_attempt="NULL",
      reused_from="NULL")}""",
            {"max_retries": model.config.max_retries, "invalid_status": INVALID_STATUS},
        )
        # The examples are named by the model's key columns (ticket_id=17), else by
        # the start of their request_id.
        keys = key_columns(requests_columns(self.bq, model))
        selected = "".join(f", {quote_column(name)}" for name in keys)
        rows = self._query_model(
            model,
            f"""
SELECT request_id, request_problem AS reason{selected}, COUNT(*) OVER () AS invalid_count
FROM (
  SELECT request_id, request_problem{selected},
    ROW_NUMBER() OVER (PARTITION BY request_id ORDER BY request_problem) AS copy
  FROM {quote_table(model.requests_table)}
  WHERE request_problem IS NOT NULL
)
WHERE copy = 1
ORDER BY request_id
LIMIT 5""",
        )
        return InvalidSummary(
            count=int(rows[0]["invalid_count"]) if rows else 0,
            examples=[(row_label(dict(row.items()), keys) or row["request_id"][:12],
                       row["reason"]) for row in rows],
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
        live jobs) are left out; with ``sample``, those of the sample only (reuse.py)."""
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run_id {run_id!r}: use lowercase letters, digits and '_'")
        pending, params = self.pending_query(model, live_shards, sample=sample)
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

    @contextlib.contextmanager
    def sample_snapshot(
        self, model: BatchModel, run_id: str, snapshot: str, rows: int
    ) -> Iterator[str]:
        """A :meth:`pending_snapshot`-shaped table of the ``rows`` lowest request_ids of
        ``snapshot`` (the canary: the same requests on a rerun), dropped on exit."""
        with self._transient_table(
            model,
            f"{model.project}.{model.dataset}.{model.name}__sample_{run_id}",
            f"""
SELECT request_id, request, DIV(position, @shard_size) AS shard
FROM (
  SELECT request_id, request, ROW_NUMBER() OVER (ORDER BY request_id) - 1 AS position
  FROM {quote_table(snapshot)}
)
WHERE position < @rows""",
            {"rows": rows, "shard_size": model.config.shard_size},
        ) as sample:
            yield sample

    def job_outcomes(self, model: BatchModel, job_names: Sequence[str]) -> dict[str, int]:
        """The current requests of ``model`` last answered by ``job_names``, by outcome:
        ``{"requests": n, "bad": failed for good or answered empty, <reason>: n...}``
        (reasons as :meth:`failure_reasons` classes them, bad rows only)."""
        if not job_names:
            return {"requests": 0, "bad": 0}
        rows = self._query_model(
            model,
            f"""
SELECT reason, COUNT(*) AS requests
FROM (
  SELECT
    IF(COALESCE(s.empty_answer, FALSE) OR (NOT {answered("s")} AND {failed_for_good(model, "s")}),
       {failure_class_sql("s.status", "s.last_error")}, NULL) AS reason
  FROM {quote_table(model.responses_table)} AS s
  WHERE s.job_name IN UNNEST(@job_names)
    AND s.request_id IN (SELECT request_id FROM {quote_table(model.requests_table)})
)
GROUP BY reason
ORDER BY requests DESC, reason""",
            {"job_names": list(job_names), "max_retries": model.config.max_retries},
        )
        outcomes = {"requests": sum(int(row["requests"]) for row in rows)}
        reasons = {str(row["reason"]): int(row["requests"]) for row in rows
                   if row["reason"] is not None}
        return {**outcomes, "bad": sum(reasons.values()), **reasons}

    def cut_shards(self, model: BatchModel, run_id: str, snapshot: str) -> list[Shard]:
        """The shard tables ``<model>__shard_<run_id>_<n>`` (n from 0; columns request_id
        and request) of a :meth:`pending_snapshot`, each made with CREATE TABLE ... AS
        SELECT, to expire after SHARD_TABLE_HOURS whatever the dataset's default (a job
        may queue 72 h and run 24 h). An empty snapshot: []."""
        sizes = self.bq.query(
            f"SELECT shard, COUNT(*) AS row_count FROM {quote_table(snapshot)} "
            "GROUP BY shard ORDER BY shard"
        )
        shards = []
        for row in sizes:
            index = int(row["shard"])
            table = model.shard_table(run_id, index)
            self.bq.query(
                f"CREATE TABLE {quote_table(table)} OPTIONS (expiration_timestamp = "
                f"TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL {SHARD_TABLE_HOURS} HOUR)) AS "
                f"SELECT request_id, request FROM {quote_table(snapshot)} WHERE shard = @shard",
                {"shard": index},
            )
            shards.append(Shard(table=table, rows=int(row["row_count"]), index=index))
        return shards

    def pending_query(
        self, model: BatchModel, live_shards: Sequence[str] = (), *,
        sample: int | None = None, planned: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """SELECT of the pending requests (request_id, request; one row per request_id)
        and its parameters: valid, no success, attempts <= max_retries and, with
        in none of ``live_shards`` (the shard tables of live jobs); with ``sample``,
        only those among the sample's first ``sample`` request_ids. ``planned``: as
        in :meth:`counts`."""
        live = list(live_shards)
        not_live = f"AND r.request_id NOT IN ({_union_request_ids(live)})" if live else ""
        requests, responses = self._sources(model, planned)
        sql = f"""
  SELECT request_id, request
  FROM (
    SELECT r.request_id, r.request,
      ROW_NUMBER() OVER (PARTITION BY r.request_id) AS copy
    FROM {requests} AS r
    LEFT JOIN {responses} AS s ON s.request_id = r.request_id
    WHERE r.request_problem IS NULL
      AND NOT {answered("s")}
      AND NOT {failed_for_good(model, "s")}
      {not_live}
  )
  WHERE copy = 1"""
        if sample is not None:
            sql = sample_sql(sql, requests, sample)
        return sql, {"max_retries": model.config.max_retries}

    # -- helpers --------------------------------------------------------------------

    def _sources(self, model: BatchModel, planned: str | None) -> tuple[str, str]:
        """What the requests and the responses are read from: the model's tables, or
        (``planned``) that SELECT and the responses kept, none if there is no table."""
        if planned is None:
            return quote_table(model.requests_table), quote_table(model.responses_table)
        responses = quote_table(model.responses_table)
        if not self.bq.table_exists(model.responses_table):
            responses = "(SELECT " + ", ".join(
                f"CAST(NULL AS {kind}) AS {name}" for name, kind in RESPONSES_SCHEMA.items()
            ) + " LIMIT 0)"
        return f"({planned})", responses

    def pending_price_groups(
        self, model: BatchModel, live_shards: Sequence[str] = (),
        pending_snapshot: str | None = None, *,
        sample: int | None = None, planned: str | None = None,
    ) -> list[bigquery.Row]:
        """The one query of the cost estimate (``pricing.estimate_groups`` prices its
        rows): the pending requests (those of ``pending_snapshot``, a
        :meth:`pending_snapshot` table, when given) grouped by what prices them
        (requested thinkingBudget, maxOutputTokens, candidateCount, over the long-context
        threshold), with their count, input tokens (media at the model generation's
        rates, tool declarations and response schema counted) and audio input tokens.
        The token rules are ``pricing.request_price_row``'s, in SQL. ``planned``: the
        requests as a build would make them now (:meth:`counts`)."""
        if pending_snapshot is not None:
            pending = f"SELECT request_id, request FROM {quote_table(pending_snapshot)}"
            params: dict[str, Any] = {}
        else:
            pending, params = self.pending_query(
                model, live_shards, sample=sample, planned=planned)
        return self.bq.query(
            estimate_groups_sql(pending, model.config.gemini_model),
            {**params, "long_context_tokens": LONG_CONTEXT_TOKENS},
        )

    def pending_request_bytes(
        self, model: BatchModel, live_shards: Sequence[str] = (), *,
        planned: str | None = None,
    ) -> int:
        """Bytes of the pending requests' JSON text: what AI.GENERATE's data processing
        is charged on, measured as the materialization measures it (its snapshot's
        ``length(to_json_string(request))``)."""
        pending, params = self.pending_query(model, live_shards, planned=planned)
        rows = self.bq.query(
            f"SELECT COALESCE(SUM(LENGTH(TO_JSON_STRING(request))), 0) AS n FROM ({pending})",
            params)
        return int(rows[0]["n"])

_RUN_ID = re.compile(r"^[a-z0-9_]{1,40}$")
_COUNT_FIELDS = [f.name for f in fields(RequestCounts)]


def failed_for_good(model: BatchModel, alias: str) -> str:
    """The model's rule for a responses row (``alias``, NULL when there is none) failed
    for good (attempts used up, or a final failure; not while a retry is asked), over
    the query parameter ``@max_retries``."""
    return failed_for_good_sql(
        f"{alias}.status", f"{alias}.error_code", f"{alias}.empty_answer",
        f"{alias}.attempts", f"{alias}.retry_at_attempt", "@max_retries",
        retry_empty_answers=model.config.retry_empty_answers,
        last_error=f"{alias}.last_error", empty_retries=str(model.config.empty_retries),
    )


def _union_request_ids(tables: list[str]) -> str:
    return " UNION ALL ".join(f"SELECT request_id FROM {quote_table(t)}" for t in tables)


__all__ = [
    "RESPONSES_SCHEMA",
    "InvalidSummary",
    "MergeResult",
    "RequestCounts",
    "Shard",
    "Warehouse",
    "estimate_groups_sql",
]
