{#- The rules the package shares with its Python operator, as the Jinja side writes
    them, printed as one JSON document:
      ledger_columns     [[name, type], ...] of gemini_batch_jobs (ledger.LEDGER_SCHEMA)
      config             setting -> {type, default, required, min, max, pattern}
                         (config.BatchModelConfig)
      multi_regions      locations batch jobs refuse (config.MULTI_REGIONS)
      responses_columns  [[name, type], ...] of <model>__responses
                         (warehouse.RESPONSES_SCHEMA)
      answered_sql       the rule "answered" for a table aliased t (warehouse.answered_sql)
    `dbt --quiet run-operation gemini_batch.print_rules` prints the JSON alone; no query
    runs. tests/unit/test_rules_agree.py compares it with the Python side. -#}
{% macro print_rules() -%}
  {%- do print(tojson({
      'ledger_columns': gemini_batch._gemini_batch_ledger_columns(),
      'config': gemini_batch._gemini_batch_settings(),
      'multi_regions': gemini_batch._gemini_batch_multi_regions(),
      'responses_columns': gemini_batch._gemini_batch_responses_columns(),
      'answered_sql': gemini_batch._answered('t.status', 't.response') | trim,
  })) -%}
{%- endmacro %}
