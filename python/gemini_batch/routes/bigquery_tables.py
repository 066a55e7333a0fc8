"""`transport: bigquery`: Vertex AI batch jobs read the shard table and write their
output table in BigQuery themselves (ADR 0001); nothing passes through this process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from gemini_batch.routes.vertex_batch import VertexBatchRoute

if TYPE_CHECKING:
    from gemini_batch.clients.vertex import JobStatus
    from gemini_batch.state.warehouse import Shard


class BigQueryTablesRoute(VertexBatchRoute):
    """A batch job per shard table, answering into its output table."""

    name = "bigquery"

    def submit(self, shard: Shard, *, output_table: str, labels: Mapping[str, str]
               ) -> JobStatus:
        return self.jobs.submit(
            display_name=self.display_name(shard.table),
            gemini_model=self.model.config.gemini_model,
            input_table=shard.table,
            output_table=output_table,
            labels=labels,
        )


__all__ = ["BigQueryTablesRoute"]
