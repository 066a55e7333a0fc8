{#- Plain text as a SQL expression: a BigQuery string literal holding `text` exactly
    (quotes, backslashes and line breaks escaped), for any argument that takes a SQL
    expression: system_instruction=gemini_batch.literal("You're a support agent."). -#}
{% macro literal(text) -%}
  {%- if text is not string -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.literal: text is the plain text to pass, a string; got " ~ text) }}
  {%- endif -%}
  {{ return(gemini_batch._sql_string(text)) }}
{%- endmacro %}
