"""BigQuery ML's data-processing charge of the AI.GENERATE route, added to a cost estimate
(no I/O). The materialization adds the same (_gemini_batch_bigquery_usd_per_tib;
tests/unit/test_rules_agree.py ties the price)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gemini_batch.rules.pricing import CostEstimate

# BigQuery ML's data-processing charge of AI.GENERATE: USD per TiB of the requests'
# JSON text (on-demand; docs/costs.md), var gemini_batch_bigquery_usd_per_tib overrides.
BIGQUERY_USD_PER_TIB_VAR = "gemini_batch_bigquery_usd_per_tib"
BIGQUERY_USD_PER_TIB = 6.25
TIB = 1024**4


def with_ai_generate_processing(cost: CostEstimate, request_bytes: int,
                                dbt_vars: Mapping[str, Any]) -> CostEstimate:
    """``cost`` sent through AI.GENERATE: plus BigQuery ML's data processing of
    ``request_bytes`` (the requests' JSON text), as the materialization adds it."""
    per_tib = float(dbt_vars.get(BIGQUERY_USD_PER_TIB_VAR, BIGQUERY_USD_PER_TIB))
    processing = request_bytes / TIB * per_tib
    return dataclasses.replace(
        cost, processing_usd=processing,
        usd=None if cost.usd is None else cost.usd + processing,
        worst_case_usd=None if cost.worst_case_usd is None else cost.worst_case_usd + processing,
    )


__all__ = ["BIGQUERY_USD_PER_TIB", "BIGQUERY_USD_PER_TIB_VAR", "TIB", "with_ai_generate_processing"]
