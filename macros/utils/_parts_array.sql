{#- The SQL for a `parts` value: a list of part expressions becomes JSON_ARRAY(...);
    a string is one SQL expression giving the parts, used as it is. -#}
{% macro _parts_array(parts, argument) -%}
  {%- if parts is string -%}
    {{ gemini_batch._sql_value(parts, argument) }}
  {%- elif parts is sequence and parts is not mapping and parts | length > 0 -%}
    {%- for part in parts if part is not string -%}
      {{ exceptions.raise_compiler_error(
          argument ~ ": each part is a SQL expression such as gemini_batch.text_part('question'); "
          ~ "got " ~ part) }}
    {%- endfor -%}
    {%- for part in parts -%}
      {%- do gemini_batch._check_sql_expression(part, argument ~ '[' ~ loop.index0 ~ ']') -%}
    {%- endfor -%}
    JSON_ARRAY({{ parts | join(', ') }})
  {%- else -%}
    {{ exceptions.raise_compiler_error(
        argument ~ ": expected a non-empty list of parts, e.g. [gemini_batch.text_part('question'), "
        ~ "gemini_batch.file_part('uri', 'content_type')], or one SQL expression; got " ~ parts) }}
  {%- endif -%}
{%- endmacro %}
