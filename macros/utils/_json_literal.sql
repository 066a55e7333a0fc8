{#- A JSON constant: `value` (number, bool, list, dict, or a string inside them) as
    BigQuery JSON, its object keys sorted, so the same value always gives the same bytes. -#}
{% macro _json_literal(value) -%}
  JSON {{ gemini_batch._sql_string(tojson(value, sort_keys=True)) }}
{%- endmacro %}
