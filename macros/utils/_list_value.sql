{#- A list constant (checked: each item a dict; only `allowed_keys` and all of
    `required_keys` when given) or a SQL expression, as SQL; none stays none (the field
    is left out). -#}
{% macro _list_value(value, argument, allowed_keys=none, required_keys=[], example='') -%}
  {%- if value is none -%}
    {{ return(none) }}
  {%- elif value is string -%}
    {{ return(gemini_batch._sql_value(value)) }}
  {%- elif value is mapping or value is not sequence -%}
    {{ exceptions.raise_compiler_error(
        argument ~ ": expected a list of dicts or a SQL expression as a string; got " ~ value) }}
  {%- endif -%}
  {%- for item in value -%}
    {%- if item is not mapping -%}
      {{ exceptions.raise_compiler_error(
          argument ~ "[" ~ loop.index0 ~ "]: expected a dict; got " ~ item) }}
    {%- endif -%}
    {%- set unknown = item.keys() | reject('in', allowed_keys) | list if allowed_keys else [] -%}
    {%- set missing = required_keys | reject('in', item.keys() | list) | list -%}
    {%- if unknown or missing -%}
      {{ exceptions.raise_compiler_error(
          argument ~ "[" ~ loop.index0 ~ "]: "
          ~ ("unknown keys " ~ unknown | join(', ') ~ " (valid: " ~ allowed_keys | join(', ') ~ ")" if unknown
             else "missing " ~ missing | join(', '))
          ~ (", e.g. " ~ example if example else "") ~ "; got " ~ item) }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(gemini_batch._sql_value(value)) }}
{%- endmacro %}
