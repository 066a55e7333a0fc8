"""`gemini-batch local start|status|stop`: the local stack."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gemini_batch.cli.app import _Group, console, err_console, main
from gemini_batch.exit_codes import ExitCode


@main.group(cls=_Group)
def local() -> None:
    """The local stack: BigQuery and Vertex AI emulators on 127.0.0.1."""


_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".gemini_batch/local"),
    show_default=True,
    envvar="GEMINI_BATCH_LOCAL_DIR",
    help="Where the emulators keep their data, logs and stack.json.",
)


@local.command("start")
@_data_dir_option
@click.option("--bigquery-port", type=int, default=None, help="Default: a free port.")
@click.option("--vertex-port", type=int, default=None, help="Default: a free port.")
@click.option("--storage-port", type=int, default=None, help="Default: a free port.")
@click.option(
    "--engine",
    type=click.Choice(["simulate", "openai"]),
    default="simulate",
    show_default=True,
    envvar="GEMINI_BATCH_ENGINE",
    help="How the Vertex emulator answers: deterministic simulation, or an "
    "OpenAI-compatible server (see GEMINI_BATCH_OPENAI_BASE_URL).",
)
@click.option("--project", default="local-project", show_default=True)
def local_start(
    data_dir: Path,
    bigquery_port: int | None,
    vertex_port: int | None,
    storage_port: int | None,
    engine: str,
    project: str,
) -> None:
    """Start the emulators (BigQuery, Vertex AI, Cloud Storage) and wait until they answer."""
    from gemini_batch.local.stack import start_stack

    with console.status("Starting the local stack (BigQuery, Vertex AI, Cloud Storage)..."):
        state, started = start_stack(
            data_dir,
            project=project,
            bigquery_port=bigquery_port,
            vertex_port=vertex_port,
            storage_port=storage_port,
            engine=engine,
        )
    verb = "Started" if started else "Already running"
    err_console.print(
        f"{verb}: BigQuery emulator (pid {state.bigquery_pid}), Vertex AI emulator "
        f"(pid {state.vertex_pid}, engine {state.engine}) and Cloud Storage emulator "
        f"(pid {state.storage_pid}), data in {state.data_dir}"
    )
    # `export NAME=value` lines on stdout, quoted for the shell, so that
    # `eval "$(gemini-batch local start)"` reaches dbt and every other child process.
    click.echo(state.export_lines())
    err_console.print("\ndbt profile (profiles.yml) for this stack:\n", highlight=False)
    err_console.print(state.dbt_profile(), highlight=False, markup=False)
    err_console.print(f"Stop it with: gemini-batch local stop --data-dir {data_dir}")


@local.command("status")
@_data_dir_option
def local_status(data_dir: Path) -> None:
    """Say what runs where."""
    from gemini_batch.local.stack import read_state, stack_status

    state = read_state(data_dir)
    if state is None:
        click.echo(f"Not running (no stack started from {data_dir.resolve()}).")
        sys.exit(ExitCode.ERROR)
    status = stack_status(state)
    for name, endpoint, pid in (
        ("bigquery", state.bigquery_endpoint, state.bigquery_pid),
        ("vertex", state.vertex_endpoint, state.vertex_pid),
        ("storage", state.storage_endpoint, state.storage_pid),
    ):
        word = "up" if status[name] else "DOWN"
        click.echo(f"{name:<9} {word:<5} {endpoint}  pid {pid}")
    click.echo(f"engine    {state.engine}\ndata dir  {state.data_dir}")
    if not all(status.values()):
        sys.exit(ExitCode.ERROR)


@local.command("stop")
@_data_dir_option
def local_stop(data_dir: Path) -> None:
    """Stop exactly the processes `local start` started; the data stays."""
    from gemini_batch.local.stack import stop_stack

    state = stop_stack(data_dir)
    if state is None:
        click.echo(f"Nothing to stop (no stack started from {data_dir.resolve()}).")
        return
    pids = ", ".join(str(pid) for pid in (state.bigquery_pid, state.vertex_pid, state.storage_pid))
    click.echo(f"Stopped the local stack (pids {pids}).")
