{#- The one reading of an `output_columns` spec, shared by `gemini_batch.request`
    (which turns it into the responseSchema) and `gemini_batch.parse_output` (which
    turns the answer back into typed columns).

    Spec: a dict, column name -> BigQuery type, or -> {'type': ..., 'description': ...,
    'nullable': true|false, 'enum': [...]}; the dict's order is the column order. `enum`
    lists the values a STRING column (or the items of an ARRAY<STRING> one) may take:
    the responseSchema gets it (format 'enum', as Vertex AI's Schema marks an enum). Types: STRING, INT64,
    FLOAT64, NUMERIC, BOOL, DATE, TIMESTAMP, and ARRAY<one of those>; the usual BigQuery
    aliases (INTEGER, INT, FLOAT, DECIMAL, BOOLEAN) are accepted.

    Returns a list, in spec order, of dicts:
      name           column name (a valid BigQuery column name)
      bq_type        canonical BigQuery type, e.g. 'INT64', 'ARRAY<STRING>'
      schema_type    OpenAPI type in the responseSchema: STRING, INTEGER, NUMBER,
                     BOOLEAN or ARRAY
      element_bq_type / element_schema_type   for ARRAY columns, the element's types
                     (none otherwise)
      description    text or none
      enum           the list of allowed values, or none
      nullable       bool: false means the model must always fill it (it is `required`)
      schema         the property's responseSchema (a dict) -#}
{% macro _output_columns_spec(output_columns, argument='output_columns') -%}
  {%- set scalar_types = {
      'STRING': {'type': 'STRING'},
      'INT64': {'type': 'INTEGER'},
      'FLOAT64': {'type': 'NUMBER'},
      'NUMERIC': {'type': 'NUMBER'},
      'BOOL': {'type': 'BOOLEAN'},
      'DATE': {'type': 'STRING', 'format': 'date'},
      'TIMESTAMP': {'type': 'STRING', 'format': 'date-time'},
  } -%}
  {%- set aliases = {'INTEGER': 'INT64', 'INT': 'INT64', 'BIGINT': 'INT64', 'FLOAT': 'FLOAT64',
                     'DECIMAL': 'NUMERIC', 'BOOLEAN': 'BOOL'} -%}
  {%- set supported = 'STRING, INT64, FLOAT64, NUMERIC, BOOL, DATE, TIMESTAMP, or ARRAY<one of those>' -%}
  {%- if output_columns is not mapping or output_columns | length == 0 -%}
    {{ exceptions.raise_compiler_error(
        argument ~ " must be a non-empty dict of column name -> BigQuery type, e.g. "
        ~ "{'title': 'STRING', 'calories': 'INT64'}; got " ~ output_columns) }}
  {%- endif -%}
  {%- set columns = [] -%}
  {%- for name, declared in output_columns.items() -%}
    {%- set where = argument ~ "['" ~ name ~ "']" -%}
    {%- if name is not string or not modules.re.match('^[A-Za-z_][A-Za-z0-9_]{0,299}$', name) -%}
      {{ exceptions.raise_compiler_error(
          where ~ ": '" ~ name ~ "' is not a valid BigQuery column name (letters, digits "
          ~ "and underscores, not starting with a digit).") }}
    {%- endif -%}
    {%- if declared is mapping -%}
      {%- set keys = ['type', 'description', 'nullable', 'enum'] -%}
      {%- set unknown = declared.keys() | reject('in', keys) | list -%}
      {%- if unknown -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": unknown key" ~ ('s ' if unknown | length > 1 else ' ')
            ~ unknown | join(', ') ~ " (valid: " ~ keys | join(', ') ~ "); got " ~ declared) }}
      {%- elif 'type' not in declared -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": a dict spec needs 'type', e.g. {'type': 'STRING', 'enum': ['a', 'b']}; got "
            ~ declared) }}
      {%- endif -%}
      {%- set declared_type = declared['type'] -%}
      {%- set description = declared.get('description') -%}
      {%- set nullable = declared.get('nullable', false) -%}
      {%- set enum = declared.get('enum') -%}
    {%- else -%}
      {%- set declared_type = declared -%}
      {%- set description = none -%}
      {%- set nullable = false -%}
      {%- set enum = none -%}
    {%- endif -%}
    {%- if description is not none and description is not string -%}
      {{ exceptions.raise_compiler_error(where ~ ": description is text; got " ~ description) }}
    {%- endif -%}
    {%- if nullable is not boolean -%}
      {{ exceptions.raise_compiler_error(where ~ ": nullable is true or false; got " ~ nullable) }}
    {%- endif -%}
    {%- if declared_type is not string -%}
      {{ exceptions.raise_compiler_error(where ~ ": the type must be a string such as 'STRING'; got " ~ declared_type) }}
    {%- endif -%}
    {%- set normalised = declared_type | upper | replace(' ', '') -%}
    {%- set array_match = modules.re.match('^ARRAY<(.+)>$', normalised) -%}
    {%- set element = array_match.group(1) if array_match else none -%}
    {%- set base = aliases.get(element or normalised, element or normalised) -%}
    {%- if base not in scalar_types -%}
      {{ exceptions.raise_compiler_error(
          where ~ ": unsupported type '" ~ declared_type ~ "'. Use " ~ supported ~ ".") }}
    {%- endif -%}
    {%- if enum is not none -%}
      {%- if enum is string or enum is mapping or enum is not iterable or enum | length == 0
            or enum | reject('string') | list -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": enum is a non-empty list of strings, e.g. ['billing', 'bug', 'other']; got "
            ~ enum) }}
      {%- elif base != 'STRING' -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": enum is for STRING or ARRAY<STRING> columns; this one is "
            ~ declared_type ~ " (make it 'STRING', or leave enum out).") }}
      {%- elif enum | unique | list | length != enum | length -%}
        {{ exceptions.raise_compiler_error(where ~ ": enum lists a value twice; got " ~ enum) }}
      {%- endif -%}
    {%- endif -%}
    {%- set schema = dict(scalar_types[base]) -%}
    {%- if enum is not none -%}
      {%- do schema.update({'format': 'enum', 'enum': enum | list}) -%}
    {%- endif -%}
    {%- if element -%}
      {%- set schema = {'type': 'ARRAY', 'items': schema} -%}
    {%- endif -%}
    {%- if description is not none -%}
      {%- do schema.update({'description': description}) -%}
    {%- endif -%}
    {%- if nullable -%}
      {%- do schema.update({'nullable': true}) -%}
    {%- endif -%}
    {%- do columns.append({
        'name': name,
        'bq_type': 'ARRAY<' ~ base ~ '>' if element else base,
        'schema_type': schema['type'],
        'element_bq_type': base if element else none,
        'element_schema_type': scalar_types[base]['type'] if element else none,
        'description': description,
        'enum': enum,
        'nullable': nullable,
        'schema': schema,
    }) -%}
  {%- endfor -%}
  {{ return(columns) }}
{%- endmacro %}

