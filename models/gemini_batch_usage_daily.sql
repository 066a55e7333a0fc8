{#- Tokens and cost per Gemini model per day (UTC), from the job history. A job counts
    on the day it ended (the day it was submitted while it runs). Built only with var
    gemini_batch_ledger_models: true. -#}
{{ config(materialized='view', enabled=var('gemini_batch_ledger_models', false)) }}

select
  date(coalesce(ended_at, submitted_at)) as usage_date,
  gemini_model,
  count(*) as jobs,
  sum(request_count) as requests,
  sum(succeeded_count) as succeeded,
  sum(failed_count) as failed,
  sum(prompt_tokens) as prompt_tokens,
  sum(candidates_tokens) as candidates_tokens,
  sum(thoughts_tokens) as thoughts_tokens,
  sum(coalesce(candidates_tokens, 0) + coalesce(thoughts_tokens, 0)) as output_tokens,
  sum(total_tokens) as total_tokens,
  sum(estimated_cost_usd) as estimated_cost_usd,
  sum(actual_cost_usd) as actual_cost_usd
from {{ ref('gemini_batch_job_history') }}
group by usage_date, gemini_model
