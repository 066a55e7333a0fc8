"""Which publisher models the emulator serves, where, and how a job names one.

The facts come from ``gemini_batch.rules.catalog`` (the one table the operator reads too): a
job for a model the catalog does not serve in the job's location is refused at create
time as the service refuses it, and so is a job with BigQuery tables on ``global`` while
``catalog.GLOBAL_BATCH_TAKES_BIGQUERY`` is False.
"""

from __future__ import annotations

import functools

from gemini_batch.local.vertex.errors import ApiError
from gemini_batch.rules import catalog
from gemini_batch.rules.catalog import model_id

# Every id the catalog knows, aliases included. A job for any other id is refused with
# 404, as the service refuses a model it does not have (``--model ID`` adds more).
KNOWN_MODELS = frozenset(catalog.NAMES)
# What the service answers for a publisher model a project cannot use where it asked.
_NOT_FOUND = (
    "Publisher Model `{parent}/publishers/google/models/{model}` was not found or your "
    "project does not have access to it. Please ensure you are using a valid model version. "
    "For more information, see: "
    "https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"
)


def publisher_model_name(model: str) -> str:
    """The resource name the service reports: ``publishers/google/models/<id>``."""
    return f"publishers/google/models/{model}"


@functools.lru_cache(maxsize=64)
def spec(model: str) -> catalog.Model | None:
    """The catalog's entry for ``model`` (None for one added with ``--model``); cached,
    as every row of a job asks for it."""
    return catalog.lookup(model)


def output_limit(request: dict, model: str) -> int:
    """The tokens an answer may use (thinking included): the request's
    ``maxOutputTokens``, else the model's maximum (8,192 for a model the catalog lacks)."""
    limit = request.get("generationConfig", {}).get("maxOutputTokens")
    if limit is not None:
        return int(limit)
    found = spec(model)
    return found.max_output_tokens if found else 8_192


def check_served(model: str, parent: str, *, legacy_models: bool, bigquery: bool = True) -> None:
    """Refuse a job for ``model`` under ``parent`` (projects/p/locations/l) as the service does.

    - location ``global`` with BigQuery input/output while the catalog says batch there
      takes Cloud Storage only: 400 INVALID_ARGUMENT;
    - a model the catalog does not serve in that location, or a ``gemini-1.5-*`` model
      for a project without earlier use of it (``legacy_models``): 404 NOT_FOUND.

    Models the catalog does not know (added with ``--model``) are served everywhere.
    """
    location = parent.rsplit("/", 1)[-1].lower()
    if bigquery and location == catalog.GLOBAL and not catalog.GLOBAL_BATCH_TAKES_BIGQUERY:
        raise ApiError(
            400,
            "Batch prediction jobs in location global read and write Cloud Storage only: "
            "BigQuery input and output are not supported there. Use Cloud Storage JSONL "
            "(instancesFormat and predictionsFormat 'jsonl'), or a regional location such "
            "as us-central1 for BigQuery tables.",
        )
    found = spec(model)
    if found is None:
        return
    # A retired model is the operator's refusal (catalog.check_model); the emulator still
    # serves it with legacy_models, to replay the real outputs it answered.
    hint = None if found.retired else catalog.check_model(found.name, location)
    if hint is None and not found.for_new_projects and not legacy_models:
        hint = (f"{found.name} is not available to new projects (retired on "
                f"{found.retired}; use {found.replacement}); set the emulator's "
                "legacy_models setting for a project that used it before")
    if hint:
        raise ApiError(404, f"{_NOT_FOUND.format(parent=parent, model=model)} ({hint})")


__all__ = ["KNOWN_MODELS", "check_served", "model_id", "output_limit", "publisher_model_name",
           "spec"]
