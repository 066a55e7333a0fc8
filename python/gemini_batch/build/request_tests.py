"""The tests on a batch model's ``request`` column, which gate its jobs.

They run in the model's own stage, before its jobs (``dbt_project.DbtProject.stages``).
An error-severity failure (or a test that could not run) stops the model's submission
and skips what depends on it; a warning is reported and the jobs go. Each outcome names
the test and up to EXAMPLE_ROWS of its failing rows, by the model's key columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from gemini_batch.clients.bigquery import BigQuery
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.rows import key_columns, requests_columns, row_label

EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class RequestTestOutcome:
    """A test on a batch model's request column that did not pass."""

    model: str  # the batch model's unique_id
    test: str  # the test's name, as dbt prints it
    status: str  # 'fail', 'error' (it could not run) or 'warn'
    failures: int | None  # failing rows, as dbt counted them
    message: str  # dbt's
    examples: list[str] = field(default_factory=list)  # failing rows, named

    @property
    def blocks(self) -> bool:
        """Whether it stops the model's jobs: anything but a warning."""
        return self.status != "warn"

    def describe(self) -> str:
        """``request test valid_request_x_request failed on 2 rows (id=2: request_problem=...)``"""
        verb = {"fail": "failed", "warn": "warned"}.get(self.status, "could not run")
        text = f"request test {self.test} {verb}"
        if self.status in ("fail", "warn") and self.failures is not None:
            text += f" on {self.failures:,} row{'' if self.failures == 1 else 's'}"
        if self.examples:
            more = " ..." if (self.failures or 0) > len(self.examples) else ""
            text += f" ({'; '.join(self.examples)}{more})"
        elif self.message:
            text += f": {self.message}"
        return text


def outcomes(bq: BigQuery, models: dict[str, BatchModel],
             gates: Sequence[tuple[str, str]], results: Sequence[Any]) -> list[RequestTestOutcome]:
    """What the request tests that did not pass (``results``, dbt's node results) say:
    ``gates`` maps each test to its batch model (``Stage.request_tests``); ``models``
    are the batch models by unique_id."""
    model_of = dict(gates)
    found = []
    for result in results:
        uid = result.node.unique_id
        model = models[model_of[uid]]
        status = str(result.status)
        found.append(RequestTestOutcome(
            model=model.unique_id,
            test=result.node.name,
            status=status if status in ("fail", "warn") else "error",
            failures=getattr(result, "failures", None),
            message=str(result.message or ""),
            examples=_examples(bq, model, result) if status in ("fail", "warn") else [],
        ))
    return found


def _examples(bq: BigQuery, model: BatchModel, result: Any) -> list[str]:
    """Up to EXAMPLE_ROWS failing rows of the test: the model's key columns, then what
    the test adds (request_problem, request_bytes...). [] when the test's SQL cannot be
    read again: the outcome still names the test and its count."""
    sql = getattr(result.node, "compiled_code", None)
    if not sql:
        return []
    try:
        # On lines of their own: the test's SQL may end with a line comment.
        rows = bq.query(f"SELECT * FROM (\n{sql}\n) LIMIT {EXAMPLE_ROWS}")
    except Exception:  # the test's rows are a courtesy; the failure itself is reported
        return []
    schema = requests_columns(bq, model)
    keys = key_columns(schema)
    # What the test adds to the model's columns says why the row failed.
    # (The view has no request_problem: in a test's rows, it is valid_request's reason.)
    known = {f.name.lower() for f in schema} - {"request_problem"} | _VIEW_COLUMNS
    examples = []
    for row in rows:
        values = dict(row.items())
        detail = [name for name in values if name.lower() not in known]
        named = row_label(values, keys)
        added = row_label(values, detail, limit=None)
        examples.append(f"{named}: {added}" if named and added else named or added or "a row")
    return examples


# Columns the model's view adds to the requests: not what a test found.
_VIEW_COLUMNS = frozenset({"response", "status", "processed_time", "attempts", "last_error",
                           "job_name", "batch_state"})


__all__ = ["EXAMPLE_ROWS", "RequestTestOutcome", "outcomes"]
