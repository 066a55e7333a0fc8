{#- A BigQuery string literal holding `text` exactly: backslashes, quotes and line breaks
    escaped, so any Python string can be pasted into SQL as a value. -#}
{% macro _sql_string(text) -%}
  '{{ text | string | replace("\\", "\\\\") | replace("'", "\\'") | replace("\n", "\\n") | replace("\r", "\\r") }}'
{%- endmacro %}
