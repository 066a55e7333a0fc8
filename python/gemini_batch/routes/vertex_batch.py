"""What both Vertex AI batch routes share: the job service, the labels, the merge.

A Vertex AI batch job is polled, cancelled and listed alike whatever its input and
output are; its answers reach ``<model>__responses`` from a BigQuery output table by
``Warehouse.merge_output``. The two routes differ only in how the shard reaches the job
and how the answers reach that table (bigquery_tables.py, gcs.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from gemini_batch.clients.vertex import SHARD_TABLE_HOURS

if TYPE_CHECKING:
    from gemini_batch.clients.vertex import JobStatus, VertexJobs
    from gemini_batch.routes.base import OutputPlace
    from gemini_batch.rules.config import BatchModel
    from gemini_batch.state.ledger import LedgerEntry
    from gemini_batch.state.warehouse import MergeResult, Warehouse

# How many of a model's labelled jobs a build looks through for unrecorded ones.
LABELLED_JOBS_LIMIT = 1000


class VertexBatchRoute:
    """Vertex AI batch jobs of one model in one location (see base.Route)."""

    name = "vertex"

    def __init__(
        self,
        model: BatchModel,
        location: str,
        warehouse: Warehouse,
        vertex: Callable[[str], VertexJobs],
    ) -> None:
        self.model = model
        self.location = location
        self.warehouse = warehouse
        # The job client of a location, made on first use (a build with every request
        # cached never talks to Vertex AI).
        self._vertex = vertex

    @property
    def jobs(self) -> VertexJobs:
        return self._vertex(self.location)

    def status(self, entry: LedgerEntry) -> JobStatus:
        # The entry's own location: a job made before the model's location changed.
        return self._vertex(entry.location).get(entry.job_name)

    def cancel(self, job: JobStatus) -> None:
        self.jobs.cancel(job.name)

    def labelled_jobs(self, labels: Mapping[str, str], created_after: datetime
                      ) -> list[JobStatus]:
        return self.jobs.list(labels=labels, created_after=created_after,
                              limit=LABELLED_JOBS_LIMIT)

    def display_name(self, shard_table: str) -> str:
        return shard_table.rsplit(".", 1)[-1]

    # A job is recognised by what the service says it reads and writes: a table job
    # adopted under either route keeps its tables.
    def shard_of(self, job: JobStatus) -> str:
        return job.input_table or ""

    def output_of(self, job: JobStatus) -> str:
        return job.output_table or ""

    def has_output(self, job: JobStatus) -> bool:
        return bool(job.output_table) and self.warehouse.bq.table_exists(job.output_table)

    def locate(self, entry: LedgerEntry) -> OutputPlace:
        from gemini_batch.routes.base import OutputPlace

        asked = entry.output_table
        reported = self.status(entry).output_table
        if not reported:
            source = "asked for; the service reports no outputInfo.bigqueryOutputTable"
        elif reported != asked:
            source = f"asked for; the service reports {reported} (outputInfo.bigqueryOutputTable)"
        else:
            source = "outputInfo.bigqueryOutputTable, as asked"
        project, dataset, _ = asked.rsplit(".", 2)  # a domain project has a dot
        default = self.warehouse.bq.default_expiration_hours(project, dataset)
        expiration = (f"; {project}.{dataset} expires new tables after {default:g} hours, "
                      "its default table expiration" if default else "")
        return OutputPlace(
            found=self.warehouse.bq.table_exists(asked),
            where=f"output table {asked} ({source})",
            check="check that the table exists and this account can read it (the dataset's "
                  f"location and permissions, a table expiration that dropped it{expiration})",
        )

    def collect(self, entry: LedgerEntry) -> MergeResult | None:
        # Vertex AI makes the output table with the dataset's default expiration: from
        # now on it outlives a merge that fails and is tried again days later.
        if not self.warehouse.bq.keep_table(entry.output_table, SHARD_TABLE_HOURS):
            return None
        return self.warehouse.merge_output(
            self.model, entry.output_table, entry.job_name, shard_table=entry.shard_table
        )

    def clean_up(self, entry: LedgerEntry) -> None:
        self.warehouse.bq.drop_tables([entry.shard_table, entry.output_table])


__all__ = ["LABELLED_JOBS_LIMIT", "VertexBatchRoute"]
