"""Typed config of a batch model (a dbt node with ``materialized='gemini_batch'``).

The materialization validates the same keys at compile time (in Jinja); this module is
what the Python side reads from ``target/manifest.json``. Keep the two in step: the
defaults and limits below are documented in ``docs/materialization.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gemini_batch.errors import ConfigError
from gemini_batch.rules.catalog import MAX_REQUESTS_PER_JOB, MULTI_REGIONS, QUEUE_LIMIT_HOURS

# A shard is one batch job: at most what the service takes in one.
MAX_SHARD_SIZE = MAX_REQUESTS_PER_JOB
# Model names, also pasted into SQL as a literal by the materialization: keep it strict.
_GEMINI_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@/-]*$")
# Vertex AI label keys and values: lowercase letters, digits, '_' and '-', at most 63.
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_LOCATION = re.compile(r"^[a-z]+(-[a-z0-9]+)*$")
# A BigQuery connection id (`connection`, `location.connection`, `project.location.connection`),
# pasted into the AI.GENERATE statement as a literal: keep it strict.
_CONNECTION_ID = re.compile(r"^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+){0,2}$")


# Labels a model's config may set: Vertex AI takes 64 per job, the tool sets 3.
MAX_CONFIG_LABELS = 61


class BatchModelConfig(BaseModel):
    """The ``gemini_batch`` keys of a model's dbt config (other dbt keys are ignored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    gemini_model: str = Field(description="Gemini model name, e.g. 'gemini-2.5-flash'.")
    location: str | None = Field(
        default=None, description="Job region; default: the dataset's location."
    )
    max_retries: int = Field(default=2, ge=0, le=100)
    shard_size: int = Field(default=MAX_SHARD_SIZE, ge=1, le=MAX_SHARD_SIZE)
    max_concurrent_jobs: int = Field(default=4, ge=1, le=100)
    # Hours a job may stay QUEUED/PENDING (from the service's createTime) before the build
    # cancels it and sends its requests again (rules/queue_deadline.py); none: it waits
    # up to the service's 72-hour expiry. A number (strict: no string, no boolean) above 0.
    max_queue_hours: float | None = Field(default=None, gt=0, le=QUEUE_LIMIT_HOURS,
                                          strict=True)
    max_cost_usd: float | None = Field(default=None, ge=0)
    # What max_cost_usd is checked against: the estimate, or the worst case (every
    # request writes its maxOutputTokens, or the model's limit): docs/costs.md.
    max_cost_mode: Literal["estimate", "worst_case"] = "estimate"
    keep_job_tables: bool = False
    labels: dict[str, str] = Field(default_factory=dict)
    fail_on_failed_rows: bool = True
    # Answers with nothing usable (status '', no text) are paid for and final by default:
    # the same bytes get the same answer. True: retried like a 429 (paid again).
    retry_empty_answers: bool = False
    # Empty answers of a transient kind (finishReason STOP with no parts, OTHER,
    # MALFORMED_FUNCTION_CALL, no candidates) are sent again this many times, within
    # max_retries: the same request usually gets an answer then (answers.py).
    empty_retries: int = Field(default=1, ge=0, le=100)
    # A round of more than canary_min_rows requests first sends a sample (canary_share of
    # it, within canary_min_sample..canary_max_sample, the lowest request_ids) and sends
    # the rest only if at most canary_max_failed_share of the sample failed for good or
    # came back empty (docs/costs.md).
    canary: bool = True
    canary_min_rows: int = Field(default=2_000, ge=1, le=MAX_SHARD_SIZE * 100)
    canary_max_failed_share: float = Field(default=0.2, ge=0, le=1)
    canary_share: float = Field(default=0.01, ge=0, le=1)
    canary_min_sample: int = Field(default=100, ge=1, le=MAX_SHARD_SIZE)
    canary_max_sample: int = Field(default=1_000, ge=1, le=MAX_SHARD_SIZE)
    # How pending requests are answered: Vertex AI batch jobs (`gemini-batch build`),
    # BigQuery's AI.GENERATE inside a plain `dbt run`, or `auto` (docs/routes.md).
    route: Literal["batch", "ai_generate", "auto"] = "batch"
    # Requests one run sends through AI.GENERATE at most (the rest stay pending); with
    # route `auto`, more pending requests than this go by batch job.
    ai_generate_max_rows: int = Field(default=10_000, ge=1, le=10_000_000)
    # AI.GENERATE's connection_id; none: the user's own credentials.
    connection_id: str | None = None
    # AI.GENERATE's request_type: Provisioned Throughput (DEDICATED), pay as you go
    # (SHARED), or either (UNSPECIFIED).
    ai_generate_request_type: Literal["UNSPECIFIED", "SHARED", "DEDICATED"] = "UNSPECIFIED"

    @field_validator("gemini_model")
    @classmethod
    def _check_gemini_model(cls, value: str) -> str:
        if not _GEMINI_MODEL.match(value):
            raise ValueError(
                f"{value!r} is not a Gemini model name (letters, digits, '.', '-', '_', "
                "'@', '/'; e.g. 'gemini-2.5-flash')"
            )
        return value

    @field_validator("location")
    @classmethod
    def _check_location(cls, value: str | None) -> str | None:
        if value is not None and not _LOCATION.match(value.lower()):
            raise ValueError(f"{value!r} is not a Google Cloud region (e.g. 'us-central1')")
        return value

    @field_validator("connection_id")
    @classmethod
    def _check_connection_id(cls, value: str | None) -> str | None:
        if value is not None and not _CONNECTION_ID.match(value):
            raise ValueError(
                f"{value!r} is not a BigQuery connection id ('connection', "
                "'location.connection' or 'project.location.connection')"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_CONFIG_LABELS:
            raise ValueError(
                f"{len(value)} labels: at most {MAX_CONFIG_LABELS} (Vertex AI takes 64 per "
                "job, and gemini-batch sets tool, dbt_model and dbt_invocation_id)")
        for key, label in value.items():
            if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(str(label)):
                raise ValueError(
                    f"label {key!r}: {label!r} is not a valid Vertex AI label (keys start "
                    "with a lowercase letter; keys and values use lowercase letters, "
                    "digits, '_' and '-', at most 63 characters)"
                )
        return value


@dataclass(frozen=True)
class BatchModel:
    """A batch model and the BigQuery tables it owns (names are ``project.dataset.table``)."""

    unique_id: str
    name: str
    project: str
    dataset: str
    config: BatchModelConfig
    # transport_gcs.py's settings (meta keys the materialization does not read).
    transport: str | None = None
    staging_uri: str | None = None

    def _table(self, suffix: str) -> str:
        return f"{self.project}.{self.dataset}.{self.name}{suffix}"

    @property
    def view(self) -> str:
        """The model relation: a view of every request with its latest answer."""
        return self._table("")

    @property
    def requests_table(self) -> str:
        return self._table("__requests")

    @property
    def responses_table(self) -> str:
        return self._table("__responses")

    def shard_table(self, run_id: str, index: int) -> str:
        """Input table of one job: ``<model>__shard_<run_id>_<index>``."""
        return self._table(f"__shard_{run_id}_{index}")

    def output_table(self, run_id: str, index: int) -> str:
        """Output table Vertex AI writes for one job: ``<model>__output_<run_id>_<index>``."""
        return self._table(f"__output_{run_id}_{index}")

    @classmethod
    def from_manifest_node(cls, node: Mapping[str, Any]) -> BatchModel:
        """Read a model node of ``target/manifest.json``; ConfigError names the model."""
        unique_id = str(node.get("unique_id", node.get("name", "?")))
        node_config = node.get("config") or {}
        # Keys may sit in config(meta={...}) (dbt 1.10+) or at the top of config();
        # meta wins, as in the materialization (_gemini_batch_setting).
        raw = {**node_config, **(node_config.get("meta") or {})}
        try:
            config = BatchModelConfig.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'config'}: {error['msg']}"
                for error in exc.errors()
            )
            raise ConfigError(
                f"Model {unique_id} (materialized='gemini_batch') has a bad config: "
                f"{problems}. Fix it in the model's config() or its yml."
            ) from exc
        return cls(
            unique_id=unique_id,
            name=str(node.get("alias") or node["name"]),
            project=str(node["database"]),
            dataset=str(node["schema"]),
            config=config,
            transport=raw.get("transport"),
            staging_uri=raw.get("staging_uri"),
        )

    def job_location(self, dataset_location: str) -> str:
        """The region for this model's jobs, given the location of its dataset.

        Vertex AI reads and writes BigQuery tables only in the job's own region, and
        refuses multi-region datasets (US, EU). ``global`` is taken as it is: no table
        crosses into a job there (it reads and writes Cloud Storage: transport_gcs.py).
        """
        if (self.config.location or "").lower() == "global":
            return "global"
        if dataset_location.lower() in MULTI_REGIONS:
            raise ConfigError(
                f"Model {self.unique_id}: dataset {self.project}.{self.dataset} is in the "
                f"multi-region {dataset_location!r}; Vertex AI batch jobs need a regional "
                "dataset (e.g. us-central1, europe-west4). Point the model's schema at a "
                "dataset created in a region."
            )
        wanted = self.config.location
        if wanted and wanted.lower() != dataset_location.lower():
            raise ConfigError(
                f"Model {self.unique_id}: config location={wanted!r} but dataset "
                f"{self.project}.{self.dataset} is in {dataset_location!r}; a batch job "
                "must run in its dataset's region. Remove `location` or move the dataset."
            )
        return (wanted or dataset_location).lower()


def ledger_dataset(dbt_vars: Mapping[str, Any], target_dataset: str) -> str:
    """Dataset of the ledger: var ``gemini_batch_ledger_dataset``, else the target's."""
    return str(dbt_vars.get("gemini_batch_ledger_dataset") or target_dataset)
