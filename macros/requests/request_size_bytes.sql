{#- The size of a request as Vertex AI reads it: the bytes of its JSON text (UTF-8).
    `request` is a SQL expression of type JSON, or STRING holding JSON text. -#}
{% macro request_size_bytes(request, input_type='JSON') -%}
  {{ return(adapter.dispatch('request_size_bytes', 'gemini_batch')(request, input_type)) }}
{%- endmacro %}

{% macro default__request_size_bytes(request, input_type) -%}
  {{ gemini_batch._bigquery_only('request_size_bytes') }}
{%- endmacro %}

{% macro bigquery__request_size_bytes(request, input_type) -%}
  {%- if input_type | upper == 'STRING' -%}
    byte_length({{ gemini_batch._sql_value(request, 'gemini_batch.request_size_bytes: request') }})
  {%- elif input_type | upper == 'JSON' -%}
    byte_length(to_json_string({{ gemini_batch._sql_value(request, 'gemini_batch.request_size_bytes: request') }}))
  {%- else -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.request_size_bytes: input_type is 'JSON' or 'STRING'; got " ~ input_type) }}
  {%- endif -%}
{%- endmacro %}
