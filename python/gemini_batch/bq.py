"""BigQuery basics every other module uses: the client, table names, parameterised queries.

Talks to BigQuery (google-cloud-bigquery). Depends on no other module of the package but
``errors``: the ledger and the warehouse are both built on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery
from sqlglot import exp

from gemini_batch.errors import WarehouseError


def bigquery_client(
    project: str,
    *,
    api_endpoint: str | None = None,
    location: str | None = None,
    credentials: Credentials | None = None,
) -> bigquery.Client:
    """A BigQuery client for ``project``.

    With ``api_endpoint`` (the local emulator, or any BigQuery-compatible endpoint) the
    client uses anonymous credentials; without it, ``credentials`` (default: Application
    Default Credentials) and Google's endpoint.
    """
    if api_endpoint:
        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=api_endpoint),
        )
    return bigquery.Client(project=project, location=location, credentials=credentials)


def quote_table(name: str) -> str:
    """``project.dataset.table`` as backquoted BigQuery SQL; ValueError if it is not one.

    The one way table names from config or the ledger get into SQL.
    """
    parts = name.split(".")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{name!r} is not a fully qualified table name (project.dataset.table)")
    for part in parts:
        # Project ids may hold '-' and ':' (domain-scoped); dataset and table names may not
        # hold backquotes or newlines, which are the only ways out of a quoted identifier.
        if any(ch in part for ch in "`\\\n\r") or len(part) > 1024:
            raise ValueError(f"{name!r}: {part!r} is not a valid BigQuery name")
    table = exp.Table(
        catalog=exp.to_identifier(parts[0], quoted=True),
        db=exp.to_identifier(parts[1], quoted=True),
        this=exp.to_identifier(parts[2], quoted=True),
    )
    return table.sql(dialect="bigquery")


class BigQuery:
    """One BigQuery client and the calls the ledger, the warehouse and cost make with it."""

    def __init__(self, client: bigquery.Client) -> None:
        self.client = client

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[bigquery.Row]:
        """Run one statement with named query parameters and wait for its rows.

        A value is a Python value (its BigQuery type inferred; None is a STRING NULL)
        or a ready ``bigquery.ScalarQueryParameter``/``ArrayQueryParameter``.
        """
        job_config = bigquery.QueryJobConfig(
            query_parameters=[
                value if isinstance(value, _PARAMETER_TYPES) else parameter(name, value)
                for name, value in (params or {}).items()
            ]
        )
        return list(self.client.query(sql, job_config=job_config).result())

    def table_exists(self, table: str) -> bool:
        """Whether ``project.dataset.table`` exists."""
        try:
            self.client.get_table(table)
        except NotFound:
            return False
        return True

    def drop_tables(self, tables: Iterable[str]) -> None:
        """Drop these tables; missing ones are fine (a redone cleanup)."""
        for table in tables:
            quote_table(table)  # refuse anything that is not a table name
            self.client.delete_table(table, not_found_ok=True)

    def dataset_location(self, project: str, dataset: str) -> str:
        """The location of ``project.dataset`` as BigQuery reports it (e.g. 'us-central1')."""
        try:
            found = self.client.get_dataset(f"{project}.{dataset}")
        except NotFound as exc:
            raise WarehouseError(
                f"Dataset {project}.{dataset} does not exist: run `dbt run` for the batch "
                "model first (it creates the dataset)."
            ) from exc
        return str(found.location or "")


_PARAMETER_TYPES = (bigquery.ScalarQueryParameter, bigquery.ArrayQueryParameter)


def parameter(
    name: str, value: Any, kind: str | None = None
) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    """A named query parameter; its type is ``kind`` or inferred from ``value``
    (lists and tuples are ARRAY<STRING>; None is a STRING NULL unless ``kind`` says)."""
    if kind is not None:
        return bigquery.ScalarQueryParameter(name, kind, value)
    if isinstance(value, list | tuple):
        return bigquery.ArrayQueryParameter(name, "STRING", list(value))
    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, float):
        kind = "FLOAT64"
    elif hasattr(value, "tzinfo"):
        kind = "TIMESTAMP"
    else:
        kind = "STRING"
    return bigquery.ScalarQueryParameter(name, kind, value)


__all__ = ["BigQuery", "bigquery_client", "parameter", "quote_table"]
