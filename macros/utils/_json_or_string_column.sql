{#- 'JSON' or 'STRING': the type of a model's request column, looked up when the test
    runs (at parse time nothing is built yet, and 'JSON' is returned). -#}
{% macro _json_or_string_column(model, column_name, test_name) -%}
  {%- if not execute -%}
    {{ return('JSON') }}
  {%- endif -%}
  {%- set wanted = column_name | replace('`', '') | lower -%}
  {%- for column in adapter.get_columns_in_relation(model) if column.name | lower == wanted -%}
    {%- set data_type = column.data_type | upper -%}
    {%- if data_type not in ['JSON', 'STRING'] -%}
      {{ exceptions.raise_compiler_error(
          "gemini_batch." ~ test_name ~ ": column " ~ column_name ~ " of " ~ model
          ~ " is " ~ data_type ~ "; a request column is JSON (or STRING holding JSON text).") }}
    {%- endif -%}
    {{ return(data_type) }}
  {%- endfor -%}
  {{ return('JSON') }}
{%- endmacro %}
