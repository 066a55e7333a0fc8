{#- The model version that answered (modelVersion), e.g. 'gemini-1.5-flash-002@default'.
    NULL when the response does not say. -#}
{% macro model_version(response, input_type='JSON') -%}
  {{ return(adapter.dispatch('model_version', 'gemini_batch')(response, input_type)) }}
{%- endmacro %}

{% macro default__model_version(response, input_type) -%}
  {{ gemini_batch._bigquery_only('model_version') }}
{%- endmacro %}

{% macro bigquery__model_version(response, input_type) -%}
  {%- set r = gemini_batch._response_json(response, input_type, 'gemini_batch.model_version') -%}
  json_value({{ r }}, '$.modelVersion')
{%- endmacro %}
