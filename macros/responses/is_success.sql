{#- Whether a Vertex AI output row succeeded (BOOL): its `status` is ''. FALSE for an
    error and for a NULL status (a batch model's row still pending). A success may still
    carry no text: see block_reason and finish_reason. -#}
{% macro is_success(status) -%}
  {{ return(adapter.dispatch('is_success', 'gemini_batch')(status)) }}
{%- endmacro %}

{% macro default__is_success(status) -%}
  {{ gemini_batch._bigquery_only('is_success') }}
{%- endmacro %}

{% macro bigquery__is_success(status) -%}
  {{ gemini_batch._status_column(status, 'gemini_batch.is_success') }}
  {{- "coalesce(trim(" ~ status ~ ") = '', false)" -}}
{%- endmacro %}
