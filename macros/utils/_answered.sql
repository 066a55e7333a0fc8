{#- The rule "this request is answered" (BOOL, never NULL): the service wrote status ''
    and a response. The view's batch_state and is_success read it here, and
    python/gemini_batch/warehouse.py (answered_sql) writes the same predicate: the
    rules test (tests/unit/test_rules_agree.py) holds the two together. With `response`
    none (is_success given only a status) it checks the status alone. -#}
{% macro _answered(status, response=none) -%}
  {%- if response is none -%}
    coalesce({{ status }} = '', false)
  {%- else -%}
    coalesce({{ status }} = '' and {{ response }} is not null, false)
  {%- endif -%}
{%- endmacro %}
