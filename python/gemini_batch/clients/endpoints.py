"""Where each service is reached, and whether that place takes Google credentials.

One rule for every client (BigQuery, Cloud Storage, Vertex AI sync and async): an
endpoint given as ``http://...`` is a local emulator and gets anonymous credentials;
anything else (``https://...``: a proxy, Private Service Connect, a regional
endpoint; a bare host) is Google's or stands in for it and gets the caller's
credentials or Application Default Credentials. A token is never sent over plain HTTP,
and a private ``https://`` endpoint is never left without one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from gemini_batch.errors import ConfigError
from gemini_batch.rules.catalog import GLOBAL, MULTI_REGIONS

# The Vertex AI endpoint override (`gemini-batch local start` prints it); unset: Google's.
VERTEX_ENDPOINT_ENV = "GEMINI_BATCH_VERTEX_ENDPOINT"
# google-cloud-storage's own emulator switch (fake-gcs-server on the local stack).
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"


def tidy(endpoint: str | None) -> str | None:
    """``endpoint`` without blanks and a trailing ``/``; None when empty."""
    return (endpoint or "").strip().rstrip("/") or None


def is_local(endpoint: str | None) -> bool:
    """Whether ``endpoint`` is an emulator: plain ``http://`` (Google serves TLS only).
    ``https://`` and bare hosts are not, whatever their name."""
    endpoint = tidy(endpoint)
    return bool(endpoint) and urlsplit(endpoint).scheme.lower() == "http"


def storage_emulator() -> str | None:
    """The Cloud Storage emulator of ``STORAGE_EMULATOR_HOST``, or None for Google's."""
    return tidy(os.environ.get(STORAGE_EMULATOR_ENV))


def google_endpoint(location: str) -> str:
    """Google's Vertex AI endpoint for ``location`` (``global`` has no region prefix)."""
    if location.lower() == GLOBAL:
        return "aiplatform.googleapis.com"
    return f"{location.lower()}-aiplatform.googleapis.com"


@dataclass(frozen=True)
class VertexEndpoint:
    """How a Job Service client of one location reaches the service.

    ``host``: the client's ``api_endpoint``; ``rest``: REST (an ``http(s)://`` endpoint)
    rather than gRPC; ``local``: an emulator, anonymous credentials."""

    host: str
    rest: bool
    local: bool


def vertex_endpoint(location: str, endpoint: str | None = None) -> VertexEndpoint:
    """Where the Job Service of ``location`` is: ``endpoint``, else
    ``$GEMINI_BATCH_VERTEX_ENDPOINT``, else Google's endpoint of the location.

    ``http://...``: an emulator over REST; ``https://...``: REST with credentials; a bare
    host: gRPC. Google's endpoints (and bare hosts) need a region or ``global``: a
    multi-region (US, EU) is refused as the service refuses it."""
    endpoint = tidy(endpoint) or tidy(os.environ.get(VERTEX_ENDPOINT_ENV))
    if endpoint and urlsplit(endpoint).scheme.lower() in ("http", "https"):
        return VertexEndpoint(host=endpoint, rest=True, local=is_local(endpoint))
    if not location or location.lower() in MULTI_REGIONS:
        raise ConfigError(
            f"Vertex AI batch jobs need a region such as us-central1, not {location!r}: "
            "set the model's `location` config or use a regional dataset."
        )
    return VertexEndpoint(host=endpoint or google_endpoint(location), rest=False, local=False)


__all__ = [
    "STORAGE_EMULATOR_ENV",
    "VERTEX_ENDPOINT_ENV",
    "VertexEndpoint",
    "google_endpoint",
    "is_local",
    "storage_emulator",
    "tidy",
    "vertex_endpoint",
]
