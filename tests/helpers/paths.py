"""Where things are in this checkout."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# Real Vertex AI batch inputs and outputs (gemini-1.5-flash-002, from the tutorial).
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "vertex_samples"
# The dbt package under test: this checkout, or another copy of it (e.g. a `git archive`
# of a commit, to test it while the working tree is being edited).
PACKAGE_DIR = Path(os.environ.get("GEMINI_BATCH_PACKAGE_DIR") or REPO_ROOT)
