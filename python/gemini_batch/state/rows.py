"""A batch model's rows named as its user knows them: by its key columns (``ticket_id=17``)
rather than a request_id hash.

The key columns are the model's own columns other than ``request``, as
``<model>__requests`` holds them (the package's columns left out); values that are
not scalars (JSON, structs, arrays) name nothing and are left out too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.api_core.exceptions import NotFound
from google.cloud.bigquery import SchemaField
from sqlglot import exp

from gemini_batch.clients.bigquery import BigQuery
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.reuse import KEY_COLUMN

# Columns <model>__requests has beside the model's own (the materialization adds them),
# and the request itself.
NOT_KEYS = frozenset({"request", "request_id", "request_problem", KEY_COLUMN})
# How many key columns name a row, and how much of a value is shown.
MAX_KEYS = 3
MAX_VALUE_CHARS = 40
_SCALAR_TYPES = frozenset({
    "STRING", "INTEGER", "INT64", "FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC", "BOOLEAN",
    "BOOL", "DATE", "DATETIME", "TIME", "TIMESTAMP", "BYTES",
})


def requests_columns(bq: BigQuery, model: BatchModel) -> list[SchemaField]:
    """The columns of ``model``'s requests table; [] when it is not there."""
    try:
        return list(bq.client.get_table(model.requests_table).schema)
    except NotFound:
        return []


def key_columns(schema: Sequence[SchemaField]) -> list[str]:
    """Of a requests table's columns, those that name a row (at most MAX_KEYS, in the
    model's order)."""
    return [
        field.name for field in schema
        if field.name.lower() not in NOT_KEYS and field.mode != "REPEATED"
        and field.field_type.upper() in _SCALAR_TYPES
    ][:MAX_KEYS]


def quote_column(name: str) -> str:
    """A column name as backquoted BigQuery SQL."""
    return exp.to_identifier(name, quoted=True).sql(dialect="bigquery")


def _value(value: Any, limit: int | None) -> str:
    text = "NULL" if value is None else str(value)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def row_label(row: Mapping[str, Any], columns: Sequence[str], *,
              limit: int | None = MAX_VALUE_CHARS) -> str:
    """``ticket_id=17, lang=en``: the row's values of ``columns`` (those it has), each cut
    at ``limit`` characters (None: whole, for a reason the user must read)."""
    return ", ".join(f"{name}={_value(row[name], limit)}" for name in columns if name in row)


__all__ = ["MAX_KEYS", "NOT_KEYS", "key_columns", "quote_column", "requests_columns",
           "row_label"]
