"""Throughput of the Vertex AI emulator: one simulate job over a 100,000-row input table.

Starts its own local stack in a temporary directory, loads the input table, then times
create → SUCCEEDED through the aiplatform_v1 REST client, and reports rows/s and the
emulator process's peak resident memory (VmHWM). Run:

    .venv/bin/python benchmarks/emulator_throughput.py [--rows 100000]

Target: at least 10,000 rows/s, peak RSS under 500 MB.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import psutil
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform_v1, bigquery

from gemini_batch.clients.bigquery import bigquery_client
from gemini_batch.local.stack import DEFAULT_LOCATION, start_stack, stop_stack
from gemini_batch.local.vertex.runner import PAGE_SIZE

TERMINAL = {
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
}


def peak_rss_mb(pid: int) -> float:
    """The process's high-water mark of resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def input_rows(count: int) -> bytes:
    """Newline-delimited JSON: an id, a category and a request like a dbt model builds."""
    lines = []
    for row in range(count):
        request = {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "text": f"Summarise review {row}: the "
                            "product arrived on time and works as described."
                        }
                    ],
                }
            ],
            "systemInstruction": {"parts": [{"text": "You are a concise analyst."}]},
            "generationConfig": {"temperature": 0.2, "maxOutputTokens": 256},
        }
        lines.append(json.dumps({"id": row, "category": f"c{row % 7}", "request": request}))
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=PAGE_SIZE)
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="emulator-throughput-"))
    state, _ = start_stack(data_dir, vertex_args=["--page-size", str(args.page_size)])
    try:
        bq = bigquery_client(state.project, api_endpoint=state.bigquery_endpoint)
        bq.create_dataset("bench")
        table = f"{state.project}.bench.requests"
        started = time.perf_counter()
        bq.load_table_from_file(
            io.BytesIO(input_rows(args.rows)),
            table,
            job_config=bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
                schema=[
                    bigquery.SchemaField("id", "INTEGER"),
                    bigquery.SchemaField("category", "STRING"),
                    bigquery.SchemaField("request", "JSON"),
                ],
            ),
        ).result()
        print(f"loaded {args.rows:,} input rows in {time.perf_counter() - started:.1f}s")

        for _ in range(100):  # the load job is done, but wait until its rows are counted
            if bq.get_table(table).num_rows == args.rows:
                break
            time.sleep(0.1)
        vertex, bigquery_server = (
            psutil.Process(state.vertex_pid),
            psutil.Process(state.bigquery_pid),
        )
        cpu_before = [sum(p.cpu_times()[:2]) for p in (vertex, bigquery_server)]
        client = aiplatform_v1.JobServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=state.vertex_endpoint),
        )
        started = time.perf_counter()
        job = client.create_batch_prediction_job(
            parent=f"projects/{state.project}/locations/{DEFAULT_LOCATION}",
            batch_prediction_job=aiplatform_v1.BatchPredictionJob(
                display_name="throughput",
                model="publishers/google/models/gemini-2.5-flash",
                input_config={
                    "instances_format": "bigquery",
                    "bigquery_source": {"input_uri": f"bq://{table}"},
                },
                output_config={
                    "predictions_format": "bigquery",
                    "bigquery_destination": {"output_uri": f"bq://{state.project}.bench.responses"},
                },
            ),
        )
        while job.state.name not in TERMINAL:
            time.sleep(0.1)
            job = client.get_batch_prediction_job(name=job.name)
        seconds = time.perf_counter() - started
        written = bq.get_table(f"{state.project}.bench.responses").num_rows
        stats = job.completion_stats
        print(
            f"completion stats: {stats.successful_count:,} succeeded, "
            f"{stats.failed_count:,} failed, {stats.incomplete_count:,} incomplete"
        )
        print(
            f"job {job.state.name}: {written:,} output rows in {seconds:.1f}s "
            f"= {args.rows / seconds:,.0f} rows/s"
        )
        cpu = [
            sum(p.cpu_times()[:2]) - before
            for p, before in zip((vertex, bigquery_server), cpu_before, strict=True)
        ]
        print(f"emulator peak RSS: {peak_rss_mb(state.vertex_pid):.0f} MB")
        print(
            f"CPU seconds during the job: Vertex emulator {cpu[0]:.1f}, "
            f"BigQuery emulator {cpu[1]:.1f} (machine load average {os.getloadavg()[0]:.1f})"
        )
        log = Path(state.data_dir) / "logs" / "vertex.log"
        breakdown = [line for line in log.read_text().splitlines() if " rows in " in line]
        if breakdown:
            print("emulator:", breakdown[-1].split(": ", 1)[-1])
        if job.state.name != "JOB_STATE_SUCCEEDED":
            print(f"error: {job.error.message}")
    finally:
        stop_stack(data_dir)


if __name__ == "__main__":
    main()
