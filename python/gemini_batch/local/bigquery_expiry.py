"""Table expiration on the local BigQuery, as BigQuery keeps it.

bqemulator has a place for a table's expiration in its catalog but never fills nor
reports it. BigQuery does:

- a new table takes its dataset's default table expiration (``defaultTableExpirationMs``),
  unless its ``CREATE TABLE`` sets ``OPTIONS (expiration_timestamp = ...)``;
- ``tables.get`` reports ``expirationTime`` (ms since the epoch); ``tables.patch`` and
  ``tables.update`` set it (``null`` clears it), and so does ``ALTER TABLE ... SET
  OPTIONS (expiration_timestamp = ...)``.

``bqemulator_main`` installs these rules. What still differs (docs/local-stack.md): a
table past its expiration is not deleted, since no test waits hours.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp

from gemini_batch.local.bigquery import first_keyword, statement_text

OPTION = "expiration_timestamp"
# The table a CREATE OR REPLACE TABLE statement makes: `p`.`d`.`t`, `p.d.t`, d.t, ...
_REPLACED_TABLE = re.compile(
    r"CREATE\s+OR\s+REPLACE\s+(?:TEMP(?:ORARY)?\s+)?TABLE\s+"
    r"(?P<table>(?:`[^`]+`|[\w-]+)(?:\s*\.\s*(?:`[^`]+`|[\w-]+))*)", re.IGNORECASE)
REST_FIELD = "expirationTime"
_UNITS = {"MICROSECOND": "microseconds", "MILLISECOND": "milliseconds",
          "SECOND": "seconds", "MINUTE": "minutes", "HOUR": "hours", "DAY": "days"}


@dataclass(frozen=True)
class SetExpiration:
    """What a statement sets: the table, and when it expires (None: never), or that it
    takes its dataset's default (a table made again by ``CREATE OR REPLACE``)."""

    table: tuple[str, str, str]
    expires: dt.datetime | None
    dataset_default: bool = False


def statement_expiration(sql: str, default_project: str, now: dt.datetime
                         ) -> SetExpiration | None:
    """The expiration a single ``CREATE TABLE`` or ``ALTER TABLE ... SET OPTIONS`` sets:
    its ``expiration_timestamp`` when this reads the value (a TIMESTAMP literal, NULL, or
    ``TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL n UNIT)``), the dataset's default for a
    ``CREATE OR REPLACE TABLE`` without one; else None."""
    if first_keyword(sql) not in ("CREATE", "ALTER"):
        return None
    if OPTION not in sql.lower():
        # Only a table made again takes its default: read from the statement's head, not
        # a parse of the whole (a batch model's CREATE OR REPLACE carries 150 KB of SQL).
        replaced = _REPLACED_TABLE.match(statement_text(sql))
        if replaced is None:
            return None
        table = exp.to_table(replaced["table"], dialect="bigquery")
        return SetExpiration((table.catalog or default_project, table.db, table.name), None,
                             dataset_default=True)
    try:
        statements = sqlglot.parse(sql, read="bigquery")
    except sqlglot.errors.SqlglotError:
        return None
    if len(statements) != 1:
        return None
    statement = statements[0]
    if isinstance(statement, exp.Create) and str(statement.kind).upper() == "TABLE":
        table = statement.find(exp.Table)
        properties = statement.args.get("properties")
        values = properties.expressions if properties else []
    elif isinstance(statement, exp.Alter):
        table = statement.this
        values = [prop for action in statement.args.get("actions") or []
                  for prop in action.find_all(exp.Property)]
    else:
        return None
    if not isinstance(table, exp.Table) or not table.db:
        return None
    for prop in values:
        if isinstance(prop, exp.Property) and prop.name.lower() == OPTION:
            known, expires = _timestamp(prop.args.get("value"), now)
            if known:
                return SetExpiration((table.catalog or default_project, table.db, table.name),
                                     expires)
    if isinstance(statement, exp.Create) and statement.args.get("replace"):
        return SetExpiration((table.catalog or default_project, table.db, table.name), None,
                             dataset_default=True)
    return None


def _timestamp(value: exp.Expression | None, now: dt.datetime
               ) -> tuple[bool, dt.datetime | None]:
    """(understood, the moment) for an option's value."""
    if value is None or isinstance(value, exp.Null):
        return True, None
    if isinstance(value, exp.Cast | exp.TsOrDsToTimestamp) and isinstance(value.this,
                                                                          exp.Literal):
        value = value.this
    if isinstance(value, exp.Literal) and value.is_string:
        text = re.sub(r"\s*(UTC|Z)$", "", value.this.strip(), flags=re.IGNORECASE)
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            return False, None
        return True, parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    if isinstance(value, exp.TimestampAdd) and isinstance(value.this, exp.CurrentTimestamp):
        unit = _UNITS.get(str(value.args.get("unit") or "").upper())
        amount = value.expression
        if isinstance(amount, exp.Interval):
            unit = _UNITS.get(str(amount.unit.name if amount.unit else "").upper())
            amount = amount.this
        if unit and isinstance(amount, exp.Literal) and _number(amount.this):
            return True, now + dt.timedelta(**{unit: float(amount.this)})
    return False, None


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def from_rest(value: Any) -> dt.datetime | None:
    """A REST ``expirationTime`` (ms since the epoch, as text or a number; null)."""
    if value is None:
        return None
    return dt.datetime.fromtimestamp(int(value) / 1000, tz=dt.UTC)


def to_rest(moment: dt.datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def with_default(created: dt.datetime, default_ms: int | None) -> dt.datetime | None:
    """When a table made at ``created`` expires by its dataset's default (None: never)."""
    if not default_ms:
        return None
    return created + dt.timedelta(milliseconds=int(default_ms))


__all__ = ["OPTION", "REST_FIELD", "SetExpiration", "from_rest", "statement_expiration",
           "to_rest", "with_default"]
