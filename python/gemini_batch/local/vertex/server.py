"""The HTTP surface: Vertex AI's batchPredictionJobs REST API, plus a small admin API.

Served under ``/v1`` and ``/v1beta1`` (google-genai uses v1beta1 by default):

- ``POST|GET  /{version}/projects/{p}/locations/{l}/batchPredictionJobs``
- ``GET|DELETE /{version}/projects/{p}/locations/{l}/batchPredictionJobs/{id}``
- ``POST /{version}/projects/{p}/locations/{l}/batchPredictionJobs/{id}:cancel``
- ``GET|PUT|PATCH /emulator/faults`` (fault injection and emulated time, at runtime)

Errors are the Google API error body ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gemini_batch.clients.storage import GcsPath
from gemini_batch.local.vertex.engines import Engine
from gemini_batch.local.vertex.errors import ApiError
from gemini_batch.local.vertex.faults import FaultError, Faults
from gemini_batch.local.vertex.filters import job_filter
from gemini_batch.local.vertex.models import (
    KNOWN_MODELS,
    check_served,
    model_id,
    publisher_model_name,
)
from gemini_batch.local.vertex.runner import PAGE_SIZE, JobRunner
from gemini_batch.local.vertex.store import (
    JOB_STATES,
    TERMINAL_STATES,
    JobNotFound,
    JobStore,
    new_job_id,
    timestamp,
)
from gemini_batch.local.vertex.tables import TableRef

log = logging.getLogger(__name__)

# google-cloud-aiplatform uses v1; google-genai uses v1beta1 unless told otherwise.
API_VERSIONS = ("v1", "v1beta1")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


@dataclass
class EmulatorConfig:
    data_dir: Path
    project: str
    bigquery_endpoint: str
    engine: Engine
    faults: Faults = field(default_factory=Faults)
    # host:port of BigQuery's gRPC API (Storage Read); None reads with tabledata.list.
    bigquery_grpc_endpoint: str | None = None
    extra_models: frozenset[str] = frozenset()
    max_running_jobs: int = 4
    page_size: int = PAGE_SIZE
    # Cloud Storage endpoint for JSONL jobs (None: google-cloud-storage's default, which
    # honours STORAGE_EMULATOR_HOST).
    storage_endpoint: str | None = None


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _error(exc: ApiError) -> Response:
    return _json(
        {"error": {"code": exc.code, "message": exc.message, "status": exc.status}}, exc.code
    )


def _int_enums(request: Request) -> bool:
    """Whether the client asked for enums as numbers (`$alt=json;enum-encoding=int`)."""
    alt = request.query_params.get("$alt", "") or request.query_params.get("alt", "")
    return "enum-encoding=int" in alt


def _render(job: dict[str, Any], int_enums: bool) -> dict[str, Any]:
    if int_enums:
        job = {**job, "state": JOB_STATES[job["state"]]}
    return job


class _Side(NamedTuple):
    """Where a job's BigQuery input or output is, in a BatchPredictionJob."""

    config: str
    format_field: str
    location: str
    uri_field: str


_INPUT = _Side("inputConfig", "instancesFormat", "bigquerySource", "inputUri")
_OUTPUT = _Side("outputConfig", "predictionsFormat", "bigqueryDestination", "outputUri")
# Letters, digits, '_' and '-' (international letters too), lowercase: _label_text.
_LABEL_TEXT = re.compile(r"[\w-]{0,63}")
MAX_LABELS = 64


def validate_create_request(body: Any, *, parent: str, known_models: frozenset[str]) -> str:
    """Check the BatchPredictionJob of a create call; return the model name the job records.

    Refuses what the service refuses (no display name, a malformed model name or label
    key, a format other than BigQuery tables or Cloud Storage JSONL), and
    answers 404 for a model the emulator does not know, as the service does. Raises
    ``ApiError`` with a message that says which field is wrong and what to write.
    """
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload: the body must be a BatchPredictionJob.")
    if not body.get("displayName"):
        raise ApiError(400, "BatchPredictionJob.displayName is required.")
    model = body.get("model") or ""
    wanted = model_id(model)
    if wanted is None:
        raise ApiError(
            400,
            f"BatchPredictionJob.model {model!r} is not a model name: use "
            "publishers/google/models/<id>, e.g. publishers/google/models/gemini-2.5-flash.",
        )
    if wanted not in known_models:
        raise ApiError(
            404,
            f"Publisher Model `{parent}/publishers/google/models/{wanted}` not found. "
            f"Known to the emulator: {', '.join(sorted(known_models))} "
            "(add more with --model).",
        )
    if _format(body, _INPUT) == "jsonl":
        _check_jsonl(body)
    else:
        _check_bigquery(body)
    _check_labels(body.get("labels") or {})
    return model if "/" in model else publisher_model_name(wanted)


def _check_labels(labels: dict[str, Any]) -> None:
    """Google's label rules: at most 64 per resource; keys start with a lowercase letter;
    keys and values at most 63 characters of lowercase letters, digits, '_' and '-'
    (international lowercase letters allowed); a value may be empty."""
    if len(labels) > MAX_LABELS:
        raise ApiError(400, f"A resource can have at most {MAX_LABELS} labels; "
                            f"this job has {len(labels)}.")
    for key, value in labels.items():
        if not (_label_text(key) and key[0].isalpha()):
            raise ApiError(
                400,
                f"Label key {key!r} is invalid: lowercase letters, digits, "
                "_ and -, starting with a letter, at most 63 characters.",
            )
        if not (isinstance(value, str) and _label_text(value)):
            raise ApiError(
                400,
                f"Label value {value!r} of key {key!r} is invalid: lowercase letters, "
                "digits, _ and -, at most 63 characters.",
            )


def _label_text(text: str) -> bool:
    """Whether ``text`` may be a label's key or value: at most 63 lowercase letters,
    digits, '_' and '-'."""
    return bool(_LABEL_TEXT.fullmatch(text)) and text == text.lower()


def _format(body: dict[str, Any], side: _Side) -> str:
    """``bigquery`` or ``jsonl``, the formats Gemini batch prediction takes."""
    config = body.get(side.config) or {}
    given = config.get(side.format_field)
    if given not in ("bigquery", "jsonl"):
        raise ApiError(
            400,
            f"{side.config}.{side.format_field} {given!r} is not a format Gemini batch "
            "prediction takes: use 'bigquery' (a table) or 'jsonl' (Cloud Storage).",
        )
    return str(given)


def uses_bigquery(body: dict[str, Any]) -> bool:
    """Whether a job reads or writes BigQuery tables (refused on ``global``)."""
    return any(
        (body.get(side.config) or {}).get(side.format_field) == "bigquery"
        for side in (_INPUT, _OUTPUT)
    )


def _check_jsonl(body: dict[str, Any]) -> None:
    """JSONL in: gs:// URIs (wildcards allowed); out: a gs:// prefix, JSONL too."""
    uris = ((body["inputConfig"].get("gcsSource") or {}).get("uris")) or []
    if isinstance(uris, str):
        uris = [uris]
    if not uris or not all(isinstance(uri, str) and GcsPath.parse(uri) for uri in uris):
        raise ApiError(
            400,
            f"inputConfig.gcsSource.uris {uris!r} must list Cloud Storage objects: "
            "gs://bucket/path/file.jsonl (wildcards such as gs://bucket/in/*.jsonl allowed).",
        )
    body["inputConfig"]["gcsSource"]["uris"] = list(uris)
    if _format(body, _OUTPUT) != "jsonl":
        raise ApiError(
            400,
            "JSONL input writes JSONL output: set outputConfig.predictionsFormat to 'jsonl' "
            "with outputConfig.gcsDestination.outputUriPrefix gs://bucket/prefix.",
        )
    prefix = (body["outputConfig"].get("gcsDestination") or {}).get("outputUriPrefix", "")
    if not isinstance(prefix, str) or GcsPath.parse(prefix) is None:
        raise ApiError(
            400,
            f"outputConfig.gcsDestination.outputUriPrefix {prefix!r} is not a Cloud Storage "
            "location: use gs://bucket[/prefix].",
        )


def _check_bigquery(body: dict[str, Any]) -> None:
    """BigQuery in: a table; out: a dataset or a new table."""
    if _format(body, _OUTPUT) != "bigquery":
        raise ApiError(
            400,
            "BigQuery input writes BigQuery output: set outputConfig.predictionsFormat to "
            "'bigquery' with outputConfig.bigqueryDestination.outputUri.",
        )
    input_field, input_uri, input_ref = _bigquery_uri(body, _INPUT)
    if input_ref is None or input_ref.table is None:
        raise ApiError(
            400,
            f"{input_field} {input_uri!r} is not a BigQuery table: use bq://project.dataset.table.",
        )
    output_field, output_uri, output_ref = _bigquery_uri(body, _OUTPUT)
    if output_ref is None:
        raise ApiError(
            400,
            f"{output_field} {output_uri!r} is not a BigQuery dataset or table: "
            "use bq://project.dataset[.table].",
        )


def _bigquery_uri(body: dict[str, Any], side: _Side) -> tuple[str, str, TableRef | None]:
    """The URI field's path, its value and the table it names."""
    config = body.get(side.config) or {}
    uri = (config.get(side.location) or {}).get(side.uri_field, "")
    return f"{side.config}.{side.location}.{side.uri_field}", uri, TableRef.parse(uri)


class Emulator:
    """The app's state: config, the job store, the runner and the current faults."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = JobStore(config.data_dir)
        self._faults = config.faults
        self._faults_lock = threading.Lock()
        self.runner = JobRunner(
            self.store,
            bigquery_endpoint=config.bigquery_endpoint,
            bigquery_grpc_endpoint=config.bigquery_grpc_endpoint,
            engine=config.engine,
            faults=self.faults,
            max_running=config.max_running_jobs,
            page_size=config.page_size,
            storage_endpoint=config.storage_endpoint,
            project=config.project,
        )

    def faults(self) -> Faults:
        with self._faults_lock:
            return self._faults

    def set_faults(self, values: dict[str, Any], *, replace_all: bool) -> Faults:
        with self._faults_lock:
            self._faults = Faults.from_dict(values, None if replace_all else self._faults)
            return self._faults

    # ------------------------------------------------------------------ jobs

    def create(self, parent: str, body: dict[str, Any]) -> dict[str, Any]:
        model = validate_create_request(
            body, parent=parent, known_models=KNOWN_MODELS | self.config.extra_models
        )
        check_served(
            model_id(model) or model,
            parent,
            legacy_models=self.faults().legacy_models,
            bigquery=uses_bigquery(body),
        )
        job_id = new_job_id()
        now = timestamp()
        backdate = self._next_backdate()
        # Keep what the client sent (model parameters, ...), then the output-only fields.
        resource = {
            **{key: value for key, value in body.items() if key not in _OUTPUT_ONLY},
            "name": f"{parent}/batchPredictionJobs/{job_id}",
            "model": model,
            "state": "JOB_STATE_QUEUED",
            "createTime": timestamp(datetime.now(UTC) - timedelta(seconds=backdate)),
            "updateTime": now,
        }
        self.store.add(job_id, resource)
        self.runner.start(job_id, queued_for=backdate)
        if self._lose_create_answer():
            raise ApiError(504, "Deadline expired before operation could complete.")
        return resource

    def _next_backdate(self) -> float:
        """Emulated seconds the job made now reports having waited already (fault
        backdate: its first value, used up)."""
        with self._faults_lock:
            if not self._faults.backdate:
                return 0.0
            seconds, *rest = self._faults.backdate
            self._faults = replace(self._faults, backdate=tuple(rest))
            return seconds

    def _lose_create_answer(self) -> bool:
        """Whether this create's answer is lost (fault lose_create_answers), counting down."""
        with self._faults_lock:
            if self._faults.lose_create_answers <= 0:
                return False
            self._faults = replace(
                self._faults, lose_create_answers=self._faults.lose_create_answers - 1
            )
            return True

    def get(self, parent: str, job_id: str) -> dict[str, Any]:
        try:
            job = self.store.get(job_id)
        except JobNotFound:
            job = None
        if job is None or not job["name"].startswith(parent + "/"):
            raise ApiError(
                404, f"BatchPredictionJob {parent}/batchPredictionJobs/{job_id} does not exist."
            )
        return job

    def list(self, parent: str, params: dict[str, str]) -> dict[str, Any]:
        try:
            page_size = int(params.get("pageSize") or DEFAULT_PAGE_SIZE)
        except ValueError:
            raise ApiError(400, f"pageSize {params.get('pageSize')!r} is not a number.") from None
        page_size = min(max(page_size, 1), MAX_PAGE_SIZE) if page_size > 0 else DEFAULT_PAGE_SIZE
        token = params.get("pageToken") or ""
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except ValueError:
            raise ApiError(400, f"pageToken {token!r} is not one this server gave out.") from None
        matches = job_filter(params.get("filter") or "")
        jobs = [
            job
            for _, job in self.store.all()
            if job["name"].startswith(parent + "/") and matches(job)
        ]
        page = jobs[offset : offset + page_size]
        body: dict[str, Any] = {"batchPredictionJobs": page}
        if offset + page_size < len(jobs):
            body["nextPageToken"] = base64.urlsafe_b64encode(
                str(offset + page_size).encode()
            ).decode()
        return body

    def cancel(self, parent: str, job_id: str) -> None:
        job = self.get(parent, job_id)
        if job["state"] in TERMINAL_STATES:
            raise ApiError(
                400,
                f"BatchPredictionJob {job['name']} is in state {job['state']} and cannot be "
                "cancelled.",
                "FAILED_PRECONDITION",
            )
        if job["state"] != "JOB_STATE_CANCELLING":
            self.store.update(job_id, state="JOB_STATE_CANCELLING")
        self.runner.cancel(job_id)

    def delete(self, parent: str, job_id: str) -> dict[str, Any]:
        job = self.get(parent, job_id)
        if job["state"] not in TERMINAL_STATES:
            raise ApiError(
                400,
                f"BatchPredictionJob {job['name']} is {job['state']}: cancel it and wait until "
                "it ends before deleting it.",
                "FAILED_PRECONDITION",
            )
        self.store.delete(job_id)
        now = timestamp()
        # A long-running operation, already done, as the service answers a delete.
        return {
            "name": f"{parent}/operations/{new_job_id()}",
            "metadata": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeleteOperationMetadata",
                "genericMetadata": {"createTime": now, "updateTime": now},
            },
            "done": True,
            "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
        }


_OUTPUT_ONLY = frozenset(
    {
        "name",
        "state",
        "error",
        "createTime",
        "startTime",
        "endTime",
        "updateTime",
        "outputInfo",
        "completionStats",
        "partialFailures",
        "resourcesConsumed",
    }
)

# ---------------------------------------------------------------------------- routes


def create_app(config: EmulatorConfig) -> Starlette:
    emulator = Emulator(config)
    log.info(
        "Vertex AI batch prediction emulator: project %s (any is accepted), engine %s, "
        "BigQuery at %s, %d jobs in %s",
        config.project,
        config.engine.name,
        config.bigquery_endpoint,
        sum(1 for _ in emulator.store.all()),
        config.data_dir,
    )
    emulator.runner.recover()

    def parent_of(request: Request) -> str:
        params = request.path_params
        if params["version"] not in API_VERSIONS:
            raise ApiError(404, f"Unknown API version {params['version']!r}: use v1 or v1beta1.")
        return f"projects/{params['project']}/locations/{params['location']}"

    async def collection(request: Request) -> Response:
        try:
            parent = parent_of(request)
            if request.method == "POST":
                try:
                    body = orjson.loads(await request.body())
                except orjson.JSONDecodeError as exc:
                    raise ApiError(400, f"Invalid JSON payload received: {exc}") from None
                job = emulator.create(parent, body)
                return _json(_render(job, _int_enums(request)))
            listing = emulator.list(parent, dict(request.query_params))
            listing["batchPredictionJobs"] = [
                _render(job, _int_enums(request)) for job in listing["batchPredictionJobs"]
            ]
            return _json(listing)
        except ApiError as exc:
            return _error(exc)

    async def resource(request: Request) -> Response:
        job_id, _, verb = request.path_params["job"].partition(":")
        try:
            parent = parent_of(request)
            if verb:
                if verb != "cancel" or request.method != "POST":
                    raise ApiError(404, f"Unknown method {verb!r}: only :cancel (POST).")
                emulator.cancel(parent, job_id)
                return _json({})
            if request.method == "DELETE":
                return _json(emulator.delete(parent, job_id))
            return _json(_render(emulator.get(parent, job_id), _int_enums(request)))
        except ApiError as exc:
            return _error(exc)

    async def faults(request: Request) -> Response:
        if request.method in ("PUT", "PATCH"):
            try:
                values = orjson.loads(await request.body() or b"{}")
                if not isinstance(values, dict):
                    raise FaultError("the body must be a JSON object of fault settings")
                emulator.set_faults(values, replace_all=request.method == "PUT")
            except (orjson.JSONDecodeError, FaultError) as exc:
                return _error(ApiError(400, f"Bad fault settings: {exc}"))
        return _json(emulator.faults().to_dict())

    prefix = "/{version:str}/projects/{project:str}/locations/{location:str}/batchPredictionJobs"
    app = Starlette(
        routes=[
            Route(prefix, collection, methods=["GET", "POST"]),
            Route(prefix + "/{job:str}", resource, methods=["GET", "POST", "DELETE"]),
            Route("/emulator/faults", faults, methods=["GET", "PUT", "PATCH"]),
        ]
    )
    app.state.emulator = emulator
    return app
