{#- The rules the package shares with its Python operator, as the Jinja side writes
    them, printed as one JSON document:
      ledger_columns     [[name, type], ...] of gemini_batch_jobs (ledger.LEDGER_SCHEMA)
      config             setting -> {type, default, required, min, max, pattern}
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
                                        't.attempts', 't.retry_at_attempt', '@max_retries')
          | trim,
  })) -%}
{%- endmacro %}
