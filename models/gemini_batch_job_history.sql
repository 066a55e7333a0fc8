{#- One row per Vertex AI batch job of the ledger (gemini_batch_jobs), with its
    duration. Built only with var gemini_batch_ledger_models: true. -#}
{{ config(materialized='view', enabled=var('gemini_batch_ledger_models', false)) }}

with ledger as (
  {{ gemini_batch._gemini_batch_ledger_rows() }}
)

select
  job_name,
  job_id,
  dbt_model,
  regexp_extract(dbt_model, r'[^.]+$') as dbt_model_name,
  model_relation,
  invocation_id,
  gemini_model,
  location,
  state,
  request_count,
  succeeded_count,
  failed_count,
  prompt_tokens,
  candidates_tokens,
  thoughts_tokens,
  total_tokens,
  estimated_cost_usd,
  actual_cost_usd,
  submitted_at,
  ended_at,
  merged_at,
  timestamp_diff(ended_at, submitted_at, second) as duration_seconds,
  error,
  shard_table,
  output_table,
  updated_at
from ledger
