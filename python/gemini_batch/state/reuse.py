"""Answers from other datasets, and the sample: the SQL shapes both routes run.

The copy (:func:`copy_answers_sql`) and the sample (:func:`sample_sql`) are written
here and by the dbt package (``_gemini_batch_copy_answers_sql``,
``_gemini_batch_sample_sql``); ``tests/unit/test_rules_agree.py`` holds them together.
:class:`AnswerSources` reads other datasets' ``<model>__responses`` read-only and copies
the answers of this target's pending requests (ADR 0016): a missing table or a refused
read is a warning, never a failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.api_core.exceptions import GoogleAPICallError

from gemini_batch.clients.bigquery import BigQuery, quote_table
from gemini_batch.errors import ConfigError, WarehouseError
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.ledger import REUSED_PREFIX, Ledger, LedgerEntry

# The var naming the datasets (`project.dataset`) answers are read from, and the one
# capping what one run sends per batch model (`gemini-batch build --sample N` sets it).
ANSWERS_FROM_VAR = "gemini_batch_answers_from"
SAMPLE_VAR = "gemini_batch_sample"
# The column of <model>__requests the sample is ordered by: a hash of the row's key
# columns (the model's columns but `request`), so a prompt change keeps the same rows.
KEY_COLUMN = "_gemini_batch_key"

# What a copied row keeps of its source row; reused_from says where it came from.
_COPIED = ("response", "status", "processed_time", "attempts", "last_error", "job_name",
           "answered", "empty_answer", "error_code")


def copy_source_sql(source: str, pending: str) -> str:
    """SELECT of the answers in ``source`` (a quoted responses table) of the requests
    ``pending`` (a SELECT with a request_id column) selects."""
    return f"""
  select request_id, {", ".join(_COPIED)}
  from {source}
  where coalesce(answered, false)
    and request_id in (select request_id from ({pending}))"""


def copy_answers_sql(responses: str, source: str, source_name: str, pending: str) -> str:
    """MERGE copying the answers of ``pending`` requests from ``source`` into
    ``responses`` (quoted tables); ``source_name`` (``project.dataset.table``) goes into
    reused_from. A row of this target that holds an answer is left as it is."""
    name = "'" + source_name.replace("\\", "\\\\").replace("'", "\\'") + "'"
    columns = ("request_id", *_COPIED, "updated_at", "reused_from")
    return f"""
merge {responses} as t
using ({copy_source_sql(source, pending)}
) as s
on t.request_id = s.request_id
when matched and not coalesce(t.answered, false) then
  update set {", ".join(f"{c} = s.{c}" for c in _COPIED)},
    updated_at = current_timestamp(), reused_from = {name}
when not matched then
  insert ({", ".join(columns)})
  values ({", ".join(f"s.{c}" for c in ("request_id", *_COPIED))}, current_timestamp(), {name})"""


def sample_sql(pending: str, requests: str, size: int) -> str:
    """The ``pending`` requests (request_id, request) among the first ``size`` request_ids
    of ``requests`` by key hash: the same rows each run, whatever the prompt."""
    return f"""
  select request_id, request
  from ({pending})
  where request_id in (
    select request_id
    from (
      select request_id, row_number() over (order by sample_key, request_id) as sample_rank
      from (
        select request_id, min({KEY_COLUMN}) as sample_key
        from {requests}
        group by request_id
      )
    )
    where sample_rank <= {int(size)}
  )"""


def sample_size(dbt_vars: Mapping[str, Any]) -> int | None:
    """Var gemini_batch_sample as a positive int, or None when unset."""
    value = dbt_vars.get(SAMPLE_VAR)
    if value in (None, "", 0, "0"):
        return None
    try:
        size = int(value)
    except (TypeError, ValueError):
        size = 0
    if size < 1 or str(value).strip() != str(size):
        raise ConfigError(
            f"var {SAMPLE_VAR}={value!r}: give a whole number of requests per batch model "
            "(at least 1), e.g. --vars '{gemini_batch_sample: 50}' or `--sample 50`."
        )
    return size


def source_datasets(
    dbt_vars: Mapping[str, Any], model: BatchModel, deferred: str | None = None
) -> list[str]:
    """The ``project.dataset``s answers are read from for ``model``: var
    gemini_batch_answers_from (a list, or one comma-separated string), else the dataset
    ``model`` is deferred to (dbt --defer --state). Its own dataset is never one."""
    value = dbt_vars.get(ANSWERS_FROM_VAR)
    if value is None:
        names = [deferred] if deferred else []
    elif isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, Sequence):
        names = [str(part).strip() for part in value]
    else:
        raise ConfigError(f"var {ANSWERS_FROM_VAR}={value!r}: give a list of 'project.dataset'.")
    own = f"{model.project}.{model.dataset}"
    datasets: list[str] = []
    for name in names:
        if name.count(".") != 1 or not all(name.split(".")):
            raise ConfigError(
                f"var {ANSWERS_FROM_VAR}: {name!r} is not 'project.dataset' (e.g. "
                f"'my-project.analytics_prod'); model {model.unique_id} reads "
                f"<dataset>.{model.name}__responses there."
            )
        if name != own and name not in datasets:
            datasets.append(name)
    return datasets


def deferred_dataset(state_dir: str | None, unique_id: str) -> str | None:
    """The ``project.dataset`` of ``unique_id`` in the manifest of dbt's ``--state``
    directory (the relation --defer reads), or None."""
    if not state_dir:
        return None
    path = Path(state_dir) / "manifest.json"
    try:
        node = json.loads(path.read_text())["nodes"][unique_id]
    except (OSError, ValueError, KeyError):
        return None
    if node.get("database") and node.get("schema"):
        return f"{node['database']}.{node['schema']}"
    return None


@dataclass(frozen=True)
class Reused:
    """Answers copied from one source table."""

    source: str  # project.dataset.<model>__responses
    requests: int


class AnswerSources:
    """Copy the answers other datasets hold for a batch model's pending requests."""

    def __init__(self, bq: BigQuery, say: Callable[[str], None]) -> None:
        self.bq = bq
        self.warn = say  # warnings and what was copied

    def available(self, model: BatchModel, datasets: Sequence[str], pending: str,
                  params: Mapping[str, Any]) -> dict[str, int]:
        """Per source table, how many of ``pending`` it would fill (read only; the
        requests an earlier source fills are not counted again)."""
        found: dict[str, int] = {}
        taken: list[str] = []
        for table in self._tables(model, datasets):
            rest = pending if not taken else (
                f"select request_id from ({pending}) where request_id not in ("
                + " union all ".join(
                    f"select request_id from {quote_table(t)} where coalesce(answered, false)"
                    for t in taken) + ")")
            count = self._count(table, rest, params)
            if count:
                found[table] = count
                taken.append(table)
        return found

    def copy(self, model: BatchModel, datasets: Sequence[str], pending: str,
             params: Mapping[str, Any], *, ledger: Ledger, invocation_id: str,
             location: str) -> list[Reused]:
        """Copy into ``<model>__responses`` the answers each source holds for the
        ``pending`` requests (first source first), each copy with its ledger row
        (ended, merged, cost 0); returns what each brought."""
        copied = []
        for table in self._tables(model, datasets):
            count = self._count(table, pending, params)
            if not count:
                continue
            self.bq.query(copy_answers_sql(quote_table(model.responses_table),
                                           quote_table(table), table, pending), params)
            now = datetime.now(UTC)
            ledger.record_submitted(LedgerEntry(
                job_name=f"{REUSED_PREFIX}{invocation_id}/{table}", dbt_model=model.unique_id,
                model_relation=model.view, shard_table="", output_table=table,
                gemini_model=model.config.gemini_model, location=location, state="SUCCEEDED",
                request_count=count, invocation_id=invocation_id, succeeded_count=count,
                failed_count=0, estimated_cost_usd=0.0, actual_cost_usd=0.0, ended_at=now,
                merged_at=now))
            self.warn(f"{count:,} answers copied from {table} (not sent)")
            copied.append(Reused(source=table, requests=count))
        return copied

    def _tables(self, model: BatchModel, datasets: Sequence[str]) -> list[str]:
        return [f"{dataset}.{model.name}__responses" for dataset in datasets]

    def _count(self, table: str, pending: str, params: Mapping[str, Any]) -> int:
        """The answers ``table`` holds for ``pending``; 0 with a warning when it cannot
        be read (missing, no permission)."""
        sql = f"select count(*) as n from ({copy_source_sql(quote_table(table), pending)})"
        try:
            return int(self.bq.query(sql, params)[0]["n"] or 0)
        except (GoogleAPICallError, WarehouseError) as exc:
            reason = (getattr(exc, "message", None) or str(exc)).strip().splitlines()
            self.warn(f"answers from {table} not read ({type(exc).__name__}: "
                      f"{reason[0][:200] if reason else ''}); its requests are sent as usual")
            return 0


__all__ = [
    "ANSWERS_FROM_VAR",
    "KEY_COLUMN",
    "SAMPLE_VAR",
    "AnswerSources",
    "Reused",
    "copy_answers_sql",
    "copy_source_sql",
    "deferred_dataset",
    "sample_sql",
    "sample_size",
    "source_datasets",
]
