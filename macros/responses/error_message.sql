{#- The message (STRING) of the error in a Vertex AI output row's `status`: the
    "message" of the error body the service writes, or the text after the code and
    status name of a plain-text status. NULL for a success ('') or a NULL status. -#}
{% macro error_message(status) -%}
  {{ return(adapter.dispatch('error_message', 'gemini_batch')(status)) }}
{%- endmacro %}

{% macro default__error_message(status) -%}
  {{ gemini_batch._bigquery_only('error_message') }}
{%- endmacro %}

{% macro bigquery__error_message(status) -%}
  {{ gemini_batch._status_column(status, 'gemini_batch.error_message') }}
  {{- gemini_batch._status_error(status)['message'] -}}
{%- endmacro %}
