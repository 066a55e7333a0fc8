{#- Why the model stopped generating one candidate (candidates[N].finishReason): STOP,
    MAX_TOKENS, SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII,
    MALFORMED_FUNCTION_CALL, OTHER, ... NULL when there is no such candidate. -#}
{% macro finish_reason(response, candidate=0, input_type='JSON') -%}
  {{ return(adapter.dispatch('finish_reason', 'gemini_batch')(response, candidate, input_type)) }}
{%- endmacro %}

{% macro default__finish_reason(response, candidate, input_type) -%}
  {{ gemini_batch._bigquery_only('finish_reason') }}
{%- endmacro %}

{% macro bigquery__finish_reason(response, candidate, input_type) -%}
  {%- set fn = 'gemini_batch.finish_reason' -%}
  {%- set r = gemini_batch._response_json(response, input_type, fn) -%}
  json_value({{ r }}, '{{ gemini_batch._candidate_path(candidate, fn) }}.finishReason')
{%- endmacro %}
