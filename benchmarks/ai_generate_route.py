"""The two routes for the same requests: AI.GENERATE in a plain `dbt run` beside a batch
job sent by `gemini-batch build`, on the local stack.

Each route runs on a stack of its own (so each emulator's peak memory is the route's):
a dbt project with one batch model of ``--rows`` requests (built in SQL), then

- route ai_generate: ``dbt run`` (builds the tables and answers every request);
- route batch: ``gemini-batch build`` (its dbt run, the batch job, the merge).

Reported per route: wall time, rows/s, answered rows, AI.GENERATE statements, and the
peak resident memory (VmHWM) of the BigQuery and Vertex AI emulators. Run:

    .venv/bin/python benchmarks/ai_generate_route.py [--rows 10000]

No target: the figures go in the README's Performance section.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import textwrap
import time
from pathlib import Path

from gemini_batch.clients.bigquery import bigquery_client
from gemini_batch.local.stack import StackState, start_stack, stop_stack

REPO = Path(__file__).resolve().parents[1]
BIN = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"

MODEL = """\
{{{{ config(materialized='gemini_batch',
          meta={{'gemini_model': 'gemini-2.5-flash', 'route': '{route}',
                'ai_generate_max_rows': {rows}}}) }}}}
select n as id,
  {{{{ gemini_batch.request(
      prompt="concat('Summarise review ', cast(n as string), ': it arrived on time and works.')",
      system_instruction="'You are a concise analyst.'",
      generation_config={{'temperature': 0.2, 'maxOutputTokens': 256,
                         'thinkingConfig': {{'thinkingBudget': 0}}}}) }}}} as request
from unnest(generate_array(1, {rows})) as n
"""


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def project(root: Path, state: StackState, route: str, rows: int) -> Path:
    path = root / f"bench_{route}"
    (path / "models").mkdir(parents=True)
    (path / "dbt_project.yml").write_text(
        "name: bench\nversion: '1.0'\nconfig-version: 2\nprofile: bench\n")
    (path / "packages.yml").write_text(f"packages:\n  - local: {REPO}\n")
    (path / "profiles.yml").write_text(state.dbt_profile("bench", f"bench_{route}"))
    (path / "models" / "reviews.sql").write_text(MODEL.format(route=route, rows=rows))
    return path


def run(program: str, *args: str, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run([str(BIN / program), *args, "--project-dir", str(cwd),
                           "--profiles-dir", str(cwd)], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{program} {' '.join(args)} failed:\n{done.stdout}{done.stderr}")


def one_route(route: str, rows: int) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix=f"route-{route}-"))
    state, _ = start_stack(data_dir)
    try:
        path = project(data_dir, state, route, rows)
        env = {**os.environ, **state.environment(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        run("dbt", "deps", cwd=path, env=env)
        started = time.perf_counter()
        if route == "ai_generate":
            run("dbt", "run", cwd=path, env=env)
        else:
            run("gemini-batch", "build", cwd=path, env=env)
        seconds = time.perf_counter() - started
        bq = bigquery_client(state.project, api_endpoint=state.bigquery_endpoint)
        counts = next(iter(bq.query(
            f"select countif(batch_state = 'succeeded') as n, "
            f"countif(batch_state = 'failed') as failed, min(last_error) as error "
            f"from `{state.project}.bench_{route}.reviews`").result()))
        answered = counts.n
        statements = next(iter(bq.query(
            f"select count(*) as n from `{state.project}.bench_{route}.gemini_batch_jobs`"
        ).result())).n
        print(f"route {route:11}: {answered:,} of {rows:,} answered in {seconds:.1f}s "
              f"= {rows / seconds:,.0f} rows/s; {statements} ledger row(s); peak RSS "
              f"BigQuery emulator {peak_rss_mb(state.bigquery_pid):.0f} MB, "
              f"Vertex emulator {peak_rss_mb(state.vertex_pid):.0f} MB "
              f"(load average {os.getloadavg()[0]:.1f})")
        if counts.failed:
            print(f"  {counts.failed:,} failed, e.g. {counts.error}")
    finally:
        stop_stack(data_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__).splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--routes", default="ai_generate,batch")
    args = parser.parse_args()
    for route in args.routes.split(","):
        one_route(route, args.rows)


if __name__ == "__main__":
    main()
