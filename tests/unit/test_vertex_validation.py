"""What the emulator's create call refuses, and why, checked without a server."""

from __future__ import annotations

from typing import Any

import pytest

from gemini_batch.local.vertex.errors import ApiError
from gemini_batch.local.vertex.server import validate_create_request

PARENT = "projects/p/locations/us-central1"
KNOWN = frozenset({"gemini-2.5-flash", "gemini-2.0-flash"})


def body(**changes: Any) -> dict[str, Any]:
    """A BatchPredictionJob the emulator accepts, with ``changes`` (None removes a field)."""
    job: dict[str, Any] = {
        "displayName": "reviews",
        "model": "publishers/google/models/gemini-2.5-flash",
        "inputConfig": {
            "instancesFormat": "bigquery",
            "bigquerySource": {"inputUri": "bq://p.ds.requests"},
        },
        "outputConfig": {
            "predictionsFormat": "bigquery",
            "bigqueryDestination": {"outputUri": "bq://p.ds"},
        },
        "labels": {"dbt_model": "reviews"},
    }
    job.update(changes)
    return {key: value for key, value in job.items() if value is not None}


def refusal(job: Any) -> ApiError:
    with pytest.raises(ApiError) as refused:
        validate_create_request(job, parent=PARENT, known_models=KNOWN)
    return refused.value


@pytest.mark.parametrize(
    ("model", "recorded"),
    [
        ("publishers/google/models/gemini-2.5-flash", "publishers/google/models/gemini-2.5-flash"),
        ("gemini-2.0-flash", "publishers/google/models/gemini-2.0-flash"),
        (
            f"{PARENT}/publishers/google/models/gemini-2.5-flash",
            f"{PARENT}/publishers/google/models/gemini-2.5-flash",
        ),
    ],
)
def test_a_valid_job_is_accepted_and_its_model_recorded_as_a_resource_name(model, recorded):
    assert validate_create_request(body(model=model), parent=PARENT, known_models=KNOWN) == (
        recorded
    )


def test_an_output_table_as_well_as_a_dataset_is_accepted():
    output = {"predictionsFormat": "bigquery", "bigqueryDestination": {"outputUri": "bq://p.d.t"}}
    job = body(outputConfig=output, labels=None)
    assert validate_create_request(job, parent=PARENT, known_models=KNOWN) == (
        "publishers/google/models/gemini-2.5-flash"
    )


def test_a_body_that_is_not_an_object_is_refused():
    error = refusal(["not", "a", "job"])
    assert (error.code, error.status) == (400, "INVALID_ARGUMENT")
    assert error.message == "Invalid JSON payload: the body must be a BatchPredictionJob."


def test_a_display_name_is_required():
    assert refusal(body(displayName="")).message == "BatchPredictionJob.displayName is required."


def test_a_model_that_is_not_a_model_name_is_refused():
    error = refusal(body(model="publishers/openai/models/gpt-4"))
    assert error.code == 400
    assert error.message.startswith(
        "BatchPredictionJob.model 'publishers/openai/models/gpt-4' is not a model name"
    )


def test_an_unknown_model_is_not_found_and_the_known_ones_are_listed():
    error = refusal(body(model="gemini-9-ultra"))
    assert (error.code, error.status) == (404, "NOT_FOUND")
    assert error.message == (
        f"Publisher Model `{PARENT}/publishers/google/models/gemini-9-ultra` not found. "
        "Known to the emulator: gemini-2.0-flash, gemini-2.5-flash (add more with --model)."
    )


JSONL_IN = {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://bucket/in/*.jsonl"]}}
JSONL_OUT = {"predictionsFormat": "jsonl", "gcsDestination": {"outputUriPrefix": "gs://bucket/out"}}


def test_cloud_storage_jsonl_in_and_out_is_accepted():
    job = body(inputConfig=JSONL_IN, outputConfig=JSONL_OUT)
    assert validate_create_request(job, parent=PARENT, known_models=KNOWN) == (
        "publishers/google/models/gemini-2.5-flash"
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "inputConfig",
            {"instancesFormat": "csv", "gcsSource": {"uris": ["gs://bucket/in.csv"]}},
            "inputConfig.instancesFormat 'csv' is not a format Gemini batch prediction takes: "
            "use 'bigquery' (a table) or 'jsonl' (Cloud Storage).",
        ),
        (
            "inputConfig",
            None,
            "inputConfig.instancesFormat None is not a format Gemini batch prediction takes: "
            "use 'bigquery' (a table) or 'jsonl' (Cloud Storage).",
        ),
        (
            "outputConfig",
            JSONL_OUT,
            "BigQuery input writes BigQuery output: set outputConfig.predictionsFormat to "
            "'bigquery' with outputConfig.bigqueryDestination.outputUri.",
        ),
        (
            "inputConfig",
            {"instancesFormat": "jsonl", "gcsSource": {"uris": ["/local/in.jsonl"]}},
            "inputConfig.gcsSource.uris ['/local/in.jsonl'] must list Cloud Storage objects: "
            "gs://bucket/path/file.jsonl (wildcards such as gs://bucket/in/*.jsonl allowed).",
        ),
    ],
)
def test_formats_and_locations_the_service_does_not_take_are_refused(field, value, message):
    error = refusal(body(**{field: value}))
    assert error.code == 400
    assert error.message == message


def test_the_input_must_be_a_table():
    source = {"instancesFormat": "bigquery", "bigquerySource": {"inputUri": "bq://p.ds"}}
    assert refusal(body(inputConfig=source)).message == (
        "inputConfig.bigquerySource.inputUri 'bq://p.ds' is not a BigQuery table: "
        "use bq://project.dataset.table."
    )


def test_the_output_must_be_a_dataset_or_a_table():
    output = {"predictionsFormat": "bigquery", "bigqueryDestination": {"outputUri": "gs://b/o"}}
    assert refusal(body(outputConfig=output)).message == (
        "outputConfig.bigqueryDestination.outputUri 'gs://b/o' is not a BigQuery dataset or "
        "table: use bq://project.dataset[.table]."
    )


@pytest.mark.parametrize("key", ["Team", "1st", "a" * 64, "dbt.model"])
def test_a_label_key_the_service_refuses_is_refused(key):
    error = refusal(body(labels={"ok": "1", key: "x"}))
    assert error.code == 400
    assert error.message == (
        f"Label key {key!r} is invalid: lowercase letters, digits, _ and -, starting with a "
        "letter, at most 63 characters."
    )


@pytest.mark.parametrize("value", ["Data", "a" * 64, "a.b", "two words", 7])
def test_a_label_value_the_service_refuses_is_refused(value):
    error = refusal(body(labels={"ok": "", "team": value}))
    assert error.code == 400
    assert error.message == (
        f"Label value {value!r} of key 'team' is invalid: lowercase letters, digits, _ and -, "
        "at most 63 characters."
    )


def test_at_most_64_labels_international_lowercase_letters_allowed():
    assert refusal(body(labels={f"k{n}": "v" for n in range(65)})).message == (
        "A resource can have at most 64 labels; this job has 65.")
    validate_create_request(body(labels={**{f"k{n}": "" for n in range(63)}, "équipe": "x"}),
                            parent=PARENT, known_models=KNOWN)


def test_the_first_problem_is_the_one_reported():
    # No display name and a GCS input: the display name is checked first.
    error = refusal(body(displayName=None, inputConfig={"instancesFormat": "jsonl"}))
    assert error.message == "BatchPredictionJob.displayName is required."
