{#- The ledger the shipped models read: `gemini_batch_jobs` in var
    gemini_batch_ledger_dataset (default: the target dataset) of the target project.
    Columns as python/gemini_batch/ledger.py (LEDGER_SCHEMA) writes them, in table
    order: tests/unit/test_rules_agree.py holds the two together. -#}
{% macro _gemini_batch_ledger_columns() -%}
  {{ return([
    ('job_name', 'STRING'), ('job_id', 'STRING'), ('dbt_model', 'STRING'),
    ('model_relation', 'STRING'), ('invocation_id', 'STRING'), ('shard_table', 'STRING'),
    ('output_table', 'STRING'), ('gemini_model', 'STRING'), ('location', 'STRING'),
    ('state', 'STRING'), ('request_count', 'INT64'), ('succeeded_count', 'INT64'),
    ('failed_count', 'INT64'), ('prompt_tokens', 'INT64'), ('candidates_tokens', 'INT64'),
    ('thoughts_tokens', 'INT64'), ('total_tokens', 'INT64'), ('estimated_cost_usd', 'FLOAT64'),
    ('actual_cost_usd', 'FLOAT64'), ('submitted_at', 'TIMESTAMP'), ('ended_at', 'TIMESTAMP'),
    ('merged_at', 'TIMESTAMP'), ('error', 'STRING'), ('updated_at', 'TIMESTAMP')]) }}
{%- endmacro %}


{#- SELECT of the ledger rows; with no ledger yet (no job ever submitted), an empty
    result with the ledger's columns, so the models run in any project. -#}
{% macro _gemini_batch_ledger_rows() -%}
  {%- set ledger = none -%}
  {%- if execute -%}
    {%- set ledger = adapter.get_relation(
          database=target.database,
          schema=var('gemini_batch_ledger_dataset', target.schema),
          identifier='gemini_batch_jobs') -%}
  {%- endif -%}
  {%- if ledger is not none -%}
  select
    {%- for name, type in gemini_batch._gemini_batch_ledger_columns() %}
    {{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
  from {{ ledger }}
  {%- else -%}
  select
    {%- for name, type in gemini_batch._gemini_batch_ledger_columns() %}
    cast(null as {{ type }}) as {{ name }}{{ ',' if not loop.last }}
    {%- endfor %}
  limit 0
  {%- endif -%}
{%- endmacro %}
