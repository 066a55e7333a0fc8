{#- Fails on every row whose request (`column_name`, JSON or STRING) is `max_bytes` bytes
    or larger, as JSON text; each failing row carries the model's columns (which name it)
    and `request_bytes`. -#}
{% test request_size_below(model, column_name, max_bytes) %}
  {{ return(adapter.dispatch('test_request_size_below', 'gemini_batch')(model, column_name, max_bytes)) }}
{% endtest %}

{% macro default__test_request_size_below(model, column_name, max_bytes) -%}
  {{ gemini_batch._bigquery_only('request_size_below') }}
{%- endmacro %}

{% macro bigquery__test_request_size_below(model, column_name, max_bytes) -%}
  {%- if max_bytes is not number or max_bytes is boolean or max_bytes <= 0 -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.request_size_below: max_bytes is a positive whole number of bytes, "
        ~ "e.g. max_bytes: 1000000; got " ~ max_bytes) }}
  {%- endif -%}
  {%- set input_type = gemini_batch._json_or_string_column(model, column_name, 'request_size_below') -%}
select *
from (
    select
        *,
        {{ gemini_batch.request_size_bytes(column_name, input_type=input_type) }} as request_bytes
    from {{ model }}
)
where request_bytes >= {{ max_bytes | int }}
{%- endmacro %}
