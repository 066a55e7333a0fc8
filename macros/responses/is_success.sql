{#- Whether a Vertex AI output row is answered (BOOL): its `status` is '' and, when the
    response column is given, there is a response; the same rule as a batch model's
    batch_state = 'succeeded'. FALSE for an error and for a NULL status (a batch
    model's row still pending). A success may still carry no text: see block_reason and
    finish_reason. -#}
{% macro is_success(status, response=none) -%}
  {{ return(adapter.dispatch('is_success', 'gemini_batch')(status, response)) }}
{%- endmacro %}

{% macro default__is_success(status, response) -%}
  {{ gemini_batch._bigquery_only('is_success') }}
{%- endmacro %}

{% macro bigquery__is_success(status, response) -%}
  {{ gemini_batch._status_column(status, 'gemini_batch.is_success') }}
  {#- The response argument is checked as every parser's is; JSON or STRING, only its
      NULL-ness counts. -#}
  {{- gemini_batch._answered(status, none if response is none
        else gemini_batch._response_json(response, 'JSON', 'gemini_batch.is_success')) -}}
{%- endmacro %}
