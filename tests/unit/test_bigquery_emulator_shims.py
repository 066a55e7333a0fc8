"""What the local BigQuery's launcher changes in a statement or a setting, without a
server: __TABLES__ and the catalog views dbt's `docs generate` reads, DuckDB's memory,
the parses and query results it keeps."""

from __future__ import annotations

import pytest
import sqlglot

from gemini_batch.local.bigquery import (
    BigQueryFaults,
    DmlConflicts,
    ParseCache,
    ResultSizes,
    altered_table,
    duckdb_settings,
    time_travel_enabled,
    with_tables_view,
)

TABLES = [
    ("recipes", "VIEW", 1_700_000_000_000, 0, 0, [("request_id", "STRING", None)]),
    ("recipes__requests", "TABLE", 1_700_000_000_001, 10, 2048,
     [("request_id", "STRING", "the id"), ("request", "JSON", None)]),
]


def _listed(project: str, dataset: str) -> list:
    assert (project, dataset) == ("local-project", "recipes")
    return TABLES


@pytest.mark.parametrize("reference", [
    "`local-project`.`recipes`.__TABLES__",
    "`local-project.recipes.__TABLES__`",
    "recipes.__TABLES__",
])
def test_tables_become_rows_of_the_catalog(reference: str) -> None:
    sql = f"""select tables.table_id, tables.type, c.field_path
    from {reference} as tables
    left join `local-project`.`recipes`.INFORMATION_SCHEMA.MATERIALIZED_VIEWS mv
      on mv.table_name = tables.table_id
    join `local-project`.`recipes`.INFORMATION_SCHEMA.COLUMN_FIELD_PATHS c
      on c.table_name = tables.table_id"""
    rewritten = with_tables_view(sql, "local-project", _listed)
    assert "__TABLES__" not in rewritten and "INFORMATION_SCHEMA" not in rewritten
    assert "'recipes__requests' as string) as table_id" in rewritten
    assert "cast(2 as int64) as type" in rewritten  # the view
    assert "'request' as string) as field_path" in rewritten
    sqlglot.parse_one(rewritten, read="bigquery")  # still BigQuery SQL


def test_other_sql_is_left_as_it_is() -> None:
    sql = "select * from `p`.`d`.INFORMATION_SCHEMA.COLUMNS where table_name = 't'"
    assert with_tables_view(sql, "p", _listed) is sql


def test_an_empty_dataset_gives_no_rows_with_the_columns() -> None:
    rewritten = with_tables_view("select * from `p`.`d`.__TABLES__", "p", lambda p, d: [])
    assert "where false" in rewritten and "as table_id" in rewritten
    sqlglot.parse_one(rewritten, read="bigquery")


def test_duckdb_memory_limit_from_the_environment() -> None:
    assert duckdb_settings({}) == {"memory_limit": "2GB"}
    assert duckdb_settings({"GEMINI_BATCH_BQ_MEMORY_LIMIT": "4GB"}) == {"memory_limit": "4GB"}
    with pytest.raises(ValueError, match="memory_limit"):
        duckdb_settings({"GEMINI_BATCH_BQ_MEMORY_LIMIT": "1GB'; drop"})


@pytest.mark.parametrize(("sql", "table"), [
    ("alter table `p`.`d`.`t` add column if not exists answered BOOL", ("p", "d", "t")),
    ("/* dbt */\nALTER TABLE d.t DROP COLUMN x", ("default-project", "d", "t")),
    ("alter table `p.d.t` add column a INT64, add column b STRING", ("p", "d", "t")),
    ("alter table d.t set options (description='x')", None),  # no column changes
    ("select 'alter table d.t add column a INT64'", None),
    ("not sql at all (", None),
])
def test_an_alter_table_changing_columns_names_its_table(
    sql: str, table: tuple[str, str, str] | None,
) -> None:
    """The launcher reads such a table's schema again after the statement."""
    assert altered_table(sql, "default-project") == table


@pytest.mark.parametrize(("value", "enabled"), [
    (None, False), ("", False), ("0", False), ("1", True), ("true", True), (" Yes ", True),
])
def test_time_travel_copies_only_when_asked(value: str | None, enabled: bool) -> None:
    environ = {} if value is None else {"GEMINI_BATCH_BQ_TIME_TRAVEL": value}
    assert time_travel_enabled(environ) is enabled


def _bigquery_of_its_own() -> type:
    """A BigQuery dialect class whose parse a test may replace (named so that sqlglot's
    registry keeps it apart from its own dialects)."""
    return type("CacheTestBigQuery", (type(sqlglot.Dialect.get_or_raise("bigquery")),), {})


def _cached(max_entries: int = 512, **limits: int) -> tuple[type, ParseCache]:
    """A BigQuery dialect class of its own whose parses go through a new ParseCache."""
    dialect = _bigquery_of_its_own()
    cache = ParseCache(dialect.parse, max_entries=max_entries, **limits)
    cache.install(dialect)
    return dialect, cache


def test_a_kept_parse_is_a_fresh_copy_of_the_same_trees():
    Dialect, cache = _cached()
    bigquery = Dialect()
    sql = "SELECT SAFE_DIVIDE(a, b) AS r FROM `p.d.t` WHERE x = 1; SELECT 2"
    first = bigquery.parse(sql)
    again = bigquery.parse(sql)
    assert (cache.misses, cache.hits) == (1, 1)
    assert [tree.sql("bigquery") for tree in again] == [tree.sql("bigquery") for tree in first]
    # A caller rewrites the trees it gets: the next caller still gets the text's own.
    again[0].find(sqlglot.exp.Where).pop()
    assert "WHERE" in bigquery.parse(sql)[0].sql("bigquery")
    assert first[0] is not again[0]
    # Another text, other options or a dialect with other settings are parses of their own.
    bigquery.parse("SELECT 3")
    bigquery.parse(sql, error_level=sqlglot.ErrorLevel.IGNORE)
    Dialect(normalization_strategy="case_sensitive").parse(sql)
    assert (cache.misses, cache.hits) == (4, 2)


def test_a_text_that_does_not_parse_fails_each_time():
    Dialect, cache = _cached()
    for _ in range(2):
        with pytest.raises(sqlglot.ParseError):
            Dialect().parse("SELECT (")
    assert cache.hits == 0


def test_the_oldest_parse_goes_first():
    Dialect, cache = _cached(max_entries=2)
    bigquery = Dialect()
    for sql in ("SELECT 1", "SELECT 2", "SELECT 1", "SELECT 3", "SELECT 1", "SELECT 2"):
        bigquery.parse(sql)
    # 1, 2 parsed; 1 kept; 3 pushes out 2; 1 kept; 2 parsed again.
    assert (cache.misses, cache.hits) == (4, 2)


def test_the_kept_texts_stay_within_their_total_length():
    Dialect, cache = _cached(max_total_chars=20)
    bigquery = Dialect()
    for sql in ("SELECT 10", "SELECT 20", "SELECT 30", "SELECT 20", "SELECT 10"):
        bigquery.parse(sql)
    # 9 characters each: two are kept. 30 pushes out 10; 20 is kept; 10 parsed again.
    assert (cache.misses, cache.hits) == (4, 1)


def test_a_kept_parse_hands_out_token_positions_of_its_own():
    Dialect, cache = _cached()
    bigquery = Dialect()
    sql = "SELECT a\nFROM `p.d.t` WHERE b = 1"
    parsed = bigquery.parse(sql)[0].find(sqlglot.exp.Identifier).meta
    positions = dict(parsed)
    assert {"line", "col", "start", "end"} <= set(positions)
    identifier = bigquery.parse(sql)[0].find(sqlglot.exp.Identifier)
    assert identifier.meta == positions
    # A caller that writes into a node's meta writes into its own copy only...
    identifier.meta["line"] = 99
    marker = ["kept apart"]
    identifier.meta["mark"] = marker
    assert bigquery.parse(sql)[0].find(sqlglot.exp.Identifier).meta == positions
    # ...and copies of its tree copy what it put there, as sqlglot's own copy does.
    copied = identifier.parent_select.copy().find(sqlglot.exp.Identifier).meta
    assert copied["line"] == 99 and copied["mark"] == marker and copied["mark"] is not marker


class _Result:
    """An Arrow table's stand-in that counts how often it is measured."""

    def __init__(self, nbytes: int) -> None:
        self._nbytes = nbytes
        self.measured = 0

    @property
    def nbytes(self) -> int:
        self.measured += 1
        return self._nbytes


def test_the_oldest_results_go_once_the_kept_ones_pass_the_limit():
    sizes = ResultSizes()
    results = [(f"job{n}", _Result(100)) for n in range(6)]
    assert sizes.oldest_over(results, limit=600, always_kept=2) == []
    assert sizes.oldest_over(results, limit=350, always_kept=2) == ["job0", "job1", "job2"]
    # The newest always_kept stay, whatever their size.
    assert sizes.oldest_over(results[3:], limit=0, always_kept=2) == ["job3"]


def test_a_result_is_measured_once_unless_its_table_is_replaced():
    sizes = ResultSizes()
    first, second = _Result(10), _Result(10)
    for _ in range(3):
        sizes.oldest_over([("job0", first), ("job1", second)], limit=100, always_kept=0)
    assert (first.measured, second.measured) == (1, 1)
    bigger = _Result(1_000)  # a load's read-back replaces job1's result
    assert sizes.oldest_over([("job0", first), ("job1", bigger)], limit=100,
                             always_kept=1) == ["job0"]
    assert bigger.measured == 1


def test_api_errors_are_drawn_for_bigquery_calls_only_and_counted():
    conflicts = DmlConflicts(BigQueryFaults(error_rate=0.5, seed=3))
    paths = ["/bigquery/v2/projects/p/jobs", "/upload/bigquery/v2/projects/p/jobs"] * 50
    refused = [conflicts.api_error(path) for path in paths]
    assert 30 < sum(1 for body in refused if body) < 70
    assert conflicts.state()["api_errors"] == sum(1 for body in refused if body)
    body = next(body for body in refused if body)
    assert body["error"]["code"] == 503
    assert body["error"]["errors"][0]["reason"] == "backendError"
    # The fault settings' own path, and any other, are served.
    assert all(conflicts.api_error("/emulator/faults") is None for _ in range(20))
    # The same seed draws the same calls again.
    again = DmlConflicts(BigQueryFaults(error_rate=0.5, seed=3))
    assert [bool(again.api_error(path)) for path in paths] == [bool(b) for b in refused]
    with pytest.raises(ValueError, match="error_rate must be between 0 and 1"):
        BigQueryFaults(error_rate=1.5)


def test_a_kept_parse_reads_nested_subqueries_and_comma_joins_as_sqlglot_does():
    """The parse shortcut (FROM copies named, not copied, while parsing) changes nothing
    sqlglot gives: nested subqueries, and comma joins turned into UNNEST."""
    Dialect, _ = _cached()
    nested = "SELECT 1 AS a"
    for level in range(30):
        nested = f"SELECT *, {level} AS c{level} FROM ({nested}) AS s{level}"
    plain = sqlglot.Dialect.get_or_raise("bigquery")
    for sql in (nested, "SELECT x FROM p.d.t AS t, t.items AS i",
                "SELECT * FROM (SELECT [1] AS a) AS s, s.a WHERE true"):
        assert Dialect().parse(sql)[0].sql("bigquery") == plain.parse(sql)[0].sql("bigquery")
    assert "CROSS JOIN UNNEST(t.items)" in Dialect().parse(
        "SELECT x FROM p.d.t AS t, t.items AS i")[0].sql("bigquery")


def test_while_parsing_a_from_without_joins_is_copied_by_name_only():
    from gemini_batch.local.bigquery import _FROM_COPIES

    select = sqlglot.parse_one("SELECT * FROM (SELECT 1 AS a) AS s", read="bigquery")
    subquery = select.args["from_"].this
    with _FROM_COPIES.parsing():
        named = _FROM_COPIES.deepcopy(subquery)
    assert isinstance(named, sqlglot.exp.Table) and named.name == "s"
    # Outside a parse, and for a SELECT with joins, a copy is a copy.
    assert _FROM_COPIES.deepcopy(subquery) == subquery
    joined = sqlglot.parse_one("SELECT * FROM (SELECT 1 AS a) AS s JOIN t ON true",
                               read="bigquery")
    with _FROM_COPIES.parsing():
        assert _FROM_COPIES.deepcopy(joined.args["from_"].this) == joined.args["from_"].this


@pytest.mark.parametrize(("sql", "word"), [
    ('/* {"app": "dbt", "node_id": "model.p.m"} */\n  create or replace table `p.d.t` as '
     "(select 1)", "CREATE"),
    ("-- a comment\n# another\nMERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", "MERGE"),
    ("\n\tdrop table if exists t", "DROP"),
    ("SELECT 'create table' AS s", "SELECT"),
    ("(SELECT 1)", ""),
    ("/* never closed", ""),
])
def test_first_keyword_skips_leading_comments(sql: str, word: str) -> None:
    """What the DDL-only catalog syncs and the DML conflict check read before parsing."""
    from gemini_batch.local.bigquery import first_keyword, mutated_table

    assert first_keyword(sql) == word
    assert (mutated_table(sql, "p") is not None) == (word == "MERGE")


def test_dropped_connections_are_drawn_per_call_for_bigquery_calls_only_and_counted():
    conflicts = DmlConflicts(BigQueryFaults(drop_rate=0.5, seed=3))
    calls = [("GET", f"/bigquery/v2/projects/p/jobs/job{n % 5}") for n in range(100)]
    dropped = [conflicts.drop(method, path) for method, path in calls]
    assert 30 < sum(dropped) < 70
    assert conflicts.state()["dropped"] == sum(dropped)
    # Each call's draws are its own: the same calls in another interleaving (other
    # calls, from other clients, in between) are dropped the same way.
    again = DmlConflicts(BigQueryFaults(drop_rate=0.5, seed=3))
    interleaved = {}
    for index in sorted(range(len(calls)), key=lambda n: (n % 5, n)):
        again.drop("POST", "/upload/bigquery/v2/projects/p/jobs")
        interleaved[index] = again.drop(*calls[index])
    assert [interleaved[n] for n in range(len(calls))] == dropped
    # A call sent again draws again: none is dropped for ever.
    assert not all(conflicts.drop("GET", "/bigquery/v2/projects/p/datasets/d")
                   for _ in range(20))
    # The fault settings' own path, and any other, are never dropped; off by default.
    assert not any(conflicts.drop("PUT", "/emulator/faults") for _ in range(20))
    assert not DmlConflicts().drop("GET", "/bigquery/v2/projects/p/jobs")
    assert all(DmlConflicts(BigQueryFaults(drop_rate=1.0)).drop("POST", path)
               for path in ("/bigquery/v2/projects/p/jobs", "/upload/bigquery/v2/projects/p/jobs"))
    with pytest.raises(ValueError, match="drop_rate must be between 0 and 1"):
        BigQueryFaults(drop_rate=-0.1)
    assert BigQueryFaults.from_env({"GEMINI_BATCH_BQ_FAULT_DROP_RATE": "0.2"}).drop_rate == 0.2
