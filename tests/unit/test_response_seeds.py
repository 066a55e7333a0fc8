"""The response parsers' seeds (integration_tests/seeds/responses/) are what they claim.

``vertex_outputs.csv`` must hold the real Vertex AI output rows of
tests/fixtures/vertex_samples/ unchanged, and ``vertex_outputs_expected.csv`` what the
macros must read from them, worked out here in Python from the same files (an
independent reading: if the SQL and this disagree, dbt build fails). Run this file as a
script to rewrite both seeds after the fixtures change:
`PYTHONPATH=tests python tests/unit/test_response_seeds.py`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from typing import Any

from helpers.paths import FIXTURES, REPO_ROOT

SEEDS = REPO_ROOT / "integration_tests" / "seeds" / "responses"
SAMPLES = {
    "text": "batch_request_text_output.jsonl",
    "multimodal": "batch_request_multimodal_output.jsonl",
}


def output_rows() -> list[dict[str, Any]]:
    rows = []
    for sample, name in SAMPLES.items():
        for line, text in enumerate((FIXTURES / name).read_text().splitlines(), start=1):
            record = json.loads(text)
            rows.append(
                {
                    "sample": sample,
                    "line": line,
                    "status": record["status"],
                    "response_text": json.dumps(record["response"], separators=(",", ":")),
                }
            )
    return rows


def _parts(candidate: dict[str, Any]) -> list[dict[str, Any]]:
    parts = candidate.get("content", {}).get("parts", [])
    return parts if isinstance(parts, list) else [parts]


def expected_fields(response: dict[str, Any]) -> dict[str, str]:
    """What each macro gives for one response, as the comparison model renders it."""
    fields: dict[str, str] = {}
    candidate = (response.get("candidates") or [{}])[0]
    texts = [p["text"] for p in _parts(candidate) if "text" in p and not p.get("thought")]
    if texts:
        # Line breaks as \n: BigQuery's CSV loads (dbt seeds) refuse quoted line breaks.
        fields["response_text"] = "".join(texts).replace("\n", "\\n")
    if "finishReason" in candidate:
        fields["finish_reason"] = candidate["finishReason"]
    if "modelVersion" in response:
        fields["model_version"] = response["modelVersion"]
    logprobs = float(candidate.get("avgLogprobs", "nan"))
    if not math.isnan(logprobs):
        fields["avg_logprobs"] = f"{logprobs:.6f}"
    usage = response.get("usageMetadata")
    if usage is not None:
        for kind, key in (
            ("prompt", "promptTokenCount"),
            ("candidates", "candidatesTokenCount"),
            ("total", "totalTokenCount"),
            ("thoughts", "thoughtsTokenCount"),
            ("cached", "cachedContentTokenCount"),
        ):
            fields[f"{kind}_tokens"] = str(usage.get(key, 0))
    citations = candidate.get("citationMetadata", {}).get("citations", [])
    if citations:
        fields["citations"] = " | ".join(
            f"{c.get('startIndex', 0)}-{c.get('endIndex', '')} {c.get('uri', '')}"
            for c in citations
        )
    return fields


def _has_usable_part(response: dict[str, Any]) -> bool:
    """The rule "answered", read in Python: a candidate with a non-empty text part that
    is not a thought, or a functionCall (docs/decisions/0008)."""
    return any(
        (part.get("text") and not part.get("thought")) or "functionCall" in part
        for candidate in response.get("candidates") or []
        for part in _parts(candidate)
    )


def expected_rows() -> list[dict[str, Any]]:
    rows = []
    for row in output_rows():
        fields = expected_fields(json.loads(row["response_text"]))
        answered = row["status"] == "" and _has_usable_part(json.loads(row["response_text"]))
        fields["is_success"] = "true" if answered else "false"
        rows.extend(
            {"sample": row["sample"], "line": row["line"], "field": field, "expected": value}
            for field, value in sorted(fields.items())
        )
    return rows


def to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


SEED_FILES = {"vertex_outputs.csv": output_rows, "vertex_outputs_expected.csv": expected_rows}


def test_vertex_output_seeds_match_the_fixtures() -> None:
    for name, build in SEED_FILES.items():
        assert (SEEDS / name).read_text() == to_csv(build()), (
            f"{name} is out of date: run PYTHONPATH=tests python tests/unit/test_response_seeds.py"
        )


def test_expected_seed_covers_every_line_and_the_odd_ones() -> None:
    rows = expected_rows()
    assert {(r["sample"], r["line"]) for r in rows} == {
        (r["sample"], r["line"]) for r in output_rows()
    }
    by_field = {(r["sample"], r["line"], r["field"]): r["expected"] for r in rows}
    # The recitation answer: no content, "NaN" logprobs, citations all the same.
    recited = [key for key, value in by_field.items() if value == "RECITATION"]
    assert len(recited) == 1
    sample, line, _ = recited[0]
    assert (sample, line, "response_text") not in by_field
    assert (sample, line, "avg_logprobs") not in by_field
    assert by_field[(sample, line, "citations")].startswith("106-241 http")


if __name__ == "__main__":
    SEEDS.mkdir(parents=True, exist_ok=True)
    for name, build in SEED_FILES.items():
        (SEEDS / name).write_text(to_csv(build()))
        print(f"wrote {SEEDS / name}", file=sys.stderr)
