"""The ``gemini-batch`` command group, its consoles, and the options its commands share.

The commands live beside it, one module per family (``local``, ``build``, ``ledger``,
``submit``); :mod:`gemini_batch.cli` imports them so they register on :data:`main`.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gemini_batch import __version__
from gemini_batch.errors import GeminiBatchError, service_errors
from gemini_batch.exit_codes import ExitCode

if TYPE_CHECKING:
    from gemini_batch.build.dbt_options import DbtOptions
    from gemini_batch.build.dbt_project import DbtProject
    from gemini_batch.build.workspace import Workspace

console = Console()
err_console = Console(stderr=True)


class _Group(click.Group):
    """Prints a ``GeminiBatchError`` as a clear message and exits 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except GeminiBatchError as exc:
            _print_error(str(exc))
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



# --------------------------------------------------------------------------- shared options
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
            click.option("--state", help="dbt state directory: for state: selectors, and "
                         "for deferral in every dbt stage."),
            click.option("--defer/--no-defer", default=None,
                         help="dbt --defer: unselected nodes resolve to --state's."),
            click.option("--defer-state", help="dbt --defer-state: the state for deferral only."),
            click.option("--favor-state/--no-favor-state", default=None,
                         help="dbt --favor-state: defer even where the node exists here."),
        ]
    ):
        func = option(func)
    return func


def _dbt_options(kwargs: dict[str, Any], extra: tuple[str, ...] = ()) -> DbtOptions:
    from gemini_batch.build.dbt_options import DbtOptions, split_selection

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
        defer=kwargs.get("defer"),
        favor_state=kwargs.get("favor_state"),
        defer_state=kwargs.get("defer_state"),
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
    from gemini_batch.build.dbt_project import DbtProject
    from gemini_batch.build.workspace import Workspace

    project = DbtProject.parsed(_dbt_options(kwargs))
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




# --------------------------------------------------------------------------- endings
#
# build, run, plan, status and wait end the same way whatever stops them: the human
# output says why on stderr, and --json prints its document on every exit.

# After "interrupted:", on every Ctrl-C (the `message` of the --json document).
INTERRUPTED_LINE = (
    "submitted jobs keep running on Vertex AI and stay in the ledger; the "
    "next `gemini-batch build` resumes them (`gemini-batch cancel` stops them)."
)


def _print_error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def _print_interrupted() -> None:
    err_console.print(f"\n[bold yellow]interrupted:[/] {escape(INTERRUPTED_LINE)}",
                      highlight=False, soft_wrap=True)


@dataclass
class _Ending:
    """How a command ended: its exit code and, when an error or Ctrl-C stopped it, why
    (the --json document's `exit_reason` and `message`)."""

    code: ExitCode = ExitCode.OK
    reason: str | None = None
    message: str | None = None

    @property
    def exit_reason(self) -> str:
        return self.reason or self.code.reason

    def fields(self) -> dict[str, Any]:
        """`exit_code`, `exit_reason` and `message` of a --json document."""
        return {"exit_code": int(self.code), "exit_reason": self.exit_reason,
                "message": self.message}


@contextlib.contextmanager
def _ends(ending: _Ending) -> Iterator[None]:
    """An error or Ctrl-C in the block goes into ``ending`` (and is said on stderr)
    instead of ending the command, which still prints its --json document."""
    try:
        with service_errors():
            yield
    except GeminiBatchError as exc:
        ending.code, ending.reason, ending.message = ExitCode.ERROR, exc.reason, str(exc)
        _print_error(str(exc))
    except KeyboardInterrupt:
        ending.code, ending.reason = ExitCode.INTERRUPTED, "interrupted"
        ending.message = INTERRUPTED_LINE
        _print_interrupted()
