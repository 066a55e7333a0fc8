"""The emulator's list filter, on job resources as the store holds them (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from gemini_batch.local.vertex.errors import ApiError
from gemini_batch.local.vertex.filters import job_filter


def job(
    name: str,
    state: str = "JOB_STATE_SUCCEEDED",
    *,
    model: str = "publishers/google/models/gemini-2.5-flash",
    created: str = "2025-01-01T00:00:00.000000Z",
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    resource = {
        "name": f"projects/p/locations/l/batchPredictionJobs/{name}",
        "displayName": name,
        "model": model,
        "state": state,
        "createTime": created,
        "updateTime": created,
    }
    if labels is not None:
        resource["labels"] = labels
    return resource


JOBS = [
    job("reviews-1", labels={"dbt_model": "reviews", "team": "data"}),
    job("reviews-2", "JOB_STATE_FAILED", labels={"dbt_model": "reviews"}),
    job(
        "recipes-1",
        "JOB_STATE_RUNNING",
        model="publishers/google/models/gemini-2.0-flash",
        created="2025-03-01T00:00:00.000000Z",
        labels={"dbt_model": "recipes"},
    ),
    job("unlabelled", "JOB_STATE_CANCELLED", created="2025-02-01T00:00:00.000000Z"),
]


def kept(expression: str) -> list[str]:
    matches = job_filter(expression)
    return [resource["displayName"] for resource in JOBS if matches(resource)]


@pytest.mark.parametrize("expression", ["", "   "])
def test_an_empty_filter_keeps_every_job(expression):
    assert kept(expression) == ["reviews-1", "reviews-2", "recipes-1", "unlabelled"]


@pytest.mark.parametrize(
    "expression",
    ['state="JOB_STATE_FAILED"', "state=JOB_STATE_FAILED", "state=FAILED", "state=5"],
)
def test_a_state_is_written_in_full_without_its_prefix_or_as_its_number(expression):
    assert kept(expression) == ["reviews-2"]


def test_labels_compare_by_key_and_key_existence():
    assert kept('labels.dbt_model="reviews"') == ["reviews-1", "reviews-2"]
    assert kept("labels.team:*") == ["reviews-1"]
    assert kept("labels.dbt_model:*") == ["reviews-1", "reviews-2", "recipes-1"]
    assert kept('labels.dbt_model!="reviews"') == ["recipes-1", "unlabelled"]


def test_and_keeps_jobs_matching_every_term():
    assert kept('state="JOB_STATE_FAILED" AND labels.dbt_model="reviews"') == ["reviews-2"]
    assert kept('state="JOB_STATE_FAILED" AND labels.dbt_model="recipes"') == []


def test_or_keeps_jobs_matching_either_side_and_and_binds_tighter():
    assert kept("state=RUNNING OR state=CANCELLED") == ["recipes-1", "unlabelled"]
    # (FAILED AND reviews) OR RUNNING, not FAILED AND (reviews OR RUNNING).
    assert kept('state=FAILED AND labels.dbt_model="reviews" OR state=RUNNING') == [
        "reviews-2",
        "recipes-1",
    ]


@pytest.mark.parametrize("expression", ['NOT display_name="reviews-1"', '-displayName="reviews-1"'])
def test_not_and_minus_negate_a_term(expression):
    assert kept(expression) == ["reviews-2", "recipes-1", "unlabelled"]


def test_times_compare_in_order():
    assert kept('create_time>"2025-01-15T00:00:00Z"') == ["recipes-1", "unlabelled"]
    assert kept('createTime<="2025-02-01T00:00:00.000000Z"') == [
        "reviews-1",
        "reviews-2",
        "unlabelled",
    ]


def test_a_model_is_named_by_id_or_resource_name():
    assert kept("model=gemini-2.0-flash") == ["recipes-1"]
    assert kept('model="publishers/google/models/gemini-2.0-flash"') == ["recipes-1"]


def test_an_unknown_field_is_refused_with_the_fields_it_takes():
    with pytest.raises(ApiError) as refused:
        job_filter('owner="me"')
    assert refused.value.code == 400
    assert refused.value.status == "INVALID_ARGUMENT"
    assert refused.value.message == (
        "Unsupported filter field 'owner': use state, display_name, model, create_time, "
        "update_time or labels.<key>."
    )


def test_a_term_without_a_comparison_is_refused_with_an_example():
    with pytest.raises(ApiError) as refused:
        job_filter("state=FAILED AND reviews")
    assert refused.value.code == 400
    assert refused.value.message == (
        "Unsupported filter term 'reviews': write e.g. "
        'state="JOB_STATE_SUCCEEDED" or labels.team="data".'
    )
