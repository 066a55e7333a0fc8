"""``output_schema => 'name STRING, age INT64, ...'``: the fields AI.GENERATE returns.

One parse gives three things that must agree: the DuckDB STRUCT type the function
returns (the schema's fields, then ``full_response`` and ``status``), the
``responseSchema`` sent to the model (an OBJECT with a property per field, in order),
and the typing of the model's JSON answer into those fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlglot
from sqlglot import exp

# BigQuery type -> (DuckDB type, responseSchema type, Arrow type) for the scalar types an
# output_schema takes; ARRAY<...> and STRUCT<...> nest them.
_SCALARS: dict[exp.DataType.Type, tuple[str, str, pa.DataType]] = {
    exp.DataType.Type.TEXT: ("VARCHAR", "STRING", pa.string()),
    exp.DataType.Type.VARCHAR: ("VARCHAR", "STRING", pa.string()),
    exp.DataType.Type.BIGINT: ("BIGINT", "INTEGER", pa.int64()),
    exp.DataType.Type.INT: ("BIGINT", "INTEGER", pa.int64()),
    exp.DataType.Type.DOUBLE: ("DOUBLE", "NUMBER", pa.float64()),
    exp.DataType.Type.FLOAT: ("DOUBLE", "NUMBER", pa.float64()),
    exp.DataType.Type.BOOLEAN: ("BOOLEAN", "BOOLEAN", pa.bool_()),
}
SUPPORTED = "STRING, INT64, FLOAT64, BOOL, ARRAY<...> and STRUCT<...>"
# The fields every AI.GENERATE answer has after the result (or the schema's fields).
TAIL = (("full_response", "JSON", pa.string()), ("status", "VARCHAR", pa.string()))


class SchemaError(ValueError):
    """An output_schema BigQuery refuses; the message says what is wrong."""


@dataclass(frozen=True)
class Field:
    name: str
    kind: exp.DataType

    @property
    def duckdb_type(self) -> str:
        return _duckdb(self.kind)

    @property
    def arrow_type(self) -> pa.DataType:
        return _arrow(self.kind)

    @property
    def response_schema(self) -> dict[str, Any]:
        return _response_schema(self.kind)


@dataclass(frozen=True)
class OutputSchema:
    """The parsed ``output_schema`` (None fields: the default ``result STRING``)."""

    text: str | None
    fields: tuple[Field, ...]

    @property
    def key(self) -> str:
        """A short name for the schema, part of its function's name."""
        if self.text is None:
            return ""
        canonical = ",".join(f"{f.name} {f.kind.sql('bigquery')}" for f in self.fields)
        return hashlib.blake2b(canonical.encode(), digest_size=6).hexdigest()

    @property
    def duckdb_type(self) -> str:
        """The function's return type: STRUCT(<fields>, full_response JSON, status VARCHAR)."""
        columns = [(f'"{f.name}"', f.duckdb_type) for f in self.fields] or [("result", "VARCHAR")]
        columns += [(name, kind) for name, kind, _ in TAIL]
        return "STRUCT(" + ", ".join(f"{name} {kind}" for name, kind in columns) + ")"

    @property
    def arrow_type(self) -> pa.StructType:
        columns = [pa.field(f.name, f.arrow_type) for f in self.fields] or [
            pa.field("result", pa.string())]
        return pa.struct([*columns, *(pa.field(name, kind) for name, _, kind in TAIL)])

    @property
    def response_schema(self) -> dict[str, Any] | None:
        """The ``generationConfig.responseSchema`` the model is asked for (None: text)."""
        if self.text is None:
            return None
        return {
            "type": "OBJECT",
            "properties": {f.name: f.response_schema for f in self.fields},
            "propertyOrdering": [f.name for f in self.fields],
        }

    def values(self, answer: Any) -> dict[str, Any]:
        """The schema's fields from the model's JSON answer (a dict); ValueError if it
        does not fit."""
        if not isinstance(answer, dict):
            raise ValueError(f"the answer is a JSON {type(answer).__name__}, not an object")
        return {f.name: _typed(answer.get(f.name), f.kind, f.name) for f in self.fields}


DEFAULT = OutputSchema(None, ())


def parse(text: str | None) -> OutputSchema:
    """``output_schema``'s text as an OutputSchema; SchemaError names what is wrong."""
    if text is None:
        return DEFAULT
    try:
        table = sqlglot.parse_one(f"CREATE TABLE t ({text})", read="bigquery")
    except sqlglot.errors.SqlglotError as exc:
        raise SchemaError(
            f"Invalid output_schema {text!r}: write 'name TYPE, ...' with types among "
            f"{SUPPORTED} ({exc})") from None
    columns = list(table.this.expressions) if isinstance(table.this, exp.Schema) else []
    if not columns or not all(isinstance(c, exp.ColumnDef) and c.kind for c in columns):
        raise SchemaError(f"Invalid output_schema {text!r}: write 'name TYPE, ...', e.g. "
                          "'name STRING, age INT64'.")
    fields = tuple(Field(column.name, column.kind) for column in columns)
    seen: set[str] = set()
    for field in fields:
        if field.name.lower() in seen:
            raise SchemaError(f"Invalid output_schema {text!r}: duplicate field {field.name}.")
        seen.add(field.name.lower())
        _check(field.kind, text)
    return OutputSchema(text, fields)


def _check(kind: exp.DataType, text: str) -> None:
    if kind.this in _SCALARS:
        return
    if kind.this in (exp.DataType.Type.ARRAY, exp.DataType.Type.STRUCT) and kind.expressions:
        for inner in kind.expressions:
            _check(inner.kind if isinstance(inner, exp.ColumnDef) else inner, text)
        return
    raise SchemaError(f"Invalid output_schema {text!r}: type {kind.sql('bigquery')} is not "
                      f"supported; use {SUPPORTED}.")


def _struct_fields(kind: exp.DataType) -> list[tuple[str, exp.DataType]]:
    return [(column.name, column.kind) for column in kind.expressions]


def _duckdb(kind: exp.DataType) -> str:
    if kind.this == exp.DataType.Type.ARRAY:
        return f"{_duckdb(kind.expressions[0])}[]"
    if kind.this == exp.DataType.Type.STRUCT:
        inner = ", ".join(f'"{name}" {_duckdb(sub)}' for name, sub in _struct_fields(kind))
        return f"STRUCT({inner})"
    return _SCALARS[kind.this][0]


def _arrow(kind: exp.DataType) -> pa.DataType:
    if kind.this == exp.DataType.Type.ARRAY:
        return pa.list_(_arrow(kind.expressions[0]))
    if kind.this == exp.DataType.Type.STRUCT:
        return pa.struct([pa.field(name, _arrow(sub)) for name, sub in _struct_fields(kind)])
    return _SCALARS[kind.this][2]


def _response_schema(kind: exp.DataType) -> dict[str, Any]:
    if kind.this == exp.DataType.Type.ARRAY:
        return {"type": "ARRAY", "items": _response_schema(kind.expressions[0])}
    if kind.this == exp.DataType.Type.STRUCT:
        fields = _struct_fields(kind)
        return {"type": "OBJECT",
                "properties": {name: _response_schema(sub) for name, sub in fields},
                "propertyOrdering": [name for name, _ in fields]}
    return {"type": _SCALARS[kind.this][1]}


def _typed(value: Any, kind: exp.DataType, where: str) -> Any:
    """``value`` (from JSON) as a value of ``kind``; None stays NULL."""
    if value is None:
        return None
    if kind.this == exp.DataType.Type.ARRAY:
        if not isinstance(value, list):
            raise ValueError(f"{where} is not an array")
        return [_typed(item, kind.expressions[0], f"{where}[]") for item in value]
    if kind.this == exp.DataType.Type.STRUCT:
        if not isinstance(value, dict):
            raise ValueError(f"{where} is not an object")
        return {name: _typed(value.get(name), sub, f"{where}.{name}")
                for name, sub in _struct_fields(kind)}
    target = _SCALARS[kind.this][1]
    if target == "STRING":
        return value if isinstance(value, str) else str(value)
    if target == "BOOLEAN":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where} is not a boolean: {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{where} is not a number: {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"{where} is not a number: {value!r}") from None
    if target == "NUMBER":
        return number
    if not number.is_integer():
        raise ValueError(f"{where} is not an integer: {value!r}")
    return int(number)


__all__ = ["DEFAULT", "SUPPORTED", "Field", "OutputSchema", "SchemaError", "parse"]
