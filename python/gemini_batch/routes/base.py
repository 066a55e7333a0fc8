"""The route interface: what a batch model's rounds ask of a way of answering.

A route takes a shard table (``<model>__shard_<run>_<n>``: the pending requests one
job answers) and brings its answers into ``<model>__responses``. ``ModelRun`` submits,
polls, adopts, merges and cleans up through this protocol only, and keeps every job
with the route that made it. Today's routes are Vertex AI batch jobs over BigQuery
tables (bigquery_tables.py) and over Cloud Storage JSONL (gcs.py); which one a model
takes is decided in choice.py (ADR 0012).

What every route keeps: the shard table is what a job sends (the ledger's live-shard
rule and the counts read it), the ledger row is written right after ``submit`` returns
and before anything waits, and ``collect`` folds what came back through
``Warehouse.merge_output`` (one rule for what counts as an answer). A route says where
an ended job's output is and whether anything is there (``locate``); ``ModelRun``
decides what that means (a job that answered rows with nothing found is never marked
merged nor cleaned up: its answers were paid for).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gemini_batch.clients.vertex import JobStatus
    from gemini_batch.state.ledger import LedgerEntry
    from gemini_batch.state.warehouse import MergeResult, Shard


@dataclass(frozen=True)
class OutputPlace:
    """Where an ended job's output was looked for, as the service reports it."""

    # Whether anything is there to collect.
    found: bool
    # The place read, from the job's outputInfo, and what was asked for when it differs:
    # "output table p.d.t (outputInfo.bigqueryOutputTable)".
    where: str
    # What the user should check when nothing is there.
    check: str

    def missing(self, job: JobStatus, entry: LedgerEntry) -> str:
        """Why ``job``, which says it answered rows, is not merged, and what to do."""
        found = "found but holding no rows" if self.found else "not found"
        return (
            f"job {job.job_id} ended {job.state} with {job.succeeded:,} answers but nothing "
            f"was found to merge: {self.where} {found}; {self.check}. Its "
            f"{entry.request_count:,} requests are not sent again and nothing was deleted: "
            f"`gemini-batch collect {job.job_id}` (or the next build) merges it once the "
            "output is readable."
        )


class Route(Protocol):
    """A way a batch model's pending requests get answered, one shard per job."""

    # What the route is called in settings and messages (``bigquery``, ``gcs``).
    name: str
    # Where its jobs run (the ledger's location column).
    location: str

    def submit(self, shard: Shard, *, output_table: str, labels: Mapping[str, str]
               ) -> JobStatus:
        """Start answering ``shard``; its answers end up in ``output_table``. Returns
        once the service has the job (never two for one call)."""
        ...

    def status(self, entry: LedgerEntry) -> JobStatus:
        """The job's state now (``NOT_FOUND`` when the service lost it)."""
        ...

    def cancel(self, job: JobStatus) -> None:
        """Take back a job just made (its ledger row could not be written)."""
        ...

    def labelled_jobs(self, labels: Mapping[str, str], created_after: datetime
                      ) -> list[JobStatus]:
        """The route's jobs with all of ``labels`` since ``created_after``: where a
        build finds the jobs a dead build made but never recorded."""
        ...

    def shard_of(self, job: JobStatus) -> str:
        """The shard table ``job`` sends ("" when it is none of this route's)."""
        ...

    def output_of(self, job: JobStatus) -> str:
        """The BigQuery table ``job``'s answers are (or are collected) in."""
        ...

    def has_output(self, job: JobStatus) -> bool:
        """Whether an ended ``job`` left anything to collect."""
        ...

    def locate(self, entry: LedgerEntry) -> OutputPlace:
        """Where the ended job's output is (from the service's ``outputInfo``, against
        what was asked for), and whether anything is there."""
        ...

    def collect(self, entry: LedgerEntry) -> MergeResult | None:
        """Fold what the ended job brought back into ``<model>__responses``; None when
        it brought nothing (even a FAILED job may have answered rows: they were paid)."""
        ...

    def clean_up(self, entry: LedgerEntry) -> None:
        """Drop what the merged job leaves behind (tables, files)."""
        ...


__all__ = ["OutputPlace", "Route"]
