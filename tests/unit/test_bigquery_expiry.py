"""What the local BigQuery reads as a statement's table expiration (local/bigquery_expiry.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from gemini_batch.local.bigquery_expiry import (
    SetExpiration,
    from_rest,
    statement_expiration,
    to_rest,
    with_default,
)

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("sql", "expected"), [
    ("CREATE TABLE `p`.`d`.`t` OPTIONS (expiration_timestamp = TIMESTAMP_ADD("
     "CURRENT_TIMESTAMP(), INTERVAL 120 HOUR)) AS SELECT 1 AS a",
     SetExpiration(("p", "d", "t"), NOW + dt.timedelta(hours=120))),
    ("create table d.t options(expiration_timestamp=timestamp '2027-01-01 00:00:00 UTC') "
     "as select 1", SetExpiration(("dflt", "d", "t"), dt.datetime(2027, 1, 1, tzinfo=dt.UTC))),
    ("ALTER TABLE `p.d.t` SET OPTIONS (expiration_timestamp = TIMESTAMP_ADD("
     "CURRENT_TIMESTAMP(), INTERVAL 2 DAY))",
     SetExpiration(("p", "d", "t"), NOW + dt.timedelta(days=2))),
    ("ALTER TABLE p.d.t SET OPTIONS (expiration_timestamp = NULL)",
     SetExpiration(("p", "d", "t"), None)),
    # A table made again takes its dataset's default, as a new table does.
    ("CREATE OR REPLACE TABLE p.d.t AS SELECT 1 AS a",
     SetExpiration(("p", "d", "t"), None, dataset_default=True)),
    # As dbt writes them: its comment first.
    ('/* {"app": "dbt"} */\n  create or replace table `p`.`d`.`t`\n  as (select 1 as a)',
     SetExpiration(("p", "d", "t"), None, dataset_default=True)),
    ('/* {"app": "dbt"} */ create or replace table `d`.`t` options(expiration_timestamp='
     "timestamp '2027-01-01 00:00:00 UTC') as (select 1)",
     SetExpiration(("dflt", "d", "t"), dt.datetime(2027, 1, 1, tzinfo=dt.UTC))),
    # Nothing set: a plain CREATE TABLE (the catalog gives it the default), dbt's empty
    # SET OPTIONS(), another option, a value this does not read.
    ("CREATE TABLE p.d.t (a INT64)", None),
    ("alter table p.d.t set options()", None),
    ("ALTER TABLE p.d.t SET OPTIONS (description = 'x')", None),
    ("CREATE TABLE p.d.t OPTIONS (expiration_timestamp = (SELECT MAX(ts) FROM x)) AS "
     "SELECT 1 AS a", None),
    ("SELECT 'expiration_timestamp'", None),
])
def test_statement_expiration(sql: str, expected: SetExpiration | None) -> None:
    assert statement_expiration(sql, "dflt", NOW) == expected


def test_rest_form_and_dataset_default() -> None:
    assert from_rest(to_rest(NOW)) == NOW
    assert from_rest(None) is None
    assert with_default(NOW, 86_400_000) == NOW + dt.timedelta(days=1)
    assert with_default(NOW, None) is None
