{#- JSON_OBJECT over `fields` (key -> SQL expression), keys in sorted order and None
    values left out. BigQuery stores JSON objects with sorted keys; building them in
    that order makes TO_JSON_STRING byte-identical on BigQuery and on the emulator,
    which keeps the order it is given. -#}
{% macro _json_object(fields) -%}
  {%- set keys = [] -%}
  {%- for key in fields | sort if fields[key] is not none -%}
    {%- do keys.append(key) -%}
  {%- endfor -%}
  JSON_OBJECT(
  {%- for key in keys %}{{ gemini_batch._sql_string(key) }}, {{ fields[key] }}{% if not loop.last %}, {% endif %}{% endfor -%}
  )
{%- endmacro %}
