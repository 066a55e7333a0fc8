{#- The HTTP status code (INT64) of the error in a Vertex AI output row's `status`:
    400, 429, 500, 503, ... NULL for a success ('') or a NULL status (a pending row), and
    for an error whose text gives no code. The formats read are listed in
    docs/macros/responses.md; a gRPC status name (RESOURCE_EXHAUSTED) or code is mapped
    to its HTTP code. -#}
{% macro error_code(status) -%}
  {{ return(adapter.dispatch('error_code', 'gemini_batch')(status)) }}
{%- endmacro %}

{% macro default__error_code(status) -%}
  {{ gemini_batch._bigquery_only('error_code') }}
{%- endmacro %}

{% macro bigquery__error_code(status) -%}
  {{ gemini_batch._status_column(status, 'gemini_batch.error_code') }}
  {{- gemini_batch._status_error(status)['code'] -}}
{%- endmacro %}
