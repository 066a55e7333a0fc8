"""The emulator's BigQuery access, through BigQuery's own APIs, as the service uses it.

Reads go through the Storage Read API (Arrow) when the BigQuery gRPC endpoint is known,
split into streams of at most a page of rows each, read one at a time; otherwise through
``tabledata.list`` pages. Writes append Parquet (or JSON lines) through load jobs
(multipart upload), one per page of rows. docs/vertex-emulator.md has the measurements
behind these choices.
"""

from __future__ import annotations

import base64
import math
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import tenacity

_TABLE_URI = re.compile(
    r"^bq://(?P<project>[^.]+(?:\.[^.:]+:[^.]+)?)\.(?P<dataset>\w+)(?:\.(?P<table>[^.]+))?$"
)


class BigQueryError(RuntimeError):
    """A BigQuery API call failed; ``reason`` is BigQuery's (notFound, duplicate, ...)."""

    def __init__(self, message: str, *, status: int = 0, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class TableRef:
    project: str
    dataset: str
    table: str | None = None

    @classmethod
    def parse(cls, uri: str) -> TableRef | None:
        """``bq://project.dataset[.table]`` as a reference, or None if it is not one."""
        match = _TABLE_URI.match(uri.strip())
        if not match:
            return None
        return cls(match["project"], match["dataset"], match["table"])

    def with_table(self, table: str) -> TableRef:
        return TableRef(self.project, self.dataset, table)

    @property
    def dataset_uri(self) -> str:
        return f"bq://{self.project}.{self.dataset}"

    def __str__(self) -> str:
        return f"{self.project}.{self.dataset}" + (f".{self.table}" if self.table else "")


_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
_STREAM_BYTES = 4 * 1024 * 1024

# Column types a Parquet chunk carries faithfully into bqemulator; a table with any other
# passthrough type is written as newline-delimited JSON instead.
_PARQUET_TYPES = {
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "STRING": pa.string(),
    "JSON": pa.string(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "NUMERIC": pa.decimal128(38, 9),
    "BIGNUMERIC": pa.decimal256(76, 38),
    "BYTES": pa.binary(),
}


def _value(kind: str, cell: Any) -> Any:
    """A tabledata.list cell as the Python value the Storage Read API gives for it."""
    if cell is None:
        return None
    if kind in _FROM_TEXT:
        return _FROM_TEXT[kind](cell)
    if kind in ("INTEGER", "INT64"):
        return int(cell)
    if kind in ("FLOAT", "FLOAT64"):
        return float(cell)
    if kind in ("BOOLEAN", "BOOL"):
        return cell in (True, "true", "TRUE", "True")
    if kind == "TIMESTAMP":  # microseconds since the epoch (useInt64Timestamp)
        return int(cell)
    return cell


_FROM_TEXT: dict[str, Any] = {
    "DATE": date.fromisoformat,
    "TIME": time_of_day.fromisoformat,
    "NUMERIC": Decimal,
    "BIGNUMERIC": Decimal,
    "BYTES": base64.b64decode,
}


def timestamp_text(micros: int) -> str:
    """A TIMESTAMP as JSON lines load jobs take it."""
    moment = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(
        microsecond=micros % 1_000_000
    )
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def _json_default(value: Any) -> Any:
    """Values the Storage Read API gives that JSON has no form for."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"cannot write {type(value).__name__} to a JSON lines load")


def encode_rows(schema: list[dict[str, Any]], rows: list[dict[str, Any]]) -> tuple[str, bytes]:
    """``rows`` as a load job's source: (sourceFormat, bytes).

    Parquet when every column type has an exact Parquet form (bqemulator loads it about
    three times faster than JSON lines), newline-delimited JSON otherwise.
    """
    types = [field.get("type", "STRING") for field in schema]
    if all(kind in _PARQUET_TYPES for kind in types):
        columns = {}
        for field, kind in zip(schema, types, strict=True):
            values = [row.get(field["name"]) for row in rows]
            columns[field["name"]] = pa.array(values, type=_PARQUET_TYPES[kind])
        sink = pa.BufferOutputStream()
        pq.write_table(pa.table(columns), sink, compression="snappy")
        return "PARQUET", sink.getvalue().to_pybytes()
    # JSON text goes in as JSON, timestamps as text; the rest as JSON has them.
    convert = {
        field["name"]: orjson.Fragment if field.get("type") == "JSON" else timestamp_text
        for field in schema
        if field.get("type") in ("JSON", "TIMESTAMP")
    }
    lines = []
    for row in rows:
        changed = {
            name: make(row[name]) for name, make in convert.items() if row.get(name) is not None
        }
        lines.append(orjson.dumps({**row, **changed} if changed else row, default=_json_default))
    return "NEWLINE_DELIMITED_JSON", b"\n".join(lines) + b"\n"


def _transient(exc: BaseException) -> bool:
    """Whether a BigQuery call that failed with ``exc`` may be sent again: a transient
    answer, or a connection lost before an answer (not a timeout: the call may still run)."""
    if isinstance(exc, BigQueryError):
        return exc.status in (500, 502, 503, 504)
    return isinstance(exc, httpx.NetworkError | httpx.RemoteProtocolError)


class BigQueryRest:
    """A small BigQuery REST client (httpx), for a local endpoint or Google's."""

    def __init__(
        self, endpoint: str, *, grpc_endpoint: str | None = None, timeout: float = 300.0
    ) -> None:
        self._http = httpx.Client(base_url=endpoint.rstrip("/"), timeout=timeout)
        self._grpc_endpoint = grpc_endpoint
        self._read_client: Any = None

    def close(self) -> None:
        self._http.close()
        if self._read_client is not None:
            self._read_client.transport.close()

    # BigQuery's transient answers (500, 502, 503 backendError, 504) and connections
    # closed with no answer are sent again, as the service's own reads and writes of a
    # job's tables are (the local BigQuery's faults error_rate and drop_rate do so before
    # doing anything). A write sent again is safe: a load job keeps its id (load_rows).
    @tenacity.retry(
        retry=tenacity.retry_if_exception(_transient),
        wait=tenacity.wait_exponential(multiplier=0.2, max=5),
        stop=tenacity.stop_after_delay(120), reraise=True)
    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
            except ValueError:
                error = {"message": response.text}
            reasons = [item.get("reason", "") for item in error.get("errors", [])]
            raise BigQueryError(
                error.get("message", response.text),
                status=response.status_code,
                reason=reasons[0] if reasons else "",
            )
        return orjson.loads(response.content) if response.content else {}

    @staticmethod
    def _table_path(ref: TableRef) -> str:
        return f"/bigquery/v2/projects/{ref.project}/datasets/{ref.dataset}/tables/{ref.table}"

    def get_table(self, ref: TableRef) -> dict[str, Any] | None:
        try:
            return self._call("GET", self._table_path(ref))
        except BigQueryError as exc:
            if exc.status == 404:
                return None
            raise

    def dataset_exists(self, ref: TableRef) -> bool:
        try:
            self._call("GET", f"/bigquery/v2/projects/{ref.project}/datasets/{ref.dataset}")
        except BigQueryError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def create_table(self, ref: TableRef, schema: list[dict[str, Any]]) -> None:
        body = {
            "tableReference": {
                "projectId": ref.project,
                "datasetId": ref.dataset,
                "tableId": ref.table,
            },
            "schema": {"fields": schema},
        }
        self._call(
            "POST",
            f"/bigquery/v2/projects/{ref.project}/datasets/{ref.dataset}/tables",
            content=orjson.dumps(body),
            headers={"content-type": "application/json"},
        )

    def read_rows(
        self, ref: TableRef, table: dict[str, Any], *, page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows of ``table`` (its tables.get resource), a page at a time, as dicts.

        Values: numbers and booleans typed, TIMESTAMP as microseconds, JSON as text.
        """
        schema = table["schema"]["fields"]
        if self._grpc_endpoint:
            return self._storage_read(ref, table, page_size=page_size)
        return self._tabledata_list(ref, schema, page_size=page_size)

    def _storage_read(
        self, ref: TableRef, table: dict[str, Any], *, page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        import grpc
        import pyarrow.compute as pc
        from google.cloud.bigquery_storage_v1 import BigQueryReadClient, types
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (
            BigQueryReadGrpcTransport,
        )

        if self._read_client is None:
            channel = grpc.insecure_channel(
                str(self._grpc_endpoint),
                options=[("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)],
            )
            self._read_client = BigQueryReadClient(
                transport=BigQueryReadGrpcTransport(channel=channel)
            )
        rows = int(table.get("numRows") or 0)
        # A stream per page of rows, and per few MB: a stream's rows come in one message
        # of up to 65,536 rows, and bqemulator refuses to send a message over 11.5 MB.
        # bqemulator reports numBytes 0, so the size is estimated from the first rows.
        size = int(table.get("numBytes") or 0) or self._estimate_bytes(ref, table, rows)
        streams = max(1, math.ceil(rows / page_size), math.ceil(size / _STREAM_BYTES))
        session = self._read_client.create_read_session(
            parent=f"projects/{ref.project}",
            read_session=types.ReadSession(
                table=f"projects/{ref.project}/datasets/{ref.dataset}/tables/{ref.table}",
                data_format=types.DataFormat.ARROW,
            ),
            max_stream_count=streams,
        )
        timestamps = {
            field["name"] for field in table["schema"]["fields"] if field["type"] == "TIMESTAMP"
        }
        for stream in session.streams:
            for page in self._read_client.read_rows(stream.name).rows(session).pages:
                batch = page.to_arrow()
                for name in timestamps:
                    index = batch.schema.get_field_index(name)
                    micros = pc.cast(batch.column(index), pa.int64())
                    batch = batch.set_column(index, name, micros)
                yield batch.to_pylist()

    def _estimate_bytes(self, ref: TableRef, table: dict[str, Any], rows: int) -> int:
        sample = next(self._tabledata_list(ref, table["schema"]["fields"], page_size=100), [])
        if not sample:
            return 0
        sample_bytes = sum(len(str(value)) for row in sample for value in row.values())
        return math.ceil(sample_bytes / len(sample) * rows * 1.5)  # 1.5: the sample is small

    def _tabledata_list(
        self, ref: TableRef, schema: list[dict[str, Any]], *, page_size: int
    ) -> Iterator[list[dict[str, Any]]]:
        names = [field["name"] for field in schema]
        kinds = [field.get("type", "STRING") for field in schema]
        params: dict[str, Any] = {
            "maxResults": page_size,
            "selectedFields": ",".join(names),
            "formatOptions.useInt64Timestamp": "true",
        }
        while True:
            page = self._call("GET", f"{self._table_path(ref)}/data", params=params)
            rows = page.get("rows") or []
            if rows:
                yield [
                    {
                        name: _value(kind, cell["v"])
                        for name, kind, cell in zip(names, kinds, row["f"], strict=True)
                    }
                    for row in rows
                ]
            token = page.get("pageToken")
            if not token or not rows:
                return
            params["pageToken"] = token

    def load_rows(
        self, ref: TableRef, schema: list[dict[str, Any]], rows: list[dict[str, Any]]
    ) -> None:
        """Append ``rows`` with one load job (multipart upload, see ``encode_rows``)."""
        source_format, data = encode_rows(schema, rows)
        configuration = {
            "load": {
                "destinationTable": {
                    "projectId": ref.project,
                    "datasetId": ref.dataset,
                    "tableId": ref.table,
                },
                "sourceFormat": source_format,
                "writeDisposition": "WRITE_APPEND",
                "createDisposition": "CREATE_NEVER",
            }
        }
        job = {
            "jobReference": {"projectId": ref.project, "jobId": f"vertex_{uuid.uuid4().hex}"},
            "configuration": configuration,
        }
        boundary = uuid.uuid4().hex
        body = b"".join(
            [
                f"--{boundary}\r\ncontent-type: application/json; charset=UTF-8\r\n\r\n".encode(),
                orjson.dumps(job),
                f"\r\n--{boundary}\r\ncontent-type: application/octet-stream\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        try:
            result = self._call(
                "POST",
                f"/upload/bigquery/v2/projects/{ref.project}/jobs",
                params={"uploadType": "multipart"},
                content=body,
                headers={"content-type": f"multipart/related; boundary={boundary}"},
            )
        except BigQueryError as exc:
            if exc.status != 409:
                raise
            # Sent again after a connection lost with no answer, and the first one had
            # made the job (the id is this call's own): wait for that one, load nothing more.
            result = {"jobReference": job["jobReference"]}
        self._wait_for_job(ref.project, result)

    def _wait_for_job(self, project: str, job: dict[str, Any]) -> None:
        reference = job.get("jobReference", {})
        while job.get("status", {}).get("state") != "DONE":
            time.sleep(0.05)
            job = self._call(
                "GET",
                f"/bigquery/v2/projects/{project}/jobs/{reference['jobId']}",
                params={"location": reference.get("location")}
                if reference.get("location")
                else None,
            )
        error = job.get("status", {}).get("errorResult")
        if error:
            raise BigQueryError(error.get("message", str(error)), reason=error.get("reason", ""))
