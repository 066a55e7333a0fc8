"""The local BigQuery: the ``bqemulator`` package (BigQuery REST + gRPC API on DuckDB).

bqemulator loads DuckDB's spatial extension at start and refuses to run without it. It
cannot be downloaded here, so it is installed from the ``duckdb-extension-spatial``
package, which ships the build for the pinned ``duckdb``.
"""

from __future__ import annotations

import sys
from pathlib import Path

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
