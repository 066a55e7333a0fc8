{#- Structured output as typed columns: renders a SELECT-list fragment
      <expr> as `title`, <expr> as `calories`, ..., <expr> as `_parse_error`
    with one column per field of `output_columns` (the spec gemini_batch.request turns
    into the responseSchema, read by the same _output_columns_spec), so it goes where a
    list of columns goes:  select id, {{ gemini_batch.parse_output('response', spec) }}.

    The answer text (response_text of `candidate`, or the expression itself with
    input_type='TEXT'; a ```json fence around it is dropped) is parsed with
    SAFE.PARSE_JSON (numbers too wide for FLOAT64 rounded) and each field converted with
    LAX_* / SAFE_CAST: a malformed answer, a missing field or a value of the wrong type
    gives NULL in its column and a line in the error column, never a failed query. The error column (error_column; none leaves
    it out) is NULL when every field was read, and NULL when the response itself is NULL
    (a pending row). -#}
{% macro parse_output(response, output_columns, candidate=0, input_type='JSON',
                      error_column='_parse_error') -%}
  {{ return(adapter.dispatch('parse_output', 'gemini_batch')(
      response, output_columns, candidate, input_type, error_column)) }}
{%- endmacro %}

{% macro default__parse_output(response, output_columns, candidate, input_type, error_column) -%}
  {{ gemini_batch._bigquery_only('parse_output') }}
{%- endmacro %}

{% macro bigquery__parse_output(response, output_columns, candidate, input_type, error_column) -%}
  {%- set fn = 'gemini_batch.parse_output' -%}
  {%- set columns = gemini_batch._output_columns_spec(output_columns, fn ~ ': output_columns') -%}
  {%- if error_column is not none and (error_column is not string
        or not modules.re.match('^[A-Za-z_][A-Za-z0-9_]{0,299}$', error_column)) -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": error_column is a column name (letters, digits, underscores) or none; got "
        ~ error_column) }}
  {%- endif -%}
  {%- if error_column is not none and error_column | lower in columns | map(attribute='name') | map('lower') | list -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": error_column '" ~ error_column ~ "' is also a field of output_columns; "
        ~ "pass another error_column.") }}
  {%- endif -%}

  {%- if input_type is not string or input_type | upper not in ['JSON', 'STRING', 'TEXT'] -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": input_type is 'JSON' or 'STRING' (the type of the response expression), or "
        ~ "'TEXT' (the expression is the answer text itself); got " ~ input_type) }}
  {%- endif -%}
  {%- if input_type | upper == 'TEXT' -%}
    {%- if response is not string or response | trim == '' -%}
      {{ exceptions.raise_compiler_error(
          fn ~ ": with input_type='TEXT', response is a SQL expression of type STRING "
          ~ "holding the answer text; got " ~ response) }}
    {%- endif -%}
    {%- do gemini_batch._check_sql_expression(response, fn ~ ': response') -%}
    {%- set present = '(' ~ response ~ ') is not null' -%}
    {%- set text = '(' ~ response ~ ')' -%}
  {%- else -%}
    {%- set present = gemini_batch._response_json(response, input_type, fn) ~ ' is not null' -%}
    {%- set text = gemini_batch.response_text(response, candidate, input_type) -%}
  {%- endif -%}
  {#- Each column is a scalar subquery over this one-row source, so the answer is read
      once per column, not once per use. UNNEST of a one-item array (not a derived table)
      keeps it a plain correlated subquery on BigQuery, and SAFE.PARSE_JSON then reads a
      column, which the emulator needs (it cannot wrap a subquery in SAFE.). -#}
  {%- set source -%}
    unnest([{{ text }}]) as gemini_batch_answer,
    unnest([safe.parse_json(
      regexp_replace(trim(gemini_batch_answer), r'^```(?:json|JSON)?\s*|\s*```$', ''),
      wide_number_mode => 'round')]) as gemini_batch_doc
  {%- endset -%}

  {%- set selected = [] -%}
  {%- set errors = [] -%}
  {%- for column in columns -%}
    {%- set value = "json_query(gemini_batch_doc, '$." ~ column.name ~ "')" -%}
    {%- if column.element_bq_type -%}
      {#- An ARRAY may not hold NULL: items that do not convert are left out (and reported). -#}
      {%- set item = gemini_batch._parse_output_value('item', column.element_bq_type) -%}
      {%- set items = "case when json_type(" ~ value ~ ") = 'array' then json_query_array(" ~ value ~ ") end" -%}
      {%- set converted -%}
        case when json_type({{ value }}) = 'array' then array(
          select {{ item }} from unnest({{ items }}) as item with offset as item_index
          where {{ item }} is not null order by item_index) end
      {%- endset -%}
      {%- set wrong -%}
        json_type({{ value }}) != 'array'
          or exists(select 1 from unnest({{ items }}) as item where {{ item }} is null)
      {%- endset -%}
    {%- else -%}
      {%- set converted = gemini_batch._parse_output_value(value, column.bq_type) -%}
      {%- set wrong = converted ~ ' is null' -%}
    {%- endif -%}
    {%- do selected.append('(select ' ~ converted ~ ' from ' ~ source ~ ') as ' ~ adapter.quote(column.name)) -%}
    {%- set problem -%}
      case
        when {{ value }} is null or json_type({{ value }}) = 'null'
          then {{ "cast(null as string)" if column.nullable else "'" ~ column.name ~ ": missing'" }}
        when {{ wrong }}
          then concat('{{ column.name }}: expected {{ column.bq_type }}, got ', left(to_json_string({{ value }}), 80))
      end
    {%- endset -%}
    {%- do errors.append(problem) -%}
  {%- endfor -%}
  {%- if error_column is not none -%}
    {%- set error_sql -%}
      (select case
        when not coalesce({{ present }}, false) then null
        when gemini_batch_answer is null then 'no answer text in the response'
        when gemini_batch_doc is null then concat('answer is not valid JSON: ', left(gemini_batch_answer, 80))
        when json_type(gemini_batch_doc) != 'object'
          then concat('answer is not a JSON object: ', left(gemini_batch_answer, 80))
        else nullif(regexp_replace(concat(
          {%- for problem in errors %}
          coalesce(concat({{ problem }}, '; '), ''){{ ',' if not loop.last }}
          {%- endfor %}), r'; $', ''), '')
      end
      from {{ source }})
    {%- endset -%}
    {%- do selected.append(error_sql ~ ' as ' ~ adapter.quote(error_column)) -%}
  {%- endif -%}
  {{ selected | join(',\n  ') }}
{%- endmacro %}


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
