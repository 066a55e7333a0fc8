"""The cost estimate's one query, as SQL: the pending requests grouped by what prices
them. The operator runs it (``Warehouse.pending_price_groups``) and so does the
AI.GENERATE route from the dbt package (``_gemini_batch_estimate_groups_sql``;
tests/unit/test_rules_agree.py ties the two)."""

from __future__ import annotations

from gemini_batch.rules.pricing import (
    CHARS_PER_TOKEN,
    DECLARED_PATHS,
    OTHER_FILE_PART_TOKENS,
    TEXT_VALUE,
    file_part_tokens,
    mime_type_pattern,
)


def estimate_groups_sql(pending: str, gemini_model: str) -> str:
    """The cost estimate's query over ``pending`` (a SELECT of request_id, request): one
    row per group of requests that price alike (requested thinkingBudget,
    maxOutputTokens, candidateCount, over ``@long_context_tokens``), with their count,
    input tokens (media at ``gemini_model``'s generation's rates, tool declarations and
    response schema counted) and audio input tokens; the token rules are
    ``pricing.request_price_row``'s. The AI.GENERATE route runs the same query from the
    dbt package (_gemini_batch_estimate_groups_sql; tests/unit/test_rules_agree.py ties
    them)."""
    rates = file_part_tokens(gemini_model)
    kinds = {f"file_parts_{n}": prefix for n, prefix in enumerate(rates)}
    part_counts = ",\n        ".join(
        f"{_mime_count(prefix)} AS {column}" for column, prefix in kinds.items())
    file_tokens = " + ".join(
        f"{rates[prefix]} * {column}" for column, prefix in kinds.items())
    declared_chars = " + ".join(
        f"IF(JSON_QUERY(request, '$.{'.'.join(path)}') IS NULL, 0, "
        f"LENGTH(TO_JSON_STRING(JSON_QUERY(request, '$.{'.'.join(path)}'))))"
        for path in DECLARED_PATHS)
    other_parts = " - ".join(["file_parts_all", *kinds])
    audio_column = next(column for column, prefix in kinds.items() if prefix == "audio/")
    return f"""
SELECT
  requested_budget, max_output_tokens, candidate_count, long_context,
  COUNT(*) AS requests,
  COALESCE(SUM(prompt_tokens), 0) AS input_tokens,
  COALESCE(SUM(audio_tokens), 0) AS audio_tokens
FROM (
  SELECT *, prompt_tokens > @long_context_tokens AS long_context
  FROM (
    SELECT
      CAST(CEIL(text_chars / {CHARS_PER_TOKEN}) AS INT64)
        + CAST(CEIL(declared_chars / {CHARS_PER_TOKEN}) AS INT64) + {file_tokens}
        + {OTHER_FILE_PART_TOKENS} * ({other_parts}) AS prompt_tokens,
      {rates["audio/"]} * {audio_column} AS audio_tokens,
      requested_budget, max_output_tokens, candidate_count
    FROM (
      SELECT
        LENGTH(ARRAY_TO_STRING(REGEXP_EXTRACT_ALL(body, r'{TEXT_VALUE}'), '')) AS text_chars,
        {part_counts},
        {_mime_count("")} AS file_parts_all,
        {declared_chars} AS declared_chars,
        requested_budget, max_output_tokens, candidate_count
      FROM (
        SELECT
          TO_JSON_STRING(request) AS body,
          COALESCE(
            LAX_INT64(JSON_QUERY(request, '$.generationConfig.thinkingConfig.thinkingBudget')),
            LAX_INT64(JSON_QUERY(request, '$.generation_config.thinking_config.thinking_budget'))
          ) AS requested_budget,
          COALESCE(
            LAX_INT64(JSON_QUERY(request, '$.generationConfig.maxOutputTokens')),
            LAX_INT64(JSON_QUERY(request, '$.generation_config.max_output_tokens'))
          ) AS max_output_tokens,
          COALESCE(
            LAX_INT64(JSON_QUERY(request, '$.generationConfig.candidateCount')),
            LAX_INT64(JSON_QUERY(request, '$.generation_config.candidate_count')), 1
          ) AS candidate_count,
          request
        FROM ({pending})
      )
    )
  )
)
GROUP BY requested_budget, max_output_tokens, candidate_count, long_context"""


def _mime_count(prefix: str) -> str:
    """SQL: how many file parts of the request JSON text ``body`` have a mime type
    starting with ``prefix``."""
    return f"ARRAY_LENGTH(REGEXP_EXTRACT_ALL(body, r'{mime_type_pattern(prefix)}'))"



__all__ = ["estimate_groups_sql"]
