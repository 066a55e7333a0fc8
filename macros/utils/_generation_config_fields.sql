{#- `generation_config` checked and turned into key -> SQL: unknown keys and constants
    of the wrong kind are compiler errors that list what is valid. -#}
{% macro _generation_config_fields(generation_config, fn) -%}
  {%- set known = gemini_batch._generation_config_keys() -%}
  {%- set fields = {} -%}
  {%- if generation_config is none -%}
    {{ return(fields) }}
  {%- endif -%}
  {%- if generation_config is not mapping -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": generation_config is a dict, e.g. {'temperature': 0.2, 'maxOutputTokens': 1024}, "
        ~ "or one SQL expression giving the whole config as JSON; got "
        ~ generation_config) }}
  {%- endif -%}
  {%- for key, value in generation_config.items() -%}
    {%- if key not in known -%}
      {%- set words = (key | string).split('_') -%}
      {%- set camel = words[0] ~ words[1:] | map('capitalize') | join('') -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": unknown generation_config key '" ~ key ~ "'"
          ~ (" (did you mean '" ~ camel ~ "'?)" if camel in known else "")
          ~ ". Valid keys: " ~ known.keys() | sort | join(', ') ~ ".") }}
    {%- endif -%}
    {%- set kind = known[key] -%}
    {%- if value is none -%}
      {#- None means "not set": the key is left out. -#}
    {%- elif value is string -%}
      {%- do fields.update({key: gemini_batch._sql_value(value)}) -%}
    {%- elif kind == 'sql'
          or (kind == 'bool' and value is not boolean)
          or (kind in ['number', 'integer'] and (value is boolean or value is not number))
          or (kind == 'integer' and value is number and value is not boolean and value | int != value)
          or (kind == 'list' and (value is mapping or value is not sequence))
          or (kind == 'dict' and value is not mapping) -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": generation_config['" ~ key ~ "'] takes "
          ~ {'sql': "a SQL expression as a string (write a constant as \"'text'\", with the quotes)",
             'bool': 'true or false', 'number': 'a number', 'integer': 'a whole number',
             'list': 'a list', 'dict': 'a dict'}[kind]
          ~ (" or a SQL expression as a string" if kind != 'sql' else "")
          ~ "; got " ~ value) }}
    {%- else -%}
      {%- do fields.update({key: gemini_batch._sql_value(value)}) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(fields) }}
{%- endmacro %}
