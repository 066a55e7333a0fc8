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

And one addition, a fault mode: ``GET|PUT|PATCH /emulator/faults`` (and
``GEMINI_BATCH_BQ_FAULT_*`` at start) make a share of MERGE, UPDATE and DELETE statements
fail as BigQuery fails one that lost a race (``local/bigquery.py``: ``DmlConflicts``).
"""

from __future__ import annotations

import threading
from typing import Any

import duckdb
from bqemulator import server
from bqemulator.api.routes import jobs as job_routes
from bqemulator.api.routes import upload
from bqemulator.cli import main
from bqemulator.domain.errors import InternalError, InvalidQueryError
from bqemulator.storage.engine import DuckDBEngine
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from gemini_batch.local.bigquery import FAULTS_PATH, BigQueryFaults, DmlConflicts

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

dml_conflicts = DmlConflicts(BigQueryFaults.from_env())
_execute_query_job = job_routes.execute_query_job


async def _execute_with_faults(project_id: str, job_id: str, bq_sql: str, *args: Any,
                               **kwargs: Any) -> Any:
    """Run a query job, unless the fault mode picks it to fail as a concurrent update:
    then it fails before running, as a DML statement on BigQuery changes nothing when it
    fails. The routes turn the error into a job with ``status.errorResult`` (reason
    invalidQuery), which google-cloud-bigquery raises as BadRequest from ``result()``."""
    message = dml_conflicts.conflict(bq_sql, project_id)
    if message is not None:
        raise InvalidQueryError(message)
    return await _execute_query_job(project_id, job_id, bq_sql, *args, **kwargs)


# jobs.insert and jobs.query both call the name in the routes module.
job_routes.execute_query_job = _execute_with_faults

faults_router = APIRouter()


@faults_router.api_route(FAULTS_PATH, methods=["GET", "PUT", "PATCH"])
async def faults(request: Request) -> JSONResponse:
    """GET: the settings and what they did; PUT: replace them (``{}`` turns faults off);
    PATCH: change some. Either starts the draws again from the seed."""
    if request.method != "GET":
        try:
            values = await request.json()
            base = dml_conflicts.faults if request.method == "PATCH" else None
            dml_conflicts.set(BigQueryFaults.from_dict(values, base))
        except (ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(dml_conflicts.state())


_create_app = server.create_app


def _create_app_with_faults(context: Any) -> FastAPI:
    app = _create_app(context)
    app.include_router(faults_router)
    return app


server.create_app = _create_app_with_faults

if __name__ == "__main__":
    main()
