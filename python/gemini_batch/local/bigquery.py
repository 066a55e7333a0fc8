"""The local BigQuery: the ``bqemulator`` package (BigQuery REST + gRPC API on DuckDB).

bqemulator loads DuckDB's spatial extension at start and refuses to run without it. It
cannot be downloaded here, so it is installed from the ``duckdb-extension-spatial``
package, which ships the build for the pinned ``duckdb``.

bqemulator runs every statement at once and in order; BigQuery does not. Its fault mode
(``DmlConflicts``, served by ``bqemulator_main``) fails a share of mutating DML
statements the way BigQuery fails one that lost a race with another on the same table.
"""

from __future__ import annotations

import os
import random
import sys
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from gemini_batch.errors import LocalStackError


def spatial_extension_file() -> Path:
    """The spatial extension shipped by ``duckdb-extension-spatial`` for this duckdb."""
    try:
        import duckdb
        import duckdb_extension_spatial
    except ImportError as exc:
        raise LocalStackError(
            "The local stack needs the 'local' extra: pip install 'dbt-gemini-batch[local]'"
        ) from exc
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

    def __post_init__(self) -> None:
        if not 0.0 <= self.dml_conflict_rate <= 1.0:
            raise ValueError(
                f"dml_conflict_rate must be between 0 and 1, not {self.dml_conflict_rate}"
            )

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
            typed = {name: (int if name == "seed" else float)(value)
                     for name, value in values.items()}
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


def concurrent_update_message(table: str) -> str:
    """BigQuery's words for a DML statement that lost a race (``table``: project:dataset.t)."""
    return f"Could not serialize access to table {table} due to concurrent update"


def mutated_table(sql: str, default_project: str) -> str | None:
    """``project:dataset.table`` a single MERGE, UPDATE or DELETE statement changes, as
    BigQuery names it in errors; None for anything else (INSERT never conflicts)."""
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

    def conflict(self, sql: str, default_project: str) -> str | None:
        """The error message ``sql`` must fail with, or None to run it."""
        table = mutated_table(sql, default_project)
        if table is None:
            return None
        with self._lock:
            self.statements += 1
            if self._random.random() >= self.faults.dml_conflict_rate:
                return None
            self.conflicts += 1
        return concurrent_update_message(table)

    def state(self) -> dict[str, Any]:
        """The settings and the counts since they were set (what GET /emulator/faults says)."""
        with self._lock:
            return {**asdict(self.faults), "dml_statements": self.statements,
                    "dml_conflicts": self.conflicts}


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
