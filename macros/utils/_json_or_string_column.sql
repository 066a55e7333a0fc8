{#- 'JSON' or 'STRING': the type of the request column a test reads, looked up when the
    test runs (at parse time nothing is built yet, and 'JSON' is returned). `model` is a
    relation, or a subquery when the test has a `where` config: the type is read from a
    query over it either way. -#}
{% macro _json_or_string_column(model, column_name, test_name) -%}
  {%- if not execute -%}
    {{ return('JSON') }}
  {%- endif -%}
  {%- set wanted = column_name | replace('`', '') | lower -%}
  {%- set columns = get_column_schema_from_query('select * from ' ~ model) -%}
  {%- for column in columns if column.name | lower == wanted -%}
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
