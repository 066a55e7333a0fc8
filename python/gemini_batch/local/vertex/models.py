"""Which publisher models the emulator knows, and how a job names one."""

from __future__ import annotations

import re

# Gemini models that Vertex AI batch prediction serves (Google's model ids). A job for any
# other id is refused with 404, as the service refuses a model it does not have.
KNOWN_MODELS = frozenset(
    {
        "gemini-3-pro-preview",
        "gemini-3-flash-preview",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-2.5-flash-preview-09-2025",
        "gemini-2.5-flash-lite-preview-09-2025",
        "gemini-2.0-flash",
        "gemini-2.0-flash-001",
        "gemini-2.0-flash-lite",
        "gemini-2.0-flash-lite-001",
        "gemini-1.5-pro-002",
        "gemini-1.5-flash-002",
    }
)

_MODEL_NAME = re.compile(
    r"^(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"(?:publishers/(?P<publisher>[^/]+)/models/)?(?P<model>[^/@]+)(?:@(?P<version>[^/]+))?$"
)


def model_id(name: str) -> str | None:
    """``gemini-2.5-flash`` from any way a job may name it, or None if it is not a name.

    Accepted: ``gemini-2.5-flash``, ``publishers/google/models/gemini-2.5-flash`` and
    ``projects/p/locations/l/publishers/google/models/gemini-2.5-flash``.
    """
    match = _MODEL_NAME.match(name.strip())
    if not match or match["publisher"] not in (None, "google"):
        return None
    return match["model"]


def publisher_model_name(model: str) -> str:
    """The resource name the service reports: ``publishers/google/models/<id>``."""
    return f"publishers/google/models/{model}"
