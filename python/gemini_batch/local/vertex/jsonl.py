"""A job's JSONL files in Cloud Storage, read and written as the service does.

Input: ``inputConfig.gcsSource.uris``, each a ``gs://`` object or a wildcard over
objects (``*`` and ``?`` within a path segment, ``**`` across segments, ``[abc]``; the
API says a URI "may contain wildcards", Google's batch page shows one file), one
``{"request": {...}}`` per line. A ``request`` that is a JSON string is a plain-text
prompt, as reported of the service (python-aiplatform#4074). Output:
``<outputUriPrefix>/prediction-model-<time>/`` gets ``predictions.jsonl``, then
``predictions_<n>.jsonl`` as a long job goes on (the rows are exported as they are
answered, so a cancelled job keeps its rows); each line is ``status``,
``processed_time``, the echoed ``request`` and the ``response``, as in
../shared/fixtures/vertex_samples/*_output.jsonl, and nothing else: the other fields of
an input line are dropped, as reported of the service (litellm#14044), unless the
setting ``keep_input_fields`` keeps them. Reads stream: the process holds a page of
lines at a time. The Cloud Storage client is google-cloud-storage, pointed at the
local stack's emulator by ``--storage-endpoint`` (or ``STORAGE_EMULATOR_HOST``).

``JsonlSource`` and ``JsonlSink`` are the job's source and sink (job_io.py).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from google.api_core import exceptions as google_errors
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from gemini_batch.clients.storage import GcsPath
from gemini_batch.local.vertex.errors import INTERNAL, INVALID_ARGUMENT, NOT_FOUND, JobFailure
from gemini_batch.local.vertex.output import OutputWriter

_WILDCARD = re.compile(r"[*?\[]")
# Keys of an input row that are not the line's own fields (a NUL never starts a JSON key
# written by a user, and they are dropped from the output line).
WHERE = "\0where"
EXTRA = "\0extra"
ECHO = "\0echo"  # the line's `request` as given, when what is answered differs
# Seconds between two exports of a running job's answered rows (one file each).
EXPORT_INTERVAL = 30.0


def wildcard_pattern(name: str) -> re.Pattern[str]:
    """The object names a wildcard name matches, as Cloud Storage wildcards do."""
    out, i = [], 0
    while i < len(name):
        char = name[i]
        if name.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and "]" in name[i + 1 :]:
            end = name.index("]", i + 1)
            out.append("[" + re.escape(name[i + 1 : end]).replace("\\-", "-") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def output_directory_name(moment: datetime) -> str:
    """The folder the service makes under the output prefix for one job."""
    return "prediction-model-" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def storage_client(endpoint: str | None, project: str) -> storage.Client:
    """google-cloud-storage on ``endpoint`` (the local emulator: no credentials needed)."""
    if endpoint:
        return storage.Client(
            project=project,
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options={"api_endpoint": endpoint},
        )
    return storage.Client(project=project)


@contextlib.contextmanager
def _storage_calls() -> Iterator[None]:
    """A Cloud Storage error while a job opens its files ends the job, saying so."""
    try:
        yield
    except google_errors.GoogleAPIError as exc:
        raise JobFailure(INTERNAL, f"A Cloud Storage call failed: {exc}") from exc


class JsonlSource:
    """``inputConfig.gcsSource``: the lines of the input files, one request each."""

    name = "files"
    columns: list[dict[str, Any]] = []  # each line carries its own fields (EXTRA)

    def __init__(self, client: storage.Client, job: dict[str, Any]) -> None:
        self._client = client
        self._uris: list[str] = list(job["inputConfig"]["gcsSource"]["uris"])
        self.inputs: list[storage.Blob] = []
        self.total_rows = 0
        # What the requests of every line hold, place by place: how they are echoed.
        self.request_shape: EchoShape | None = None

    def open(self) -> JsonlSource:
        """Find the input files and count their requests (JobFailure names an input
        that matches nothing)."""
        with _storage_calls():
            for uri in self._uris:
                self.inputs.extend(self._matching(uri))
            self.total_rows = sum(self._read_lines(blob) for blob in self.inputs)
        return self

    def _matching(self, uri: str) -> list[storage.Blob]:
        path = GcsPath.parse(uri)
        if path is None or not path.name:
            raise JobFailure(
                INVALID_ARGUMENT,
                f"Failed to import data: {uri!r} in inputConfig.gcsSource.uris is not a "
                "Cloud Storage object: write gs://bucket/path/file.jsonl.",
            )
        if self._client.lookup_bucket(path.bucket) is None:
            raise JobFailure(
                NOT_FOUND,
                f"Failed to import data: the bucket gs://{path.bucket} of {uri} does not exist.",
            )
        wildcard = _WILDCARD.search(path.name)
        if wildcard is None:
            blob = self._client.bucket(path.bucket).get_blob(path.name)
            if blob is None:
                raise JobFailure(
                    NOT_FOUND,
                    f"Failed to import data: {uri} does not exist. Upload the JSONL file "
                    "or fix inputConfig.gcsSource.uris.",
                )
            return [blob]
        pattern = wildcard_pattern(path.name)
        found = [
            blob
            for blob in self._client.list_blobs(
                path.bucket, prefix=path.name[: wildcard.start()]
            )
            if pattern.match(blob.name) and not blob.name.endswith("/")
        ]
        if not found:
            raise JobFailure(
                NOT_FOUND, f"Failed to import data: no object matches {uri}."
            )
        return sorted(found, key=lambda blob: blob.name)

    def _read_lines(self, blob: storage.Blob) -> int:
        """The file's requests, counted, their shape merged into ``request_shape``."""
        count = 0
        with blob.open("rb") as stream:
            for line in stream:
                if not line.strip():
                    continue
                count += 1
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(value, dict) and isinstance(value.get("request"), dict):
                    self.request_shape = echo_shape(self.request_shape, value["request"])
        return count

    def pages(self, page_size: int) -> Iterator[list[dict[str, Any]]]:
        """The input lines as rows (``request`` plus the line's other fields), in pages."""
        page: list[dict[str, Any]] = []
        for blob in self.inputs:
            uri = f"gs://{blob.bucket.name}/{blob.name}"
            with blob.open("rb") as stream:
                for number, line in enumerate(stream, start=1):
                    if not line.strip():
                        continue
                    page.append(_input_row(line, f"{uri}, line {number}"))
                    if len(page) >= page_size:
                        yield page
                        page = []
        if page:
            yield page

    def too_many(self, limit: int) -> str:
        return (f"The input files hold {self.total_rows} requests; a batch prediction job "
                f"takes at most {limit}. Split them into several jobs.")

    def place(self, row: dict[str, Any], number: int) -> str:
        return str(row[WHERE])


class JsonlSink:
    """``outputConfig.gcsDestination``: a new folder of prediction files under the prefix."""

    def __init__(self, client: storage.Client, job: dict[str, Any], *,
                 drop_output: bool = False, keep_input_fields: bool = False,
                 request_shape: EchoShape | None = None) -> None:
        self._client = client
        # The drop_output fault: the files go to <folder>__dropped/, outputInfo names <folder>.
        self._drop_output = drop_output
        # The keep_input_fields setting: a line's other fields go to its output line.
        self._keep_input_fields = keep_input_fields
        self._request_shape = request_shape  # the input's (JsonlSource.request_shape)
        prefix = job["outputConfig"]["gcsDestination"]["outputUriPrefix"]
        self._prefix = GcsPath.parse(prefix)
        assert self._prefix is not None  # checked when the job was created
        self.output_dir = self._prefix
        self._written = 0

    def open(self) -> JsonlSink:
        """Check the output bucket and name the job's folder."""
        with _storage_calls():
            if self._client.lookup_bucket(self._prefix.bucket) is None:
                raise JobFailure(
                    NOT_FOUND,
                    f"The output bucket gs://{self._prefix.bucket} does not exist (from "
                    "outputConfig.gcsDestination.outputUriPrefix). Create it before "
                    "submitting the job.",
                )
        self.output_dir = self._prefix.child(output_directory_name(datetime.now(UTC)))
        return self

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Export answered rows as the next predictions file (never overwriting one)."""
        name = "predictions.jsonl" if not self._written else f"predictions_{self._written}.jsonl"
        data = b"".join(output_line(row, keep_input_fields=self._keep_input_fields,
                                    request_shape=self._request_shape)
                        for row in rows)
        folder = self.output_dir
        if self._drop_output:
            folder = GcsPath(folder.bucket, f"{folder.name.rstrip('/')}__dropped")
        blob = self._client.bucket(folder.bucket).blob(folder.child(name).name)
        blob.upload_from_string(data, content_type="application/jsonl", if_generation_match=0)
        self._written += 1

    def writer(self, *, page_size: int, thread_name: str) -> OutputWriter:
        # Each export is a file: fewer, larger ones than table appends.
        return OutputWriter(self.write, page_size=page_size, max_interval=EXPORT_INTERVAL,
                            thread_name=thread_name)

    @property
    def output_info(self) -> dict[str, str]:
        return {"gcsOutputDirectory": str(self.output_dir).rstrip("/")}

    @property
    def errors_where(self) -> str:
        return f"each line's error is in its `status` in {self.output_dir}"


def _input_row(line: bytes, where: str) -> dict[str, Any]:
    """A row for the runner: ``request`` (the text itself when the line is not JSON, so
    its status says so; one user turn of the text when ``request`` is a JSON string, the
    string echoed as given) and the line's other fields."""
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {"request": line.decode(errors="replace").strip(), WHERE: where, EXTRA: {}}
    if not isinstance(value, dict):
        return {"request": line.decode(errors="replace").strip(), WHERE: where, EXTRA: {}}
    request = value.pop("request", None)
    if isinstance(request, str):
        # Reported, not documented (python-aiplatform#4074): the service reads a string
        # `request` as a plain-text prompt, a JSON text included.
        return {"request": text_prompt(request), ECHO: request, WHERE: where, EXTRA: value}
    return {"request": request, WHERE: where, EXTRA: value}


def text_prompt(text: str) -> dict[str, Any]:
    """The request a plain-text prompt is: one user turn of ``text``."""
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


@dataclass
class EchoShape:
    """What the values seen at one place of the job's requests hold: an object's members
    by name, an array's elements as one (a place may have held both)."""

    members: dict[str, EchoShape] | None = None
    element: EchoShape | None = None


def echo_shape(shape: EchoShape | None, value: Any) -> EchoShape:
    """``shape`` with ``value`` (a request, or a part of one) merged in."""
    shape = shape or EchoShape()
    if isinstance(value, dict):
        members = shape.members if shape.members is not None else {}
        for key, member in value.items():
            members[key] = echo_shape(members.get(key), member)
        shape.members = members
    elif isinstance(value, list):
        for item in value:
            shape.element = echo_shape(shape.element, item)
    return shape


def echoed(value: Any, shape: EchoShape | None) -> Any:
    """A request as the service echoes it in a prediction line: each object with its
    members in sorted order, and a null member for each one that another line of the
    job's input has at that place and this one lacks (what the real multimodal output in
    tests/fixtures/vertex_samples shows: ``"fileData": null`` beside ``file_data``)."""
    if isinstance(value, dict):
        members = (shape.members if shape else None) or {}
        return {key: echoed(value[key], members.get(key)) if key in value else None
                for key in sorted(members.keys() | value.keys())}
    if isinstance(value, list):
        element = shape.element if shape else None
        return [echoed(item, element) for item in value]
    return value


def output_line(row: dict[str, Any], *, keep_input_fields: bool = False,
                request_shape: EchoShape | None = None) -> bytes:
    """One line of predictions.jsonl for an answered (or failed) row: what the service
    writes, and with ``keep_input_fields`` the input line's other fields too. The echoed
    request is :func:`echoed` through the input's ``request_shape``; a request that was
    a string, or not JSON, is echoed as given."""
    micros = int(row["processed_time"])
    moment = datetime.fromtimestamp(micros / 1e6, UTC)
    line: dict[str, Any] = {
        "status": row["status"],
        "processed_time": moment.isoformat(timespec="milliseconds"),
        **(row.get(EXTRA, {}) if keep_input_fields else {}),
        "request": row[ECHO] if ECHO in row else echoed(row["request"], request_shape),
    }
    if row.get("response") is not None:
        line["response"] = orjson.Fragment(row["response"])
    return orjson.dumps(line) + b"\n"
