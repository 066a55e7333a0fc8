{#- The response as a SQL expression of type JSON: `response` itself when input_type is
    'JSON', SAFE.PARSE_JSON(response) when it is 'STRING' (JSON text; text that does not
    parse reads as a NULL response, never a failed query; a number too wide for FLOAT64
    is rounded, not a reason to lose the whole response). `fn` names the public macro
    in error messages. -#}
{% macro _response_json(response, input_type, fn) -%}
  {%- if response is not string or response | trim == '' -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": response is a SQL expression given as a string, e.g. 'response' (the "
        ~ "column of a batch model or of a Vertex AI output table); got " ~ response) }}
  {%- endif -%}
  {%- if input_type is not string or input_type | upper not in ['JSON', 'STRING'] -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": input_type is 'JSON' or 'STRING' (the type of the response expression); got "
        ~ input_type) }}
  {%- endif -%}
  {%- do gemini_batch._check_sql_expression(response, fn ~ ': response') -%}
  {{- '(' ~ response ~ ')' if input_type | upper == 'JSON' else 'safe.parse_json(' ~ response ~ ", wide_number_mode => 'round')" -}}
{%- endmacro %}
