{#- The one rule for every value a request macro takes: a Python string is a SQL
    expression (a column, `'text/plain'` with its quotes, a CASE ...), pasted in
    parentheses; anything else (number, bool, list, dict) is a JSON constant. -#}
{% macro _sql_value(value) -%}
  {%- if value is string -%}
    ({{ value }})
  {%- else -%}
    {{ gemini_batch._json_literal(value) }}
  {%- endif -%}
{%- endmacro %}
