{#- Fails on every row whose `column_name` is not a GenerateContentRequest Vertex AI
    batch prediction accepts; each failing row carries the model's columns (which name
    it) and the reason in `request_problem` (see gemini_batch.request_problems). JSON
    and STRING columns both work. -#}
{% test valid_request(model, column_name) %}
  {{ return(adapter.dispatch('test_valid_request', 'gemini_batch')(model, column_name)) }}
{% endtest %}

{% macro default__test_valid_request(model, column_name) -%}
  {{ gemini_batch._bigquery_only('valid_request') }}
{%- endmacro %}

{% macro bigquery__test_valid_request(model, column_name) -%}
  {%- set input_type = gemini_batch._json_or_string_column(model, column_name, 'valid_request') -%}
select *
from (
    select
        *,
        {{ gemini_batch.request_problems(column_name, input_type=input_type) | indent(8) }} as request_problem
    from {{ model }}
)
where request_problem is not null
{%- endmacro %}
