{#- A file part: {"fileData": {"fileUri": <uri_expr>, "mimeType": <mime_type_expr>}}.
    Both are SQL expressions of type STRING; on a BigQuery object table they are the
    `uri` and `content_type` columns. -#}
{% macro file_part(uri_expr, mime_type_expr) -%}
  {{ return(adapter.dispatch('file_part', 'gemini_batch')(uri_expr, mime_type_expr)) }}
{%- endmacro %}

{% macro default__file_part(uri_expr, mime_type_expr) -%}
  {{ gemini_batch._bigquery_only('file_part') }}
{%- endmacro %}

{% macro bigquery__file_part(uri_expr, mime_type_expr) -%}
  {%- if uri_expr is not string or mime_type_expr is not string -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.file_part(uri_expr, mime_type_expr): both are SQL expressions given "
        ~ "as strings, e.g. file_part('uri', 'content_type') on an object table, or "
        ~ "file_part(\"'gs://bucket/a.pdf'\", \"'application/pdf'\"); got "
        ~ uri_expr ~ ", " ~ mime_type_expr) }}
  {%- endif -%}
  {{ gemini_batch._json_object({'fileData': gemini_batch._json_object({
      'fileUri': gemini_batch._sql_value(uri_expr, 'gemini_batch.file_part: uri_expr'),
      'mimeType': gemini_batch._sql_value(mime_type_expr, 'gemini_batch.file_part: mime_type_expr'),
  })}) }}
{%- endmacro %}
