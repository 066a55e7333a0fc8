{#- A text part: {"text": <expr>}. `expr` is a SQL expression of type STRING. -#}
{% macro text_part(expr) -%}
  {{ return(adapter.dispatch('text_part', 'gemini_batch')(expr)) }}
{%- endmacro %}

{% macro default__text_part(expr) -%}
  {{ gemini_batch._bigquery_only('text_part') }}
{%- endmacro %}

{% macro bigquery__text_part(expr) -%}
  {%- if expr is not string -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.text_part(expr): expr is a SQL expression given as a string, e.g. "
        ~ "'description' or \"'Describe this image.'\"; got " ~ expr) }}
  {%- endif -%}
  {{ gemini_batch._json_object({'text': gemini_batch._sql_value(expr, 'gemini_batch.text_part: expr')}) }}
{%- endmacro %}
