"""``gemini-batch local start|status|stop`` as a user runs them: a subprocess each, read
back through stdout, stderr, exit codes and the processes left running.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from google.cloud import bigquery

from gemini_batch.clients.bigquery import bigquery_client
from gemini_batch.local.stack import free_port, read_state

pytestmark = pytest.mark.slow

CLI = shutil.which("gemini-batch", path=str(Path(sys.executable).parent)) or "gemini-batch"


def gemini_batch(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )


def exported(stdout: str) -> dict[str, str]:
    """The `export NAME=value` lines of stdout, read as a shell reads them; fails on any
    other line (they must eval)."""
    env = {}
    for line in filter(str.strip, stdout.splitlines()):
        words = shlex.split(line)
        assert len(words) == 2 and words[0] == "export" and "=" in words[1], stdout
        name, value = words[1].split("=", 1)
        env[name] = value
    return env


def readme_stack_lines() -> list[str]:
    """The commands of the README's "The local stack" block, as a user copies them."""
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    section = readme.split("\n## The local stack\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return block.splitlines()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture()
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "stack"
    yield path
    # Whatever a failed assertion left running.
    if read_state(path) is not None:
        gemini_batch("local", "stop", "--data-dir", str(path))


def test_start_status_reuse_stop_and_data_survives(data_dir: Path) -> None:
    bq_port, vertex_port = free_port(), free_port()
    start = gemini_batch(
        "local", "start", "--data-dir", str(data_dir),
        "--bigquery-port", str(bq_port), "--vertex-port", str(vertex_port),
    )  # fmt: skip
    assert start.returncode == 0, start.stderr
    env = exported(start.stdout)
    assert env["BIGQUERY_ENDPOINT"] == f"http://127.0.0.1:{bq_port}"
    assert env["GEMINI_BATCH_VERTEX_ENDPOINT"] == f"http://127.0.0.1:{vertex_port}"
    assert env["GEMINI_BATCH_PROJECT"] == "local-project"
    assert float(env["GEMINI_BATCH_POLL_INTERVAL"]) < 1.0  # its jobs end in moments
    assert env["BIGQUERY_EMULATOR_HOST"] == env["BIGQUERY_ENDPOINT"]

    # The profile printed on stderr is valid YAML that points dbt-bigquery here.
    profile_text = start.stderr.split("dbt profile (profiles.yml) for this stack:", 1)[1]
    profile_text = profile_text.split("Stop it with:", 1)[0]
    output = yaml.safe_load(profile_text)["gemini_batch_local"]["outputs"]["local"]
    assert output["type"] == "bigquery"
    assert output["method"] == "oauth-secrets"
    assert output["api_endpoint"] == env["BIGQUERY_ENDPOINT"]

    # What `eval "$(gemini-batch local start ...)"` gives a shell.
    evaluated = subprocess.run(
        ["bash", "-c", 'eval "$STACK"; echo "$BIGQUERY_ENDPOINT $GEMINI_BATCH_VERTEX_ENDPOINT"'],
        capture_output=True,
        text=True,
        env={**os.environ, "STACK": start.stdout},
        check=True,
    )
    endpoints = [env["BIGQUERY_ENDPOINT"], env["GEMINI_BATCH_VERTEX_ENDPOINT"]]
    assert evaluated.stdout.split() == endpoints

    status = gemini_batch("local", "status", "--data-dir", str(data_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert lines[0].split()[:3] == ["bigquery", "up", env["BIGQUERY_ENDPOINT"]]
    assert lines[1].split()[:3] == ["vertex", "up", env["GEMINI_BATCH_VERTEX_ENDPOINT"]]

    state = read_state(data_dir)
    assert state is not None
    pids = [state.bigquery_pid, state.vertex_pid]
    assert not any(gone(pid) for pid in pids)

    again = gemini_batch("local", "start", "--data-dir", str(data_dir))
    assert again.returncode == 0, again.stderr
    assert exported(again.stdout) == env
    assert "Already running" in again.stderr
    assert read_state(data_dir) == state
    same_ports = gemini_batch(
        "local", "start", "--data-dir", str(data_dir), "--bigquery-port", str(bq_port)
    )
    assert same_ports.returncode == 0, same_ports.stderr
    other_port = gemini_batch(
        "local", "start", "--data-dir", str(data_dir), "--vertex-port", str(free_port())
    )
    assert other_port.returncode == 1
    assert "is running on other ports: asked for --vertex-port" in other_port.stderr
    assert f"(it has {vertex_port})" in other_port.stderr
    assert read_state(data_dir) == state

    client = bigquery_client(state.project, api_endpoint=env["BIGQUERY_ENDPOINT"])
    dataset = f"kept_{uuid.uuid4().hex[:8]}"
    client.create_dataset(dataset)
    client.query(
        f"create table `{dataset}.answers` as select 'a' as id, json '{{\"n\": 1}}' as doc"
    ).result()

    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        stop = gemini_batch("local", "stop", "--data-dir", str(data_dir))
        assert stop.returncode == 0, stop.stderr
        assert f"pids {pids[0]}, {pids[1]}" in stop.stdout
        assert all(gone(pid) for pid in pids)
        assert unrelated.poll() is None, "stop ended a process it did not start"
    finally:
        unrelated.kill()
        unrelated.wait()

    after = gemini_batch("local", "status", "--data-dir", str(data_dir))
    assert after.returncode == 1
    assert "Not running" in after.stdout
    stop_again = gemini_batch("local", "stop", "--data-dir", str(data_dir))
    assert stop_again.returncode == 0
    assert "Nothing to stop" in stop_again.stdout

    restart = gemini_batch("local", "start", "--data-dir", str(data_dir))
    assert restart.returncode == 0, restart.stderr
    assert "Started" in restart.stderr
    endpoint = exported(restart.stdout)["BIGQUERY_ENDPOINT"]
    client = bigquery_client(state.project, api_endpoint=endpoint)
    rows = client.query(f"select id, json_value(doc, '$.n') as n from `{dataset}.answers`")
    assert [dict(row) for row in rows.result()] == [{"id": "a", "n": "1"}]
    assert isinstance(client.get_table(f"{dataset}.answers"), bigquery.Table)


def test_start_on_a_busy_port_fails_clearly_and_leaves_nothing_running(data_dir: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = gemini_batch(
            "local", "start", "--data-dir", str(data_dir), "--bigquery-port", str(port)
        )
    assert start.returncode == 1
    assert start.stdout == ""
    assert f"Port {port} on 127.0.0.1 is already in use" in start.stderr
    assert "--bigquery-port" in start.stderr
    assert "Traceback" not in start.stderr
    assert read_state(data_dir) is None
    status = gemini_batch("local", "status", "--data-dir", str(data_dir))
    assert status.returncode == 1


# A child process of the shell: it sees only what `eval` exported.
_CHILD = (
    f"{shlex.quote(sys.executable)} -c 'import os; print(os.environ.get(\"BIGQUERY_ENDPOINT\"),"
    " os.environ.get(\"GEMINI_BATCH_VERTEX_ENDPOINT\"), os.environ.get(\"GEMINI_BATCH_PROJECT\"))'"
)
_PROFILE = """\
stack:
  target: local
  outputs:
    local:
      type: bigquery
      method: oauth-secrets
      token: local
      project: "{{ env_var('GEMINI_BATCH_PROJECT') }}"
      dataset: shell_check
      location: us-central1
      api_endpoint: "{{ env_var('BIGQUERY_ENDPOINT') }}"
      threads: 1
"""


@pytest.mark.parametrize("shell", ["bash", "sh", "zsh"])
def test_readme_lines_export_to_child_processes(shell: str, tmp_path: Path) -> None:
    """The README's lines, run as written in a real shell: `eval "$(gemini-batch local
    start)"` exports the variables, so a child process (python, dbt debug) sees them;
    then status and stop as the README has them."""
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    lines = readme_stack_lines()
    assert lines[0].startswith('eval "$(gemini-batch local start)"'), lines
    (tmp_path / "profiles.yml").write_text(_PROFILE)
    (tmp_path / "dbt_project.yml").write_text(
        "name: shell_check\nversion: '1.0'\nconfig-version: 2\nprofile: stack\n")
    dbt_debug = "dbt debug --profiles-dir . --project-dir . --no-use-colors"
    script = "\n".join([lines[0], _CHILD, dbt_debug, *lines[1:]])
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BIGQUERY_", "GEMINI_BATCH_"))}
    try:
        run = subprocess.run(
            [shell, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
            env={**env, "PATH": f"{venv_bin}:{env['PATH']}", "NO_COLOR": "1"},
        )
    finally:
        if read_state(tmp_path / ".gemini_batch/local") is not None:
            gemini_batch("local", "stop", "--data-dir", str(tmp_path / ".gemini_batch/local"))
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout.splitlines()
    state_endpoints = out[0].split()
    assert state_endpoints[0].startswith("http://127.0.0.1:"), run.stdout
    assert state_endpoints[1].startswith("http://127.0.0.1:"), run.stdout
    assert state_endpoints[2] == "local-project"
    assert "All checks passed!" in run.stdout, run.stdout
    assert "Connection test: [OK connection ok]" in run.stdout, run.stdout
    status = [line for line in out if line.startswith("bigquery ")]
    assert status and status[0].split()[:3] == ["bigquery", "up", state_endpoints[0]]
    assert any(line.startswith("Stopped the local stack") for line in out), run.stdout
