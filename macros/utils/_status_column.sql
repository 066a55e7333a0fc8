{#- Checks the `status` argument of is_success, error_code and error_message: a SQL
    expression given as a string. Renders nothing. -#}
{% macro _status_column(status, fn) -%}
  {%- if status is not string or status | trim == '' -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": status is a SQL expression given as a string, e.g. 'status' (the column "
        ~ "of a batch model or of a Vertex AI output table); got " ~ status) }}
  {%- endif -%}
{%- endmacro %}
