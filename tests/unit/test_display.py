"""What the plain progress lines say (CI logs, cron mail, Airflow task logs)."""

from __future__ import annotations

import io

from rich.console import Console

from gemini_batch.display import PlainReporter

JOB = "projects/p/locations/us-central1/batchPredictionJobs/4242"


def _lines(call) -> list[str]:
    out = io.StringIO()
    call(PlainReporter(Console(file=out, width=200)))
    return [line.split(" ", 1)[1] for line in out.getvalue().splitlines()]  # no time stamp


def test_a_new_job_is_submitted_a_resumed_one_is_not():
    assert _lines(lambda r: r.job_started("reviews", JOB, 1200)) == [
        "reviews: job 4242 submitted (1,200 requests)"]
    assert _lines(lambda r: r.job_started("reviews", JOB, 1200, resumed=True)) == [
        "reviews: job 4242 resumed (1,200 requests, submitted by an earlier build)"]
