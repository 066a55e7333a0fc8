"""The whole pipeline on the local stack: `gemini-batch build` over N requests.

Starts its own local stack in a temporary directory and writes a dbt project whose
prompts are generated in SQL (N rows), a batch model over them and a downstream view.
Then it measures, each as a separate `gemini-batch` / `dbt` process:

1. `gemini-batch build` from scratch: total wall time, time inside Vertex jobs (the
   union of the ledger's submitted_at..ended_at intervals) and outside them, the
   BigQuery statements' time by kind (requests table, request checks, counts, shards,
   merges, ledger, the rest of dbt: from the BigQuery emulator's job list), and the
   process's peak memory;
2. `gemini-batch build` after `--changed` rows changed their prompt: the requests it
   submitted (the ledger) and its time. The change comes from upstream data (the
   prompts model reads a one-row table the script rewrites), as it does in a real
   project: a `--vars` change would make dbt parse the whole project again;
3. `gemini-batch build` again with nothing changed (no job), against
4. a plain `dbt build` of the same project;
2 to 4 `--repeat` times, alternated (each round changes `--changed` other rows), with
the medians; and the BigQuery emulator's peak memory over all of it.

Run:

    .venv/bin/python benchmarks/pipeline.py [--rows 100000] [--shard-size 25000]
    .venv/bin/python benchmarks/pipeline.py --rows 1000000 --shard-size 200000 \
        --max-concurrent-jobs 5 --repeat 1

Targets (issue 10): 1,000,000 requests end to end within 300 s; BigQuery emulator peak
memory within 4 GB; the gemini-batch process within 300 MB (request rows never come
into Python); the rerun after changing 1,000 rows submits exactly those and takes at
most 1.3x a plain `dbt build`; the no-op rerun at most 1.3x `dbt build`.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from google.cloud import bigquery

from gemini_batch.clients.bigquery import bigquery_client
from gemini_batch.local.stack import DEFAULT_LOCATION, start_stack, stop_stack

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DATASET = "pipeline_bench"


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_rss_mb: float
    peak_anon_mb: float
    output: str


def _anon_mb(pid: int) -> float:
    """A live process's anonymous resident memory (RssAnon), 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def timed(command: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Run ``command`` to its end; wall time, its peak resident memory (wait4), and
    the peak of its anonymous part (sampled every 20 ms). The resident figure counts
    the library pages the kernel maps around each page fault from the page cache, so
    it is tens of MB higher while the venv's files are all cached (just installed);
    the anonymous part is the process's own and does not move with the cache."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, text=True
        )
        peak_anon = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak_anon[0] = max(peak_anon[0], _anon_mb(process.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        done.set()
        sampler.join()
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}:\n{output[-4000:]}")
    return Run(seconds=seconds, peak_rss_mb=usage.ru_maxrss / 1024,
               peak_anon_mb=peak_anon[0], output=output)


def write_project(path: Path, rows: int, shard_size: int, max_concurrent_jobs: int) -> None:
    files = {
        "dbt_project.yml": """\
            name: pipeline_bench
            version: "1.0"
            config-version: 2
            profile: pipeline_bench
            flags:
              send_anonymous_usage_stats: false
            """,
        "packages.yml": f"packages:\n  - local: {REPO_ROOT}\n",
        "profiles.yml": f"""\
            pipeline_bench:
              target: local
              outputs:
                local:
                  type: bigquery
                  method: oauth-secrets
                  token: local
                  project: "{{{{ env_var('GEMINI_BATCH_PROJECT') }}}}"
                  dataset: {DATASET}
                  location: us-central1
                  api_endpoint: "{{{{ env_var('BIGQUERY_ENDPOINT') }}}}"
                  threads: 4
                  job_retries: 0
            """,
        "models/sources.yml": f"""\
            sources:
              - name: bench
                schema: {DATASET}
                tables:
                  - name: changes
            """,
        "models/prompts.sql": f"""\
            {{{{ config(materialized='table') }}}}
            select n as id, concat('Write one sentence about the number ', cast(n as string),
                                   if(n <= changes.changed, ' (asked again)', '')) as prompt
            from unnest(generate_array(1, {rows})) as n
            cross join {{{{ source('bench', 'changes') }}}} as changes
            """,
        "models/questions.sql": f"""\
            {{{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash-lite',
                       shard_size={shard_size},
                       max_concurrent_jobs={max_concurrent_jobs}) }}}}
            select id, {{{{ gemini_batch.request(prompt='prompt',
                generation_config={{'maxOutputTokens': 64}}) }}}} as request
            from {{{{ ref('prompts') }}}}
            """,
        "models/answer_states.sql": """\
            {{ config(materialized='table') }}
            select batch_state, count(*) as requests
            from {{ ref('questions') }}
            group by batch_state
            """,
    }
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))


def seconds_in_jobs(client: bigquery.Client, project: str) -> tuple[float, int]:
    """Wall time covered by at least one running job (union of intervals), and jobs."""
    rows = list(
        client.query(
            f"SELECT submitted_at, ended_at FROM `{project}.{DATASET}.gemini_batch_jobs` "
            "ORDER BY submitted_at"
        ).result()
    )
    covered = 0.0
    current_start: datetime | None = None
    current_end: datetime | None = None
    for row in rows:
        start, end = row.submitted_at, row.ended_at or row.submitted_at
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                covered += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        covered += (current_end - current_start).total_seconds()
    return covered, len(rows)


# Which part of a build a BigQuery statement belongs to, by what it touches (first
# match wins).
_KINDS = [
    ("requests table", ("__requests", "create or replace table")),
    ("request checks", ("__checks", "merge")),
    ("shards", ("__pending_",)),
    ("shards", ("__shard_", "create table")),
    ("merges", ("__responses", "merge")),
    ("merges", ("__responses", "insert into")),
    ("merges", ("__answers",)),  # the job's answers with the rules applied, then stats
    ("counts", ("with ids as",)),
    ("ledger and locks", ("gemini_batch_jobs",)),
    ("ledger and locks", ("gemini_batch_locks",)),
    ("Vertex emulator reads/writes", ("__output_",)),
]


def statement_seconds(client: bigquery.Client, since: datetime, until: datetime
                      ) -> dict[str, float]:
    """Seconds of BigQuery statements started in [since, until], by kind (they overlap
    when statements run side by side)."""
    seconds: dict[str, float] = collections.defaultdict(float)
    for job in client.list_jobs(max_results=200_000, all_users=True):
        started, ended = job.started or job.created, job.ended
        if started is None or ended is None or not since <= started <= until:
            continue
        sql = (getattr(job, "query", None) or "").lower()
        kind = next((name for name, marks in _KINDS if all(m in sql for m in marks)),
                    "other dbt statements")
        seconds[kind] += (ended - started).total_seconds()
    return dict(seconds)


def peak_rss_mb(pid: int) -> float:
    """A live process's peak resident memory (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def set_changed(client: bigquery.Client, project: str, changed: int) -> None:
    """The upstream table the prompts model reads: rows 1..changed get a new prompt."""
    client.query(f"CREATE OR REPLACE TABLE `{project}.{DATASET}.changes` AS "
                 f"SELECT {int(changed)} AS changed").result()


def requests_sent(client: bigquery.Client, project: str) -> int:
    rows = client.query(f"SELECT COALESCE(SUM(request_count), 0) AS n "
                        f"FROM `{project}.{DATASET}.gemini_batch_jobs`").result()
    return int(next(iter(rows))["n"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--shard-size", type=int, default=25_000)
    parser.add_argument("--max-concurrent-jobs", type=int, default=4)
    parser.add_argument("--changed", type=int, default=1_000,
                        help="Rows whose prompt changes before the second build.")
    parser.add_argument("--repeat", type=int, default=3,
                        help="Rounds of changed rerun, no-op rerun and plain dbt build (medians).")
    parser.add_argument("--show-output", action="store_true",
                        help="Print the first build's log (timestamps show the phases).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="gemini-batch-bench-") as tmp:
        tmp_path = Path(tmp)
        state, _ = start_stack(tmp_path / "stack")
        try:
            env = {**os.environ, **state.environment(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
            project_dir = tmp_path / "project"
            write_project(project_dir, args.rows, args.shard_size, args.max_concurrent_jobs)
            client = bigquery_client(state.project, api_endpoint=state.bigquery_endpoint)
            dataset = bigquery.Dataset(f"{state.project}.{DATASET}")
            dataset.location = DEFAULT_LOCATION
            client.create_dataset(dataset)
            set_changed(client, state.project, 0)
            project_args = ["--project-dir", str(project_dir), "--profiles-dir", str(project_dir)]
            timed([str(BIN / "dbt"), "deps", *project_args], env, project_dir)

            build = [str(BIN / "gemini-batch"), "build", *project_args, "--plain"]
            started = datetime.now(UTC)
            first = timed(build, env, project_dir)
            split = statement_seconds(client, started, datetime.now(UTC))
            in_jobs, jobs = seconds_in_jobs(client, state.project)
            states = {
                row.batch_state: row.requests
                for row in client.query(
                    f"SELECT * FROM `{state.project}.{DATASET}.answer_states`"
                ).result()
            }
            changed_runs, sent_changed, reruns, dbt_builds = [], [], [], []
            changed_split: dict[str, float] = {}
            for round_number in range(1, args.repeat + 1):
                # Alternated: a busy machine slows them all alike. Rows 1..changed*N
                # have a new prompt in round N: `changed` of them are new to it.
                sent_before = requests_sent(client, state.project)
                set_changed(client, state.project, args.changed * round_number)
                started = datetime.now(UTC)
                changed_runs.append(timed(build, env, project_dir))
                if not changed_split:
                    changed_split = statement_seconds(client, started, datetime.now(UTC))
                sent_changed.append(requests_sent(client, state.project) - sent_before)
                reruns.append(timed(build, env, project_dir))
                dbt_builds.append(timed([str(BIN / "dbt"), "build", *project_args], env,
                                        project_dir))
            bigquery_peak = peak_rss_mb(state.bigquery_pid)
            vertex_peak = peak_rss_mb(state.vertex_pid)
        finally:
            stop_stack(tmp_path / "stack")

    if args.show_output:
        print(first.output)
    outside = first.seconds - in_jobs
    changed = statistics.median(run.seconds for run in changed_runs)
    rerun = statistics.median(run.seconds for run in reruns)
    dbt_build = statistics.median(run.seconds for run in dbt_builds)
    print(f"requests                      {args.rows:,} ({jobs} jobs of <= {args.shard_size:,})")
    print(f"answers                       {states}")
    print(f"gemini-batch build            {first.seconds:8.1f} s  (target 1M: <= 300 s)")
    print(f"  inside Vertex jobs          {in_jobs:8.1f} s")
    print(f"  outside the jobs            {outside:8.1f} s  ({outside / first.seconds:.0%})")
    print("  BigQuery statements by kind, first build / rerun with rows changed (s; they "
          "overlap):")
    for kind, seconds in sorted(split.items(), key=lambda item: -item[1]):
        print(f"    {kind:<30}{seconds:8.1f} / {changed_split.get(kind, 0.0):6.1f}")
    print(f"  peak memory                 {first.peak_rss_mb:8.0f} MB  (target <= 300 MB; "
          f"anonymous {first.peak_anon_mb:.0f} MB)")
    print(f"rerun, {args.changed:,} rows changed {changed:8.1f} s  (median of {args.repeat}; "
          f"each {', '.join(f'{run.seconds:.1f}' for run in changed_runs)} s)")
    print(f"  submitted                   {', '.join(f'{n:,}' for n in sent_changed)}  "
          f"(target: exactly {args.changed:,} each)")
    print(f"  rerun / dbt build           {changed / dbt_build:8.2f} x (target <= 1.3x)")
    print(f"no-op rerun (median of {args.repeat})     {rerun:8.1f} s  "
          f"(peak {max(run.peak_rss_mb for run in reruns):.0f} MB, "
          f"anonymous {max(run.peak_anon_mb for run in reruns):.0f} MB)")
    print(f"plain dbt build (median)      {dbt_build:8.1f} s  "
          f"(peak {max(run.peak_rss_mb for run in dbt_builds):.0f} MB, "
          f"anonymous {max(run.peak_anon_mb for run in dbt_builds):.0f} MB)")
    print(f"  rerun / dbt build           {rerun / dbt_build:8.2f} x (target <= 1.3x)")
    print(f"BigQuery emulator peak        {bigquery_peak:8.0f} MB  (target <= 4096 MB)")
    print(f"Vertex emulator peak          {vertex_peak:8.0f} MB")
    for run in reruns:
        if "no job submitted" not in run.output:
            print("WARNING: a rerun submitted jobs; its output:\n" + run.output[-2000:])


if __name__ == "__main__":
    main()
