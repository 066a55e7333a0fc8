"""The local BigQuery: the ``bqemulator`` package (BigQuery REST + gRPC API on DuckDB).

bqemulator loads DuckDB's spatial extension at start and refuses to run without it. It
cannot be downloaded here, so it is installed from the ``duckdb-extension-spatial``
package, which ships the build for the pinned ``duckdb``.

bqemulator runs every statement at once and in order; BigQuery does not. Its fault mode
(``DmlConflicts``, served by ``bqemulator_main``) fails a share of mutating DML
statements the way BigQuery fails one that lost a race with another on the same table.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import gzip
import hashlib
import json
import os
import random
import re
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from gemini_batch.errors import LocalStackError


def spatial_extension_file() -> Path:
    """The spatial extension shipped by ``duckdb-extension-spatial`` for this duckdb
    (``stack.require_local_extra`` has checked both are installed)."""
    import duckdb
    import duckdb_extension_spatial

    root = Path(duckdb_extension_spatial.__file__).parent / "extensions"
    wanted = root / f"v{duckdb.__version__}" / "spatial.duckdb_extension"
    if not wanted.is_file():
        shipped = sorted(p.parent.name for p in root.glob("*/spatial.duckdb_extension"))
        raise LocalStackError(
            f"duckdb-extension-spatial ships the spatial extension for {shipped or 'nothing'}, "
            f"but duckdb is {duckdb.__version__}: install matching versions "
            f"(pip install 'duckdb-extension-spatial=={duckdb.__version__}')."
        )
    return wanted


def install_spatial_extension() -> None:
    """Install the spatial extension into DuckDB's extension directory (idempotent).

    bqemulator then runs ``INSTALL spatial`` / ``LOAD spatial``, which find it there
    instead of downloading it.
    """
    import duckdb

    with duckdb.connect() as connection:
        connection.execute(f"INSTALL '{spatial_extension_file()}'")
        connection.execute("LOAD spatial")


def bigquery_server_command(
    *, rest_port: int, grpc_port: int, data_dir: Path, project: str
) -> list[str]:
    """The command line that runs bqemulator with a persistent catalog in ``data_dir``."""
    return [
        sys.executable,
        "-m",
        "gemini_batch.local.bqemulator_main",
        "start",
        "--rest-host",
        "127.0.0.1",
        "--rest-port",
        str(rest_port),
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        str(grpc_port),
        "--data-dir",
        str(data_dir),
        "--project",
        project,
        "--log-level",
        "warning",
        "--log-format",
        "console",
    ]


# bqemulator would try to download DuckDB's avro extension at start; Avro load and
# extract jobs are not used by this project.
BIGQUERY_SERVER_ENV = {"BQEMU_ENABLE_FORMAT_EXTENSIONS": "false"}


# -- where a statement runs ------------------------------------------------------------

# jobs.insert and jobs.query: the calls whose body says where the job runs.
_JOB_CALL = re.compile(r"^/bigquery/v2/projects/[^/]+/(?:jobs|queries)$")


def is_job_call(method: str, path: str) -> bool:
    return method == "POST" and _JOB_CALL.match(path) is not None


def job_location(body: bytes) -> str | None:
    """The location a jobs.insert (``jobReference.location``) or jobs.query (``location``)
    body asks for; None when it names none. google-cloud-bigquery sends the client's
    location there: dbt-bigquery's is the profile's ``location``."""
    with contextlib.suppress(ValueError, OSError):
        body = gzip.decompress(body)  # the clients may gzip a body
    try:
        request = json.loads(body)
    except ValueError:
        return None
    if not isinstance(request, dict):
        return None
    reference = request.get("jobReference")
    location = (reference.get("location") if isinstance(reference, dict) else None) or request.get(
        "location")
    return location if isinstance(location, str) and location else None


# -- fault mode ---------------------------------------------------------------------

# Settings at start: GEMINI_BATCH_BQ_FAULT_<NAME> (e.g. ..._DML_CONFLICT_RATE=0.2); at run
# time: GET|PUT|PATCH /emulator/faults on the BigQuery emulator.
FAULT_ENV_PREFIX = "GEMINI_BATCH_BQ_FAULT_"
FAULTS_PATH = "/emulator/faults"


@dataclass(frozen=True)
class BigQueryFaults:
    """What the local BigQuery does wrong on purpose. Off by default."""

    # Share (0..1) of mutating DML statements (MERGE, UPDATE, DELETE) that fail as
    # concurrent updates, before they change anything.
    dml_conflict_rate: float = 0.0
    # Seed of the draws: the same statements in the same order fail the same way.
    seed: int = 0
    # Queries whose text contains this (when not empty) wait until the setting changes:
    # a test holds a dbt stage open, and releases it, at moments it chooses.
    hold_queries: str = ""
    # Share (0..1) of BigQuery API calls (REST, /bigquery/v2/ and uploads) answered 503
    # backendError before they do anything, as BigQuery does now and then: clients retry.
    error_rate: float = 0.0
    # Share (0..1) of those calls whose connection is closed with no answer, before they
    # do anything (a connection BigQuery's front end drops): clients see a connection
    # error and send the call again. Drawn per call from the seed, the method, the path
    # and how many times that call came before (a call sent again draws again).
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("dml_conflict_rate", "error_rate", "drop_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: BigQueryFaults | None = None
                  ) -> BigQueryFaults:
        """``base`` (default: none) with the given settings changed; unknown ones are an
        error (ValueError naming them)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown BigQuery fault settings {unknown}: use {sorted(known)}")
        try:
            kinds = {"seed": int, "hold_queries": str}  # the rest are shares
            typed = {name: kinds.get(name, float)(value) for name, value in values.items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad BigQuery fault setting: {exc}") from exc
        return replace(base or cls(), **typed)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> BigQueryFaults:
        environ = os.environ if environ is None else environ
        return cls.from_dict({
            f.name: environ[FAULT_ENV_PREFIX + f.name.upper()]
            for f in fields(cls) if FAULT_ENV_PREFIX + f.name.upper() in environ
        })


# -- __TABLES__ ----------------------------------------------------------------------

# BigQuery's legacy per-dataset table list, which dbt-bigquery's catalog (`dbt docs
# generate`) reads beside INFORMATION_SCHEMA.MATERIALIZED_VIEWS, COLUMNS and
# COLUMN_FIELD_PATHS. bqemulator has no __TABLES__ and no COLUMN_FIELD_PATHS, and in a
# query that joins them its MATERIALIZED_VIEWS and COLUMNS come as rows without column
# names (or one is read in place of the other). So these four are
# written into the statement as rows, from the emulator's catalog when the statement
# runs. Types as BigQuery numbers them: 1 table, 2 view, 3 external.
_TABLE_TYPES = {"TABLE": 1, "VIEW": 2, "MATERIALIZED_VIEW": 2, "EXTERNAL": 3}
# (table_id, table_type, creation time in ms, rows, bytes, columns) of each table of a
# dataset; columns: (field path, type, description) of each field, nested ones included.
TableList = list[tuple[str, str, int, int, int, list[tuple[str, str, str | None]]]]

# A reference to a dataset's __TABLES__ or INFORMATION_SCHEMA.MATERIALIZED_VIEWS, with
# any quoting BigQuery takes (each part, the whole path, none), the project optional.
_VIEW = (r"(?P<view>__TABLES__|INFORMATION_SCHEMA\.MATERIALIZED_VIEWS"
         r"|INFORMATION_SCHEMA\.COLUMN_FIELD_PATHS|INFORMATION_SCHEMA\.COLUMNS\b)")
_REFERENCE = re.compile(
    r"`(?P<whole>[^`]+)\." + _VIEW + r"`"
    r"|(?:(?P<project>`[^`]+`|[A-Za-z0-9_-]+)\.)?(?P<dataset>`[^`]+`|[A-Za-z0-9_]+)"
    r"\.`?" + _VIEW.replace("?P<view>", "?P<view2>") + r"`?",
    re.IGNORECASE,
)


def _rows_sql(columns: list[tuple[str, str]], rows: list[list[object]]) -> str:
    """A subquery of ``rows`` with ``columns`` (name, BigQuery type): typed, named."""
    def value(item: object, kind: str) -> str:
        return f"cast({exp.convert(item).sql(dialect='bigquery')} as {kind})"

    structs = [
        "struct(" + ", ".join(f"{value(item, kind)} as {name}"
                              for (name, kind), item in zip(columns, row, strict=True)) + ")"
        for row in rows or [[None] * len(columns)]
    ]
    return f"(select * from unnest([{', '.join(structs)}]){'' if rows else ' where false'})"


def tables_rows_sql(view: str, project: str, dataset: str, tables: TableList) -> str:
    """The rows of ``view`` (__TABLES__, INFORMATION_SCHEMA.MATERIALIZED_VIEWS, COLUMNS
    or COLUMN_FIELD_PATHS) for the ``tables`` of ``project.dataset``."""
    if view.upper() == "__TABLES__":
        return _rows_sql(
            [("project_id", "string"), ("dataset_id", "string"), ("table_id", "string"),
             ("creation_time", "int64"), ("last_modified_time", "int64"),
             ("row_count", "int64"), ("size_bytes", "int64"), ("type", "int64")],
            [[project, dataset, table_id, created, created, row_count, size_bytes,
              _TABLE_TYPES.get(table_type.upper(), 1)]
             for table_id, table_type, created, row_count, size_bytes, _ in tables])
    if view.upper().endswith(".COLUMNS"):
        return _rows_sql(
            [("table_catalog", "string"), ("table_schema", "string"), ("table_name", "string"),
             ("column_name", "string"), ("ordinal_position", "int64"),
             ("is_nullable", "string"), ("data_type", "string"),
             ("is_partitioning_column", "string"), ("clustering_ordinal_position", "int64")],
            [[project, dataset, table_id, path, position, "YES", kind, "NO", None]
             for table_id, *_, columns in tables
             for position, (path, kind, _) in enumerate(
                 [column for column in columns if "." not in column[0]], start=1)])
    if view.upper().endswith("COLUMN_FIELD_PATHS"):
        return _rows_sql(
            [("table_catalog", "string"), ("table_schema", "string"), ("table_name", "string"),
             ("column_name", "string"), ("field_path", "string"), ("data_type", "string"),
             ("description", "string"), ("collation_name", "string"),
             ("rounding_mode", "string")],
            [[project, dataset, table_id, path.split(".")[0], path, kind, description,
              None, None]
             for table_id, *_, columns in tables for path, kind, description in columns])
    return _rows_sql(
        [("table_catalog", "string"), ("table_schema", "string"), ("table_name", "string"),
         ("last_refresh_time", "timestamp"), ("refresh_watermark", "timestamp")],
        [[project, dataset, table_id, None, None]
         for table_id, table_type, *_ in tables if table_type.upper() == "MATERIALIZED_VIEW"])


def with_tables_view(sql: str, default_project: str,
                     list_tables: Callable[[str, str], TableList]) -> str:
    """``sql`` with each ``project.dataset.__TABLES__`` (and the dataset's
    INFORMATION_SCHEMA.MATERIALIZED_VIEWS beside it) replaced by rows of the dataset's
    tables (``list_tables(project, dataset)``); any other SQL is returned as it is."""
    if "__tables__" not in sql.lower():
        return sql

    def rows(match: re.Match[str]) -> str:
        if match["whole"]:
            parts = match["whole"].split(".")
            project, dataset = (parts[0] if len(parts) > 1 else default_project), parts[-1]
        else:
            project = (match["project"] or default_project).strip("`")
            dataset = match["dataset"].strip("`")
        view = match["view"] or match["view2"]
        return tables_rows_sql(view, project, dataset, list_tables(project, dataset))

    return _REFERENCE.sub(rows, sql)


def concurrent_update_message(table: str) -> str:
    """BigQuery's words for a DML statement that lost a race (``table``: project:dataset.t)."""
    return f"Could not serialize access to table {table} due to concurrent update"


def mutated_table(sql: str, default_project: str) -> str | None:
    """``project:dataset.table`` a single MERGE, UPDATE or DELETE statement changes, as
    BigQuery names it in errors; None for anything else (INSERT never conflicts)."""
    if first_keyword(sql) not in ("MERGE", "UPDATE", "DELETE"):
        return None
    try:
        statements = sqlglot.parse(sql, read="bigquery")
    except sqlglot.errors.SqlglotError:
        return None
    if len(statements) != 1 or not isinstance(statements[0], exp.Merge | exp.Update | exp.Delete):
        return None
    table = statements[0].this
    if not isinstance(table, exp.Table):
        return None
    return f"{table.catalog or default_project}:{table.db}.{table.name}"


class DmlQueues:
    """Mutating DML statements (:func:`mutated_table`) on one table run one at a time,
    as BigQuery's do: it queues them, and fails one that ran beside another as a
    concurrent update (the fault mode's part). In DuckDB two MERGEs running at once
    each read the table without the other's rows: both insert where BigQuery would
    have inserted once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tables: dict[str, threading.Lock] = {}

    @contextlib.contextmanager
    def turn(self, table: str | None) -> Iterator[None]:
        """Hold ``table``'s turn for the block (blocks the thread); None: no wait."""
        if table is None:
            yield
            return
        with self._lock:
            queue = self._tables.setdefault(table, threading.Lock())
        with queue:
            yield


# A statement's first word, after any leading comments (dbt's /* {"app": "dbt"...} */).
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/)*([A-Za-z]+)",
                         re.DOTALL)


def first_keyword(sql: str) -> str:
    """The statement's first word, upper case ('' when none): what a check that only
    concerns DDL or DML reads before it parses a 150 KB SELECT."""
    found = _FIRST_WORD.match(sql)
    return found.group(1).upper() if found else ""


def statement_text(sql: str) -> str:
    """``sql`` from its first word on (leading comments and space left out)."""
    found = _FIRST_WORD.match(sql)
    return sql[found.start(1):] if found else ""


def altered_table(sql: str, default_project: str) -> tuple[str, str, str] | None:
    """(project, dataset, table) whose columns a single ``ALTER TABLE ... ADD COLUMN``
    or ``DROP COLUMN`` statement changes; None for anything else."""
    if first_keyword(sql) != "ALTER":
        return None
    try:
        statements = sqlglot.parse(sql, read="bigquery")
    except sqlglot.errors.SqlglotError:
        return None
    if len(statements) != 1 or not isinstance(statements[0], exp.Alter):
        return None
    alter = statements[0]
    actions = alter.args.get("actions") or []
    columns = any(
        isinstance(action, exp.ColumnDef)
        or (isinstance(action, exp.Drop) and str(action.args.get("kind", "")).upper() == "COLUMN")
        for action in actions
    )
    table = alter.this
    if not columns or not isinstance(table, exp.Table) or not table.db:
        return None
    return table.catalog or default_project, table.db, table.name


def is_api_call(path: str) -> bool:
    """Whether ``path`` is a BigQuery REST API call (or upload), which the fault settings
    ``error_rate`` and ``drop_rate`` apply to: not the fault settings' own path."""
    return path.startswith(("/bigquery/v2/", "/upload/bigquery/v2/"))


class DmlConflicts:
    """Which mutating DML statements fail as concurrent updates: a seeded draw per
    statement, in the order they arrive. Thread-safe; counts what it saw."""

    def __init__(self, faults: BigQueryFaults | None = None) -> None:
        self._lock = threading.Lock()
        self.set(faults or BigQueryFaults())

    def set(self, faults: BigQueryFaults) -> None:
        """New settings; the draws start again from the seed and the counts from 0."""
        with self._lock:
            self.faults = faults
            self._random = random.Random(faults.seed)
            self.statements = 0
            self.conflicts = 0
            self.held = 0
            self.api_errors = 0
            self.dropped = 0
            self._calls: collections.Counter[str] = collections.Counter()

    def conflict(self, table: str | None) -> str | None:
        """The error message a statement must fail with, or None to run it; ``table``:
        what it mutates (:func:`mutated_table`; None, never refused)."""
        if table is None:
            return None
        with self._lock:
            self.statements += 1
            if self._random.random() >= self.faults.dml_conflict_rate:
                return None
            self.conflicts += 1
        return concurrent_update_message(table)

    def drop(self, method: str, path: str) -> bool:
        """Whether the connection of a BigQuery API call (``method`` ``path``) is closed
        with no answer (the setting ``drop_rate``; other paths are never dropped). Drawn
        from a hash of the seed, the call and its number among the same calls, so a
        call sent again draws again, whatever other calls come in between."""
        if not self.faults.drop_rate or not is_api_call(path):
            return False
        call = f"{method} {path}"
        with self._lock:
            self._calls[call] += 1
            key = f"{self.faults.seed}:{call}:{self._calls[call]}"
            digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
            if int.from_bytes(digest, "big") / 2**64 >= self.faults.drop_rate:
                return False
            self.dropped += 1
        return True

    def api_error(self, path: str) -> dict[str, Any] | None:
        """The 503 body a BigQuery API call to ``path`` is answered with, or None to serve
        it (the setting ``error_rate``; the fault settings' own path is never refused)."""
        if not is_api_call(path):
            return None
        with self._lock:
            if not self.faults.error_rate or self._random.random() >= self.faults.error_rate:
                return None
            self.api_errors += 1
        message = "Error encountered during execution. Retrying may solve the problem."
        return {"error": {"code": 503, "message": message, "status": "UNAVAILABLE",
                          "errors": [{"message": message, "domain": "global",
                                      "reason": "backendError"}]}}

    def holds(self, sql: str) -> bool:
        """Whether the setting ``hold_queries`` holds a query of text ``sql`` now."""
        marker = self.faults.hold_queries
        return bool(marker) and marker in sql

    def count_held(self) -> None:
        with self._lock:
            self.held += 1

    def state(self) -> dict[str, Any]:
        """The settings and the counts since they were set (what GET /emulator/faults says)."""
        with self._lock:
            return {**asdict(self.faults), "dml_statements": self.statements,
                    "dml_conflicts": self.conflicts, "held_queries": self.held,
                    "api_errors": self.api_errors, "dropped": self.dropped}


# -- DuckDB settings -----------------------------------------------------------------

# GEMINI_BATCH_BQ_MEMORY_LIMIT: DuckDB's memory limit (default 2GB; DuckDB's own default
# is 80% of the machine). Past it DuckDB spills to its temp directory, next to the
# database file (<data dir>/bigquery/bqemulator.duckdb.tmp), instead of growing.
MEMORY_LIMIT_ENV = "GEMINI_BATCH_BQ_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "2GB"


def duckdb_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The DuckDB settings bqemulator_main applies at start (name: value)."""
    environ = os.environ if environ is None else environ
    settings = {"memory_limit": environ.get(MEMORY_LIMIT_ENV, DEFAULT_MEMORY_LIMIT)}
    for name, value in settings.items():
        if "'" in value or "\n" in value:
            raise ValueError(f"DuckDB setting {name}: {value!r} is not a valid value")
    return settings


# -- time travel ---------------------------------------------------------------------

# GEMINI_BATCH_BQ_TIME_TRAVEL=1: keep bqemulator's time travel, which copies a table
# after every INSERT, UPDATE, DELETE, MERGE, load and streaming write into it (a full
# copy per statement: 2.5 s and hundreds of MB per merge into a 1,000,000-row
# responses table). Off by default: FOR SYSTEM_TIME AS OF then reads the table as it is.
TIME_TRAVEL_ENV = "GEMINI_BATCH_BQ_TIME_TRAVEL"


def time_travel_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the local BigQuery keeps a copy of a table after each write into it."""
    environ = os.environ if environ is None else environ
    return environ.get(TIME_TRAVEL_ENV, "").strip().lower() in ("1", "true", "yes")


# -- query results kept ----------------------------------------------------------------


class ResultSizes:
    """The sizes of the query results the local BigQuery keeps, each measured once:
    measuring a table walks its buffers, results pile up by the thousand, and the
    check runs before every statement."""

    def __init__(self) -> None:
        # job id -> (id of its table, bytes): a job's result can be replaced (a load's
        # read-back), and the new one is measured again.
        self._sizes: dict[str, tuple[int, int]] = {}

    def oldest_over(self, results: Sequence[tuple[str, Any]], limit: int,
                    always_kept: int) -> list[str]:
        """The job ids of the oldest ``results`` (job id, Arrow table; oldest first) to
        forget so that the rest come within ``limit`` bytes; the newest ``always_kept``
        stay whatever their size."""
        sizes = {}
        for job_id, table in results:
            known = self._sizes.get(job_id)
            if known is None or known[0] != id(table):
                known = (id(table), int(table.nbytes))
            sizes[job_id] = known
        kept = sum(size for _, size in sizes.values())
        forget = []
        for job_id, _ in results[:max(len(results) - always_kept, 0)]:
            if kept <= limit:
                break
            kept -= sizes.pop(job_id)[1]
            forget.append(job_id)
        self._sizes = sizes  # the results forgotten, here or elsewhere, drop out
        return forget


# -- JSON_TYPE ----------------------------------------------------------------------------

# DuckDB's names of JSON value types where BigQuery's JSON_TYPE says otherwise.
_BIGQUERY_JSON_TYPES = {"varchar": "string", "bigint": "number", "ubigint": "number",
                        "hugeint": "number", "double": "number"}


def bigquery_json_type(duckdb_json_type: exp.Expression) -> exp.Expression:
    """DuckDB's ``JSON_TYPE(x)`` as BigQuery's: ``object``, ``array``, ``string``,
    ``number``, ``boolean`` or ``null`` (DuckDB says ``VARCHAR``, ``UBIGINT``...)."""
    lowered = exp.Lower(this=duckdb_json_type)
    return exp.Case(
        this=lowered,
        ifs=[exp.If(this=exp.Literal.string(duckdb), true=exp.Literal.string(bigquery))
             for duckdb, bigquery in _BIGQUERY_JSON_TYPES.items()],
        default=lowered.copy())


# -- parses kept -----------------------------------------------------------------------

# Statements longer than this are parsed each time (a generated INSERT ... VALUES). A
# batch model's statement carries the request check (about 150 KB of SQL): kept.
PARSE_CACHE_MAX_CHARS = 1_000_000
# The kept statements' total length: a parse takes about 100 bytes per character, so
# this bounds the cache near 400 MB.
PARSE_CACHE_TOTAL_CHARS = 4_000_000


class _Positions(dict):  # type: ignore[type-arg]
    """A node's ``meta`` (its token's line, col, start, end), copied as a new dict
    while its values are plain: sqlglot's tree copy otherwise hands each one to the
    generic ``copy.deepcopy``, which was 85% of the time a copy takes."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Positions:
        if all(type(value) in _PLAIN for value in self.values()):
            return _Positions(self)
        return _Positions({key: copy.deepcopy(value, memo) for key, value in self.items()})


_PLAIN = (str, int, float, bool, type(None))


def _with_fast_positions(tree: Any) -> Any:
    """``tree`` with each plain ``meta`` dict a :class:`_Positions` (in place)."""
    for node in tree.walk():
        meta = node._meta  # the dict behind sqlglot's `meta`, None until used
        if type(meta) is dict and all(type(v) in _PLAIN for v in meta.values()):
            node._meta = _Positions(meta)
    return tree


class _FromCopies:
    """sqlglot's BigQuery parser copies the whole FROM of every SELECT it reads, to name it
    for turning comma joins into UNNEST (``Parser._implicit_unnests_to_explicit``), a name
    it reads only when the SELECT has joins. With subqueries nested n deep a statement's
    parse copies O(n²) nodes: 73% of the parse of the request check (4.4 s of 6). While
    this thread parses, the FROM of a SELECT without joins is copied as a table of the
    same name, which is all that copy is used for."""

    def __init__(self) -> None:
        self._deepcopy: Callable[..., Any] = copy.deepcopy
        self._state = threading.local()

    def install(self) -> None:
        """Take the place of sqlglot's ``Expression.copy`` deepcopy (a module name read at
        each call, compiled or not); once."""
        try:
            from sqlglot.expressions import core
        except ImportError:  # another sqlglot layout: its copies as they are
            return
        if core.deepcopy != self.deepcopy:
            self._deepcopy = core.deepcopy
            core.deepcopy = self.deepcopy

    @contextlib.contextmanager
    def parsing(self) -> Iterator[None]:
        before = getattr(self._state, "parsing", False)
        self._state.parsing = True
        try:
            yield
        finally:
            self._state.parsing = before

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if memo is None and getattr(self._state, "parsing", False) and isinstance(
                value, exp.Expression):
            parent = value.parent
            if (isinstance(parent, exp.From) and value.arg_key == "this"
                    and parent.parent is not None and not parent.parent.args.get("joins")):
                return exp.Table(this=exp.to_identifier(value.alias_or_name or "_"))
        return self._deepcopy(value, memo)


_FROM_COPIES = _FromCopies()


class ParseCache:
    """sqlglot's parses of a statement text, kept (least recently used first out).

    bqemulator parses one statement again in each of its checks and rewriters: about 60
    parses of a 7 KB statement, 70% of its time in the emulator. A kept parse is handed
    out as a copy of its trees: callers rewrite the trees they get. The nodes' token
    positions are copied as plain dicts (:class:`_Positions`), which makes a copy 2.6
    times faster, and a parse does not copy each FROM (:class:`_FromCopies`). A text that
    fails to parse is not kept, so its error comes each time.
    """

    def __init__(self, parse: Callable[..., list[Any]], max_entries: int = 512,
                 max_total_chars: int = PARSE_CACHE_TOTAL_CHARS) -> None:
        self._parse = parse
        self._max_entries = max_entries
        self._max_total_chars = max_total_chars
        self._total_chars = 0
        self._kept: collections.OrderedDict[tuple[Any, ...], list[Any]] = (
            collections.OrderedDict())
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def parse(self, dialect: Any, sql: str, **opts: Any) -> list[Any]:
        """``Dialect.parse``: the trees of ``sql`` in ``dialect``, each a fresh copy."""
        if len(sql) > PARSE_CACHE_MAX_CHARS:
            with _FROM_COPIES.parsing():
                return self._parse(dialect, sql, **opts)
        key = (type(dialect), dialect.version, dialect.normalization_strategy,
               repr(sorted(dialect.settings.items())), repr(sorted(opts.items())), sql)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None:
                self._kept.move_to_end(key)
                self.hits += 1
        if kept is None:
            with _FROM_COPIES.parsing():
                trees = self._parse(dialect, sql, **opts)
            with self._lock:
                self.misses += 1
                if key not in self._kept:
                    self._total_chars += len(sql)
                self._kept[key] = [
                    _with_fast_positions(tree.copy()) if tree is not None else None
                    for tree in trees]
                while (len(self._kept) > self._max_entries
                       or self._total_chars > self._max_total_chars):
                    dropped, _ = self._kept.popitem(last=False)
                    self._total_chars -= len(dropped[-1])
            return trees
        return [tree.copy() if tree is not None else None for tree in kept]

    def install(self, dialect_class: type) -> None:
        """Make ``dialect_class.parse`` (sqlglot's ``Dialect``) go through this cache."""
        cache = self

        def parse(dialect: Any, sql: str, **opts: Any) -> list[Any]:
            return cache.parse(dialect, sql, **opts)

        dialect_class.parse = parse  # type: ignore[attr-defined]
        _FROM_COPIES.install()
