{#- The rules the package shares with its Python operator, as the Jinja side writes
    them, printed as one JSON document:
      ledger_columns     [[name, type], ...] of gemini_batch_jobs (ledger.LEDGER_SCHEMA)
      config             setting -> {type, default, required, min, max, above, pattern}
                         (config.BatchModelConfig)
      multi_regions      locations batch jobs refuse (config.MULTI_REGIONS)
      responses_columns  [[name, type], ...] of <model>__responses
                         (warehouse.RESPONSES_SCHEMA)
      answered_sql       the rule "answered" for a table aliased t (answers.answered_sql)
      empty_answer_sql   the rule "an answer with nothing usable" (answers.empty_answer_sql)
      final_failure_sql  the rule "failed for good", and with retry_empty_answers
                         (answers.final_failure_sql), over the kept t.error_code and t.empty_answer
      failed_for_good_sql  batch_state 'failed' over the kept columns, with attempts
                         and retry_at_attempt (answers.failed_for_good_sql)
      locks_columns      [[name, type], ...] of gemini_batch_locks (ledger.LOCKS_SCHEMA)
      ended_states       job states after which a job never changes (ledger.ENDED_STATES)
      ai_generate_prefix job_name prefix of AI.GENERATE statements (ledger.AI_GENERATE_PREFIX)
      lock_token_env     where a build gives dbt its lock token (ledger.LOCK_TOKEN_ENV)
      pending_sql        the pending requests (warehouse.Warehouse.pending_query) of
                         `p.d.m__requests` with max_retries 2 and one live shard `p.d.shard`
      estimate_groups_sql  the estimate's query over `select request_id, request from
                         pending` for gemini-2.5-flash (warehouse.estimate_groups_sql)
      estimate_groups_sql_gemini_3  the same for a Gemini 3 model (its media rates)
      catalog            model -> price, thinking, output limit, aliases (catalog.MODELS)
      failure_reason_sql the reason of a row that is not an answer (answers.failure_reason_sql)
      bigquery_usd_per_tib  AI.GENERATE's data processing price (cost.BIGQUERY_USD_PER_TIB)
      copy_answers_sql   the copy of answers from another dataset (reuse.copy_answers_sql)
      sample_sql         the sample of the pending requests (reuse.sample_sql)
      key_column, reused_prefix  reuse.KEY_COLUMN, ledger.REUSED_PREFIX
    `dbt --quiet run-operation gemini_batch.print_rules` prints the JSON alone; no query
    runs. tests/unit/test_rules_agree.py compares it with the Python side. -#}
{% macro print_rules() -%}
  {%- do print(tojson({
      'ledger_columns': gemini_batch._gemini_batch_ledger_columns(),
      'config': gemini_batch._gemini_batch_settings(),
      'multi_regions': gemini_batch._gemini_batch_multi_regions(),
      'responses_columns': gemini_batch._gemini_batch_responses_columns(),
      'answered_sql': gemini_batch._answered('t.status', 't.response') | trim,
      'empty_answer_sql': gemini_batch._empty_answer('t.status', 't.response') | trim,
      'error_code_sql': gemini_batch._status_error('t.status')['code'] | trim,
      'final_failure_sql':
          gemini_batch._final_failure('t.status', 't.error_code', 't.empty_answer') | trim,
      'final_failure_retry_empty_sql':
          gemini_batch._final_failure('t.status', 't.error_code', 't.empty_answer', true)
          | trim,
      'failed_for_good_sql':
          gemini_batch._failed_for_good('t.status', 't.error_code', 't.empty_answer',
                                        't.attempts', 't.retry_at_attempt', '@max_retries',
                                        last_error='t.last_error', empty_retries=1)
          | trim,
      'locks_columns': gemini_batch._gemini_batch_locks_columns(),
      'ended_states': gemini_batch._gemini_batch_ended_states(),
      'ai_generate_prefix': gemini_batch._gemini_batch_ai_generate_prefix(),
      'lock_token_env': gemini_batch._gemini_batch_lock_token_env(),
      'pending_sql': gemini_batch._gemini_batch_pending_sql(
          '`p`.`d`.`m__requests`', '`p`.`d`.`m__responses`', 2, false, ['`p`.`d`.`shard`'], 1) | trim,
      'pending_retry_empty_sql': gemini_batch._gemini_batch_pending_sql(
          '`p`.`d`.`m__requests`', '`p`.`d`.`m__responses`', 2, true) | trim,
      'estimate_groups_sql': gemini_batch._gemini_batch_estimate_groups_sql(
          'select request_id, request from pending', 'gemini-2.5-flash') | trim,
      'estimate_groups_sql_gemini_3': gemini_batch._gemini_batch_estimate_groups_sql(
          'select request_id, request from pending', 'publishers/google/models/gemini-3-pro-preview') | trim,
      'catalog': gemini_batch._gemini_batch_catalog(),
      'failure_reason_sql': gemini_batch._failure_reason('t.status', 't.response', 't.request') | trim,
      'bigquery_usd_per_tib': gemini_batch._gemini_batch_bigquery_usd_per_tib(),
      'copy_answers_sql': gemini_batch._gemini_batch_copy_answers_sql(
          '`p`.`d`.`m__responses`', '`q`.`e`.`m__responses`', 'q.e.m__responses',
          'select request_id from pending') | trim,
      'sample_sql': gemini_batch._gemini_batch_sample_sql(
          'select request_id, request from pending', '`p`.`d`.`m__requests`', 7) | trim,
      'key_column': gemini_batch._gemini_batch_key_column(),
      'reused_prefix': gemini_batch._gemini_batch_reused_prefix(),
  })) -%}
{%- endmacro %}
