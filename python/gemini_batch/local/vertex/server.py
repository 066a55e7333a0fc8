"""The HTTP surface: Vertex AI's batchPredictionJobs REST API, plus a small admin API.

Served under ``/v1`` and ``/v1beta1`` (google-genai uses v1beta1 by default):

- ``POST|GET  /{version}/projects/{p}/locations/{l}/batchPredictionJobs``
- ``GET|DELETE /{version}/projects/{p}/locations/{l}/batchPredictionJobs/{id}``
- ``POST /{version}/projects/{p}/locations/{l}/batchPredictionJobs/{id}:cancel``
- ``GET|PUT /emulator/faults`` (fault injection at runtime)

Errors are the Google API error body ``{"error": {"code", "message", "status"}}``.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gemini_batch.local.vertex.engines import Engine
from gemini_batch.local.vertex.faults import FaultError, Faults
from gemini_batch.local.vertex.models import KNOWN_MODELS, model_id, publisher_model_name
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

_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    500: "INTERNAL",
}
# google-cloud-aiplatform uses v1; google-genai uses v1beta1 unless told otherwise.
API_VERSIONS = ("v1", "v1beta1")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status or _STATUS_NAMES.get(code, "UNKNOWN")


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
        known = KNOWN_MODELS | self.config.extra_models
        if wanted not in known:
            raise ApiError(
                404,
                f"Publisher Model `{parent}/publishers/google/models/{wanted}` not found. "
                f"Known to the emulator: {', '.join(sorted(known))} "
                "(add more with --model).",
            )
        input_config = body.get("inputConfig") or {}
        if input_config.get("instancesFormat") != "bigquery":
            raise ApiError(
                400,
                "The emulator reads BigQuery input only: set "
                "inputConfig.instancesFormat to 'bigquery' (got "
                f"{input_config.get('instancesFormat')!r}).",
            )
        input_uri = (input_config.get("bigquerySource") or {}).get("inputUri", "")
        input_ref = TableRef.parse(input_uri)
        if input_ref is None or input_ref.table is None:
            raise ApiError(
                400,
                f"inputConfig.bigquerySource.inputUri {input_uri!r} is not a "
                "BigQuery table: use bq://project.dataset.table.",
            )
        output_config = body.get("outputConfig") or {}
        if output_config.get("predictionsFormat") != "bigquery":
            raise ApiError(
                400,
                "The emulator writes BigQuery output only: set "
                "outputConfig.predictionsFormat to 'bigquery' (got "
                f"{output_config.get('predictionsFormat')!r}).",
            )
        output_uri = (output_config.get("bigqueryDestination") or {}).get("outputUri", "")
        if TableRef.parse(output_uri) is None:
            raise ApiError(
                400,
                f"outputConfig.bigqueryDestination.outputUri {output_uri!r} is "
                "not a BigQuery dataset or table: use bq://project.dataset[.table].",
            )
        labels = body.get("labels") or {}
        for key in labels:
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", key):
                raise ApiError(
                    400,
                    f"Label key {key!r} is invalid: lowercase letters, digits, "
                    "_ and -, starting with a letter, at most 63 characters.",
                )
        job_id = new_job_id()
        now = timestamp()
        # Keep what the client sent (model parameters, ...), then the output-only fields.
        resource = {
            **{key: value for key, value in body.items() if key not in _OUTPUT_ONLY},
            "name": f"{parent}/batchPredictionJobs/{job_id}",
            "model": model if "/" in model else publisher_model_name(wanted),
            "state": "JOB_STATE_QUEUED",
            "createTime": now,
            "updateTime": now,
        }
        self.store.add(job_id, resource)
        self.runner.start(job_id)
        return resource

    def get(self, parent: str, job_id: str) -> dict[str, Any]:
        try:
            job = self.store.get(job_id)
        except JobNotFound:
            raise ApiError(
                404, f"BatchPredictionJob {parent}/batchPredictionJobs/{job_id} does not exist."
            ) from None
        if not job["name"].startswith(parent + "/"):
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

# ---------------------------------------------------------------------------- filters

_TERM = re.compile(
    r'^\s*(?P<field>[A-Za-z_.]+)\s*(?P<op>!=|=|:|>=|<=|>|<)\s*(?P<value>"[^"]*"|\S+)\s*$'
)
_FIELDS = {
    "state": "state",
    "display_name": "displayName",
    "displayName": "displayName",
    "model_display_name": "model",
    "model": "model",
    "create_time": "createTime",
    "createTime": "createTime",
    "update_time": "updateTime",
    "updateTime": "updateTime",
}


def job_filter(expression: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate for the list filter: ``state="JOB_STATE_RUNNING" AND labels.k="v"``.

    Terms compare ``state``, ``display_name``, ``model``, ``create_time``,
    ``update_time`` or ``labels.<key>`` with = != : > < >= <=, joined by AND or OR
    (AND binds tighter), optionally preceded by NOT.
    """
    expression = expression.strip()
    if not expression:
        return lambda job: True
    alternatives = [
        [_term(term) for term in re.split(r"\s+AND\s+", branch)]
        for branch in re.split(r"\s+OR\s+", expression)
    ]
    return lambda job: any(all(term(job) for term in branch) for branch in alternatives)


def _term(text: str) -> Callable[[dict[str, Any]], bool]:
    negate = False
    stripped = text.strip()
    if stripped.startswith("NOT "):
        negate, stripped = True, stripped[4:]
    elif stripped.startswith("-"):
        negate, stripped = True, stripped[1:]
    match = _TERM.match(stripped)
    if not match:
        raise ApiError(
            400,
            f"Unsupported filter term {text.strip()!r}: write e.g. "
            'state="JOB_STATE_SUCCEEDED" or labels.team="data".',
        )
    name, op, value = match["field"], match["op"], match["value"].strip('"')
    if name.startswith("labels."):
        key = name.removeprefix("labels.")

        def read(job: dict[str, Any]) -> str:
            return str((job.get("labels") or {}).get(key, ""))
    elif name in _FIELDS:
        key = _FIELDS[name]

        def read(job: dict[str, Any]) -> str:
            return str(job.get(key, ""))
    else:
        raise ApiError(
            400,
            f"Unsupported filter field {name!r}: use state, display_name, "
            "model, create_time, update_time or labels.<key>.",
        )
    if name == "state" and value.isdigit():
        value = next((n for n, i in JOB_STATES.items() if i == int(value)), value)
    elif name == "state" and not value.startswith("JOB_STATE_") and value != "*":
        value = f"JOB_STATE_{value}"
    if name == "model" and not value.startswith("publishers/") and "/" not in value:
        value = publisher_model_name(value)
    compare: dict[str, Callable[[str, str], bool]] = {
        "=": lambda a, b: a == b,
        ":": lambda a, b: b == "*" and a != "" or a == b,
        "!=": lambda a, b: a != b,
        ">": lambda a, b: a > b,
        "<": lambda a, b: a < b,
        ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b,
    }

    def term(job: dict[str, Any]) -> bool:
        return compare[op](read(job), value) != negate

    return term


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
