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
"""

from __future__ import annotations

import threading

import duckdb
from bqemulator.api.routes import upload
from bqemulator.cli import main
from bqemulator.domain.errors import InternalError
from bqemulator.storage.engine import DuckDBEngine

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

if __name__ == "__main__":
    main()
