"""Vertex AI batch prediction jobs: submit, poll and cancel.

Talks to the Vertex AI Job Service (``google.cloud.aiplatform_v1.JobServiceClient``):
Google's regional endpoint ``{location}-aiplatform.googleapis.com`` with Application
Default Credentials, or the endpoint in ``GEMINI_BATCH_VERTEX_ENDPOINT`` (the local
emulator: ``http://127.0.0.1:PORT``, REST, anonymous). Submitting does not block;
waiting is the caller's loop over ``VertexJobs.get`` with a ``Backoff``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials

from gemini_batch.errors import ConfigError, JobServiceError
from gemini_batch.rules.catalog import GLOBAL
from gemini_batch.rules.config import MULTI_REGIONS

if TYPE_CHECKING:
    from google.cloud import aiplatform_v1

ENDPOINT_ENV = "GEMINI_BATCH_VERTEX_ENDPOINT"
# The first poll's delay of `gemini-batch build|run` when --poll-interval is not given
# (the local stack sets it: its jobs end in moments, and polling it costs nothing).
POLL_INTERVAL_ENV = "GEMINI_BATCH_POLL_INTERVAL"
TOOL_LABEL = "gemini-batch"
# Label naming one create call: after a create whose answer was lost, the job it may
# have made is found by it instead of being created twice.
SUBMIT_LABEL = "gemini_batch_submit"

# Our own set: the old SDK's `has_ended` misses EXPIRED and PARTIALLY_SUCCEEDED. PAUSED
# is not an end: the job goes on when the service resumes it, so a build keeps waiting
# (and `gemini-batch cancel` stops it).
TERMINAL_STATES = frozenset(
    {"SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED"}
)
# States whose output table holds answers worth merging.
ANSWERED_STATES = frozenset({"SUCCEEDED", "PARTIALLY_SUCCEEDED"})
# What the ledger records for a job the service no longer knows (deleted, or the wrong
# project/location): terminal, nothing to wait for.
NOT_FOUND_STATE = "NOT_FOUND"

# 429 means the service did not take the call: safe to send again, even a create.
_THROTTLED = (api_exceptions.TooManyRequests,)
# Anything else that may be passing: safe to retry for reads and cancels (idempotent);
# after a create, the job may exist all the same (see VertexJobs.submit).
_TRANSIENT = (
    *_THROTTLED,
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.GatewayTimeout,
    api_exceptions.DeadlineExceeded,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    ConnectionError,
    TimeoutError,
)
# Deadlines of one call, in seconds (a retried call gets each attempt this long).
CREATE_TIMEOUT = 60.0
READ_TIMEOUT = 30.0
LIST_TIMEOUT = 60.0
# How long a create is tried again after answers that leave its fate open.
CREATE_ATTEMPTS = 5


def _retry(exception_types: tuple[type[BaseException], ...], timeout: float) -> api_retry.Retry:
    return api_retry.Retry(
        predicate=api_retry.if_exception_type(*exception_types),
        initial=1.0,
        maximum=30.0,
        multiplier=2.0,
        timeout=timeout,
    )


READ_RETRY = _retry(_TRANSIENT, timeout=300.0)

_LABEL_BAD_CHARS = re.compile(r"[^a-z0-9_-]+")


def label_value(value: str) -> str:
    """``value`` made a valid label value: lowercase, [a-z0-9_-] only, at most 63 chars."""
    return _LABEL_BAD_CHARS.sub("-", value.lower()).strip("-")[:63]


def label_key(key: str) -> str:
    """A valid label key: as a value, and starting with a lowercase letter."""
    sanitised = label_value(key)
    if not sanitised or not sanitised[0].isalpha():
        sanitised = f"k{sanitised}"[:63]
    return sanitised


def job_labels(
    *, model_name: str, invocation_id: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The labels every job gets: the tool, the dbt model and invocation, and config labels.

    The model's own ``labels`` config comes first so it can never overwrite the three
    labels ``status`` and resume rely on.
    """
    labels = {label_key(k): label_value(str(v)) for k, v in (extra or {}).items()}
    labels.update(
        {
            "tool": TOOL_LABEL,
            "dbt_model": label_value(model_name),
            "dbt_invocation_id": label_value(invocation_id),
        }
    )
    return labels


# The Vertex AI client is imported where a job is touched (a build with everything
# cached never talks to Vertex AI), and only the Job Service's part of it:
# google.cloud.aiplatform_v1's __init__ imports every service and message type of Vertex
# AI, 65 MB where the Job Service needs 7 (they are the `__lazy_modules__` it declares,
# which Python 3.15 would leave unimported).
_AIPLATFORM = "google.cloud.aiplatform_v1"
_lazy_packages_lock = threading.Lock()


def _install_lazy_package(name: str) -> None:
    """Put package ``name`` in ``sys.modules`` without running its ``__init__``: a
    submodule asked for is imported on its own; any other attribute (``__all__``, a
    name the package re-exports) runs the real ``__init__`` first, so other code in the
    process sees the whole package as usual. A package already imported is left as it is.
    """
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        importlib.import_module(name)  # not a package we know: the usual import, or its error
        return
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    state = {"loaded": False}
    load_lock = threading.Lock()

    def lazy_attribute(attribute: str) -> object:
        if not attribute.startswith("__") and importlib.util.find_spec(
            f"{name}.{attribute}"
        ) is not None:
            return importlib.import_module(f"{name}.{attribute}")
        with load_lock:
            if not state["loaded"]:
                state["loaded"] = True
                loader.exec_module(package)
        if attribute in package.__dict__:
            return package.__dict__[attribute]
        raise AttributeError(f"module {name!r} has no attribute {attribute!r}")

    package.__getattr__ = lazy_attribute  # type: ignore[method-assign]
    sys.modules[name] = package


def _aiplatform(module: str) -> Any:
    """``google.cloud.aiplatform_v1.<module>`` (``services.job_service``, ``types.io``...),
    imported without the rest of Vertex AI's client."""
    with _lazy_packages_lock:
        _install_lazy_package(_AIPLATFORM)
        _install_lazy_package(f"{_AIPLATFORM}.types")
    return importlib.import_module(f"{_AIPLATFORM}.{module}")


def state_name(state: int | aiplatform_v1.JobState) -> str:
    """``RUNNING`` for ``JobState.JOB_STATE_RUNNING`` (the ledger's spelling)."""
    job_state = _aiplatform("types.job_state")
    return str(job_state.JobState(state).name).removeprefix("JOB_STATE_")


def _batch_prediction_job(
    display_name: str, gemini_model: str, data_format: str, *,
    source: Mapping[str, Any], destination: Mapping[str, Any],
) -> Any:
    """A BatchPredictionJob of a Gemini model reading and writing ``data_format``
    ("bigquery" or "jsonl"); ``source`` / ``destination``: the InputConfig's and
    OutputConfig's location field (``bigquery_source=...``, ``gcs_destination=...``)."""
    job_type = _aiplatform("types.batch_prediction_job").BatchPredictionJob
    return job_type(
        display_name=display_name,
        model=f"publishers/google/models/{gemini_model}",
        input_config=job_type.InputConfig(instances_format=data_format, **source),
        output_config=job_type.OutputConfig(predictions_format=data_format, **destination),
    )


def _bq_uri(table: str) -> str:
    return table if table.startswith("bq://") else f"bq://{table}"


def _table_from_uri(uri: str) -> str:
    return uri.removeprefix("bq://")


@dataclass(frozen=True)
class JobStatus:
    """What the service says about one job, in the ledger's terms."""

    name: str
    state: str
    display_name: str = ""
    error: str | None = None
    succeeded: int = 0
    failed: int = 0
    incomplete: int = 0
    input_table: str | None = None
    output_table: str | None = None
    create_time: datetime | None = None
    end_time: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    # A JSONL job's input files and folder of prediction files (gcsSource.uris,
    # outputInfo.gcsOutputDirectory).
    input_uris: tuple[str, ...] = ()
    output_directory: str | None = None

    @property
    def job_id(self) -> str:
        return self.name.rsplit("/", 1)[-1]

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_STATES or self.state == NOT_FOUND_STATE

    @property
    def answered(self) -> bool:
        """Whether the output table may hold answers to merge."""
        return self.state in ANSWERED_STATES

    @classmethod
    def from_proto(cls, job: aiplatform_v1.BatchPredictionJob) -> JobStatus:
        stats = job.completion_stats
        error = job.error.message if job.error and (job.error.code or job.error.message) else None
        output_uri = job.output_info.bigquery_output_table or ""
        if output_uri and not output_uri.startswith("bq://") and "." not in output_uri:
            # The service may report a bare table name under the output dataset.
            output_uri = f"{job.output_info.bigquery_output_dataset}.{output_uri}"
        if not output_uri:
            output_uri = job.output_config.bigquery_destination.output_uri
        return cls(
            name=job.name,
            state=state_name(job.state),
            display_name=job.display_name,
            error=error,
            succeeded=int(stats.successful_count or 0),
            failed=int(stats.failed_count or 0),
            # -1 while the service does not know yet.
            incomplete=max(0, int(stats.incomplete_count or 0)),
            input_table=_table_from_uri(job.input_config.bigquery_source.input_uri) or None,
            output_table=_table_from_uri(output_uri) or None,
            create_time=job.create_time or None,
            end_time=job.end_time or None,
            labels=dict(job.labels),
            input_uris=tuple(job.input_config.gcs_source.uris),
            output_directory=job.output_info.gcs_output_directory or None,
        )

    @classmethod
    def not_found(cls, name: str) -> JobStatus:
        return cls(
            name=name,
            state=NOT_FOUND_STATE,
            error="Vertex AI no longer knows this job (deleted, or another project/location).",
        )


def vertex_job_client(
    location: str,
    *,
    endpoint: str | None = None,
    credentials: Credentials | None = None,
) -> aiplatform_v1.JobServiceClient:
    """A Job Service client for ``location``.

    ``endpoint`` (default: ``$GEMINI_BATCH_VERTEX_ENDPOINT``) given as ``http://...`` is a
    local emulator: REST transport, anonymous credentials. ``https://...`` is any other
    REST endpoint (a proxy, a private endpoint) with ``credentials`` or ADC. A bare host
    uses gRPC. None: Google's endpoint of the location, ``{location}-aiplatform.
    googleapis.com``, or ``aiplatform.googleapis.com`` for ``global``.
    """
    job_service_client = _aiplatform("services.job_service").JobServiceClient
    endpoint = (endpoint or os.environ.get(ENDPOINT_ENV) or "").strip().rstrip("/") or None
    if endpoint and endpoint.startswith("http://"):
        return job_service_client(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    if endpoint and endpoint.startswith("https://"):
        return job_service_client(
            transport="rest", credentials=credentials,
            client_options=ClientOptions(api_endpoint=endpoint),
        )
    if not location or location.lower() in MULTI_REGIONS:
        raise ConfigError(
            f"Vertex AI batch jobs need a region such as us-central1, not {location!r}: "
            "set the model's `location` config or use a regional dataset."
        )
    api_endpoint = endpoint or google_endpoint(location)
    return job_service_client(
        credentials=credentials, client_options=ClientOptions(api_endpoint=api_endpoint)
    )


def google_endpoint(location: str) -> str:
    """Google's Vertex AI endpoint for ``location`` (``global`` has no region prefix)."""
    if location.lower() == GLOBAL:
        return "aiplatform.googleapis.com"
    return f"{location.lower()}-aiplatform.googleapis.com"


class VertexJobs:
    """Batch prediction jobs of one project and location."""

    def __init__(
        self,
        *,
        project: str,
        location: str,
        client: aiplatform_v1.JobServiceClient | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.project = project
        self.location = location
        self.client = client or vertex_job_client(location, credentials=credentials)

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.location}"

    def submit(
        self,
        *,
        display_name: str,
        gemini_model: str,
        input_table: str,
        output_table: str,
        labels: Mapping[str, str],
    ) -> JobStatus:
        """Create a job reading ``input_table`` (``p.d.t``) and writing ``output_table``.

        Returns as soon as the service has the job (QUEUED or PENDING). Never creates two:
        the job carries a label unique to this call, and after an answer that leaves open
        whether the service made the job (a timeout, a dropped connection, a 5xx), the job
        is looked up by that label before the create is sent again. A 429 is sent again
        after a backoff (the service took nothing).
        """
        io = _aiplatform("types.io")
        job = _batch_prediction_job(
            display_name, gemini_model, "bigquery",
            source={"bigquery_source": io.BigQuerySource(input_uri=_bq_uri(input_table))},
            destination={"bigquery_destination": io.BigQueryDestination(
                output_uri=_bq_uri(output_table))},
        )
        return self._create(job, labels, what=input_table, gemini_model=gemini_model)

    def submit_jsonl(
        self,
        *,
        display_name: str,
        gemini_model: str,
        input_uris: Sequence[str],
        output_prefix: str,
        labels: Mapping[str, str],
        submit_id: str | None = None,
    ) -> JobStatus:
        """Create a job reading JSONL files in Cloud Storage and writing predictions under
        ``output_prefix``; never two, as ``submit``. ``submit_id``: the label value to
        use (one written down before the call, so a killed caller can look the job up)."""
        io = _aiplatform("types.io")
        job = _batch_prediction_job(
            display_name, gemini_model, "jsonl",
            source={"gcs_source": io.GcsSource(uris=list(input_uris))},
            destination={"gcs_destination": io.GcsDestination(output_uri_prefix=output_prefix)},
        )
        return self._create(
            job, labels, what=", ".join(input_uris), gemini_model=gemini_model,
            submit_id=submit_id,
        )

    def _create(
        self,
        job: aiplatform_v1.BatchPredictionJob,
        labels: Mapping[str, str],
        *,
        what: str,
        gemini_model: str,
        submit_id: str | None = None,
    ) -> JobStatus:
        """Send the create call, labelled with a submit id, until the service has the job."""
        submit_id = submit_id or secrets.token_hex(8)
        job.labels = {**labels, SUBMIT_LABEL: submit_id}
        input_table = what
        backoff = Backoff(initial=1.0, maximum=30.0, factor=2.0)
        uncertain = False  # an earlier attempt may have made the job
        last_error: Exception | None = None
        for _ in range(CREATE_ATTEMPTS):
            if uncertain:
                made = self._made_by(submit_id)
                if made is not None:
                    return made
            try:
                created = self.client.create_batch_prediction_job(
                    parent=self.parent, batch_prediction_job=job, retry=None,
                    timeout=CREATE_TIMEOUT,
                )
            except _THROTTLED as exc:
                last_error = exc
            except _TRANSIENT as exc:
                last_error, uncertain = exc, True
            except api_exceptions.GoogleAPICallError as exc:
                raise JobServiceError(
                    f"Vertex AI refused the batch job for {input_table} "
                    f"(model {gemini_model}, {self.parent}): {exc.message or exc}"
                ) from exc
            else:
                status = JobStatus.from_proto(created)
                return self._made_by(submit_id, fallback=status) if uncertain else status
            time.sleep(backoff.next_delay())
        if uncertain:
            made = self._made_by(submit_id)
            if made is not None:
                return made
        raise JobServiceError(
            f"Vertex AI did not take the batch job for {input_table} (model {gemini_model}, "
            f"{self.parent}) after {CREATE_ATTEMPTS} attempts: {last_error}. No job was "
            "made (checked by its submit label); run the build again later."
        )

    def made_by(self, submit_id: str) -> JobStatus | None:
        """The job a create call labelled ``submit_id`` made, if the service has one."""
        return self._made_by(submit_id)

    def _made_by(self, submit_id: str, fallback: JobStatus | None = None) -> JobStatus | None:
        """The job one create call made, found by its submit label (the oldest, if a
        retried create made two: the others are cancelled, they are duplicates)."""
        made = self.list(labels={SUBMIT_LABEL: submit_id}, limit=10)
        if not made:
            return fallback
        made.sort(key=lambda job: (job.create_time or datetime.max.replace(tzinfo=UTC),
                                   job.name))
        for duplicate in made[1:]:
            self.cancel(duplicate.name)
        return made[0]

    def get(self, job_name: str) -> JobStatus:
        """The job's current status; ``NOT_FOUND`` state when the service lost it."""
        try:
            job = self.client.get_batch_prediction_job(
                name=job_name, retry=READ_RETRY, timeout=READ_TIMEOUT
            )
        except api_exceptions.NotFound:
            return JobStatus.not_found(job_name)
        return JobStatus.from_proto(job)

    def cancel(self, job_name: str) -> JobStatus:
        """Ask the service to cancel; returns the status after the request."""
        try:
            self.client.cancel_batch_prediction_job(
                name=job_name, retry=READ_RETRY, timeout=READ_TIMEOUT
            )
        except api_exceptions.NotFound:
            return JobStatus.not_found(job_name)
        except (api_exceptions.FailedPrecondition, api_exceptions.BadRequest) as exc:
            # Over REST, "already ended" is HTTP 400 (FAILED_PRECONDITION in the body).
            status = self.get(job_name)
            if status.terminal:
                return status
            raise JobServiceError(f"Vertex AI refused to cancel {job_name}: {exc.message}") from exc
        return self.get(job_name)

    def list(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        created_after: datetime | None = None,
        limit: int = 200,
    ) -> list[JobStatus]:
        """Jobs of this project and location with all of ``labels`` (and created after
        ``created_after``), the newest ``limit`` of them, newest first.

        The API does not order its list: every matching page is read, then sorted, then
        cut, so the answer does not depend on the order the service returns jobs in.
        """
        terms = [f'labels.{k}="{v}"' for k, v in (labels or {}).items()]
        if created_after is not None:
            terms.append(f'create_time>="{created_after.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"')
        pager = self.client.list_batch_prediction_jobs(
            request={"parent": self.parent, "filter": " AND ".join(terms), "page_size": 100},
            retry=READ_RETRY,
            timeout=LIST_TIMEOUT,
        )
        oldest = datetime.min.replace(tzinfo=UTC)
        found = [
            status for status in map(JobStatus.from_proto, pager)
            # Checked here too: a filter the server ignores must not widen the answer.
            if all(status.labels.get(k) == v for k, v in (labels or {}).items())
            and (created_after is None or (status.create_time or oldest) >= created_after)
        ]
        found.sort(key=lambda s: (s.create_time or oldest, s.name), reverse=True)
        return found[:limit]


@dataclass
class Backoff:
    """Poll delays: start at ``initial`` seconds, grow by ``factor`` up to ``maximum``.

    ``reset`` after a state change: a job that moved is likely to move again soon.
    """

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 1.5
    _current: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.factor < 1:
            raise ConfigError(
                f"poll interval must be > 0 and at most its cap "
                f"(initial {self.initial}s, cap {self.maximum}s)"
            )
        self._current = self.initial

    def next_delay(self) -> float:
        delay = self._current
        self._current = min(self.maximum, self._current * self.factor)
        return delay

    def reset(self) -> None:
        self._current = self.initial
