"""Every exception the package raises on purpose, in one hierarchy.

Messages say what was wrong, where (model, table, row, field) and what to do: the CLI
prints a ``GeminiBatchError`` as it is, without a traceback, and exits 1.

``BuildInterrupted`` is not an error: it is how a waiting job loop learns that the user
pressed Ctrl-C, and it is kept out of the hierarchy so that ``except GeminiBatchError``
never swallows it. ``service_errors`` turns a refused or unreachable Google Cloud call
into a ``GeminiBatchError`` with what to check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class GeminiBatchError(Exception):
    """Base class: an error the user can act on."""

    # What ended the command, in a word: the `exit_reason` of the --json documents.
    reason = "error"


class ConfigError(GeminiBatchError):
    """A model config, profile, flag or environment variable is missing or wrong."""

    reason = "config_error"


class DbtError(GeminiBatchError):
    """A dbt invocation failed; the message is dbt's own."""

    reason = "dbt_failed"


class WarehouseError(GeminiBatchError):
    """A BigQuery table a build needs is missing or has the wrong shape."""

    reason = "warehouse_error"


class LockedError(GeminiBatchError):
    """Another build holds the lock on this batch model."""

    reason = "locked"


class BudgetExceededError(GeminiBatchError):
    """Submitting would go over the model's ``max_cost_usd``."""

    reason = "over_budget"


class JobServiceError(GeminiBatchError):
    """Vertex AI refused a call; the message says which job and why."""

    reason = "service_error"


class StorageError(GeminiBatchError):
    """A Cloud Storage bucket or object a command needs is missing or cannot be used."""

    reason = "service_error"


class InputError(GeminiBatchError):
    """Lines of an input file cannot be sent (the message names each line and why)."""

    reason = "input_error"


class LocalStackError(GeminiBatchError):
    """The local BigQuery or Vertex AI emulator could not be started, reached or stopped."""

    reason = "local_stack_error"


class DbtParseError(DbtError):
    """dbt could not parse or compile the project (nothing ran)."""

    reason = "parse_error"


class ServiceError(GeminiBatchError):
    """BigQuery or Vertex AI refused a call or could not be reached (``service_errors``)."""

    reason = "service_error"


class BuildInterrupted(Exception):  # noqa: N818 - a signal, not an error
    """Control flow: the build was asked to stop; live jobs stay in the ledger."""


__all__ = [
    "BudgetExceededError",
    "BuildInterrupted",
    "ConfigError",
    "DbtError",
    "DbtParseError",
    "GeminiBatchError",
    "InputError",
    "JobServiceError",
    "LocalStackError",
    "LockedError",
    "ServiceError",
    "StorageError",
    "WarehouseError",
]


@contextlib.contextmanager
def service_errors() -> Iterator[None]:
    """BigQuery or Vertex AI unreachable or refusing: a message, not a traceback."""
    from google.api_core.exceptions import GoogleAPICallError
    from requests.exceptions import ConnectionError as RequestsConnectionError

    try:
        yield
    except GoogleAPICallError as exc:
        raise ServiceError(
            f"Google Cloud refused a call ({type(exc).__name__}): {exc.message or exc}"
        ) from exc
    except (RequestsConnectionError, ConnectionError) as exc:
        raise ServiceError(
            f"Could not reach BigQuery or Vertex AI: {exc}. On the local stack, is it "
            "running (`gemini-batch local status`) and are BIGQUERY_ENDPOINT and "
            "GEMINI_BATCH_VERTEX_ENDPOINT set?"
        ) from exc
