"""The one dbt-project factory of the suite: every test that runs dbt goes through it.

``DbtProjects`` (the ``dbt_projects`` fixture of tests/stack/conftest.py) writes a small
project to a directory of its own (or copies one: examples/recipes, integration_tests/),
gives it a dataset of its own on the local stack, and installs the package the way
``dbt deps`` does: deps runs once for the session, in a template project, and each
written project gets the same ``dbt_packages/`` symlink and package lock.

A ``DbtTestProject`` runs dbt in this process (dbtRunner), the ``gemini-batch`` CLI in this
process (click's runner) or as a subprocess (when it has to be killed), with the
stack's environment set for exactly that call, and reads back what a user would: rows,
tables, and the jobs the Vertex emulator was given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from dbt.adapters.base import impl as dbt_adapter_base
from dbt.cli.main import dbtRunner, dbtRunnerResult
from google.cloud import bigquery

from gemini_batch.cli import main
from gemini_batch.clients.vertex import JobStatus, VertexJobs, vertex_job_client
from gemini_batch.local.stack import DEFAULT_LOCATION, StackState
from helpers.paths import PACKAGE_DIR

BIN = Path(sys.executable).parent

# What a new process has, before dbt made any adapter (see as_in_a_new_process).
_DBT_BEHAVIOR_FLAGS = list(dbt_adapter_base.DEFAULT_BASE_BEHAVIOR_FLAGS)


def as_in_a_new_process() -> None:
    """Undo the one piece of dbt state that grows with every invocation in a process.

    dbt-adapters appends the adapter's behavior flags to the module-level
    DEFAULT_BASE_BEHAVIOR_FLAGS each time dbt makes an adapter (every invocation), and
    inspects the call stack for each flag: in a test process that runs dbt hundreds of
    times, each invocation was slower than the one before (seconds each, by the end).
    A `gemini-batch` or `dbt` command is a new process, which starts from this list.
    """
    dbt_adapter_base.DEFAULT_BASE_BEHAVIOR_FLAGS[:] = _DBT_BEHAVIOR_FLAGS


def dbt_messages(result: dbtRunnerResult) -> str:
    """dbt's own words for what an invocation did wrong."""
    if result.exception is not None:
        return str(result.exception)
    results = getattr(result.result, "results", None) or []
    return " | ".join(
        f"{r.node.unique_id}: {r.status}: {r.message}"
        for r in results
        if str(r.status) not in ("success", "pass")
    )


def exception_chain(result: dbtRunnerResult) -> list[str]:
    """The texts of a failed invocation's exception and of every exception behind it
    (dbt wraps the compiler error of an inline query in "Error parsing inline query")."""
    errors, error = [], result.exception
    while error is not None:
        errors.append(str(error))
        error = error.__cause__ or error.__context__
    return errors


# The commands that wait on jobs, and how often a test's call polls unless it says: a
# job of the emulator ends within a second, and a held one is released at once, so the
# CLI's defaults (1 s, growing to 60 s) only leave the test waiting for the next poll.
_POLLING_COMMANDS = frozenset({"build", "run", "wait"})
FAST_POLLS = {"--poll-interval": "0.2", "--max-poll-interval": "1"}


def with_fast_polls(command: str, args: tuple[str, ...]) -> list[str]:
    """``args`` of a `gemini-batch <command>`, with FAST_POLLS for any not given."""
    if command not in _POLLING_COMMANDS:
        return list(args)
    missing = [item for flag, value in FAST_POLLS.items() if flag not in args
               for item in (flag, value)]
    return [*args, *missing]


def cli_ok(result: Result, code: int = 0) -> str:
    """The output of a CLI run that exited ``code``; fails with the output otherwise."""
    assert result.exit_code == code, (
        f"exit {result.exit_code}, wanted {code}:\n{result.output}\n{result.exception!r}"
    )
    return result.output


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, for one in-process dbt or CLI call."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class DbtTestProject:
    """A dbt project in a directory, writing to a dataset of its own on the local stack."""

    path: Path
    dataset: str
    stack: StackState
    bq: bigquery.Client
    # Set for each call on top of the stack's variables (the profile may read them).
    extra_env: dict[str, str] = field(default_factory=dict)

    # -- files

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))

    def seed(self, prompts: list[str | None]) -> None:
        """seeds/prompts.csv: one row (id, prompt) per prompt; None is an empty prompt."""
        lines = ["id,prompt", *(f"{i},{p or ''}" for i, p in enumerate(prompts, start=1))]
        self.write("seeds/prompts.csv", "\n".join(lines) + "\n")

    # -- running things

    def environment(self) -> dict[str, str]:
        return {
            **self.stack.environment(),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            **self.extra_env,
        }

    def args(self) -> list[str]:
        return ["--project-dir", str(self.path), "--profiles-dir", str(self.path)]

    def dbt(self, *args: str, manifest: Any = None) -> dbtRunnerResult:
        """``dbt <args>`` in this process; ``manifest`` (from a parse) skips parsing."""
        as_in_a_new_process()
        with environment(self.environment()):
            return dbtRunner(manifest=manifest).invoke([*args, *self.args()])

    def dbt_ok(self, *args: str) -> dbtRunnerResult:
        """``dbt <args>``, which must succeed with every node passing."""
        result = self.dbt(*args)
        assert result.success and not dbt_messages(result), (
            f"dbt {' '.join(args)} failed: {dbt_messages(result)}"
        )
        return result

    def cli(self, command: str, *args: str, input: str | None = None) -> Result:
        """`gemini-batch <command> <project args> <args>` in this process."""
        as_in_a_new_process()
        with environment(self.environment()):
            return CliRunner().invoke(
                main, [command, *self.args(), *with_fast_polls(command, args)], input=input)

    def spawn(self, command: str, *args: str, stderr_apart: bool = False,
              new_session: bool = False) -> subprocess.Popen[str]:
        """`gemini-batch <command> ...` as a subprocess, output on its stdout (its stderr
        on a pipe of its own with ``stderr_apart``: `--json` documents); with
        ``new_session``, leading a process group of its own (``os.killpg`` ends it all)."""
        return subprocess.Popen(
            [str(BIN / "gemini-batch"), command, *self.args(), *with_fast_polls(command, args)],
            env={**os.environ, **self.environment()},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if stderr_apart else subprocess.STDOUT, text=True,
            start_new_session=new_session,
        )

    def run(self, program: str, *args: str) -> str:
        """``<program> <args> <project args>`` (dbt, gemini-batch) as a user runs it in a
        shell; it must exit 0. Its output."""
        done = subprocess.run(
            [str(BIN / program), *args, *self.args()], cwd=self.path,
            env={**os.environ, **self.environment()},
            capture_output=True, text=True, timeout=600, check=False,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, (
            f"{program} {' '.join(args)} exited {done.returncode}:\n{output}"
        )
        return output

    # -- reading back

    def table(self, name: str) -> str:
        return f"{self.stack.project}.{self.dataset}.{name}"

    def quoted(self, name: str) -> str:
        """The table ``name`` of this dataset, quoted for SQL."""
        return f"`{self.table(name)}`"

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of ``sql``, where ``{ds}`` stands for this project's dataset."""
        sql = sql.replace("{ds}", f"{self.stack.project}.{self.dataset}")
        return [dict(row) for row in self.bq.query(sql).result()]

    def table_ids(self) -> list[str]:
        return [t.table_id for t in self.bq.list_tables(f"{self.stack.project}.{self.dataset}")]

    def vertex(self) -> VertexJobs:
        return VertexJobs(
            project=self.stack.project, location=DEFAULT_LOCATION,
            client=vertex_job_client(DEFAULT_LOCATION, endpoint=self.stack.vertex_endpoint),
        )

    def jobs(self) -> list[JobStatus]:
        """The jobs the Vertex emulator was given for this project's dataset, oldest first."""
        prefix = f"{self.stack.project}.{self.dataset}."
        mine = [job for job in self.vertex().list(limit=1000)
                if (job.input_table or "").startswith(prefix)]
        return sorted(mine, key=lambda job: job.create_time)

    def cli_in_background(self, command: str, *args: str) -> Future[Result]:
        """`gemini-batch <command> ...` in this process, in a thread of its own: the test
        goes on (it must not run dbt meanwhile: one dbt invocation at a time)."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gemini-batch-{command}")
        future = pool.submit(self.cli, command, *args)
        pool.shutdown(wait=False)
        return future

    def wait_for_ledger_job(self, build: Build, timeout: float = 600) -> None:
        """Until ``build`` (running) has written a job to the ledger."""

        def ledger_has_a_job() -> bool:
            with contextlib.suppress(Exception):  # the ledger table is not there yet
                return bool(self.rows("select job_name from `{ds}.gemini_batch_jobs`"))
            return False

        _wait_while_running(build, ledger_has_a_job, "a job in the ledger", timeout)

    def wait_for_jobs(self, build: Build, count: int, timeout: float = 600) -> None:
        """Until ``build`` (running) has submitted ``count`` jobs for this dataset."""
        _wait_while_running(build, lambda: len(self.jobs()) >= count, f"{count} jobs", timeout)

    def drop(self) -> None:
        self.bq.delete_dataset(f"{self.stack.project}.{self.dataset}", delete_contents=True,
                               not_found_ok=True)


# A build the test started and is waiting on: a subprocess, or the CLI in a thread.
Build = subprocess.Popen[str] | Future[Result]


def _wait_while_running(
    build: Build, done: Callable[[], bool], what: str, timeout: float
) -> None:
    """Until ``done()``; fails if ``build`` ends first. The timeout only catches a build
    that hangs: tests hold jobs open with the emulator's ``hold`` fault, not a delay."""
    deadline = time.monotonic() + timeout
    while not done():
        if isinstance(build, Future):
            assert not build.done(), f"build ended early:\n{build.result().output}"
        else:
            assert build.poll() is None, f"build ended early:\n{build.communicate()[0]}"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.3)


def project_yml(name: str, profile: str | None = None) -> str:
    return textwrap.dedent(f"""\
        name: {name}
        version: "1.0"
        config-version: 2
        profile: {profile or name}
        flags:
          send_anonymous_usage_stats: false
        """)


class DbtProjects:
    """Makes ``DbtTestProject``s under ``root``; `dbt deps` runs once, in a template."""

    def __init__(self, stack: StackState, bq: bigquery.Client, root: Path) -> None:
        self.stack = stack
        self.bq = bq
        self.root = root
        self._template: Path | None = None

    def _new_dir(self, name: str) -> Path:
        path = self.root / f"{name}_{uuid.uuid4().hex[:6]}"
        path.mkdir(parents=True)
        return path

    def _dataset(self, prefix: str, regional: bool) -> str:
        dataset = f"{prefix}_{uuid.uuid4().hex[:10]}"
        if regional:
            # Vertex AI needs a regional dataset; create it as a user would (dbt's
            # `create schema` makes it in the profile's location too).
            created = bigquery.Dataset(f"{self.stack.project}.{dataset}")
            created.location = DEFAULT_LOCATION
            self.bq.create_dataset(created)
        return dataset

    def _install_package(self, path: Path) -> None:
        """What `dbt deps` leaves for packages.yml `local: <the package>`."""
        if self._template is None:
            template = self._new_dir("deps_template")
            (template / "dbt_project.yml").write_text(project_yml("deps_template"))
            (template / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE_DIR}\n")
            result = dbtRunner().invoke(["deps", "--project-dir", str(template)])
            assert result.success, f"dbt deps failed: {result.exception}"
            self._template = template
        for name in ("packages.yml", "package-lock.yml"):
            shutil.copy(self._template / name, path / name)
        shutil.copytree(self._template / "dbt_packages", path / "dbt_packages", symlinks=True)

    def create(
        self,
        name: str,
        files: dict[str, str],
        *,
        profile: str | None = None,
        package: bool = True,
        regional: bool = False,
    ) -> DbtTestProject:
        """A project named ``name`` made of ``files`` (path: text; a default
        dbt_project.yml unless given), with the stack's profile ``profile`` (default: the
        project's name) on a new dataset, and the package installed unless not wanted."""
        path = self._new_dir(name)
        project = DbtTestProject(path=path, dataset=self._dataset(name, regional),
                             stack=self.stack, bq=self.bq)
        project.write("dbt_project.yml", project_yml(name, profile))
        project.write("profiles.yml",
                      self.stack.dbt_profile(profile or name, project.dataset))
        for relative, text in files.items():
            project.write(relative, text)
        if package:
            self._install_package(path)
        return project

    def copy(self, source: Path, *, dataset_variable: str) -> DbtTestProject:
        """A copy of the project in ``source`` (without what dbt generated), its package
        entry pointed at the package under test; its own profiles.yml reads the dataset
        from ``$<dataset_variable>``. `dbt deps` is the test's to run, as a user does."""
        path = self._new_dir(source.name)
        shutil.copytree(source, path, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            "target", "dbt_packages", "logs", "package-lock.yml"))
        (path / "packages.yml").write_text(f"packages:\n  - local: {PACKAGE_DIR}\n")
        dataset = self._dataset(source.name, regional=False)
        return DbtTestProject(path=path, dataset=dataset, stack=self.stack, bq=self.bq,
                          extra_env={dataset_variable: dataset})
