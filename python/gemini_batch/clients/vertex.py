"""Vertex AI batch prediction jobs: submit, poll and cancel.

Talks to the Vertex AI Job Service (``google.cloud.aiplatform_v1.JobServiceClient``)
where ``clients/endpoints.py`` says, with the retry policy of ``clients/retries.py``.
Submitting does not block; waiting is the caller's loop over ``VertexJobs.get``
(``clients/polling.py``). The async client of the Airflow trigger: ``vertex_async.py``.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials, Credentials

from gemini_batch.clients import retries
from gemini_batch.clients.endpoints import vertex_endpoint
from gemini_batch.clients.lazy_import import import_part
from gemini_batch.clients.polling import Backoff, Progress
from gemini_batch.clients.retries import (
    CREATE_TIMEOUT,
    LIST_TIMEOUT,
    READ_RETRY,
    READ_TIMEOUT,
    THROTTLED,
    TRANSIENT,
)
from gemini_batch.errors import JobServiceError

if TYPE_CHECKING:
    from google.cloud import aiplatform_v1

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
# A batch job may wait 72 hours in the queue (then EXPIRED) and run 24 hours (then
# CANCELLED): the shard tables it reads are made to outlive that, with a day to merge,
# whatever the dataset's default table expiration; its output table, which Vertex AI
# makes with that default, is given as long from when a build first collects it.
SHARD_TABLE_HOURS = 72 + 24 + 24
# States whose output table holds answers worth merging.
ANSWERED_STATES = frozenset({"SUCCEEDED", "PARTIALLY_SUCCEEDED"})
# What the ledger records for a job the service no longer knows (deleted, or the wrong
# project/location): terminal, nothing to wait for.
NOT_FOUND_STATE = "NOT_FOUND"

# How long a create is tried again after answers that leave its fate open.
CREATE_ATTEMPTS = 5

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


_AIPLATFORM = "google.cloud.aiplatform_v1"


def _aiplatform(module: str) -> Any:
    """``google.cloud.aiplatform_v1.<module>`` (``services.job_service``, ``types.io``...),
    imported without the rest of Vertex AI's client (clients/lazy_import.py)."""
    return import_part(f"{_AIPLATFORM}.{module}", _AIPLATFORM, f"{_AIPLATFORM}.types")


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
    def progress(self) -> Progress:
        """What, changed, makes the job worth telling about (and its polls quicken)."""
        return Progress(self.state, self.succeeded, self.failed)

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
    """A Job Service client for ``location``, where ``clients.endpoints.vertex_endpoint``
    says (``endpoint``, else ``$GEMINI_BATCH_VERTEX_ENDPOINT``, else Google's): REST or
    gRPC; anonymous for an emulator, else ``credentials`` or ADC."""
    where = vertex_endpoint(location, endpoint)
    job_service_client = _aiplatform("services.job_service").JobServiceClient
    return job_service_client(
        **({"transport": "rest"} if where.rest else {}),
        credentials=AnonymousCredentials() if where.local else credentials,
        client_options=ClientOptions(api_endpoint=where.host),
    )


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
        backoff = Backoff(retries.INITIAL, retries.MAXIMUM, retries.MULTIPLIER)
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
            except THROTTLED as exc:
                last_error = exc
            except TRANSIENT as exc:
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
