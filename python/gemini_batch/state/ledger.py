"""The job ledger ``gemini_batch_jobs`` (BigQuery); the build locks ``gemini_batch_locks``
are locks.py's, claimed through the same ``Ledger``.

One ledger row per Vertex AI batch job, written right after the job is created and
before anything waits on it (a ``gemini-batch submit`` row: before the create, see
:data:`SUBMIT_PREFIX`); state and count changes are written together
(:class:`LedgerUpdates`, one statement for many jobs), and ``merged_at`` is set once the
job's output is in ``<model>__responses``. A killed build finds its jobs again with
:meth:`Ledger.live_jobs`. Columns and why concurrent writes are safe: docs/ledger.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from google.cloud import bigquery

from gemini_batch.clients.bigquery import (
    API_RETRY,
    API_TIMEOUT,
    SMALL_STATEMENT_TIMEOUT,
    BigQuery,
    parameter,
    quote_table,
)
from gemini_batch.clients.vertex import NOT_FOUND_STATE, SHARD_TABLE_HOURS, TERMINAL_STATES
from gemini_batch.errors import WarehouseError
from gemini_batch.state.locks import (
    DEFAULT_LOCK_TTL,
    LOCKS_SCHEMA,
    LOCKS_TABLE,
    BuildLocks,
    LockOwner,
)

LEDGER_TABLE = "gemini_batch_jobs"

# `dbt_model` of a `gemini-batch submit` row: this prefix and the submission's key. No
# dbt unique_id starts so (they start with `model.`), so a build never takes one for its
# model's job, and the commands over the whole ledger can tell them apart.
SUBMIT_PREFIX = "submit."
# State of a submit row written before its job was created: `job_name` is then a
# placeholder no service knows (`CREATING_JOB`), never asked of Vertex AI.
CREATING_STATE = "CREATING"
CREATING_JOB = "projects/{project}/locations/{location}/batchPredictionJobs/creating-{submit_id}"

# `job_name` of a row the dbt package writes for one AI.GENERATE statement (config
# route='ai_generate'): this prefix, the dbt invocation id, the round and the group. No
# Vertex AI job name starts so; the row is written ended and merged, never live.
AI_GENERATE_PREFIX = "ai_generate/"
# `job_name` of a row written for answers copied from another dataset's responses
# (var gemini_batch_answers_from, state/reuse.py): this prefix, the run and the source
# table. Ended and merged when written; it cost nothing.
REUSED_PREFIX = "reused/"
# Set by a build to its lock token while it holds its models' locks and runs dbt in its
# process: a route ai_generate model answered in that dbt run works under the build's
# lock instead of being refused by it (macros/materializations/_gemini_batch_route.sql).
LOCK_TOKEN_ENV = "GEMINI_BATCH_LOCK_TOKEN"

# States after which a job never changes again (NOT_FOUND: the service lost it).
ENDED_STATES = TERMINAL_STATES | {NOT_FOUND_STATE}
# How often a wait loop writes its jobs' state and count changes (and always before it
# returns): with M batch models at once, at most M such statements per 15 s on the
# ledger, whatever the number of jobs; BigQuery allows about 25 DML per table per 10 s.
FLUSH_SECONDS = 15.0


@dataclass
class LedgerEntry:
    """One row of ``gemini_batch_jobs``: one Vertex AI batch prediction job."""

    job_name: str  # projects/.../locations/.../batchPredictionJobs/ID
    dbt_model: str  # unique_id of the batch model
    model_relation: str  # project.dataset.model
    shard_table: str
    output_table: str
    gemini_model: str
    location: str
    state: str  # JOB_STATE_* name without the prefix, e.g. 'RUNNING'
    request_count: int
    job_id: str | None = None  # last segment of job_name (derived when None)
    invocation_id: str | None = None
    succeeded_count: int | None = None
    failed_count: int | None = None
    prompt_tokens: int | None = None
    candidates_tokens: int | None = None
    thoughts_tokens: int | None = None
    total_tokens: int | None = None
    estimated_cost_usd: float | None = None
    actual_cost_usd: float | None = None
    submitted_at: datetime | None = None  # now, when None at record time
    ended_at: datetime | None = None
    merged_at: datetime | None = None  # NULL until the output is merged into responses
    error: str | None = None
    updated_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        return self.state in ENDED_STATES

    @property
    def is_created(self) -> bool:
        """Whether Vertex AI has the job (a submit row may be written before the create)."""
        return self.state != CREATING_STATE

    @property
    def is_submission(self) -> bool:
        """A `gemini-batch submit` job, not a batch model's."""
        return self.dbt_model.startswith(SUBMIT_PREFIX)

    @property
    def route(self) -> str:
        """``ai_generate`` for an AI.GENERATE statement's row, ``reused`` for answers
        copied from another dataset, else ``batch``."""
        if self.job_name.startswith(AI_GENERATE_PREFIX):
            return "ai_generate"
        return "reused" if self.job_name.startswith(REUSED_PREFIX) else "batch"

    @property
    def model_name(self) -> str:
        """What the tables show as the job's model: the batch model's name, or (submit)."""
        return "(submit)" if self.is_submission else self.dbt_model.rsplit(".", 1)[-1]

    @property
    def is_live(self) -> bool:
        """Running, or ended with its output not merged yet: a resume must handle it."""
        return not self.is_terminal or self.merged_at is None


# BigQuery type of each ledger column, in table order. The package's models read the
# same columns (_gemini_batch_ledger_columns); tests/unit/test_rules_agree.py ties them.
LEDGER_SCHEMA: dict[str, str] = {
    "job_name": "STRING",
    "job_id": "STRING",
    "dbt_model": "STRING",
    "model_relation": "STRING",
    "invocation_id": "STRING",
    "shard_table": "STRING",
    "output_table": "STRING",
    "gemini_model": "STRING",
    "location": "STRING",
    "state": "STRING",
    "request_count": "INT64",
    "succeeded_count": "INT64",
    "failed_count": "INT64",
    "prompt_tokens": "INT64",
    "candidates_tokens": "INT64",
    "thoughts_tokens": "INT64",
    "total_tokens": "INT64",
    "estimated_cost_usd": "FLOAT64",
    "actual_cost_usd": "FLOAT64",
    "submitted_at": "TIMESTAMP",
    "ended_at": "TIMESTAMP",
    "merged_at": "TIMESTAMP",
    "error": "STRING",
    "updated_at": "TIMESTAMP",
}


class Ledger(BuildLocks):
    """``gemini_batch_jobs`` and ``gemini_batch_locks`` in ``project.dataset`` (the locks:
    ``BuildLocks``, locks.py)."""

    def __init__(self, bq: BigQuery, project: str, dataset: str) -> None:
        self.bq = bq
        self.project = project
        self.dataset = dataset
        self.table = f"{project}.{dataset}.{LEDGER_TABLE}"
        self.locks_table = f"{project}.{dataset}.{LOCKS_TABLE}"

    def exists(self) -> bool:
        """Whether the ledger table exists (it does once a job was ever submitted)."""
        return self.bq.table_exists(self.table)

    def ensure(self) -> None:
        """Create the dataset, the ledger and the locks table if missing (idempotent)."""
        client = self.bq.client
        client.create_dataset(f"{self.project}.{self.dataset}", exists_ok=True,
                              retry=API_RETRY, timeout=API_TIMEOUT)
        for table, schema in ((self.table, LEDGER_SCHEMA), (self.locks_table, LOCKS_SCHEMA)):
            client.create_table(
                bigquery.Table(
                    table,
                    schema=[bigquery.SchemaField(name, kind) for name, kind in schema.items()],
                ),
                exists_ok=True,
                retry=API_RETRY,
                timeout=API_TIMEOUT,
            )

    def record_submitted(self, entry: LedgerEntry) -> None:
        """Insert the row of a job just created (before anything waits on it).

        Recording the same job again (a retried call or statement) leaves the first row
        as it is. Written at once, never held back: a job must be in the ledger before
        anything waits on it.
        """
        # DML, not the streaming API: streamed rows cannot be UPDATEd for a while.
        values = asdict(entry)
        values["job_id"] = values["job_id"] or entry.job_name.rsplit("/", 1)[-1]
        values["submitted_at"] = values["submitted_at"] or _now()
        values["updated_at"] = _now()
        columns = ", ".join(f"`{name}`" for name in LEDGER_SCHEMA)
        placeholders = ", ".join(f"@{name}" for name in LEDGER_SCHEMA)
        self.bq.query(
            f"""
MERGE {quote_table(self.table)} AS t
USING (SELECT @job_name AS job_name) AS s
ON t.job_name = s.job_name
WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({placeholders})""",
            _typed(values),
            timeout=SMALL_STATEMENT_TIMEOUT,
        )

    def update(self, job_name: str, /, **fields: Any) -> None:
        """Set ledger columns of one job (e.g. state='SUCCEEDED', ended_at=...);
        ``updated_at`` is set too. Unknown column names raise ValueError."""
        self.update_many({job_name: fields})

    def update_many(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """Set ledger columns of several jobs, ``{job_name: {column: value}}``, in one
        MERGE per set of columns changed (one for a poll loop's states and counts);
        ``updated_at`` is set too. Unknown column names raise ValueError.

        Sending it again after a refusal is safe: it sets values, it adds nothing.
        """
        groups: dict[tuple[str, ...], dict[str, Mapping[str, Any]]] = {}
        for job_name, fields in changes.items():
            unknown = set(fields) - set(LEDGER_SCHEMA) | ({"job_name"} & set(fields))
            if unknown:
                raise ValueError(f"Not ledger columns that can be updated: {sorted(unknown)}")
            columns = tuple(name for name in LEDGER_SCHEMA
                            if name in fields and name != "updated_at")
            groups.setdefault(columns, {})[job_name] = fields
        now = _now()
        for columns, jobs in groups.items():
            names = ("job_name", *columns, "updated_at")
            rows = [
                bigquery.StructQueryParameter(None, *(
                    _typed_one(name, LEDGER_SCHEMA[name], value)
                    for name, value in zip(names, (job_name, *(fields[c] for c in columns), now),
                                           strict=True)
                ))
                for job_name, fields in jobs.items()
            ]
            # Fields named one by one: bqemulator does not expand `SELECT *` of an UNNEST.
            selected = ", ".join(f"u.`{name}`" for name in names)
            assignments = ", ".join(f"`{name}` = s.`{name}`" for name in names[1:])
            self.bq.query(
                f"""
MERGE {quote_table(self.table)} AS t
USING (SELECT {selected} FROM UNNEST(@updates) AS u) AS s
ON t.job_name = s.job_name
WHEN MATCHED THEN UPDATE SET {assignments}""",
                {"updates": bigquery.ArrayQueryParameter("updates", "STRUCT", rows)},
                timeout=SMALL_STATEMENT_TIMEOUT,
            )

    def rename(self, placeholder: str, job_name: str, /, **fields: Any) -> None:
        """Set columns of the row recorded as ``placeholder`` or as ``job_name`` (a submit
        row written before its job existed, or after), giving it ``job_name``; one
        UPDATE, safe to send again."""
        unknown = set(fields) - set(LEDGER_SCHEMA) | ({"job_name", "updated_at"} & set(fields))
        if unknown:
            raise ValueError(f"Not ledger columns that can be updated: {sorted(unknown)}")
        values = {"job_name": job_name, **fields, "updated_at": _now()}
        assignments = ", ".join(f"`{name}` = @{name}" for name in values)
        self.bq.query(
            f"UPDATE {quote_table(self.table)} SET {assignments} "
            "WHERE job_name = @placeholder OR job_name = @job_name",
            {**_typed(values), "placeholder": placeholder},
            timeout=SMALL_STATEMENT_TIMEOUT,
        )

    def get(self, job_name: str) -> LedgerEntry | None:
        """The row of one job, or None."""
        rows = self._select("WHERE job_name = @job_name", {"job_name": job_name})
        return rows[0] if rows else None

    def live_jobs(self, model_unique_id: str | None = None) -> list[LedgerEntry]:
        """Jobs not in a terminal state, or terminal with their output not merged yet,
        oldest first; of one model when ``model_unique_id`` is given."""
        return self._select(
            "WHERE (state NOT IN UNNEST(@ended_states) OR merged_at IS NULL)"
            " AND (@dbt_model IS NULL OR dbt_model = @dbt_model)"
            " ORDER BY submitted_at, job_name",
            {
                "ended_states": sorted(ENDED_STATES),
                "dbt_model": _typed_one("dbt_model", "STRING", model_unique_id),
            },
        )

    def live_shard_tables(
        self, model_unique_id: str, live: list[LedgerEntry] | None = None
    ) -> list[str]:
        """Shard tables of the model's live jobs (``live``, if already read) that still
        exist: their requests are in flight and must not go into another job. A running
        job whose shard is gone is an error (WarehouseError): its requests would look
        pending, and be paid for twice."""
        jobs = self.live_jobs(model_unique_id) if live is None else live
        found = {table: self.bq.table_exists(table)
                 for table in {job.shard_table for job in jobs} if table}
        for job in jobs:
            if not job.is_terminal and job.shard_table and not found[job.shard_table]:
                raise WarehouseError(
                    f"{job.model_name}: the shard table {job.shard_table} of job "
                    f"{job.job_id or job.job_name.rsplit('/', 1)[-1]} ({job.state}) is gone "
                    "while the job runs: its requests cannot be told from pending ones, so "
                    "nothing more is sent for the model. Wait for the job to end "
                    "(`gemini-batch wait`) and build again; shard tables expire after "
                    f"{SHARD_TABLE_HOURS} hours whatever the dataset's default.")
        return sorted(table for table, exists in found.items() if exists)

    def entries(self, model_unique_id: str | None = None, limit: int = 50) -> list[LedgerEntry]:
        """The most recent jobs first, at most ``limit``."""
        return self._select(
            "WHERE (@dbt_model IS NULL OR dbt_model = @dbt_model)"
            " ORDER BY submitted_at DESC, job_name LIMIT @row_limit",
            {
                "dbt_model": _typed_one("dbt_model", "STRING", model_unique_id),
                "row_limit": int(limit),
            },
        )

    def ai_generate_entries(self, model_unique_id: str, invocation_id: str) -> list[LedgerEntry]:
        """The AI.GENERATE statements the model's dbt invocation ``invocation_id`` ran."""
        return self._select(
            "WHERE dbt_model = @dbt_model AND STARTS_WITH(job_name, @prefix) ORDER BY job_name",
            {"dbt_model": model_unique_id,
             "prefix": f"{AI_GENERATE_PREFIX}{invocation_id}/"},
        )

    def observed_output_tokens(self, gemini_model: str) -> float | None:
        """Average output tokens (candidates + thoughts) per succeeded request of
        ``gemini_model`` over the ledger, or None when nothing was answered yet."""
        observed = self.observed_tokens(gemini_model)
        return sum(observed) if observed else None

    def observed_tokens(
        self, gemini_model: str, dbt_model: str | None = None
    ) -> tuple[float, float] | None:
        """Average (candidates, thoughts) tokens per succeeded request: of ``dbt_model``'s
        jobs when it has answers (a model writing labels says nothing of one writing
        essays), else of every job of ``gemini_model``; None when neither has any (the
        catalog's figures then). The cost estimate's answer and thinking per request."""
        if not self.exists():
            return None
        rows = self.bq.query(
            f"""
SELECT
  dbt_model = @dbt_model AS same_model,
  SUM(candidates_tokens) AS candidates_tokens,
  SUM(COALESCE(thoughts_tokens, 0)) AS thoughts_tokens,
  SUM(succeeded_count) AS answered
FROM {quote_table(self.table)}
WHERE gemini_model = @gemini_model AND succeeded_count > 0 AND candidates_tokens IS NOT NULL
GROUP BY same_model""",
            {"gemini_model": gemini_model, "dbt_model": dbt_model or ""},
            timeout=SMALL_STATEMENT_TIMEOUT,
        )
        by_model = {bool(row["same_model"]): row for row in rows if row["answered"]}
        if not by_model:
            return None
        row = by_model.get(True) or by_model[False]
        answered = float(row["answered"])
        return float(row["candidates_tokens"]) / answered, float(row["thoughts_tokens"]) / answered

    # -- helpers --------------------------------------------------------------------

    def _select(self, where: str, params: dict[str, Any]) -> list[LedgerEntry]:
        columns = ", ".join(f"`{name}`" for name in LEDGER_SCHEMA)
        rows = self.bq.query(
            f"SELECT {columns} FROM {quote_table(self.table)} {where}", params,
            timeout=SMALL_STATEMENT_TIMEOUT,
        )
        return [LedgerEntry(**{name: row[name] for name in LEDGER_SCHEMA}) for row in rows]

class LedgerUpdates:
    """State and count changes of a wait loop's jobs, held and written together with
    :meth:`Ledger.update_many` at most once per ``every`` seconds (``flush_if_due``), and
    whenever the loop asks (``flush``). A job's row is in the ledger before this holds
    anything of it (``record_submitted``), so a change lost with a killed build only
    leaves a state the next build polls again. One per loop: not thread-safe.
    """

    def __init__(self, ledger: Ledger, *, every: float = FLUSH_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.every = every
        self._clock = clock
        self._pending: dict[str, dict[str, Any]] = {}
        self._written_at = clock()

    @property
    def pending(self) -> dict[str, dict[str, Any]]:
        """The changes not written yet, by job name."""
        return {job_name: dict(fields) for job_name, fields in self._pending.items()}

    def set(self, job_name: str, **fields: Any) -> None:
        """Hold a change of one job (later values of a column win)."""
        self._pending.setdefault(job_name, {}).update(fields)

    def discard(self, job_name: str) -> None:
        """Drop what is held for a job whose row is written otherwise (its merge): an
        older state must not land after the final one."""
        self._pending.pop(job_name, None)

    def flush_if_due(self) -> None:
        if self._pending and self._clock() - self._written_at >= self.every:
            self.flush()

    def flush(self) -> None:
        """Write everything held, in one statement; kept for the next try if it fails."""
        if not self._pending:
            return
        self.ledger.update_many(self._pending)
        self._pending = {}
        self._written_at = self._clock()


def _typed(values: dict[str, Any]) -> dict[str, bigquery.ScalarQueryParameter]:
    """Ledger values as parameters of their column's type (NULLs included)."""
    return {name: _typed_one(name, LEDGER_SCHEMA[name], value) for name, value in values.items()}


def _typed_one(name: str, kind: str, value: Any) -> bigquery.ScalarQueryParameter:
    return parameter(name, value, kind)


def _now() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "AI_GENERATE_PREFIX",
    "REUSED_PREFIX",
    "CREATING_JOB",
    "CREATING_STATE",
    "DEFAULT_LOCK_TTL",
    "LEDGER_SCHEMA",
    "LOCK_TOKEN_ENV",
    "LEDGER_TABLE",
    "LOCKS_SCHEMA",
    "LOCKS_TABLE",
    "ENDED_STATES",
    "FLUSH_SECONDS",
    "Ledger",
    "LedgerEntry",
    "LedgerUpdates",
    "LockOwner",
    "SUBMIT_PREFIX",
]
