{#- Why the prompt itself was blocked (promptFeedback.blockReason): SAFETY, OTHER,
    BLOCKLIST, PROHIBITED_CONTENT, ... Such an answer has no candidates. NULL when the
    prompt was not blocked. -#}
{% macro block_reason(response, input_type='JSON') -%}
  {{ return(adapter.dispatch('block_reason', 'gemini_batch')(response, input_type)) }}
{%- endmacro %}

{% macro default__block_reason(response, input_type) -%}
  {{ gemini_batch._bigquery_only('block_reason') }}
{%- endmacro %}

{% macro bigquery__block_reason(response, input_type) -%}
  {%- set r = gemini_batch._response_json(response, input_type, 'gemini_batch.block_reason') -%}
  json_value({{ r }}, '$.promptFeedback.blockReason')
{%- endmacro %}
