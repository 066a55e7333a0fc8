"""The ``gemini-batch`` command."""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from gemini_batch import __version__
from gemini_batch.errors import GeminiBatchError, service_errors
from gemini_batch.exit_codes import ExitCode
from gemini_batch.jobs import POLL_INTERVAL_ENV

if TYPE_CHECKING:
    from gemini_batch.dbt_project import DbtOptions, DbtProject
    from gemini_batch.workspace import Workspace

console = Console()
err_console = Console(stderr=True)


class _Group(click.Group):
    """Prints a ``GeminiBatchError`` as a clear message and exits 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GeminiBatchError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(ExitCode.ERROR)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gemini-batch")
def main() -> None:
    """Batch generation with Gemini for dbt on BigQuery."""


# True in the `gemini-batch` command's own process (run), not where main is called
# in-process (tests, CliRunner).
_OWN_PROCESS = False


def _settle() -> None:
    """In the command's own process, what exists now lives as long as the process (the
    modules of dbt and of the Google clients): frozen, the garbage collector stops
    scanning it on every full pass (each dbt invocation leaves cycles to collect) and
    at exit, where it took about 1 s of every command's wall time."""
    if _OWN_PROCESS:
        gc.freeze()


def run() -> None:
    """The `gemini-batch` console command: main, in a process of its own."""
    global _OWN_PROCESS
    _OWN_PROCESS = True
    _settle()
    try:
        main()
    finally:
        _settle()  # the process ends: nothing is left worth a final collection


# --------------------------------------------------------------------------- local stack


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
    # Plain lines on stdout so a shell can `eval "$(gemini-batch local start)"`.
    for name, value in state.environment().items():
        click.echo(f"{name}={value}")
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


# --------------------------------------------------------------------------- build and friends
#
# These commands take dbt's own arguments for the project, profile and selection, and
# reach BigQuery through the dbt target (profiles.yml) and Vertex AI through
# $GEMINI_BATCH_VERTEX_ENDPOINT or Google's regional endpoint.


def _project_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--project-dir", help="dbt project directory (dbt's default: .)."),
            click.option("--profiles-dir", help="Where profiles.yml is (dbt's default)."),
            click.option("--target", "-t", help="dbt target of the profile."),
            click.option("--profile", help="dbt profile (default: the project's)."),
            click.option("--vars", help="dbt vars, as YAML: '{key: value}'."),
        ]
    ):
        func = option(func)
    return func


def _selection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    # dbt's own option class: `-s a b` takes both values, as `dbt build -s a b` does.
    from dbt.cli.options import MultiOption

    for option in reversed(
        [
            click.option("--select", "-s", "--models", "-m", "select", cls=MultiOption,
                         multiple=True, type=tuple, help="dbt node selection."),
            click.option("--exclude", cls=MultiOption, multiple=True, type=tuple,
                         help="dbt nodes to leave out."),
            click.option("--selector", help="A selector from selectors.yml."),
            click.option("--state", help="dbt state directory, for state: selectors."),
        ]
    ):
        func = option(func)
    return func


def _dbt_options(kwargs: dict[str, Any], extra: tuple[str, ...] = ()) -> DbtOptions:
    from gemini_batch.dbt_project import DbtOptions, split_selection

    return DbtOptions(
        project_dir=kwargs.get("project_dir"),
        profiles_dir=kwargs.get("profiles_dir"),
        target=kwargs.get("target"),
        profile=kwargs.get("profile"),
        vars=kwargs.get("vars"),
        select=split_selection(kwargs.get("select", ())),
        exclude=split_selection(kwargs.get("exclude", ())),
        selector=kwargs.get("selector"),
        state=kwargs.get("state"),
        extra=extra,
    )


def _reports_service_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with service_errors():
            return func(*args, **kwargs)

    return wrapper


def _open_workspace(kwargs: dict[str, Any]) -> tuple[DbtProject, Workspace]:
    """The parsed dbt project and the workspace of its target, for the ledger commands."""
    from gemini_batch.dbt_project import DbtProject
    from gemini_batch.workspace import Workspace

    project = DbtProject(_dbt_options(kwargs))
    project.parse()
    return project, Workspace.open(project)


def _print_table(table: Table, to: Console | None = None) -> None:
    from gemini_batch.display import print_table

    print_table(to or console, table)


def _print_notes(notes: list[str], to: Console | None = None) -> None:
    for note in notes:
        (to or console).print(note, highlight=False, markup=False, soft_wrap=True)


_json_option = click.option(
    "--json", "as_json", is_flag=True,
    help="One JSON document on stdout (for orchestrators); the human output goes to stderr.",
)


@contextlib.contextmanager
def _human_output(as_json: bool) -> Iterator[Console]:
    """Where the human output goes: stdout, or stderr (dbt's lines too) with --json, so
    that stdout holds the JSON document alone."""
    if not as_json:
        yield console
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield err_console


_PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


def _run_build(command: str, ctx: click.Context, kwargs: dict[str, Any]) -> None:
    from gemini_batch.build import build
    from gemini_batch.display import make_reporter, summary_notes, summary_table
    from gemini_batch.model_run import BatchSettings

    _settle()  # the build's libraries are imported
    extra = list(ctx.args)
    if kwargs.pop("full_refresh"):
        extra.append("--full-refresh")
    if kwargs.get("threads") is not None:
        extra += ["--threads", str(kwargs["threads"])]
    if kwargs.pop("fail_fast"):
        extra.append("--fail-fast")
    settings = BatchSettings(
        poll_initial=kwargs["poll_interval"],
        poll_max=kwargs["max_poll_interval"],
        fail_on_failed_rows=kwargs["fail_on_failed_rows"],
        wait=not kwargs["no_wait"],
    )
    plain = True if kwargs["plain"] or kwargs["as_json"] else None
    with _human_output(kwargs["as_json"]) as human:
        try:
            result = build(
                _dbt_options(kwargs, tuple(extra)),
                command=command,
                reporter_factory=lambda: make_reporter(human, plain=plain),
                settings=settings,
            )
        except KeyboardInterrupt:
            err_console.print(
                "\n[bold yellow]interrupted:[/] submitted jobs keep running and stay in the "
                "ledger; `gemini-batch build` resumes them, `gemini-batch cancel` stops them."
            )
            sys.exit(ExitCode.INTERRUPTED)
        if result.summaries:
            _print_table(summary_table(result.summaries), to=human)
            _print_notes([note for summary in result.summaries
                          for note in summary_notes(summary)], to=human)
        for error in result.errors:
            err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    if kwargs["as_json"]:
        from gemini_batch.display import build_document, dumps

        click.echo(dumps(build_document(command, result.exit_code, result.summaries,
                                        result.errors, result.jobs)))
    sys.exit(result.exit_code)


def _build_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option("--full-refresh", is_flag=True,
                         help="dbt --full-refresh (answers are kept: they are the cache)."),
            click.option("--threads", type=int, help="dbt threads."),
            click.option("--fail-fast", "-x", is_flag=True, help="dbt --fail-fast."),
            click.option(
                "--fail-on-failed-rows/--no-fail-on-failed-rows", default=None,
                help="Exit 3 when rows end failed (default: each model's "
                "fail_on_failed_rows config, true unless set).",
            ),
            click.option("--poll-interval", type=float, default=1.0, show_default=True,
                         envvar=POLL_INTERVAL_ENV, show_envvar=True,
                         help="Seconds before the first poll of a job; grows while it runs."),
            click.option("--max-poll-interval", type=float, default=60.0, show_default=True,
                         help="Longest wait between two polls of a job."),
            click.option("--plain", is_flag=True,
                         help="Log lines instead of live progress (default off a terminal)."),
            click.option("--no-wait", is_flag=True,
                         help="Submit, merge what ended, and exit 75 while jobs are in "
                         "flight; any later build collects them (no request is sent twice)."),
            _json_option,
        ]
    ):
        func = option(func)
    return func


@main.command("build", context_settings=_PASS_THROUGH)
@_project_options
@_selection_options
@_build_options
@click.pass_context
@_reports_service_errors
def build_command(ctx: click.Context, **kwargs: Any) -> None:
    """dbt build in stages, with the Gemini batch jobs in between.

    Upstream of each batch model, then its jobs (submitted, waited on, merged), then
    downstream models and tests. Other dbt flags are passed to dbt as they are.
    """
    _run_build("build", ctx, kwargs)


@main.command("run", context_settings=_PASS_THROUGH)
@_project_options
@_selection_options
@_build_options
@click.pass_context
@_reports_service_errors
def run_command(ctx: click.Context, **kwargs: Any) -> None:
    """dbt run (models only, no tests) in stages, with the Gemini batch jobs in between."""
    _run_build("run", ctx, kwargs)


@main.command("plan")
@_project_options
@_selection_options
@_json_option
@_reports_service_errors
def plan_command(as_json: bool, **kwargs: Any) -> None:
    """What `build` would submit per batch model: cached, pending, failed, shards, cost.

    Reads the tables of the last dbt run; submits nothing and changes nothing.
    """
    from gemini_batch.display import dumps, plan_document, plan_notes, plan_table
    from gemini_batch.plan import plan

    with _human_output(as_json) as human:
        plans = plan(_dbt_options(kwargs))
        if not plans:
            human.print("No batch model (materialized='gemini_batch') in the selection.")
        else:
            _print_table(plan_table(plans), to=human)
            _print_notes(plan_notes(plans), to=human)
    if as_json:
        click.echo(dumps(plan_document(plans)))


def _ledger_ready(ws: Workspace, human: Console | None = None) -> bool:
    if ws.ledger.exists():
        return True
    (human or console).print(f"No ledger yet ({ws.ledger.table}): no job was ever submitted.")
    return False


@main.command("status")
@_project_options
@click.option("--limit", default=10, show_default=True, help="Recent jobs to show.")
@_json_option
@_reports_service_errors
def status_command(limit: int, as_json: bool, **kwargs: Any) -> None:
    """Jobs in flight (asked of Vertex AI now) and the most recent ones (from the ledger)."""
    from gemini_batch.display import dumps, jobs_document, jobs_table
    from gemini_batch.ledger_commands import service_statuses

    live, service, recent = [], {}, []
    with _human_output(as_json) as human:
        _, ws = _open_workspace(kwargs)
        if _ledger_ready(ws, human):
            live = ws.ledger.live_jobs()
            service = service_statuses(ws, live)
            if live:
                _print_table(jobs_table("in flight (or not merged yet)", live, service), to=human)
            else:
                human.print("No job in flight.")
            live_names = {entry.job_name for entry in live}
            recent = [e for e in ws.ledger.entries(limit=limit) if e.job_name not in live_names]
            if recent:
                _print_table(jobs_table(f"recent jobs (ledger {ws.ledger.table})", recent),
                             to=human)
    if as_json:
        running = any(not status.terminal for status in service.values())
        code = ExitCode.IN_FLIGHT if running else ExitCode.OK
        click.echo(dumps(jobs_document("status", code, live, service, recent)))


@main.command("wait")
@_project_options
@click.option("--timeout", type=float, default=None,
              help="Give up after this many seconds (exit 75 if jobs are still in flight).")
@click.option("--poll-interval", type=float, default=5.0, show_default=True,
              help="Seconds before the second poll; grows while jobs run.")
@click.option("--max-poll-interval", type=float, default=60.0, show_default=True,
              help="Longest wait between two polls.")
@_json_option
@_reports_service_errors
def wait_command(timeout: float | None, poll_interval: float, max_poll_interval: float,
                 as_json: bool, **kwargs: Any) -> None:
    """Wait for the jobs in flight (for scripts that submit with `build --no-wait` in one
    step and wait in another). Exits 0 once none runs, 75 at the timeout; merging their
    answers is the next `gemini-batch build`'s."""
    from gemini_batch.display import dumps, jobs_document, jobs_table
    from gemini_batch.ledger_commands import wait_for_jobs

    watched, service = [], {}
    with _human_output(as_json) as human:
        _, ws = _open_workspace(kwargs)
        if _ledger_ready(ws, human):
            def report(entry: Any, status: Any) -> None:
                human.print(f"{entry.job_id or entry.job_name}: {status.state} "
                            f"({status.succeeded:,} done, {status.failed:,} failed)",
                            highlight=False, markup=False)

            watched, service = wait_for_jobs(
                ws, timeout=timeout, poll_initial=poll_interval, poll_max=max_poll_interval,
                on_status=report,
            )
            if watched:
                _print_table(jobs_table("jobs waited on", watched, service), to=human)
            else:
                human.print("No job in flight.")
    running = [name for name, status in service.items() if not status.terminal]
    code = ExitCode.IN_FLIGHT if running else ExitCode.OK
    if as_json:
        click.echo(dumps(jobs_document("wait", code, watched, service)))
    elif running:
        err_console.print(f"{len(running)} job(s) still in flight after {timeout or 0:g} s; "
                          "the next `gemini-batch build` collects them when they end.")
    sys.exit(code)


@main.command("jobs")
@_project_options
@click.option("--model", "model_name", help="Only this batch model's jobs (name).")
@click.option("--limit", default=50, show_default=True)
@_reports_service_errors
def jobs_command(model_name: str | None, limit: int, **kwargs: Any) -> None:
    """The ledger (gemini_batch_jobs) as a table, newest first."""
    from gemini_batch.display import jobs_table

    project, ws = _open_workspace(kwargs)
    if not _ledger_ready(ws):
        return
    unique_id = project.find_model(model_name).unique_id if model_name else None
    entries = ws.ledger.entries(unique_id, limit=limit)
    if not entries:
        console.print("No jobs in the ledger" + (f" for {model_name}." if model_name else "."))
        return
    _print_table(jobs_table(f"ledger {ws.ledger.table}", entries))


@main.command("cancel")
@_project_options
@click.argument("what", required=False)
@click.option("--yes", "-y", is_flag=True, help="Do not ask before cancelling every live job.")
@_reports_service_errors
def cancel_command(what: str | None, yes: bool, **kwargs: Any) -> None:
    """Cancel live jobs: of one batch model, one job (id or name), or all (no argument).

    What the jobs answered before they stopped is merged by the build waiting on them,
    or by the next `gemini-batch build`.
    """
    from gemini_batch.ledger_commands import cancel_jobs, jobs_to_cancel

    project, ws = _open_workspace(kwargs)
    if not _ledger_ready(ws):
        return
    chosen = jobs_to_cancel(ws, project, what)
    if what is None and chosen and not yes:
        click.confirm(f"Cancel all {len(chosen)} live job(s)?", abort=True)
    if not chosen:
        console.print("No live job to cancel.")
        return
    for entry, status in cancel_jobs(ws, chosen):
        console.print(f"{entry.job_id or entry.job_name}: {status.state} "
                      f"({entry.model_name}, {entry.request_count:,} requests)")


@main.command("reset")
@_project_options
@click.argument("model_name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_reports_service_errors
def reset_command(model_name: str, yes: bool, **kwargs: Any) -> None:
    """Drop a batch model's answers (<model>__responses): the next build asks again.

    Answers are money already spent; this cannot be undone.
    """
    from gemini_batch.ledger_commands import check_resettable, reset_answers

    project, ws = _open_workspace(kwargs)
    model = project.find_model(model_name)
    if not ws.bq.table_exists(model.responses_table):
        console.print(f"{model.responses_table} does not exist: nothing to reset.")
        return
    check_resettable(ws, model)
    if not yes:
        click.confirm(
            f"Drop {model.responses_table}? Every answer of {model.name} is lost and paid "
            "again on the next build.", abort=True,
        )
    reset_answers(ws, model)
    console.print(f"Dropped {model.responses_table}. The next dbt run creates it empty.")


# --------------------------------------------------------------------------- submit (JSONL)


@main.command("submit")
@click.argument("input_file", metavar="INPUT")
@click.option("--output", required=True, metavar="gs://BUCKET/PREFIX",
              help="Where the job writes its results (and a local INPUT is uploaded).")
@click.option("--model", required=True, help="Gemini model id, e.g. gemini-2.5-flash.")
@click.option("--location", default="us-central1", show_default=True,
              help="Region of the job (or global).")
@click.option("--project", default=None, envvar="GEMINI_BATCH_PROJECT",
              help="Google Cloud project (default: $GEMINI_BATCH_PROJECT, then the dbt "
              "target's with a profile, then ADC's).")
@click.option("--no-wait", is_flag=True, help="Submit and exit 75; run again to collect.")
@click.option("--download", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the result lines to this local file.")
@click.option("--ledger", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The local file that remembers submitted jobs (a rerun resumes them); "
              "default .gemini_batch/submit-jobs.jsonl, unless a dbt profile is given.")
@_project_options
@_reports_service_errors
def submit_command(input_file: str, output: str, model: str, location: str,
                   project: str | None, no_wait: bool, download: Path | None,
                   ledger: Path | None, **kwargs: Any) -> None:
    """Run one batch job over a JSONL file of requests: INPUT is a local file or gs:// URI,
    one {"request": {...}} per line (the tutorial's format).

    Every line is checked before anything is paid for; the job is remembered in a ledger
    (the dbt target's gemini_batch_jobs when --project-dir, --profiles-dir, --target or
    --profile is given, otherwise a local file), so running the same command again
    resumes it instead of paying twice.
    """
    from gemini_batch.submit import SubmitOptions, run_submit, summary_lines
    from gemini_batch.submit_ledger import DEFAULT_LEDGER, SubmissionStore

    store: SubmissionStore | None = None
    profile_options = ("project_dir", "profiles_dir", "target", "profile")
    if any(kwargs.get(name) for name in profile_options):
        if ledger is not None:
            raise GeminiBatchError(
                "--ledger is the local ledger file; with a dbt profile the job goes in the "
                "target's gemini_batch_jobs. Give one or the other.")
        from gemini_batch.submit_ledger import TargetSubmitLedger

        _, ws = _open_workspace(kwargs)
        store = TargetSubmitLedger(ws.ledger)
        project = project or ws.target.project
    options = SubmitOptions(input=input_file, output=output, model=model, location=location,
                            project=project, wait=not no_wait, download=download,
                            ledger=ledger or DEFAULT_LEDGER)

    def say(line: str) -> None:
        err_console.print(line, highlight=False, markup=False, soft_wrap=True)

    try:
        result = run_submit(options, say=say, store=store)
    except KeyboardInterrupt:
        say("Interrupted: the job (if one was created) runs on; run the same command again "
            "to follow it.")
        sys.exit(ExitCode.INTERRUPTED)
    for line in summary_lines(result, options):
        click.echo(line)
    sys.exit(result.exit_code)
