{#- The one rule for every value a request macro takes: a Python string is a SQL
    expression (a column, `'text/plain'` with its quotes, a CASE ...), pasted in
    parentheses; anything else (number, bool, list, dict) is a JSON constant. -#}
{% macro _sql_value(value) -%}
  {%- if value is string -%}
    {%- if value | trim == '' -%}
      {{ exceptions.raise_compiler_error(
          "gemini_batch: an empty string was given where a SQL expression is expected; for "
          ~ "an empty text constant write \"''\".") }}
    {%- endif -%}
    {#- A line comment in the expression would swallow the closing parenthesis. -#}
    ({{ value }}{{ '\n' if '--' in value or '#' in value }})
  {%- else -%}
    {{ gemini_batch._json_literal(value) }}
  {%- endif -%}
{%- endmacro %}


{#- A JSON constant: `value` (number, bool, list, dict, or a string inside them) as
    BigQuery JSON, its object keys sorted, so the same value always gives the same bytes. -#}
{% macro _json_literal(value) -%}
  JSON {{ gemini_batch._sql_string(tojson(value, sort_keys=True)) }}
{%- endmacro %}
