"""The `gemini-batch` command in its own process: what it imported is frozen for the
garbage collector (gc.freeze), and main called in-process (tests, CliRunner) is not."""

from __future__ import annotations

import gc
import subprocess
import sys

from click.testing import CliRunner

from gemini_batch.cli import main

_REPORT_AT_EXIT = (
    "import atexit, gc, sys\n"
    "from gemini_batch.cli import run\n"
    "atexit.register(lambda: print('frozen', gc.get_freeze_count()))\n"
    "sys.argv = ['gemini-batch', '--version']\n"
    "run()\n"
)


def test_the_command_freezes_what_lives_as_long_as_it():
    done = subprocess.run([sys.executable, "-c", _REPORT_AT_EXIT], capture_output=True,
                          text=True, check=True)
    version, frozen = done.stdout.strip().splitlines()
    assert version.startswith("gemini-batch, version")
    assert int(frozen.split()[1]) > 100_000  # dbt's and click's modules, at least


def test_main_in_process_leaves_the_collector_alone():
    before = gc.get_freeze_count()
    assert CliRunner().invoke(main, ["--version"]).exit_code == 0
    assert gc.get_freeze_count() == before
