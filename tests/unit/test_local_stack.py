"""What `gemini-batch local start` prints and refuses, without starting a server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gemini_batch.cli import main
from gemini_batch.clients.polling import POLL_INTERVAL_ENV
from gemini_batch.exit_codes import ExitCode
from gemini_batch.local.stack import LOCAL_EXTRA_MODULES, LOCAL_POLL_INTERVAL, StackState

ROOT = Path(__file__).parents[2]

# A project name a shell would split or choke on unquoted.
STATE = StackState(
    data_dir="/tmp/x", project="it's a \"project\" $HOME `x`", engine="simulate",
    bigquery_port=9050, bigquery_grpc_port=9060, vertex_port=9070, bigquery_pid=1,
    vertex_pid=2, storage_port=9080, storage_pid=3,
)


@pytest.mark.parametrize("shell", ["bash", "sh", "zsh"])
def test_export_lines_reach_a_child_process_as_printed(shell: str) -> None:
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    lines = STATE.export_lines()
    assert all(line.startswith("export ") for line in lines.splitlines())
    # The design doc's contract: the output names each variable as NAME=value.
    assert "export BIGQUERY_ENDPOINT=http://127.0.0.1:9050" in lines.splitlines()
    child = f"{sys.executable} -c 'import json, os; print(json.dumps(dict(os.environ)))'"
    run = subprocess.run(
        [shell, "-c", f'eval "$LINES"; {child}'], capture_output=True, text=True, check=True,
        env={"PATH": os.environ["PATH"], "LINES": lines},
    )
    seen = json.loads(run.stdout)
    assert {name: seen.get(name) for name in STATE.environment()} == STATE.environment()


def test_local_start_without_the_local_extra_names_it(monkeypatch, tmp_path: Path) -> None:
    # As when duckdb is not installed: `import duckdb` fails and find_spec finds nothing.
    monkeypatch.setitem(sys.modules, "duckdb", None)
    result = CliRunner().invoke(main, ["local", "start", "--data-dir", str(tmp_path / "stack")])
    assert result.exit_code == ExitCode.ERROR, result.output
    assert "pip install 'dbt-gemini-batch[local]'" in result.output
    assert "no module 'duckdb'" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "stack").exists()  # nothing started, nothing written


def test_the_local_extra_modules_are_the_extras_packages() -> None:
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["local"]
    packages = {spec.split("=")[0].split(">")[0].replace("-", "_") for spec in extra}
    assert packages == set(LOCAL_EXTRA_MODULES)


def test_the_docs_give_the_poll_interval_the_stack_exports() -> None:
    assert STATE.environment()[POLL_INTERVAL_ENV] == str(LOCAL_POLL_INTERVAL)
    exported = f"{POLL_INTERVAL_ENV}={LOCAL_POLL_INTERVAL}"
    assert exported in (ROOT / "README.md").read_text()
    assert exported in (ROOT / "docs/local-stack.md").read_text()
    assert f"the local stack sets to {LOCAL_POLL_INTERVAL})" in (ROOT / "docs/cli.md").read_text()
