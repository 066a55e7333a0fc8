"""What changed: each row's current answer beside its previous one (``gemini-batch diff``).

A row is its key columns (the model's columns but ``request``), hashed into
``<model>__requests._gemini_batch_key``. ``<model>__keys``, kept across runs by the
materialization, says which request_ids each key hash had and since when (ADR 0016):
the previous answer of a row is the answer of the latest earlier request_id of its key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from google.api_core.exceptions import NotFound

from gemini_batch.clients.bigquery import BigQuery, quote_table
from gemini_batch.errors import WarehouseError
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.reuse import KEY_COLUMN
from gemini_batch.state.rows import NOT_KEYS

# Columns of <model>__requests the package adds: not key columns.


@dataclass(frozen=True)
class Answer:
    """One answer as diff shows it."""

    request_id: str
    text: str | None  # the candidate's text parts (thoughts left out)
    parsed: Any  # the text as JSON, when it is JSON (a structured output)
    finish_reason: str | None
    tokens: int | None  # candidatesTokenCount
    processed_time: str | None


@dataclass(frozen=True)
class Change:
    """A row with a current answer and a previous one."""

    key: dict[str, Any]
    previous: Answer
    current: Answer

    @property
    def same_text(self) -> bool:
        return self.previous.text == self.current.text


def keys_table(model: BatchModel) -> str:
    return f"{model.project}.{model.dataset}.{model.name}__keys"


def diff_sql(model: BatchModel, key_columns: list[str]) -> str:
    """Current rows with an answer, each with the answer of its key's latest earlier
    request_id; one row per key hash, by key order."""
    keys = ", ".join(f"r.`{name}`" for name in key_columns)
    return f"""
WITH current_rows AS (
  SELECT {keys + ", " if keys else ""}r.{KEY_COLUMN} AS key_hash, r.request_id,
    ROW_NUMBER() OVER (PARTITION BY r.{KEY_COLUMN} ORDER BY r.request_id) AS copy
  FROM {quote_table(model.requests_table)} AS r
), seen AS (
  SELECT key_hash, request_id, MIN(first_seen) AS first_seen
  FROM {quote_table(keys_table(model))}
  GROUP BY key_hash, request_id
), previous AS (
  SELECT key_hash, request_id
  FROM (
    SELECT k.key_hash, k.request_id,
      ROW_NUMBER() OVER (PARTITION BY k.key_hash ORDER BY k.first_seen DESC, k.request_id) AS rank
    FROM seen AS k
    JOIN {quote_table(model.responses_table)} AS s ON s.request_id = k.request_id
    LEFT JOIN current_rows AS c ON c.key_hash = k.key_hash AND c.request_id = k.request_id
    WHERE COALESCE(s.answered, FALSE) AND c.request_id IS NULL
  )
  WHERE rank = 1
)
SELECT {", ".join(f"c.`{name}`" for name in key_columns) + ", " if key_columns else ""}c.request_id,
  TO_JSON_STRING(now.response) AS current_response,
  CAST(now.processed_time AS STRING) AS current_processed,
  p.request_id AS previous_request_id,
  TO_JSON_STRING(was.response) AS previous_response,
  CAST(was.processed_time AS STRING) AS previous_processed
FROM current_rows AS c
JOIN {quote_table(model.responses_table)} AS now ON now.request_id = c.request_id
JOIN previous AS p ON p.key_hash = c.key_hash
JOIN {quote_table(model.responses_table)} AS was ON was.request_id = p.request_id
WHERE c.copy = 1 AND COALESCE(now.answered, FALSE)
ORDER BY c.key_hash
LIMIT @limit"""


def changes(bq: BigQuery, model: BatchModel, limit: int) -> list[Change]:
    """Up to ``limit`` rows of ``model`` with both a current and a previous answer."""
    try:
        schema = bq.client.get_table(model.requests_table).schema
        bq.client.get_table(keys_table(model))
    except NotFound as exc:
        raise WarehouseError(
            f"Model {model.unique_id}: {exc.message if hasattr(exc, 'message') else exc}. "
            f"Run `gemini-batch build --select {model.name}` (a package version with "
            "<model>__keys): diff compares answers across runs from then on."
        ) from exc
    names = [field.name for field in schema]
    if KEY_COLUMN not in names:
        raise WarehouseError(
            f"Model {model.unique_id}: {model.requests_table} has no {KEY_COLUMN}: an "
            f"older package built it. Run `dbt run --select {model.name}` first."
        )
    key_columns = [name for name in names if name not in NOT_KEYS]
    rows = bq.query(diff_sql(model, key_columns), {"limit": limit})
    return [
        Change(
            key={name: _plain(row[name]) for name in key_columns},
            previous=_answer(row["previous_request_id"], row["previous_response"],
                             row["previous_processed"]),
            current=_answer(row["request_id"], row["current_response"], row["current_processed"]),
        )
        for row in rows
    ]


def _plain(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def _answer(request_id: str, response: str | None, processed: str | None) -> Answer:
    document = json.loads(response) if response else {}
    if isinstance(document, str):  # a JSON string column read back as text
        document = json.loads(document)
    candidates = document.get("candidates") or [{}]
    candidate = candidates[0] or {}
    parts = (candidate.get("content") or {}).get("parts") or []
    if isinstance(parts, dict):  # the service gives `parts` as an object at times
        parts = [parts]
    texts = [part.get("text") for part in parts
             if isinstance(part, dict) and part.get("text") is not None and not part.get("thought")]
    text = "".join(texts) if texts else None
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    usage = document.get("usageMetadata") or {}
    return Answer(request_id=request_id, text=text,
                  parsed=parsed if isinstance(parsed, (dict, list)) else None,
                  finish_reason=candidate.get("finishReason"),
                  tokens=usage.get("candidatesTokenCount"), processed_time=processed)


__all__ = ["Answer", "Change", "changes", "diff_sql", "keys_table"]
