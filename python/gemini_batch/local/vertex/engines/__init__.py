"""Engines answer GenerateContentRequests for the emulator's jobs.

An engine takes a list of normalised requests (``requests.normalise_request``) and
returns, for each, either a GenerateContentResponse (a dict in REST field names) or the
error `status` the row gets (a string shaped like the service's, see ``faults.row_error``).
"""

from __future__ import annotations

from typing import Any, Protocol

Result = dict[str, Any] | str


class Engine(Protocol):
    name: str
    # Rows handed to ``generate`` at once: between two batches a job checks for a cancel
    # and reports progress.
    batch_size: int

    def generate(self, requests: list[dict[str, Any]], *, model: str) -> list[Result]: ...

    def close(self) -> None: ...


def make_engine(name: str, **settings: Any) -> Engine:
    """The engine called ``name`` (``simulate`` or ``openai``), configured by ``settings``."""
    if name == "simulate":
        from gemini_batch.local.vertex.engines.simulate import SimulateEngine

        return SimulateEngine()
    if name == "openai":
        from gemini_batch.local.vertex.engines.openai import OpenAIEngine

        return OpenAIEngine(**settings)
    raise ValueError(f"Unknown engine {name!r}: choose simulate or openai.")
