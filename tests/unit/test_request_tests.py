"""What a build says about a test on a batch model's request column, and how it names
rows: the words a user reads (no server)."""

from __future__ import annotations

from gemini_batch.build.request_tests import RequestTestOutcome
from gemini_batch.state.rows import row_label


def test_a_failed_request_test_names_its_rows_and_blocks_the_jobs() -> None:
    outcome = RequestTestOutcome(
        model="model.p.questions", test="valid_request_questions_request", status="fail",
        failures=7, message="Got 7 results, configured to fail if != 0",
        examples=["id=2: request_problem=the prompt is NULL (contents[0].parts[0].text)"])
    assert outcome.blocks
    assert outcome.describe() == (
        "request test valid_request_questions_request failed on 7 rows (id=2: "
        "request_problem=the prompt is NULL (contents[0].parts[0].text) ...)")


def test_a_warning_lets_the_jobs_go_and_a_broken_test_blocks_them_with_dbt_s_words() -> None:
    warned = RequestTestOutcome(model="m", test="t", status="warn", failures=1, message="",
                                examples=["id=1: request_bytes=900"])
    assert not warned.blocks
    assert warned.describe() == "request test t warned on 1 row (id=1: request_bytes=900)"
    broken = RequestTestOutcome(model="m", test="t", status="error", failures=None,
                                message="Database Error: column x not found")
    assert broken.blocks
    assert broken.describe() == "request test t could not run: Database Error: column x not found"


def test_a_row_is_named_by_its_key_columns_with_long_values_cut() -> None:
    row = {"ticket_id": 17, "lang": None, "body": "x" * 100, "request": "{}"}
    assert row_label(row, ["ticket_id", "lang"]) == "ticket_id=17, lang=NULL"
    assert row_label(row, ["body"]) == f"body={'x' * 37}..."
    assert row_label(row, []) == ""
