{#- A JSON value (`value`, SQL of type JSON) as a scalar of `bq_type` for parse_output:
    the LAX_ converters for STRING, INT64, FLOAT64 and BOOL (a number given as "12"
    reads as 12), SAFE_CAST of its text for NUMERIC, DATE and TIMESTAMP. NULL when it
    does not convert; never an error. An object or array is no STRING (BigQuery's
    LAX_STRING says so; the emulator's would return its JSON text). -#}
{% macro _parse_output_value(value, bq_type) -%}
  {%- if bq_type == 'STRING' -%} case when json_type({{ value }}) not in ('object', 'array') then lax_string({{ value }}) end
  {%- elif bq_type == 'INT64' -%} lax_int64({{ value }})
  {%- elif bq_type == 'FLOAT64' -%} lax_float64({{ value }})
  {%- elif bq_type == 'BOOL' -%} lax_bool({{ value }})
  {%- elif bq_type in ['NUMERIC', 'DATE', 'TIMESTAMP'] -%} safe_cast(lax_string({{ value }}) as {{ bq_type | lower }})
  {%- else -%}
    {{ exceptions.raise_compiler_error("gemini_batch.parse_output: no conversion for type " ~ bq_type) }}
  {%- endif -%}
{%- endmacro %}
