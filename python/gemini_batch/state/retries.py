"""`gemini-batch retry`: requests of a batch model that ended failed, asked for again.

A retry writes ``retry_at_attempt = attempts`` on the chosen rows of
``<model>__responses`` and changes nothing else: the rule "failed for good"
(:func:`~gemini_batch.rules.answers.failed_for_good_sql`, which the view's
``batch_state`` and the operator's pending requests both read) holds such a row pending
until a job answers it again, then judges the new answer as any other, its attempts
counted from the retry. The old answer stays in its row, paid for, until the new one
replaces it. Requests that fail the validity check are never chosen: they would be
refused again.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from gemini_batch.clients.bigquery import BigQuery, quote_table
from gemini_batch.rules.answers import INVALID_STATUS
from gemini_batch.rules.config import BatchModel
from gemini_batch.state.warehouse import failed_for_good

_RUN_ID = re.compile(r"^[a-z0-9_]{1,40}$")


@dataclass(frozen=True)
class RetryChoice:
    """The failed requests a retry would ask for again, in a table of their own."""

    table: str  # request_id, request, last_error of each: what cost.estimate reads
    requests: int
    invalid: int  # failed requests left out: they fail the validity check


def _chosen_sql(model: BatchModel) -> str:
    """SELECT of the requests of ``model`` that ended failed with a ``last_error`` that
    starts with ``@prefix`` ('' for all), valid ones only (request_id, request,
    last_error), and a column ``valid``."""
    return f"""
SELECT s.request_id, r.request, s.last_error, r.valid
FROM {quote_table(model.responses_table)} AS s
JOIN (
  SELECT request_id, ANY_VALUE(request) AS request,
    LOGICAL_AND(request_problem IS NULL) AS valid
  FROM {quote_table(model.requests_table)}
  GROUP BY request_id
) AS r ON r.request_id = s.request_id
WHERE NOT COALESCE(s.answered, FALSE)
  AND {failed_for_good(model, "s")}
  AND STARTS_WITH(COALESCE(s.last_error, ''), @prefix)"""


class Retries:
    """The statements of `gemini-batch retry` on a batch model's tables."""

    def __init__(self, bq: BigQuery) -> None:
        self.bq = bq

    @contextlib.contextmanager
    def choose(self, model: BatchModel, prefix: str, run_id: str) -> Iterator[RetryChoice]:
        """The failed requests of ``model`` whose ``last_error`` starts with ``prefix``
        ('' for all), in a table dropped on exit (it expires by itself in a day if this
        process dies first)."""
        if not _RUN_ID.match(run_id):
            raise ValueError(f"run_id {run_id!r}: use lowercase letters, digits and '_'")
        table = f"{model.project}.{model.dataset}.{model.name}__retry_{run_id}"
        params = {"prefix": prefix, "max_retries": model.config.max_retries}
        self.bq.query(
            f"""
CREATE OR REPLACE TABLE {quote_table(table)}
OPTIONS (expiration_timestamp = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL 1 DAY))
AS SELECT request_id, request, last_error FROM ({_chosen_sql(model)}) WHERE valid""",
            params,
        )
        try:
            (counts,) = self.bq.query(
                f"""
SELECT COUNTIF(valid) AS requests, COUNTIF(NOT valid) AS invalid
FROM ({_chosen_sql(model)})""",
                params,
            )
            yield RetryChoice(table=table, requests=int(counts["requests"] or 0),
                              invalid=int(counts["invalid"] or 0))
        finally:
            self.bq.drop_tables([table])

    def ask_again(self, model: BatchModel, choice: RetryChoice) -> int:
        """Mark the requests of ``choice`` that are still failed for good as asked
        again; how many were marked (the model's lock keeps builds out meanwhile)."""
        self.bq.query(
            f"""
UPDATE {quote_table(model.responses_table)} AS s
SET retry_at_attempt = COALESCE(s.attempts, 0)
WHERE s.request_id IN (SELECT request_id FROM {quote_table(choice.table)})
  AND NOT COALESCE(s.answered, FALSE)
  AND COALESCE(s.status, '') != @invalid_status
  AND {failed_for_good(model, "s")}""",
            {"max_retries": model.config.max_retries, "invalid_status": INVALID_STATUS},
        )
        (counted,) = self.bq.query(
            f"""
SELECT COUNT(*) AS n FROM {quote_table(model.responses_table)}
WHERE request_id IN (SELECT request_id FROM {quote_table(choice.table)})
  AND retry_at_attempt = attempts""")
        return int(counted["n"] or 0)


__all__ = ["Retries", "RetryChoice"]
