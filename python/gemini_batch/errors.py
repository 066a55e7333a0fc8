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


class ConfigError(GeminiBatchError):
    """A model config, profile, flag or environment variable is missing or wrong."""


class DbtError(GeminiBatchError):
    """A dbt invocation failed; the message is dbt's own."""


class WarehouseError(GeminiBatchError):
    """A BigQuery table a build needs is missing or has the wrong shape."""


class LockedError(GeminiBatchError):
    """Another build holds the lock on this batch model."""


class BudgetExceededError(GeminiBatchError):
    """Submitting would go over the model's ``max_cost_usd``."""


class JobServiceError(GeminiBatchError):
    """Vertex AI refused a call; the message says which job and why."""


class StorageError(GeminiBatchError):
    """A Cloud Storage bucket or object a command needs is missing or cannot be used."""


class InputError(GeminiBatchError):
    """Lines of an input file cannot be sent (the message names each line and why)."""


class LocalStackError(GeminiBatchError):
    """The local BigQuery or Vertex AI emulator could not be started, reached or stopped."""


class BuildInterrupted(Exception):  # noqa: N818 - a signal, not an error
    """Control flow: the build was asked to stop; live jobs stay in the ledger."""


__all__ = [
    "BudgetExceededError",
    "BuildInterrupted",
    "ConfigError",
    "DbtError",
    "GeminiBatchError",
    "InputError",
    "JobServiceError",
    "LocalStackError",
    "LockedError",
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
        raise GeminiBatchError(
            f"Google Cloud refused a call ({type(exc).__name__}): {exc.message or exc}"
        ) from exc
    except (RequestsConnectionError, ConnectionError) as exc:
        raise GeminiBatchError(
            f"Could not reach BigQuery or Vertex AI: {exc}. On the local stack, is it "
            "running (`gemini-batch local status`) and are BIGQUERY_ENDPOINT and "
            "GEMINI_BATCH_VERTEX_ENDPOINT set?"
        ) from exc
