"""A job over BigQuery tables: the input table as a source, the output table as a sink.

The input is checked as the service checks it (a JSON or STRING ``request`` column, no
column named like an output column, no type batch prediction does not pass through); the
output table gets the input's columns plus ``response``, ``status`` and
``processed_time``, created before the job runs (or ``predictions_<time>`` when the
output URI names only a dataset). Rows are read and appended through tables.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from gemini_batch.local.vertex.errors import (
    ALREADY_EXISTS,
    INTERNAL,
    INVALID_ARGUMENT,
    NOT_FOUND,
    JobFailure,
)
from gemini_batch.local.vertex.output import OutputWriter
from gemini_batch.local.vertex.tables import BigQueryError, BigQueryRest, TableRef

RESERVED_COLUMNS = ("response", "status", "processed_time")
# Column types the service does not pass through to the output table.
UNSUPPORTED_TYPES = frozenset({"RECORD", "STRUCT", "RANGE", "DATETIME", "GEOGRAPHY"})
OUTPUT_COLUMNS = [
    {"name": "response", "type": "JSON", "mode": "NULLABLE"},
    {"name": "status", "type": "STRING", "mode": "NULLABLE"},
    {"name": "processed_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
]


def output_table_name(moment: datetime) -> str:
    """The table the service creates when the output URI names only a dataset."""
    return (
        "predictions_"
        + moment.strftime("%Y_%m_%dT%H_%M_%S_")
        + f"{moment.microsecond // 1000:03d}Z"
    )


class TableSource:
    """``inputConfig.bigquerySource``: the rows of the input table."""

    def __init__(self, bigquery: BigQueryRest, job: dict[str, Any]) -> None:
        ref = TableRef.parse(job["inputConfig"]["bigquerySource"]["inputUri"])
        assert ref is not None  # checked when the job was created
        self.ref = ref
        self.name = f"table {ref}"
        self._bigquery = bigquery
        self._table: dict[str, Any] = {}
        self.columns: list[dict[str, Any]] = []
        self.total_rows = 0

    def open(self) -> TableSource:
        """Check the table; JobFailure names what is wrong with it."""
        try:
            table = self._bigquery.get_table(self.ref)
        except BigQueryError as exc:
            raise JobFailure(INTERNAL, f"BigQuery call failed: {exc}") from exc
        if table is None:
            raise JobFailure(
                NOT_FOUND,
                f"Failed to import data: the input table {self.ref} does not exist. "
                "Create it (with a `request` column) or fix "
                "inputConfig.bigquerySource.inputUri.",
            )
        self._table = table
        self.columns = table.get("schema", {}).get("fields", [])
        _check_input_schema(self.ref, self.columns)
        self.total_rows = int(table.get("numRows") or 0)
        return self

    def pages(self, page_size: int) -> Iterator[list[dict[str, Any]]]:
        return self._bigquery.read_rows(self.ref, self._table, page_size=page_size)

    def too_many(self, limit: int) -> str:
        return (f"The input table {self.ref} has {self.total_rows} rows; a batch prediction "
                f"job takes at most {limit}. Split it into several jobs.")

    def place(self, row: dict[str, Any], number: int) -> str:
        return f"table {self.ref}, row {number}"


class TableSink:
    """``outputConfig.bigqueryDestination``: a new table the rows are appended to."""

    def __init__(self, bigquery: BigQueryRest, job: dict[str, Any], *,
                 drop_output: bool = False) -> None:
        ref = TableRef.parse(job["outputConfig"]["bigqueryDestination"]["outputUri"])
        assert ref is not None  # checked when the job was created
        self.ref = ref
        # The drop_output fault: the rows go to <table>__dropped, outputInfo names <table>.
        self._drop_output = drop_output
        self._bigquery = bigquery
        self._schema: list[dict[str, Any]] = []

    def open(self, columns: list[dict[str, Any]]) -> TableSink:
        """Create the output table with the input's ``columns`` and the answer's."""
        ref = self.ref
        try:
            if not self._bigquery.dataset_exists(ref):
                raise JobFailure(
                    NOT_FOUND,
                    f"The output dataset {ref.dataset_uri.removeprefix('bq://')} does not "
                    "exist. Create it before submitting the job.",
                )
            if ref.table is None:
                ref = self.ref = ref.with_table(output_table_name(datetime.now(UTC)))
            elif self._bigquery.get_table(ref) is not None:
                raise JobFailure(
                    ALREADY_EXISTS,
                    f"The output table {ref} already exists. Name a new table, or only "
                    "the dataset (bq://project.dataset) to get a new predictions_<time> table.",
                )
            self._schema = [_output_field(f) for f in columns] + OUTPUT_COLUMNS
            try:
                self._bigquery.create_table(self._written, self._schema)
            except BigQueryError as exc:
                if exc.status == 409:
                    raise JobFailure(
                        ALREADY_EXISTS, f"The output table {ref} already exists."
                    ) from exc
                raise
        except BigQueryError as exc:
            raise JobFailure(INTERNAL, f"BigQuery call failed: {exc}") from exc
        return self

    @property
    def _written(self) -> TableRef:
        return self.ref.with_table(f"{self.ref.table}__dropped") if self._drop_output else self.ref

    @property
    def output_info(self) -> dict[str, str]:
        return {
            "bigqueryOutputDataset": self.ref.dataset_uri,
            "bigqueryOutputTable": str(self.ref.table),
        }

    @property
    def errors_where(self) -> str:
        return f"the output table {self.ref} has each row's error in its `status` column"

    def writer(self, *, page_size: int, thread_name: str) -> OutputWriter:
        ref, schema = self._written, self._schema
        return OutputWriter(
            lambda rows: self._bigquery.load_rows(ref, schema, rows),
            page_size=page_size,
            thread_name=thread_name,
        )


def _check_input_schema(table: TableRef, schema: list[dict[str, Any]]) -> None:
    by_name = {field["name"].lower(): field for field in schema}
    request = by_name.get("request")
    if request is None:
        columns = ", ".join(field["name"] for field in schema) or "none"
        raise JobFailure(
            INVALID_ARGUMENT,
            f"Failed to import data: the input table {table} has no `request` column "
            f"(columns: {columns}). Add a JSON or STRING column `request` holding a "
            "GenerateContentRequest per row.",
        )
    if request.get("type") not in ("JSON", "STRING") or request.get("mode") == "REPEATED":
        raise JobFailure(
            INVALID_ARGUMENT,
            f"Failed to import data: column `request` of {table} is {request.get('type')}; "
            "it must be JSON or STRING.",
        )
    for name in RESERVED_COLUMNS[:2]:
        if name in by_name:
            raise JobFailure(
                INVALID_ARGUMENT,
                f"Failed to import data: the input table {table} has a column `{name}`, a name "
                "reserved for the output. Rename or drop it.",
            )
    for field in schema:
        kind = field.get("type", "STRING")
        if kind in UNSUPPORTED_TYPES or field.get("mode") == "REPEATED":
            shown = "ARRAY" if field.get("mode") == "REPEATED" else kind
            raise JobFailure(
                INVALID_ARGUMENT,
                f"Failed to import data: column `{field['name']}` of {table} is {shown}, a "
                "type batch prediction does not pass through (ARRAY, STRUCT, RANGE, DATETIME "
                "and GEOGRAPHY are not supported). Drop it or cast it to STRING.",
            )


def _output_field(field: dict[str, Any]) -> dict[str, Any]:
    return {key: field[key] for key in ("name", "type", "mode", "description") if key in field}


__all__ = ["OUTPUT_COLUMNS", "TableSink", "TableSource", "output_table_name"]
