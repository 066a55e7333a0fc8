"""The real Vertex AI samples in tests/fixtures/vertex_samples/, read the way tests need."""

from __future__ import annotations

import json
from typing import Any

from helpers.paths import FIXTURES

SAMPLES = ("text", "multimodal")


def sample_requests(sample: str) -> list[dict[str, Any]]:
    """The ``request`` of each line of ``batch_request_<sample>_input.jsonl``, in order."""
    path = FIXTURES / f"batch_request_{sample}_input.jsonl"
    return [json.loads(line)["request"] for line in path.read_text().splitlines() if line.strip()]


# The spellings the service accepts besides the REST camelCase that the macros write.
_SNAKE_TO_CAMEL = {
    "file_data": "fileData",
    "file_uri": "fileUri",
    "mime_type": "mimeType",
    "inline_data": "inlineData",
}


def canonical_request(request: dict[str, Any]) -> str:
    """A request as ``gemini_batch.request`` writes it: camelCase, ``parts`` as a list,
    keys sorted, no spaces (what TO_JSON_STRING prints for BigQuery's JSON type)."""

    def normalise(value: Any) -> Any:
        if isinstance(value, dict):
            return {_SNAKE_TO_CAMEL.get(k, k): normalise(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normalise(item) for item in value]
        return value

    request = normalise(request)
    for content in request["contents"]:
        if isinstance(content["parts"], dict):
            content["parts"] = [content["parts"]]
    return json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
