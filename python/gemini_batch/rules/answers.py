"""What counts as an answer, which failures are final, and why a row failed: SQL rules.

Vertex AI writes ``status`` '' for every row the model answered, useful or not: a
thinking model that spent all of ``maxOutputTokens`` on thoughts, a blocked prompt and a
candidate stopped for SAFETY all come back with status '' and no text. These rules turn
an output row (or a ``<model>__responses`` row) into what a user pays for:

- **answered**: status '' and a candidate with a non-thought text part or a
  functionCall (docs/decisions/0008-what-counts-as-an-answer.md);
- **final failure**: sending the same bytes again cannot succeed: a 4xx row error
  other than 409 ABORTED and 429, an invalid request, or an answer with nothing usable
  in it (which was paid for) unless the model sets ``retry_empty_answers``; everything
  else (409, 429, 500, 503, 504, no response) is retried up to ``max_retries``
  (docs/decisions/0009-retry-classes.md);
- **failed for good**: a final failure or attempts used up, unless ``gemini-batch
  retry`` asked for the request again since its last answer (``retry_at_attempt``);
- **failure reason**: the ``last_error`` a user reads, e.g. ``EMPTY_ANSWER: MAX_TOKENS
  (thinking used 512 of 512 tokens; ...)`` or ``400 INVALID_ARGUMENT: ...``.

Each function takes SQL expressions for the columns and returns a BigQuery expression.
Whether a row is answered, whether its answer is empty and the HTTP code of its error
are evaluated once per answer, when a job's output is merged, and kept in
``<model>__responses`` (columns ``answered``, ``empty_answer``, ``error_code``): counts,
the pending query and the view read those, not the response JSON or the status text.
The dbt package writes the same rules in macros/utils/_answered.sql (``_answered``,
``_empty_answer``, which with ``_status_error`` fill the columns of a table made by an
older version, and ``_final_failure``, which the view reads);
tests/unit/test_rules_agree.py holds them together.
Talks to no service.
"""

from __future__ import annotations

# Status the warehouse gives requests that fail the validity check: never submitted.
INVALID_STATUS = "INVALID_REQUEST"
# Prefixes of the reasons of answers with nothing usable (status '').
EMPTY_ANSWER = "EMPTY_ANSWER"
BLOCKED = "BLOCKED"
# 4xx row errors that pass when sent again: 409 (ABORTED, a concurrency conflict) and
# 429 (RESOURCE_EXHAUSTED). Every other 4xx, 499 CANCELLED included, is final.
RETRIED_4XX = "409, 429"
# Empty answers the same request often gets past when sent again (failure_reason_sql's
# reasons): finishReason STOP with no parts (Gemini 2.5 and 3 now and then), no
# candidates, OTHER and MALFORMED_FUNCTION_CALL. Sent again up to the model's
# ``empty_retries`` times; MAX_TOKENS, safety, recitation and blocked prompts stay final
# (docs/decisions/0009-retry-classes.md). No backslash or quote: it goes into the view as
# a plain string (the local BigQuery cannot read back a view holding a raw string or an
# empty one: docs/local-stack.md).
TRANSIENT_EMPTY_PATTERN = (
    r"^EMPTY_ANSWER: (no text in the answer|no candidates|OTHER |MALFORMED_FUNCTION_CALL )")


def usable_answer_sql(response: str) -> str:
    """TRUE when ``response`` (JSON) has a candidate with a non-empty text part that is
    not a thought, or a functionCall; ``parts`` may be a list or one object."""
    parts = "JSON_QUERY(_gb_candidate, '$.content.parts')"
    return f"""EXISTS (
    SELECT 1
    FROM UNNEST(JSON_QUERY_ARRAY({response}, '$.candidates')) AS _gb_candidate,
      UNNEST(CASE JSON_TYPE({parts})
               WHEN 'object' THEN [{parts}]
               WHEN 'array' THEN JSON_QUERY_ARRAY({parts}) END) AS _gb_part
    WHERE (COALESCE(JSON_VALUE(_gb_part, '$.text'), '') != ''
           AND NOT COALESCE(LAX_BOOL(JSON_QUERY(_gb_part, '$.thought')), FALSE))
      OR JSON_QUERY(_gb_part, '$.functionCall') IS NOT NULL)"""


def answered_sql(status: str, response: str) -> str:
    """TRUE (never NULL) when the row holds an answer: never sent again. Evaluated once
    per answer, when a job's output is merged: ``<model>__responses`` keeps it in its
    ``answered`` column (docs/decisions/0011-derived-columns-kept-with-the-answer.md)."""
    return f"COALESCE({status} = '' AND {usable_answer_sql(response)}, FALSE)"


def empty_answer_sql(status: str, response: str) -> str:
    """TRUE (never NULL) when the model answered (status '', a response) with nothing
    usable in it: paid for, and final unless the model sets ``retry_empty_answers``.
    Kept in the ``empty_answer`` column of ``<model>__responses``."""
    return (f"COALESCE({status} = '' AND {response} IS NOT NULL"
            f" AND NOT {usable_answer_sql(response)}, FALSE)")


# gRPC status codes: (name, number, the HTTP code Google APIs map it to).
GRPC_STATUS_CODES = (
    ("CANCELLED", 1, 499), ("UNKNOWN", 2, 500), ("INVALID_ARGUMENT", 3, 400),
    ("DEADLINE_EXCEEDED", 4, 504), ("NOT_FOUND", 5, 404), ("ALREADY_EXISTS", 6, 409),
    ("PERMISSION_DENIED", 7, 403), ("RESOURCE_EXHAUSTED", 8, 429),
    ("FAILED_PRECONDITION", 9, 400), ("ABORTED", 10, 409), ("OUT_OF_RANGE", 11, 400),
    ("UNIMPLEMENTED", 12, 501), ("INTERNAL", 13, 500), ("UNAVAILABLE", 14, 503),
    ("DATA_LOSS", 15, 500), ("UNAUTHENTICATED", 16, 401),
)
# HTTP reason phrases a status may start with.
HTTP_REASONS = (
    ("bad request", 400), ("unauthorized", 401), ("forbidden", 403), ("not found", 404),
    ("conflict", 409), ("too many requests", 429), ("client closed request", 499),
    ("internal server error", 500), ("not implemented", 501), ("bad gateway", 502),
    ("service unavailable", 503), ("gateway timeout", 504),
)


def _http_code_of_status_name(name: str) -> str:
    cases = "".join(f" WHEN '{n}' THEN {http}" for n, _, http in GRPC_STATUS_CODES)
    return f"CASE {name}{cases} END"


def error_code_sql(status: str) -> str:
    """The HTTP code (INT64) of the error in a row's ``status``, from every format the
    service has been seen to write (``Bad Request: {"error": {"code": 400, ...}}``, the
    body alone, ``429 RESOURCE_EXHAUSTED: ...``, ``[ORIGINAL ERROR] generic::...``, a
    gRPC code or name...); NULL for '' and for text with no code. The dbt package's
    ``error_code`` macro (macros/utils/_status_error.sql) reads the same formats."""
    names = "|".join(name for name, _, _ in GRPC_STATUS_CODES)
    phrases = "|".join(phrase for phrase, _ in HTTP_REASONS)
    text = f"NULLIF(TRIM({status}), '')"
    body = "SAFE.PARSE_JSON(REGEXP_EXTRACT(" + text + r", r'(?s)(\{.*\})'))"
    error = f"COALESCE(JSON_QUERY({body}, '$.error'), {body})"
    body_code = f"LAX_INT64(JSON_QUERY({error}, '$.code'))"
    grpc = "".join(f" WHEN {number} THEN {http}" for _, number, http in GRPC_STATUS_CODES)
    reasons = "".join(f" WHEN '{phrase}' THEN {http}" for phrase, http in HTTP_REASONS)
    by_status = _http_code_of_status_name(f"JSON_VALUE({error}, '$.status')")
    by_generic = _http_code_of_status_name(
        "UPPER(REGEXP_EXTRACT(" + text + r", r'generic::([a-z_]+)'))")
    by_name = _http_code_of_status_name(
        "REGEXP_EXTRACT(" + text + r", r'\b(" + names + r")\b')")
    leading = "SAFE_CAST(REGEXP_EXTRACT(" + text + r", r'^([45][0-9][0-9])\b') AS INT64)"
    by_phrase = ("CASE LOWER(REGEXP_EXTRACT(" + text + r", r'(?i)^(" + phrases + r")\b'))"
                 + reasons + " END")
    in_text = ("SAFE_CAST(REGEXP_EXTRACT(" + text
               + r", r'(?i)\bcode\b\W{0,3}([45][0-9][0-9])\b') AS INT64)")
    return (
        f"COALESCE(\n      IF({body_code} >= 100, {body_code}, CASE {body_code}{grpc} END),\n"
        f"      {by_status},\n      {leading},\n      {by_generic},\n      {by_name},\n"
        f"      {by_phrase},\n      {in_text}\n    )"
    )


def final_failure_sql(
    status: str, error_code: str, empty_answer: str, *, retry_empty_answers: bool
) -> str:
    """TRUE (never NULL) when sending the request again cannot succeed: it is failed
    for good whatever attempts are left. ``error_code`` and ``empty_answer`` are the
    columns of ``<model>__responses`` that keep :func:`error_code_sql` and
    :func:`empty_answer_sql` of the row: the rule parses neither status nor response."""
    empty = "" if retry_empty_answers else f"\n  OR {empty_answer}"
    return (
        f"COALESCE({status} = '{INVALID_STATUS}'\n"
        f"  OR ({error_code} BETWEEN 400 AND 499 AND {error_code} NOT IN ({RETRIED_4XX}))"
        f"{empty}, FALSE)"
    )


def failed_for_good_sql(
    status: str, error_code: str, empty_answer: str, attempts: str, retry_at_attempt: str,
    max_retries: str, *, retry_empty_answers: bool, last_error: str = "NULL",
    empty_retries: str = "0",
) -> str:
    """TRUE (never NULL) when a ``<model>__responses`` row without an answer ended
    ``failed``: its attempts since the last ``gemini-batch retry`` are used up, or
    sending it again cannot succeed (:func:`final_failure_sql`); an empty answer whose
    reason (``last_error``) is a transient one (TRANSIENT_EMPTY_PATTERN) is not final
    until ``empty_retries`` resends are spent. A retry asked since its last answer
    (``retry_at_attempt`` = ``attempts``: no job answered it since) makes it pending
    whatever the rest says; the next answer is judged as any other. All arguments are
    SQL expressions (a NULL row is a request never sent: not failed)."""
    since = f"COALESCE({attempts}, 0) - COALESCE({retry_at_attempt}, 0)"
    final_empty = (f"({empty_answer} AND NOT (COALESCE(REGEXP_CONTAINS({last_error}, "
                   f"'{TRANSIENT_EMPTY_PATTERN}'), FALSE) AND {since} <= {empty_retries}))")
    final = final_failure_sql(status, error_code, final_empty,
                              retry_empty_answers=retry_empty_answers)
    return (
        f"(COALESCE({retry_at_attempt} != {attempts}, TRUE)\n"
        f"  AND ({since} > {max_retries}\n"
        f"       OR {final}))"
    )


def failure_reason_sql(status: str, response: str, request: str) -> str:
    """The reason a user reads in ``last_error`` for an output row that is not answered.

    Row errors: ``<code> <STATUS>: <message>`` from the service's status text (the text
    itself if it has no JSON body). Status '': ``no response``, ``BLOCKED: <reason>``,
    ``EMPTY_ANSWER: MAX_TOKENS (thinking used N of M tokens; ...)`` or
    ``EMPTY_ANSWER: <finishReason>``.
    """
    body = f"SAFE.PARSE_JSON(REGEXP_EXTRACT({status}, r'^[^{{]*(\\{{.*\\}})\\s*$'))"
    block = f"JSON_VALUE({response}, '$.promptFeedback.blockReason')"
    finish = f"JSON_VALUE({response}, '$.candidates[0].finishReason')"
    thoughts = f"JSON_VALUE({response}, '$.usageMetadata.thoughtsTokenCount')"
    limit = (f"COALESCE(JSON_VALUE({request}, '$.generationConfig.maxOutputTokens'), "
             f"JSON_VALUE({request}, '$.generation_config.max_output_tokens'))")
    return f"""CASE
    WHEN COALESCE({status}, '') != '' THEN COALESCE(
      CONCAT(JSON_VALUE({body}, '$.error.code'), ' ', JSON_VALUE({body}, '$.error.status'),
             ': ', JSON_VALUE({body}, '$.error.message')),
      {status})
    WHEN {response} IS NULL THEN 'no response'
    WHEN {block} IS NOT NULL THEN CONCAT('{BLOCKED}: ', {block})
    WHEN {finish} = 'MAX_TOKENS' THEN CONCAT(
      '{EMPTY_ANSWER}: MAX_TOKENS (thinking used ', COALESCE({thoughts}, '0'), ' of ',
      COALESCE({limit}, 'the model''s maximum'),
      ' output tokens; raise maxOutputTokens or lower thinkingBudget)')
    WHEN {finish} IS NOT NULL AND {finish} != 'STOP'
      THEN CONCAT('{EMPTY_ANSWER}: ', {finish}, ' (no text in the answer)')
    WHEN JSON_QUERY({response}, '$.candidates[0]') IS NULL
      THEN '{EMPTY_ANSWER}: no candidates'
    ELSE '{EMPTY_ANSWER}: no text in the answer'
  END"""


def failure_class_sql(status: str, last_error: str) -> str:
    """A short class of a failed row for reports: ``EMPTY_ANSWER: MAX_TOKENS``,
    ``BLOCKED: SAFETY``, ``400 INVALID_ARGUMENT``, ``invalid request``, ``429
    RESOURCE_EXHAUSTED`` (retries used up), ``no response``..."""
    return f"""CASE
    WHEN {status} = '{INVALID_STATUS}' THEN 'invalid request'
    WHEN REGEXP_CONTAINS({last_error}, r'^({EMPTY_ANSWER}|{BLOCKED}): ')
      THEN REGEXP_EXTRACT({last_error}, r'^([A-Z_]+: [A-Za-z_ ]+?)(?: \\(|$)')
    WHEN REGEXP_CONTAINS({last_error}, r'^\\d{{3}} [A-Z_]+: ')
      THEN REGEXP_EXTRACT({last_error}, r'^(\\d{{3}} [A-Z_]+)')
    ELSE COALESCE(CONCAT(CAST({error_code_sql(status)} AS STRING), ' error'),
                  SUBSTR({last_error}, 1, 60), 'unknown')
  END"""


__all__ = [
    "BLOCKED",
    "EMPTY_ANSWER",
    "INVALID_STATUS",
    "answered_sql",
    "empty_answer_sql",
    "error_code_sql",
    "failed_for_good_sql",
    "failure_class_sql",
    "failure_reason_sql",
    "final_failure_sql",
    "usable_answer_sql",
]
