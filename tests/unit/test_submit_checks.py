"""The JSONL line checks of `gemini-batch submit` are `gemini_batch.request_problems`.

The SQL side is tested against the integration project's seed of request cases (each
with the problem text it must give); the Python side runs the same seed here, so the
two find the same problems in the same words. The GenerationConfig fields are read
from the macro that lists them for the SQL side.
"""

from __future__ import annotations

import csv
import re

import pytest

from gemini_batch.rules.request_checks import GENERATION_CONFIG_KEYS, request_problems
from helpers.paths import REPO_ROOT

SEED = REPO_ROOT / "integration_tests" / "seeds" / "requests" / "request_problem_inputs.csv"
CASES = list(csv.DictReader(SEED.open(newline="")))


@pytest.mark.parametrize("case", CASES, ids=[case["case_name"] for case in CASES])
def test_the_seed_cases_give_the_problems_the_sql_gives(case):
    text = case["request_text"] or None  # an empty cell is NULL in the seed
    assert request_problems(text, from_text=True) == (case["expected_problem"] or None)


def test_the_generation_config_fields_are_the_macros():
    macro = (REPO_ROOT / "macros" / "utils" / "_generation_config_keys.sql").read_text()
    assert sorted(GENERATION_CONFIG_KEYS) == sorted(re.findall(r"'(\w+)': '\w+'", macro))
