"""The integration project's request seeds (integration_tests/seeds/vertex_samples/) hold
the real Vertex AI samples of tests/fixtures/vertex_samples/, not a hand-edited copy."""

from __future__ import annotations

import csv
import json

from helpers.paths import FIXTURES, REPO_ROOT
from helpers.samples import SAMPLES, canonical_request, sample_requests

SEEDS = REPO_ROOT / "integration_tests" / "seeds" / "vertex_samples"


def _seed_rows(name: str) -> list[dict[str, str]]:
    with (SEEDS / f"{name}.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_vertex_seeds_are_the_fixtures() -> None:
    """The seeds hold the real Vertex AI samples, not a hand-edited copy."""
    expected = {
        (row["sample"], int(row["line"])): row["expected_request"]
        for row in _seed_rows("vertex_expected_requests")
    }
    echoed = {
        (row["sample"], int(row["line"])): json.loads(row["request_text"])
        for row in _seed_rows("vertex_echoed_requests")
    }
    assert expected == {
        (sample, line): canonical_request(request)
        for sample in SAMPLES
        for line, request in enumerate(sample_requests(sample), start=1)
    }
    assert echoed == {
        (sample, line): json.loads(text)["request"]
        for sample in SAMPLES
        for line, text in enumerate(
            (FIXTURES / f"batch_request_{sample}_output.jsonl").read_text().splitlines(), start=1
        )
        if text.strip()
    }
