"""The services of one dbt target, opened once per command and passed down.

A ``Workspace`` holds the BigQuery client of the target (with dbt's own credentials, or
anonymous ones for a local endpoint), the job ledger, the warehouse statements, a Vertex
AI job client per location (made on first use: a build with everything cached never
talks to Vertex AI) and the price table. Nothing else in the package builds clients.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from gemini_batch.build.dbt_project import DbtProject, DbtTarget
from gemini_batch.clients.bigquery import BigQuery, bigquery_client
from gemini_batch.clients.vertex import VertexJobs, vertex_job_client
from gemini_batch.rules.config import ledger_dataset
from gemini_batch.rules.pricing import PriceTable
from gemini_batch.state.ledger import Ledger
from gemini_batch.state.warehouse import Warehouse


@dataclass
class Workspace:
    """BigQuery, the ledger, the warehouse, Vertex AI and prices of one dbt target."""

    target: DbtTarget
    dbt_vars: dict[str, Any]
    bq: BigQuery
    ledger: Ledger
    warehouse: Warehouse
    _vertex: dict[str, VertexJobs] = field(default_factory=dict, repr=False)
    _vertex_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def open(cls, project: DbtProject) -> Workspace:
        """The workspace of a parsed project's target. Creates nothing: a build calls
        ``ledger.ensure()`` before it submits."""
        target = project.target()
        dbt_vars = project.vars
        bq = BigQuery(
            bigquery_client(
                target.project,
                api_endpoint=target.api_endpoint,
                location=target.location,
                credentials=target.google_credentials(),
            )
        )
        return cls(
            target=target,
            dbt_vars=dbt_vars,
            bq=bq,
            ledger=Ledger(bq, target.data_project, ledger_dataset(dbt_vars, target.dataset)),
            warehouse=Warehouse(bq),
        )

    @cached_property
    def prices(self) -> PriceTable:
        """The price table with var gemini_batch_prices applied (read when first needed,
        so a bad var fails the command that estimates, not `status`)."""
        return PriceTable.from_vars(self.dbt_vars)

    def vertex(self, location: str) -> VertexJobs:
        """The Vertex AI jobs of the target's project in ``location`` (one client each)."""
        with self._vertex_lock:
            if location not in self._vertex:
                self._vertex[location] = VertexJobs(
                    project=self.target.project,
                    location=location,
                    client=vertex_job_client(
                        location, credentials=self.target.google_credentials()
                    ),
                )
            return self._vertex[location]


__all__ = ["Workspace"]
