"""Run bqemulator (``python -m gemini_batch.local.bqemulator_main start ...``).

The same as ``python -m bqemulator``, with shims for bqemulator 1.4 and two additions: a
fault mode (``GET|PUT|PATCH /emulator/faults``: a share of MERGE, UPDATE and DELETE
statements fail as on BigQuery when they lose a race), and BigQuery's ``AI.GENERATE``
(``local/ai_generate``: the calls rewritten before translation, answered by the Vertex
emulator's engine; its faults in ``/emulator/faults``, its counts at
``GET /emulator/ai_generate``); the fault setting ``hold_queries`` holds the queries whose
text has a marker until it changes (tests stop a dbt stage at a moment they choose).
Each shim replaces a bqemulator name when this module is
imported, with its reason in one line beside it; what broke, what BigQuery does instead
and what still differs: docs/local-stack.md, "Where the emulator differs from BigQuery".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

import duckdb
from bqemulator import server
from bqemulator.api.routes import jobs as job_routes
from bqemulator.api.routes import tables as table_routes
from bqemulator.api.routes import upload
from bqemulator.catalog import ddl_sync
from bqemulator.catalog.duckdb_repository import DuckDBCatalogRepository
from bqemulator.catalog.etag import generate_etag
from bqemulator.catalog.memory_repository import MemoryCatalogRepository
from bqemulator.catalog.models import JobMeta, SnapshotMeta
from bqemulator.cli import main
from bqemulator.domain.errors import (
    AlreadyExistsError,
    DomainError,
    InternalError,
    InvalidQueryError,
)
from bqemulator.domain.events import TableDataChanged
from bqemulator.grpc_api.read_servicer import BigQueryReadHandler
from bqemulator.grpc_api.write_servicer import BigQueryWriteHandler
from bqemulator.jobs import executor
from bqemulator.sql import rules as translation_rules
from bqemulator.sql.rules import datetime_semantics
from bqemulator.storage.engine import DuckDBEngine
from bqemulator.storage.sql_identifiers import quoted_table_ref
from bqemulator.streaming import read_session
from bqemulator.versioning.snapshots import SnapshotManager
from fastapi import APIRouter, FastAPI, Query, Request, routing
from fastapi.dependencies import utils as dependency_utils
from fastapi.responses import JSONResponse
from google.cloud.bigquery_storage_v1 import types
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect

from gemini_batch.local import bigquery_expiry as expiry
from gemini_batch.local.ai_generate import sql as ai_generate_sql
from gemini_batch.local.ai_generate.rows import AiGenerate
from gemini_batch.local.bigquery import (
    FAULTS_PATH,
    BigQueryFaults,
    DmlConflicts,
    DmlQueues,
    ParseCache,
    ResultSizes,
    TableList,
    altered_table,
    bigquery_json_type,
    duckdb_settings,
    first_keyword,
    is_job_call,
    job_location,
    mutated_table,
    time_travel_enabled,
    with_tables_view,
)
from gemini_batch.local.bigquery_types import json_paths, mark_json, mark_json_entries

# Shim: each check and rewriter parsed a statement again (~60 times): parses kept by text.
ParseCache(Dialect.parse).install(Dialect)

# Shim: a multipart load's data part (google-cloud-bigquery's */*) was refused. Read per upload.
upload._PERMITTED_MEDIA_CONTENT_TYPES = (*upload._PERMITTED_MEDIA_CONTENT_TYPES, "*/*")

_thread = threading.local()


def _thread_connection(engine: DuckDBEngine) -> duckdb.DuckDBPyConnection:
    """The calling thread's cursor on the engine's database."""
    shared = engine._connection
    if shared is None:
        raise InternalError("DuckDBEngine not started")
    cached = getattr(_thread, "cursor", None)
    if cached is None or cached[0] is not shared:  # first use, or the engine restarted
        cursor = shared.cursor()
        cursor.execute("SET TimeZone = 'UTC'")  # as DuckDBEngine.start sets it
        cached = _thread.cursor = (shared, cursor)
    return cached[1]


# Shim: threads shared one DuckDB connection and read each other's rows: a cursor per thread.
DuckDBEngine.connection = property(_thread_connection)  # type: ignore[assignment, method-assign]


def _release_thread_connection() -> None:
    """Close the calling thread's cursor (the next statement opens another).

    A SELECT whose rows were not all fetched (``fetchone()``, ``description``) keeps its
    transaction open until its cursor runs another statement, and DuckDB checkpoints
    only when no other transaction is open: one idle thread's cursor was enough to stop
    every checkpoint, and the WAL and the tables written since the last checkpoint
    (held in memory) grew with every statement, to 650 MB for 100,000 requests.
    """
    cached = getattr(_thread, "cursor", None)
    _thread.cursor = None
    if cached is not None:
        cached[1].close()


_P = ParamSpec("_P")
_T = TypeVar("_T")


def _releasing(work: Callable[_P, _T]) -> Callable[_P, _T]:
    """``work`` closing its thread's cursor when it returns: a unit of work (a statement
    job, a request, an RPC) leaves no transaction open behind it."""

    @functools.wraps(work)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return work(*args, **kwargs)
        finally:
            _release_thread_connection()

    return run


# Shim: a half-read result's open transaction stopped checkpoints: each unit of work closes.
_run_in_threadpool = routing.run_in_threadpool


async def _run_in_threadpool_releasing(work: Callable[..., _T], *args: Any, **kwargs: Any
                                       ) -> _T:
    return await _run_in_threadpool(_releasing(work), *args, **kwargs)


routing.run_in_threadpool = _run_in_threadpool_releasing  # type: ignore[assignment]
dependency_utils.run_in_threadpool = _run_in_threadpool_releasing  # type: ignore[assignment]


class _ReleaseAfterRequest:
    """ASGI middleware: the async routes run on the server's event loop thread; its
    cursor is closed after each request."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            _release_thread_connection()


# The location the jobs.insert / jobs.query call being served asks for (None: none named).
_job_location: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "job_location", default=None)


class _JobLocation:
    """ASGI middleware: reads the location a job call's body names into ``_job_location``
    (the body is handed on to the route unchanged)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not is_job_call(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        messages = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
        token = _job_location.set(job_location(body))
        replay = iter(messages)

        async def replayed() -> Any:
            return next(replay, None) or await receive()

        try:
            await self.app(scope, replayed, send)
        finally:
            _job_location.reset(token)


class _ApiErrors:
    """ASGI middleware: a share of BigQuery API calls answered 503 backendError before
    they do anything (the fault setting ``error_rate``)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        refused = dml_conflicts.api_error(scope["path"]) if scope["type"] == "http" else None
        if refused is None:
            await self.app(scope, receive, send)
            return
        await JSONResponse(refused, status_code=503)(scope, receive, send)


class _DroppedConnections:
    """ASGI wrapper of the whole app: a share of BigQuery API calls have their connection
    closed with no answer, before they do anything (the fault setting ``drop_rate``).

    Outside Starlette's own middleware, whose error handler answers 500 to whatever goes
    wrong, and uvicorn answers 500 too to an app that raises or returns without an
    answer: only closing the connection itself gives the client no answer at all. The
    request is read whole first, so the client sees the connection closed while it waits
    for its answer (requests: ConnectionError "Remote end closed connection without
    response"; httpx: RemoteProtocolError "Server disconnected without sending a
    response"), as when BigQuery's front end drops one.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not dml_conflicts.drop(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        # ASGI has no message that closes a connection unanswered; uvicorn's ``send`` is
        # a method of the connection's request cycle, which holds its transport.
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is None:
            raise RuntimeError("drop_rate needs uvicorn's transport to close a connection")
        message = await receive()
        while message["type"] == "http.request" and message.get("more_body"):
            message = await receive()
        transport.close()
        # Returned once uvicorn saw the connection lost, it answers nothing (no 500).
        while message["type"] != "http.disconnect":
            message = await receive()


_ensure_dataset = ddl_sync._ensure_dataset


def _ensure_dataset_where_the_job_runs(project_id: str, dataset_id: str, ctx: Any) -> None:
    """bqemulator's registration of a dataset made by SQL, in the job's location."""
    if ctx.catalog.get_dataset(project_id, dataset_id) is not None:
        return
    _ensure_dataset(project_id, dataset_id, ctx)
    location = _job_location.get()
    meta = ctx.catalog.get_dataset(project_id, dataset_id)
    if location and meta is not None and meta.location != location:
        ctx.catalog.update_dataset(meta.model_copy(update={"location": location}))


# Shim: a dataset made by SQL was made in US, not where the job runs (as dbt's location).
ddl_sync._ensure_dataset = _ensure_dataset_where_the_job_runs


def _releasing_handler(service: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A gRPC generic handler's ``service`` whose methods close their thread's cursor."""

    @functools.wraps(service)
    def wrapped(self: Any, details: Any) -> Any:
        handler = service(self, details)
        if handler is None:
            return None
        behaviours = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
        return handler._replace(**{name: _releasing(getattr(handler, name))
                                   for name in behaviours if getattr(handler, name)})

    return wrapped


# Shim: the gRPC calls close their thread's cursor too (checkpoints, as above).
BigQueryReadHandler.service = _releasing_handler(BigQueryReadHandler.service)  # type: ignore[method-assign]
BigQueryWriteHandler.service = _releasing_handler(BigQueryWriteHandler.service)  # type: ignore[method-assign]

_apply_session_pragmas = DuckDBEngine._apply_session_pragmas


def _apply_settings(engine: DuckDBEngine) -> None:
    """DuckDB's memory limit and spill directory (``duckdb_settings``), then the engine's own."""
    _apply_session_pragmas(engine)
    for name, value in duckdb_settings().items():
        engine.connection.execute(f"SET {name} = '{value}'")


# Shim: DuckDB took up to 80% of the machine and spilled nothing; a limit and a spill dir.
DuckDBEngine._apply_session_pragmas = _apply_settings  # type: ignore[method-assign]

# -- Storage Read API sessions ------------------------------------------------------

_read_rows = BigQueryReadHandler._handle_read_rows
_streams_read: dict[str, set[str]] = {}
_streams_read_lock = threading.Lock()


def _read_rows_then_forget(self: BigQueryReadHandler, request_bytes: bytes, context: Any
                           ) -> Iterator[bytes]:
    """ReadRows; once each stream of a session has been sent to its end, the session
    goes. A session holds a copy of its table's rows (in Arrow), and bqemulator kept
    every one for the server's life: each Vertex job's input table, again and again."""
    yield from _read_rows(self, request_bytes, context)
    stream = types.ReadRowsRequest.deserialize(request_bytes).read_stream
    session_name = "/".join(stream.split("/")[:-2])
    with _streams_read_lock:
        session = read_session.get_session(session_name)
        if session is None:
            return
        read = _streams_read.setdefault(session_name, set())
        read.add(stream)
        if read >= {each.name for each in session.streams}:
            read_session._SESSIONS.pop(session_name, None)
            del _streams_read[session_name]


# Shim: Storage Read sessions (a copy of the table each) were kept for the server's life.
BigQueryReadHandler._handle_read_rows = _read_rows_then_forget  # type: ignore[method-assign]

# -- statements off the event loop, once each ---------------------------------------

# jobs.insert answers within this (BigQuery: at once); GEMINI_BATCH_BQ_INSERT_WAIT_SECONDS.
INSERT_WAIT_SECONDS = float(os.environ.get("GEMINI_BATCH_BQ_INSERT_WAIT_SECONDS", "5"))
RESULTS_WAIT_SECONDS = 10.0  # the longest a getQueryResults call waits
RESULTS_KEPT_BYTES = 512 * 2**20  # query results kept for clients to read
_RESULTS_ALWAYS_KEPT = 16  # the newest ones, whatever their size

_workers = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="statement")
_write_lock = threading.Lock()


@contextlib.asynccontextmanager
async def _thread_safe_write_lock(self: DuckDBEngine) -> AsyncIterator[None]:
    """The engine's write lock, held across the event loops of the worker threads (an
    asyncio.Lock belongs to one loop)."""
    while not _write_lock.acquire(blocking=False):
        await asyncio.sleep(0.005)
    try:
        yield
    finally:
        _write_lock.release()


# Shim: statements run on worker threads (below), each its own event loop: one lock for all.
DuckDBEngine.write_lock = _thread_safe_write_lock  # type: ignore[assignment, method-assign]


# Shim: every query result was kept in memory for the server's life (_trim_results).
_result_sizes = ResultSizes()


def _trim_results() -> None:
    """Forget the oldest query results once the kept ones pass RESULTS_KEPT_BYTES."""
    # A copy first (one C call, atomic under the GIL): worker threads add results.
    results = list(executor.JOB_RESULTS.items())
    for job_id in _result_sizes.oldest_over(results, RESULTS_KEPT_BYTES, _RESULTS_ALWAYS_KEPT):
        executor.JOB_RESULTS.pop(job_id, None)
        executor.JOB_SCHEMAS.pop(job_id, None)


async def _on_a_worker(run: Callable[[], Coroutine[Any, Any, Any]],
                       mutates: str | None = None) -> Any:
    """Run the coroutine ``run()`` makes on a worker thread, in an event loop of its
    own: DuckDB holds the thread for the whole statement, and the server's loop stays
    free to answer other calls (jobs.get, tabledata.list...). A statement that
    ``mutates`` a table waits there for the ones before it on that table."""
    _trim_results()
    loop = asyncio.get_running_loop()
    call = contextvars.copy_context()  # the call's context (its job location) goes along

    def work() -> Any:
        with dml_queues.turn(mutates):
            return call.run(asyncio.run, run())

    return await loop.run_in_executor(_workers, _releasing(work))

dml_conflicts = DmlConflicts(BigQueryFaults.from_env())
dml_queues = DmlQueues()
_execute_query_job = job_routes.execute_query_job


def _tables_of(ctx: Any, project: str, dataset: str) -> TableList:
    """The tables of a dataset as __TABLES__ lists them (``with_tables_view``)."""
    return [
        (table.table_id, table.table_type, int(table.creation_time.timestamp() * 1000),
         table.num_rows, table.num_bytes, list(_field_paths(table.schema_.fields)))
        for table in ctx.catalog.list_tables(project, dataset)
    ]


def _field_paths(fields: Any, prefix: str = "") -> Any:
    """(path, type, description) of each field, nested STRUCT fields after their parent."""
    for field in fields:
        path = f"{prefix}{field.name}"
        kind = f"ARRAY<{field.type}>" if field.mode == "REPEATED" else field.type
        yield path, kind, field.description
        yield from _field_paths(field.fields, f"{path}.")


async def _execute_with_faults(project_id: str, job_id: str, bq_sql: str, *args: Any,
                               **kwargs: Any) -> Any:
    """Run a query job, unless the fault mode picks it to fail as a concurrent update:
    then it fails before running, as a DML statement on BigQuery changes nothing when it
    fails. The routes turn the error into a job with ``status.errorResult`` (reason
    invalidQuery), which google-cloud-bigquery raises as BadRequest from ``result()``."""
    if dml_conflicts.holds(bq_sql):
        dml_conflicts.count_held()
        while dml_conflicts.holds(bq_sql):  # until the test changes the setting
            await asyncio.sleep(0.05)
    bq_sql = with_tables_view(bq_sql, project_id, functools.partial(_tables_of, args[1]))
    bq_sql = _with_ai_generate(bq_sql, args[1])
    mutates = mutated_table(bq_sql, project_id)
    message = dml_conflicts.conflict(mutates)
    if message is not None:
        raise InvalidQueryError(message)
    return await _on_a_worker(
        lambda: _execute_query_job(project_id, job_id, bq_sql, *args, **kwargs), mutates)


ai_generate = AiGenerate()


def _with_ai_generate(bq_sql: str, ctx: Any) -> str:
    """``bq_sql`` with its AI.GENERATE calls rewritten into calls of DuckDB functions
    (``local/ai_generate``), registered on the engine's own connection; a call BigQuery
    refuses fails the query as BigQuery fails it."""
    try:
        rewritten = ai_generate_sql.rewrite(bq_sql)
    except ai_generate_sql.AiGenerateError as exc:
        raise InvalidQueryError(str(exc)) from None
    if rewritten is None:
        return bq_sql
    ai_generate.register(ctx.engine._connection, rewritten.functions)
    if rewritten.calls:
        ai_generate.counted_statement()
    return rewritten.sql


class _SpreadAiGenerate(translation_rules.TranslationRule):
    """``AI.GENERATE(...).*`` (rewritten as ``SPREAD(<call>)``) in DuckDB: the STRUCT's
    fields as columns with one call per row; DuckDB's ``UNNEST(<call>)`` makes the call
    again for each field."""

    name = ai_generate_sql.SPREAD.upper()

    def applies_to(self, node: exp.Expression) -> bool:
        return isinstance(node, exp.Anonymous) and node.name.upper() == self.name

    def rewrite(self, node: exp.Expression) -> exp.Expression:
        return exp.Explode(
            this=exp.Array(expressions=[node.expressions[0].copy()]),
            expressions=[exp.PropertyEQ(this=exp.to_identifier("max_depth"),
                                        expression=exp.Literal.number(2))])


# Addition: AI.GENERATE(...).* as columns, one call per row (a script's translators too).
translation_rules.register(_SpreadAiGenerate)
executor._translator._rules.append(_SpreadAiGenerate())

# Fix: JSON_TYPE said DuckDB's type names (varchar, ubigint...) for strings and numbers.
datetime_semantics.JsonTypeLowerRule.rewrite = (  # type: ignore[method-assign]
    lambda self, node: bigquery_json_type(node.copy()))

# Shim: statements stalled the event loop: on a worker, DML per table in turn, AI.GENERATE.
job_routes.execute_query_job = _execute_with_faults

_sync_created_table = executor.sync_created_table


def _sync_created_or_altered_table(bq_sql: str, project_id: str, ctx: Any) -> None:
    """After a statement: bqemulator's catalog sync of CREATE TABLE, and of ALTER TABLE
    adding or dropping columns (the new schema, from DuckDB)."""
    _sync_created_table(bq_sql, project_id, ctx)
    _set_expiration(bq_sql, project_id, ctx)
    target = altered_table(bq_sql, project_id)
    if target is None:
        return
    meta = ctx.catalog.get_table(*target)
    if meta is None:
        return
    now = ctx.clock.now()
    ctx.catalog.update_table(meta.model_copy(update={
        "schema_": ddl_sync._introspect_schema(*target, ctx),
        "last_modified_time": now,
        "etag": generate_etag(*target, meta.table_type, str(now)),
    }))


# Shim: ALTER TABLE ADD/DROP COLUMN left tables.get with the old schema: read it again.
executor.sync_created_table = _sync_created_or_altered_table


def _for_ddl_only(sync: Callable[[str, str, Any], None]) -> Callable[[str, str, Any], None]:
    """A catalog sync that reads only CREATE, ALTER and DROP statements, not called for
    others: each parsed the statement (a copy of a 150 KB request check, every time)."""

    @functools.wraps(sync)
    def wrapped(bq_sql: str, project_id: str, ctx: Any) -> None:
        if first_keyword(bq_sql) in ("CREATE", "ALTER", "DROP"):
            sync(bq_sql, project_id, ctx)

    return wrapped


# Shim: the catalog syncs after each statement parsed it, whatever it was.
for _sync in ("sync_created_schema", "sync_created_table", "sync_created_view",
              "sync_dropped_object", "assert_drop_schema_allowed"):
    setattr(executor, _sync, _for_ddl_only(getattr(executor, _sync)))

# -- Table expiration (local/bigquery_expiry.py) --------------------------------------


def _set_expiration(bq_sql: str, project_id: str, ctx: Any) -> None:
    """CREATE TABLE / ALTER TABLE ... SET OPTIONS (expiration_timestamp = ...)."""
    setting = expiry.statement_expiration(bq_sql, project_id, ctx.clock.now())
    meta = ctx.catalog.get_table(*setting.table) if setting else None
    if not setting or meta is None:
        return
    expires = setting.expires
    if setting.dataset_default:
        dataset = ctx.catalog.get_dataset(*setting.table[:2])
        expires = expiry.with_default(
            meta.last_modified_time, dataset.default_table_expiration_ms if dataset else None)
    ctx.catalog.update_table(meta.model_copy(update={"expiration_time": expires}))


_table_to_rest = table_routes._table_to_rest
_rest_to_table_meta = table_routes._rest_to_table_meta


def _table_to_rest_with_expiry(table: Any) -> dict[str, Any]:
    body = _table_to_rest(table)
    if table.expiration_time is not None:
        body[expiry.REST_FIELD] = expiry.to_rest(table.expiration_time)
    return body


def _rest_to_table_meta_with_expiry(project_id: str, dataset_id: str, body: dict[str, Any],
                                    clock: Any, existing: Any = None) -> Any:
    meta = _rest_to_table_meta(project_id, dataset_id, body, clock, existing)
    if expiry.REST_FIELD in body:
        expires = expiry.from_rest(body[expiry.REST_FIELD])
    elif existing is not None:
        expires = existing.expiration_time
    else:  # a new table: its dataset's default, set where the catalog makes it
        return meta
    return meta.model_copy(update={"expiration_time": expires})


def _created_with_default(create: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A new table without an expiration of its own takes its dataset's default."""

    @functools.wraps(create)
    def wrapped(self: Any, table: Any) -> Any:
        if table.expiration_time is None:
            dataset = self.get_dataset(table.project_id, table.dataset_id)
            expires = expiry.with_default(
                table.creation_time, dataset.default_table_expiration_ms if dataset else None)
            if expires is not None:
                table = table.model_copy(update={"expiration_time": expires})
        return create(self, table)

    return wrapped


# Shim: tables.get reported no expirationTime, and tables.patch/update dropped it.
table_routes._table_to_rest = _table_to_rest_with_expiry
table_routes._rest_to_table_meta = _rest_to_table_meta_with_expiry
# Shim: a new table ignored its dataset's defaultTableExpirationMs.
for _repository in (DuckDBCatalogRepository, MemoryCatalogRepository):
    _repository.create_table = _created_with_default(_repository.create_table)

# -- JSON nested in STRUCT and ARRAY (local/bigquery_types.py) ------------------------

_build_response_schema = executor.build_response_schema


def _response_schema_with_nested_json(arrow_schema: Any) -> list[dict[str, Any]]:
    """A query result's schema, JSON fields inside STRUCTs and ARRAYs typed JSON (each
    top-level column carries its DuckDB type: ``bqemu.duckdb_type``)."""
    entries = _build_response_schema(arrow_schema)
    paths = []
    for field in arrow_schema:
        duckdb_type = (field.metadata or {}).get(b"bqemu.duckdb_type", b"")
        if b"JSON" in duckdb_type.upper():
            paths += [(field.name, *path) for path in json_paths(duckdb_type.decode()) if path]
    return mark_json_entries(entries, paths) if paths else entries


# Shim: JSON inside a STRUCT or an ARRAY of a query result was typed STRING.
executor.build_response_schema = _response_schema_with_nested_json
job_routes.build_response_schema = _response_schema_with_nested_json

_introspect_schema = ddl_sync._introspect_schema


def _introspect_schema_with_json(project_id: str, dataset_id: str, table_id: str, ctx: Any
                                 ) -> Any:
    """A table's schema read from DuckDB, its JSON fields inside STRUCTs and ARRAYs typed
    JSON (Arrow, which the schema is read from, has them as strings). Top-level JSON
    columns are left as bqemulator types them (docs/local-stack.md)."""
    schema = _introspect_schema(project_id, dataset_id, table_id, ctx)
    described = ctx.engine.execute(
        f"DESCRIBE {quoted_table_ref(project_id, dataset_id, table_id)}").fetchall()
    paths = [(name, *path) for name, kind, *_ in described if "JSON" in str(kind).upper()
             for path in json_paths(str(kind)) if path]
    if not paths:
        return schema
    fields = mark_json(
        list(schema.fields), paths, name=lambda field: field.name,
        children=lambda field: list(field.fields),
        as_json=lambda field, inner: field.model_copy(
            update={"type": "JSON"} if inner is None else {"fields": tuple(inner)}))
    return schema.model_copy(update={"fields": tuple(fields)})


# Shim: JSON inside a STRUCT or an ARRAY of a CREATE TABLE AS table was typed STRING.
ddl_sync._introspect_schema = _introspect_schema_with_json

_record_change = SnapshotManager.record_change


def _record_change_without_a_copy(self: SnapshotManager, project_id: str, dataset_id: str,
                                  table_id: str) -> SnapshotMeta | None:
    """After a write into a table: its time-travel copy only when time travel is on; the
    change event (materialized views go stale) always."""
    if time_travel_enabled():
        return _record_change(self, project_id, dataset_id, table_id)
    self._events.publish(TableDataChanged(project_id, dataset_id, table_id))
    return None


# Shim: each write copied the whole table for time travel (2.5 s per merge into 1M rows).
SnapshotManager.record_change = _record_change_without_a_copy  # type: ignore[method-assign]

# Query jobs inserted and still running (or ended, until their end is in the catalog).
_running: dict[tuple[str, str], asyncio.Task[Any]] = {}
_handle_query_job = job_routes._handle_query_job


async def _handle_query_job_once(
    project_id: str, job_id: str, config: dict[str, Any], *, dry_run: bool, ctx: Any,
    **kwargs: Any,
) -> Any:
    """jobs.insert of a query: refused (409) for a job id already known; the job DONE
    if it ends within INSERT_WAIT_SECONDS, else RUNNING (its end reaches the catalog
    when it comes)."""
    handle = functools.partial(_handle_query_job, project_id, job_id, config,
                               dry_run=dry_run, ctx=ctx, **kwargs)
    if dry_run:
        return await handle()
    key = (project_id, job_id)
    if key in _running or ctx.catalog.get_job(project_id, job_id) is not None:
        raise AlreadyExistsError(f"Already Exists: Job {project_id}:US.{job_id}")
    task = asyncio.ensure_future(handle())
    _running[key] = task
    done, _ = await asyncio.wait({task}, timeout=INSERT_WAIT_SECONDS)
    if done:
        _running.pop(key, None)
        return task.result()
    now = ctx.clock.now()
    running = JobMeta(
        project_id=project_id, job_id=job_id, job_type="QUERY", state="RUNNING",
        configuration=config, creation_time=now, start_time=now,
        etag=generate_etag(project_id, job_id, f"{now}-running"),
    )
    # After insert_job has written the RUNNING job (it does so as this returns, without
    # yielding): the end is written when the statement ends.
    asyncio.get_running_loop().call_soon(
        task.add_done_callback, functools.partial(_record_end, ctx, key, config))
    return running


def _record_end(ctx: Any, key: tuple[str, str], config: dict[str, Any],
                task: asyncio.Task[Any]) -> None:
    project_id, job_id = key
    try:
        meta = task.result()
    except DomainError as exc:
        meta = job_routes._failed_job_meta(
            project_id=project_id, job_id=job_id, job_type="QUERY", config=config,
            error_result={"reason": exc.bq_reason, "message": exc.message},
            now=ctx.clock.now())
    except Exception as exc:  # noqa: BLE001 - the job's error, as BigQuery reports one
        meta = job_routes._failed_job_meta(
            project_id=project_id, job_id=job_id, job_type="QUERY", config=config,
            error_result={"reason": "internalError", "message": str(exc)},
            now=ctx.clock.now())
    ctx.catalog.upsert_job(meta)
    _running.pop(key, None)


# Shim: jobs.insert waited for the statement; a repeated job id ran it again (now 409).
job_routes._handle_query_job = _handle_query_job_once

# Shim: getQueryResults waited for the statement whatever its timeoutMs.
statements_router = APIRouter(prefix="/bigquery/v2")


@statements_router.get("/projects/{project_id}/queries/{job_id}")
async def get_query_results(
    project_id: str,
    job_id: str,
    ctx: job_routes._Ctx,
    maxResults: int = Query(default=10000, alias="maxResults"),  # noqa: N803
    startIndex: int = Query(default=0, alias="startIndex"),  # noqa: N803
    pageToken: str | None = Query(default=None, alias="pageToken"),  # noqa: N803
    timeoutMs: int = Query(default=10000, alias="timeoutMs"),  # noqa: N803
) -> Any:
    """getQueryResults: waits up to ``timeoutMs`` for a running job, then says
    ``jobComplete: false`` (the client asks again); an ended job with an error says
    so (the client reads the error from jobs.get)."""
    task = _running.get((project_id, job_id))
    if task is not None:
        await asyncio.wait({task}, timeout=min(timeoutMs / 1000, RESULTS_WAIT_SECONDS))
        if (project_id, job_id) in _running:  # its end is not in the catalog yet
            return {"kind": "bigquery#getQueryResultsResponse",
                    "jobReference": {"projectId": project_id, "jobId": job_id},
                    "jobComplete": False}
    if job_id not in executor.JOB_RESULTS:
        meta = ctx.catalog.get_job(project_id, job_id)
        if meta is not None and meta.error_result:
            return {"kind": "bigquery#getQueryResultsResponse",
                    "jobReference": {"projectId": project_id, "jobId": job_id},
                    "jobComplete": True, "errors": [meta.error_result]}
    return job_routes.get_query_results(project_id, job_id, ctx, maxResults, startIndex,
                                        pageToken)

faults_router = APIRouter()
AI_GENERATE_PATH = "/emulator/ai_generate"


@faults_router.api_route(FAULTS_PATH, methods=["GET", "PUT", "PATCH"])
async def faults(request: Request) -> JSONResponse:
    """GET: the settings and what they did; PUT: replace them (``{}`` turns faults off);
    PATCH: change some. Either starts the draws again from the seed."""
    if request.method != "GET":
        try:
            values = dict(await request.json())
            replace = request.method == "PUT"
            ai_values = values.pop("ai_generate", {} if replace else None)
            base = None if replace else dml_conflicts.faults
            dml = BigQueryFaults.from_dict(values, base)
            if ai_values is not None:
                ai_generate.set_faults(dict(ai_values), replace=replace)
            dml_conflicts.set(dml)
        except (ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse({**dml_conflicts.state(), "ai_generate": ai_generate.fault_settings()})


@faults_router.get(AI_GENERATE_PATH)
async def ai_generate_stats() -> JSONResponse:
    """What AI.GENERATE answered since the server started."""
    return JSONResponse(ai_generate.stats())


_create_app = server.create_app


def _create_app_with_faults(context: Any) -> FastAPI:
    app = _create_app(context)
    app.add_middleware(_ReleaseAfterRequest)
    app.add_middleware(_JobLocation)
    app.add_middleware(_ApiErrors)
    inner = app.build_middleware_stack
    app.build_middleware_stack = lambda: _DroppedConnections(inner())  # type: ignore[method-assign]
    app.include_router(faults_router)
    # Before bqemulator's own getQueryResults route: the first route that matches serves.
    app.include_router(statements_router)
    app.router.routes.insert(0, app.router.routes.pop())
    return app


# Shim: the app with the cursor-closing middleware, getQueryResults and the fault routes
# (API calls answered 503 or dropped unanswered).
server.create_app = _create_app_with_faults

if __name__ == "__main__":
    main()
