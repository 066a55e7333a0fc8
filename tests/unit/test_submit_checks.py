"""The JSONL line checks of `gemini-batch submit` are `gemini_batch.request_problems`.

The SQL side is tested against the integration project's seed of request cases (each
with the problem text it must give); the Python side runs the same seed here, so the
two find the same problems in the same words (with the model's rules where a case names
its Gemini model). The GenerationConfig fields the `request` macro takes at compile time
are fields of Google's GenerationConfig.
"""

from __future__ import annotations

import csv
import re

import pytest

from gemini_batch.rules import request_schema
from gemini_batch.rules.request_checks import request_problems
from helpers.paths import REPO_ROOT

SEED = REPO_ROOT / "integration_tests" / "seeds" / "requests" / "request_problem_inputs.csv"
CASES = list(csv.DictReader(SEED.open(newline="")))


@pytest.mark.parametrize("case", CASES, ids=[case["case_name"] for case in CASES])
def test_the_seed_cases_give_the_problems_the_sql_gives(case):
    text = case["request_text"] or None  # an empty cell is NULL in the seed
    found = request_problems(text, from_text=True, gemini_model=case["gemini_model"] or None)
    assert found == (case["expected_problem"] or None)


def test_the_generation_config_fields_of_the_request_macro_are_googles():
    macro = (REPO_ROOT / "macros" / "utils" / "_generation_config_keys.sql").read_text()
    keys = re.findall(r"'(\w+)': '\w+'", macro)
    assert keys
    assert set(keys) <= set(request_schema.schema()["messages"]["GenerationConfig"])
