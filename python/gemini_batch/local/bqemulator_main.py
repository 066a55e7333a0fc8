"""Run bqemulator (``python -m gemini_batch.local.bqemulator_main start ...``).

The same as ``python -m bqemulator``, with two fixes for bqemulator 1.4:

- google-cloud-bigquery sends the data part of a multipart load-job upload as
  ``Content-Type: */*``, which BigQuery accepts and bqemulator refuses ("multipart
  upload's second part has unsupported Content-Type '*/*'"). Without the fix
  ``Client.load_table_from_json``, ``load_table_from_dataframe``, small
  ``load_table_from_file`` uploads and ``pandas_gbq.to_gbq`` all fail.
- Every statement runs on one DuckDB connection that the server's request threads
  share, so two requests at once read each other's results: concurrent
  ``tabledata.list`` calls answer 500 ("'NoneType' object has no attribute 'schema'")
  or rows with missing fields, which broke batch jobs reading their inputs side by
  side. Each thread gets a cursor of its own instead (a DuckDB connection to the same
  database: tables, macros and functions are shared; session settings are not, so
  the time zone is set again).

- A statement ran on the server's event loop, inside the ``jobs.insert`` call, however
  long it took: the server answered nothing else meanwhile, a client's 60 s read
  timeout fired, the client sent ``jobs.insert`` again with the same job id, and the
  emulator ran the statement a second time (and a third...), holding each run's
  memory. Now a statement runs on a worker thread of its own; ``jobs.insert`` answers
  within ``INSERT_WAIT_SECONDS`` (the job DONE, or RUNNING as BigQuery says it for a
  long one); ``jobs.get`` says RUNNING until it ends; ``getQueryResults`` waits up to
  its ``timeoutMs`` (at most ``RESULTS_WAIT_SECONDS``) and says ``jobComplete: false``;
  a second ``jobs.insert`` of a job id it knows is refused with 409 "Already Exists",
  as BigQuery does, which the clients (dbt-bigquery, google-cloud-bigquery) answer
  by reading the job they already made. A statement runs once.
- Two MERGEs into one table at once, each on its own cursor, both inserted the row they
  did not find (DuckDB's snapshot isolation), where BigQuery queues mutating DML on a
  table and inserts it once. A MERGE, UPDATE or DELETE now waits for the one before it
  on the same table (``local/bigquery.py``: ``DmlQueues``).
- Every query result was kept in memory for the life of the server; now the oldest go
  once the kept ones pass ``RESULTS_KEPT_BYTES`` (a client reads a result right
  after its job; BigQuery keeps them a day), each measured once (``ResultSizes``).
- A result read in part (``fetchone()``) kept its transaction open until its thread's
  cursor ran another statement, and DuckDB checkpoints only when no other transaction is
  open: the WAL and the tables written since, in memory, grew without end. Each unit of
  work (statement job, HTTP request, sync route, gRPC call) now closes its thread's
  cursor when it ends.
- Storage Read API sessions, each a copy of its table's rows, were kept for the life
  of the server; now one goes once each of its streams has been read to the end.
- DuckDB may use 80% of the machine's memory by default and spills nothing; the
  launcher sets its ``memory_limit`` and a ``temp_directory`` under the data dir
  (``local/bigquery.py``: ``duckdb_settings``), so a big statement spills to disk.
- ``ALTER TABLE ... ADD COLUMN`` / ``DROP COLUMN`` changed the DuckDB table but not the
  catalog: ``tables.get`` kept the old schema, where BigQuery shows the new column at
  once. The catalog's schema is read again from DuckDB after such a statement.

- Every write into a table (DML, load, streaming) made a full copy of it for time
  travel, kept for 7 days: a merge into a 1,000,000-row table took 2.5 s and its copy.
  The copies are made only with ``GEMINI_BATCH_BQ_TIME_TRAVEL=1`` (``local/bigquery.py``:
  ``time_travel_enabled``); without them ``FOR SYSTEM_TIME AS OF`` reads the table as it
  is. The change event (which marks materialized views stale) is still published.

- bqemulator parses a statement's text again in each of its checks and rewriters
  (about 60 times for a 7 KB statement: 70% of its time in the emulator, 0.3 s for the
  rules of a 1,000-row job's answers). The parses are kept by text (``local/bigquery.py``:
  ``ParseCache``) and handed out as copies, their token positions copied as plain dicts.

- A JSON field inside a STRUCT or ARRAY was typed STRING in query results and in a
  CREATE TABLE AS table's schema; both read the DuckDB type now
  (``local/bigquery_types.py``).

And two additions: a fault mode, ``GET|PUT|PATCH /emulator/faults`` (and
``GEMINI_BATCH_BQ_FAULT_*`` at start) make a share of MERGE, UPDATE and DELETE statements
fail as BigQuery fails one that lost a race (``local/bigquery.py``: ``DmlConflicts``);
and BigQuery's ``AI.GENERATE`` (``local/ai_generate``): each statement's calls rewritten
before translation, answered by a DuckDB function with the Vertex emulator's engine,
with ``ai_generate`` faults in ``/emulator/faults`` and its counts at
``GET /emulator/ai_generate``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, ParamSpec, TypeVar

import duckdb
from bqemulator import server
from bqemulator.api.routes import jobs as job_routes
from bqemulator.api.routes import upload
from bqemulator.catalog import ddl_sync
from bqemulator.catalog.etag import generate_etag
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
    duckdb_settings,
    mutated_table,
    time_travel_enabled,
    with_tables_view,
)
from gemini_batch.local.bigquery_types import json_paths, mark_json, mark_json_entries

# One statement is parsed again by each of bqemulator's checks and rewriters.
ParseCache(Dialect.parse).install(Dialect)

# The module reads the tuple at each upload, so extending it here is enough.
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


# FastAPI runs the sync routes (jobs.get, tabledata.list, tables.get...) and
# dependencies on a pool of threads, each with a cursor of its own.
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


BigQueryReadHandler.service = _releasing_handler(BigQueryReadHandler.service)  # type: ignore[method-assign]
BigQueryWriteHandler.service = _releasing_handler(BigQueryWriteHandler.service)  # type: ignore[method-assign]

_apply_session_pragmas = DuckDBEngine._apply_session_pragmas


def _apply_settings(engine: DuckDBEngine) -> None:
    """DuckDB's memory limit and spill directory (``duckdb_settings``), then the engine's own."""
    _apply_session_pragmas(engine)
    for name, value in duckdb_settings().items():
        engine.connection.execute(f"SET {name} = '{value}'")


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


DuckDBEngine.write_lock = _thread_safe_write_lock  # type: ignore[assignment, method-assign]


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

    def work() -> Any:
        with dml_queues.turn(mutates):
            return asyncio.run(run())

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


# New translators (a script's) take it from the registry; the statements' one exists.
translation_rules.register(_SpreadAiGenerate)
executor._translator._rules.append(_SpreadAiGenerate())

# jobs.insert and jobs.query both call the name in the routes module.
job_routes.execute_query_job = _execute_with_faults

_sync_created_table = executor.sync_created_table


def _sync_created_or_altered_table(bq_sql: str, project_id: str, ctx: Any) -> None:
    """After a statement: bqemulator's catalog sync of CREATE TABLE, and of ALTER TABLE
    adding or dropping columns (the new schema, from DuckDB)."""
    _sync_created_table(bq_sql, project_id, ctx)
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


# The statement path calls the name in the executor module.
executor.sync_created_table = _sync_created_or_altered_table

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


job_routes._handle_query_job = _handle_query_job_once

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
    app.include_router(faults_router)
    # Before bqemulator's own getQueryResults route: the first route that matches serves.
    app.include_router(statements_router)
    app.router.routes.insert(0, app.router.routes.pop())
    return app


server.create_app = _create_app_with_faults

if __name__ == "__main__":
    main()
