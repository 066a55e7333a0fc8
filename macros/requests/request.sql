{#- One GenerateContentRequest as a BigQuery JSON value, in the REST field names Vertex AI
    batch prediction reads (contents, systemInstruction, generationConfig,
    safetySettings, tools). Values: a Python string is a SQL expression; a number, bool,
    list or dict is a constant. Object keys are emitted in sorted order at every level,
    so the same input always gives byte-identical TO_JSON_STRING output. -#}
{% macro request(prompt=none, contents=none, system_instruction=none, generation_config=none,
                 safety_settings=none, response_schema=none, tools=none, output_columns=none) -%}
  {{ return(adapter.dispatch('request', 'gemini_batch')(
      prompt, contents, system_instruction, generation_config, safety_settings,
      response_schema, tools, output_columns)) }}
{%- endmacro %}

{% macro default__request(prompt, contents, system_instruction, generation_config,
                          safety_settings, response_schema, tools, output_columns) -%}
  {{ gemini_batch._bigquery_only('request') }}
{%- endmacro %}

{% macro bigquery__request(prompt, contents, system_instruction, generation_config,
                           safety_settings, response_schema, tools, output_columns) -%}
  {%- set fn = 'gemini_batch.request' -%}

  {#- contents: exactly one of prompt / contents -#}
  {%- if (prompt is none) == (contents is none) -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": give exactly one of prompt (a SQL expression for one user turn, e.g. "
        ~ "prompt='question') or contents (turns built with gemini_batch.turn); got "
        ~ ('both' if prompt is not none else 'neither') ~ ".") }}
  {%- endif -%}
  {%- if prompt is not none -%}
    {%- if prompt is not string -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": prompt is a SQL expression given as a string, e.g. prompt='question' or "
          ~ "prompt=\"'Give me a recipe for ' || dish\"; got " ~ prompt) }}
    {%- endif -%}
    {%- do gemini_batch._check_sql_expression(prompt, fn ~ ': prompt') -%}
    {%- set contents_sql = 'JSON_ARRAY(' ~ gemini_batch.turn('user', [gemini_batch.text_part(prompt)]) ~ ')' -%}
  {%- elif contents is string -%}
    {%- set contents_sql = gemini_batch._sql_value(contents, fn ~ ': contents') -%}
  {%- elif contents is sequence and contents is not mapping and contents | length > 0 -%}
    {%- for item in contents if item is not string -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": contents[" ~ loop.index0 ~ "] must be a turn expression, e.g. "
          ~ "gemini_batch.turn('user', [gemini_batch.text_part('question')]); got " ~ item) }}
    {%- endfor -%}
    {%- for item in contents -%}
      {%- do gemini_batch._check_sql_expression(item, fn ~ ': contents[' ~ loop.index0 ~ ']') -%}
    {%- endfor -%}
    {%- set contents_sql = 'JSON_ARRAY(' ~ contents | join(', ') ~ ')' -%}
  {%- else -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": contents must be a non-empty list of gemini_batch.turn(...) expressions, or "
        ~ "one SQL expression giving the contents array; got " ~ contents) }}
  {%- endif -%}

  {#- systemInstruction: text (a SQL expression) or a list of parts -#}
  {%- if system_instruction is none -%}
    {%- set system_sql = none -%}
  {%- elif system_instruction is string -%}
    {%- do gemini_batch._check_sql_expression(system_instruction, fn ~ ': system_instruction') -%}
    {%- set system_sql = gemini_batch._json_object({
        'parts': 'JSON_ARRAY(' ~ gemini_batch.text_part(system_instruction) ~ ')'}) -%}
  {%- else -%}
    {%- set system_sql = gemini_batch._json_object({
        'parts': gemini_batch._parts_array(system_instruction, fn ~ ': system_instruction')}) -%}
  {%- endif -%}

  {#- generationConfig: checked keys; output_columns / response_schema fill the schema -#}
  {%- if generation_config is string -%}
    {#- One SQL expression for the whole config (e.g. a JSON column): used as it is. -#}
    {%- if output_columns is not none or response_schema is not none -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": generation_config is a SQL expression, so output_columns / response_schema "
          ~ "cannot be added to it; give generation_config as a dict instead.") }}
    {%- endif -%}
    {%- set config_sql = gemini_batch._sql_value(generation_config, fn ~ ': generation_config') -%}
  {%- endif -%}
  {%- set config = gemini_batch._generation_config_fields(
      none if generation_config is string else generation_config, fn) -%}
  {%- if output_columns is not none or response_schema is not none -%}
    {%- if output_columns is not none and response_schema is not none -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": give output_columns or response_schema, not both (output_columns builds "
          ~ "the response schema).") }}
    {%- endif -%}
    {%- if 'responseSchema' in config or 'responseJsonSchema' in config or 'responseMimeType' in config -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": generation_config sets responseSchema/responseJsonSchema/responseMimeType "
          ~ "while output_columns or response_schema is given; keep one of them (those "
          ~ "arguments set responseSchema and responseMimeType 'application/json').") }}
    {%- endif -%}
    {%- if output_columns is not none -%}
      {%- set schema = gemini_batch._output_columns_response_schema(
          gemini_batch._output_columns_spec(output_columns, fn ~ ': output_columns')) -%}
    {%- elif response_schema is string or response_schema is mapping -%}
      {%- set schema = response_schema -%}
    {%- else -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": response_schema is a dict (an OpenAPI schema) or a SQL expression giving "
          ~ "JSON; got " ~ response_schema) }}
    {%- endif -%}
    {%- do config.update({
        'responseMimeType': gemini_batch._sql_string('application/json'),
        'responseSchema': gemini_batch._sql_value(schema, fn ~ ': response_schema'),
    }) -%}
  {%- endif -%}

  {{ gemini_batch._json_object({
      'contents': contents_sql,
      'generationConfig': config_sql if generation_config is string
                          else (gemini_batch._json_object(config) if config else none),
      'safetySettings': gemini_batch._list_value(
          safety_settings, fn ~ ': safety_settings',
          allowed_keys=['category', 'method', 'threshold'], required_keys=['category', 'threshold'],
          example="{'category': 'HARM_CATEGORY_HATE_SPEECH', 'threshold': 'BLOCK_ONLY_HIGH'}"),
      'systemInstruction': system_sql,
      'tools': gemini_batch._list_value(tools, fn ~ ': tools'),
  }) }}
{%- endmacro %}


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
      {%- do fields.update({key: gemini_batch._sql_value(
          value, fn ~ ": generation_config['" ~ key ~ "']")}) -%}
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
      {%- do fields.update({key: gemini_batch._sql_value(
          value, fn ~ ": generation_config['" ~ key ~ "']")}) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(fields) }}
{%- endmacro %}


{#- A list constant (checked: each item a dict; only `allowed_keys` and all of
    `required_keys` when given) or a SQL expression, as SQL; none stays none (the field
    is left out). -#}
{% macro _list_value(value, argument, allowed_keys=none, required_keys=[], example='') -%}
  {%- if value is none -%}
    {{ return(none) }}
  {%- elif value is string -%}
    {{ return(gemini_batch._sql_value(value, argument)) }}
  {%- elif value is mapping or value is not sequence -%}
    {{ exceptions.raise_compiler_error(
        argument ~ ": expected a list of dicts or a SQL expression as a string; got " ~ value) }}
  {%- endif -%}
  {%- for item in value -%}
    {%- if item is not mapping -%}
      {{ exceptions.raise_compiler_error(
          argument ~ "[" ~ loop.index0 ~ "]: expected a dict; got " ~ item) }}
    {%- endif -%}
    {%- set unknown = item.keys() | reject('in', allowed_keys) | list if allowed_keys else [] -%}
    {%- set missing = required_keys | reject('in', item.keys() | list) | list -%}
    {%- if unknown or missing -%}
      {{ exceptions.raise_compiler_error(
          argument ~ "[" ~ loop.index0 ~ "]: "
          ~ ("unknown keys " ~ unknown | join(', ') ~ " (valid: " ~ allowed_keys | join(', ') ~ ")" if unknown
             else "missing " ~ missing | join(', '))
          ~ (", e.g. " ~ example if example else "") ~ "; got " ~ item) }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(gemini_batch._sql_value(value, argument)) }}
{%- endmacro %}


{#- The responseSchema (a dict) for a normalised spec: an OBJECT with one property per
    column, `required` for the non-nullable ones and `propertyOrdering` in spec order
    (JSON objects have no order of their own: BigQuery sorts their keys). -#}
{% macro _output_columns_response_schema(columns) -%}
  {%- set properties = {} -%}
  {%- set names = [] -%}
  {%- set required = [] -%}
  {%- for column in columns -%}
    {%- do properties.update({column['name']: column['schema']}) -%}
    {%- do names.append(column['name']) -%}
    {%- if not column['nullable'] -%}{%- do required.append(column['name']) -%}{%- endif -%}
  {%- endfor -%}
  {{ return({'type': 'OBJECT', 'properties': properties, 'required': required,
             'propertyOrdering': names}) }}
{%- endmacro %}
