"""Engines answer GenerateContentRequests for the emulator's jobs.

An engine takes a list of normalised requests (``requests.normalise_request``) and
returns, for each, either a GenerateContentResponse (a dict in REST field names) or the
error `status` the row gets (a string shaped like the service's, see ``faults.row_error``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Protocol

Result = dict[str, Any] | str


class Engine(Protocol):
    name: str
    # Rows handed to ``generate`` at once: between two batches a job checks for a cancel
    # and reports progress.
    batch_size: int

    def generate(self, requests: list[dict[str, Any]], *, model: str) -> list[Result]: ...

    def close(self) -> None: ...


def settings_from_env(environ: Mapping[str, str] | None = None) -> tuple[str, dict[str, Any]]:
    """The engine's name and settings from the variables ``gemini-batch local start``
    passes to both servers (the Vertex emulator's flags default to them; the local
    BigQuery's AI.GENERATE reads them): GEMINI_BATCH_ENGINE, GEMINI_BATCH_OPENAI_*."""
    env = os.environ if environ is None else environ
    return env.get("GEMINI_BATCH_ENGINE") or "simulate", {
        "base_url": env.get("GEMINI_BATCH_OPENAI_BASE_URL") or "http://localhost:11434/v1",
        "model": env.get("GEMINI_BATCH_OPENAI_MODEL"),
        "api_key": env.get("GEMINI_BATCH_OPENAI_API_KEY"),
        "concurrency": int(env.get("GEMINI_BATCH_OPENAI_CONCURRENCY") or 8),
        "timeout": float(env.get("GEMINI_BATCH_OPENAI_TIMEOUT") or 120),
    }


def make_engine(name: str, **settings: Any) -> Engine:
    """The engine called ``name`` (``simulate`` or ``openai``), configured by ``settings``."""
    if name == "simulate":
        from gemini_batch.local.vertex.engines.simulate import SimulateEngine

        return SimulateEngine()
    if name == "openai":
        from gemini_batch.local.vertex.engines.openai import OpenAIEngine

        return OpenAIEngine(**settings)
    raise ValueError(f"Unknown engine {name!r}: choose simulate or openai.")
