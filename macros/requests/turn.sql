{#- One turn of a conversation: {"parts": [...], "role": "user"|"model"}.
    `role` is the literal name 'user' or 'model'. `parts` is a list of part expressions
    (gemini_batch.text_part / file_part), or one SQL expression giving the parts (a JSON
    array, an ARRAY<JSON>, or a single part object, which the service also accepts). -#}
{% macro turn(role, parts) -%}
  {{ return(adapter.dispatch('turn', 'gemini_batch')(role, parts)) }}
{%- endmacro %}

{% macro default__turn(role, parts) -%}
  {{ gemini_batch._bigquery_only('turn') }}
{%- endmacro %}

{% macro bigquery__turn(role, parts) -%}
  {%- if role not in ['user', 'model'] -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.turn(role, parts): role must be 'user' or 'model'; got " ~ role) }}
  {%- endif -%}
  {{ gemini_batch._json_object({
      'parts': gemini_batch._parts_array(parts, 'gemini_batch.turn: parts'),
      'role': gemini_batch._sql_string(role),
  }) }}
{%- endmacro %}
