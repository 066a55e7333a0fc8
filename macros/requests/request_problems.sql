{#- What is wrong with a GenerateContentRequest, as a SQL STRING expression: NULL for a
    request Vertex AI batch prediction accepts, otherwise every problem found, each
    naming its field ("contents[0].parts[1]: has none of text, fileData, ..."),
    joined by "; ". `request` is a SQL expression of type JSON, or of type STRING with
    input_type='STRING' (JSON text; text that does not parse is a problem).
    `gemini_model`, a SQL STRING expression naming the Gemini model, adds that model's
    rules (thinking budget, thinkingLevel, maxOutputTokens, candidateCount). Field
    names, types and enum values come from Google's discovery document
    (macros/utils/_request_schema.sql). -#}
{% macro request_problems(request, input_type='JSON', gemini_model=none) -%}
  {{ return(adapter.dispatch('request_problems', 'gemini_batch')(request, input_type, gemini_model)) }}
{%- endmacro %}

{% macro default__request_problems(request, input_type, gemini_model=none) -%}
  {{ gemini_batch._bigquery_only('request_problems') }}
{%- endmacro %}

{% macro bigquery__request_problems(request, input_type, gemini_model=none) -%}
  {#- The request of the caller's row as a one-row table: the check is one correlated
      subquery. The materialization checks many requests in one pass with
      _request_problems_ctes: the same SQL, over a table. -#}
  {%- set fields = '(' ~ gemini_batch._request_problems_fields(
        "(select " ~ gemini_batch._sql_value(request) ~ " as raw_request, "
        ~ (gemini_model if gemini_model is not none else 'cast(null as string)')
        ~ " as rp_gemini_model)", input_type, '0') ~ ')' -%}
  {#- No WITH clause: a CTE may not reference the outer query (BigQuery and most
      engines), so each relation is written out where it is used. -#}
  (
    select {{ gemini_batch._request_problems_joined() }}
    from (
{{ gemini_batch._request_problem_rows(fields, '(' ~ gemini_batch._request_problems_contents(fields) ~ ')') }}
    )
  )
{%- endmacro %}


{#- The check of every request of `source` in one pass, as CTE definitions for the
    caller's WITH clause (`with ..., <these> select ...`). `source` names a relation
    with columns request_key (one row per key), raw_request (JSON, or STRING with
    input_type='STRING') and, when `gemini_model` (a SQL STRING expression over it) is
    given, the model's rules are checked too. The last CTE, rp_problems, has one row per request_key with
    its request_problem (NULL for a valid request), as request_problems says it. No
    correlated subquery: each list in a request (turns, parts, keys) is unnested once,
    beside its request. -#}
{% macro _request_problems_ctes(source, input_type='JSON', gemini_model=none) -%}
  rp_fields as (
{{ gemini_batch._request_problems_fields(
    "(select *, " ~ (gemini_model if gemini_model is not none else 'cast(null as string)')
      ~ " as rp_gemini_model from " ~ source ~ ")", input_type, 'request_key') }}
  ),
  rp_contents as (
{{ gemini_batch._request_problems_contents('rp_fields') }}
  ),
  rp_problems as (
    select request_key, {{ gemini_batch._request_problems_joined() }} as request_problem
    from (
{{ gemini_batch._request_problem_rows('rp_fields', 'rp_contents') }}
    )
    group by request_key
  )
{%- endmacro %}


{#- The problems of a request in the order they are listed, joined by "; " (NULL when
    there is none): an aggregate over the rows of _request_problem_rows. -#}
{% macro _request_problems_joined() -%}
  string_agg(problem, '; ' order by section, item, sub_item, problem)
{%- endmacro %}


{#- One row per request of `source` (columns raw_request, rp_gemini_model and, when `key`
    names it, request_key): request_key (`key`), is_null, r (the request as JSON), its
    members contents, content_list, generation_config, system_instruction,
    system_parts, cached_content, the model's id (model_id) and o_1, o_2 ...: the
    objects of _request_schema().objects (o_0 is r), each read from its parent. -#}
{% macro _request_problems_fields(source, input_type, key) -%}
  {%- if input_type | upper not in ['JSON', 'STRING'] -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.request_problems: input_type is 'JSON' or 'STRING' (the type of the "
        ~ "request expression); got " ~ input_type) }}
  {%- endif -%}
  {%- set objects = gemini_batch._request_schema().objects -%}
  {%- set ns = namespace(depth=0) -%}
  {%- for object in objects -%}{%- set ns.depth = [ns.depth, object.steps | length] | max -%}{%- endfor -%}
  {%- for depth in range(ns.depth, 0, -1) %}
      select *
      {%- for object in objects %}{% if object.steps | length == depth %},
        {{ gemini_batch._json_member(gemini_batch._request_object_column(objects, object.path.rsplit('.', 1)[0] if depth > 1 else ''), object.steps[-1]) }} as o_{{ loop.index0 }}
      {%- endif %}{% endfor %}
      from (
  {%- endfor %}
      select *,
        if(json_type(contents) = 'array', json_query_array(contents), null) as content_list,
        {{ gemini_batch._parts_of(gemini_batch._json_member('system_instruction', ['parts'])) }} as system_parts
      from (
        select request_key, is_null, r, model_id,
          {{ gemini_batch._json_member('r', ['contents']) }} as contents,
          {{ gemini_batch._json_member('r', ['generationConfig', 'generation_config']) }} as generation_config,
          {{ gemini_batch._json_member('r', ['systemInstruction', 'system_instruction']) }} as system_instruction,
          {{ gemini_batch._json_member('r', ['cachedContent', 'cached_content']) }} as cached_content
        from (
          select {{ key }} as request_key, raw_request is null as is_null,
            {{ 'safe.parse_json(raw_request)' if input_type | upper == 'STRING' else 'raw_request' }} as r,
            regexp_extract(rp_gemini_model, r'^(?:projects/[^/]+/locations/[^/]+/)?(?:publishers/google/models/)?([^/@]+)') as model_id
          from {{ source }}
        )
      )
  {%- for depth in range(ns.depth) %}
      )
  {%- endfor %}
{%- endmacro %}


{#- The column of `fields` that holds the object at `path` ('' is the request, r). -#}
{% macro _request_object_column(objects, path) -%}
  {%- for object in objects -%}
    {%- if object.path == path -%}{{- 'r' if path == '' else 'o_' ~ loop.index0 -}}{%- endif -%}
  {%- endfor -%}
{%- endmacro %}


{#- One row per turn of each request of `fields`: request_key, item (its index),
    content, turns (how many the request has), role, parts. The offset is renamed on
    its way out: the emulator rewrites references to a WITH OFFSET name in outer
    queries. -#}
{% macro _request_problems_contents(fields) -%}
      select request_key, content_offset as item, content,
        array_length(content_list) as turns,
        {{ gemini_batch._json_member('content', ['role']) }} as role,
        {{ gemini_batch._json_member('content', ['parts']) }} as parts
      from {{ fields }} as request_fields, unnest(request_fields.content_list) as content
        with offset as content_offset
{%- endmacro %}


{#- A UNION ALL of (request_key, section, item, sub_item, problem) rows: what is wrong
    with each request of `fields` and each turn of `contents`, problem NULL for what
    is good; every request has a row of section 0. Sections, in the order problems are
    listed: 0 the request itself, 1 the objects at fixed paths (the request,
    generationConfig, thinkingConfig ...: unknown fields, not an object), 2 turns and
    their parts, 3 systemInstruction parts, 4 cachedContent, 7 and 8 unknown fields of
    turns and parts, 9 enum values at fixed paths, 10 response schema types at any
    depth, 11 the Gemini model's rules. request_checks.py lists them the same way. -#}
{% macro _request_problem_rows(fields, contents) -%}
  {%- set schema = gemini_batch._request_schema() -%}
      select request_key, 0 as section, 0 as item, 0 as sub_item,
        case
          when is_null then 'request: is NULL'
          when r is null then 'request: is not valid JSON'
          when json_type(r) != 'object' then 'request: is not a JSON object'
          when contents is null then 'contents: is missing'
          when json_type(contents) != 'array' then 'contents: is not a list'
          when array_length(content_list) = 0 then 'contents: is empty'
        end as problem
      from {{ fields }}
      union all
{{ gemini_batch._request_object_problems(fields, schema) }}
      union all
      select request_key, 2 as section, item, -1 as sub_item,
        case
          when json_type(content) != 'object' then format('contents[%d]: is not an object', item)
          when role is not null and coalesce(json_value(role), '') not in ('user', 'model')
            then format('contents[%d].role: "%s" is not user or model', item,
                        coalesce(json_value(role), to_json_string(role)))
          when role is null and turns > 1
            then format('contents[%d].role: is missing (in a conversation of several '
                        || 'turns each names its role, user or model)', item)
          when parts is null then format('contents[%d].parts: is missing', item)
          when json_type(parts) not in ('array', 'object')
            then format('contents[%d].parts: is not a list of parts', item)
          when json_type(parts) = 'array' and array_length(json_query_array(parts)) = 0
            then format('contents[%d].parts: is empty', item)
        end as problem
      from {{ contents }}
      union all
{{ gemini_batch._part_problem(
    "(select request_key, item, part_offset as sub_item, part from " ~ contents
      ~ " as request_contents, unnest(" ~ gemini_batch._parts_of('request_contents.parts')
      ~ ") as part with offset as part_offset)",
    2, "format('contents[%d].parts[%d]', item, sub_item)") }}
      union all
{{ gemini_batch._part_problem(
    "(select request_key, 0 as item, part_offset as sub_item, part from " ~ fields
      ~ " as request_fields, unnest(request_fields.system_parts) as part with offset as part_offset)",
    3, "format('systemInstruction.parts[%d]', sub_item)") }}
      union all
      select request_key, 4 as section, 0 as item, 0 as sub_item,
        if(cached_content is not null, 'cachedContent: batch prediction does not take a '
           || 'context cache (remove it; repeated prompt prefixes are cached implicitly)', null) as problem
      from {{ fields }}
      union all
      select request_key, 7 as section, item, -1 as sub_item,
        concat(format('contents[%d].', item), {{ gemini_batch._unknown_field('key', "['parts', 'role']", "'Content'") }}) as problem
      from {{ contents }} as request_contents, unnest(json_keys(request_contents.content, 1)) as key
      where key not in ('parts', 'role')
      union all
{{ gemini_batch._part_field_problems(
    "(select request_key, item, part_offset as sub_item, part from " ~ contents
      ~ " as request_contents, unnest(" ~ gemini_batch._parts_of('request_contents.parts')
      ~ ") as part with offset as part_offset)",
    7, "format('contents[%d].parts[%d]', item, sub_item)", schema) }}
      union all
{{ gemini_batch._part_field_problems(
    "(select request_key, 0 as item, part_offset as sub_item, part from " ~ fields
      ~ " as request_fields, unnest(request_fields.system_parts) as part with offset as part_offset)",
    8, "format('systemInstruction.parts[%d]', sub_item)", schema) }}
      union all
{{ gemini_batch._request_enum_problems(fields, schema) }}
      union all
{{ gemini_batch._request_model_problems(fields, schema) }}
{%- endmacro %}


{#- A SELECT of (request_key, section, item, sub_item, problem) with what is wrong
    with each part that `part_rows` gives (a FROM clause with columns request_key,
    item, sub_item, part), `path` a SQL STRING expression over them naming the part
    ('contents[0].parts[1]'). problem is NULL for a good part. A part holds exactly one
    of text, fileData, inlineData, functionCall, functionResponse; both the camelCase
    and snake_case spellings count, as the service accepts both. Fields are read once,
    in inner selects, to keep the query small. A text part whose text is JSON null (the
    prompt expression gave NULL) says so in words: "the prompt is NULL
    (contents[0].parts[0].text)" (section 3: "the system instruction"). -#}
{% macro _part_problem(part_rows, section, path) -%}
  {%- set kinds = {
      'text': ['text'],
      'fileData': ['fileData', 'file_data'],
      'inlineData': ['inlineData', 'inline_data'],
      'functionCall': ['functionCall', 'function_call'],
      'functionResponse': ['functionResponse', 'function_response'],
  } -%}
  {%- set counted = [] -%}
  {%- for names in kinds.values() -%}
    {%- do counted.append("if(" ~ gemini_batch._json_member('part', names) ~ " is null, 0, 1)") -%}
  {%- endfor -%}
  {%- set kind_list = kinds.keys() | join(', ') -%}
      select request_key, {{ section }} as section, item, sub_item,
        case
          when json_type(part) != 'object' then concat(path, ': is not an object')
          when kind_count = 0 and null_text then concat('the {{ 'system instruction' if section == 3 else 'prompt' }} is NULL (', path, '.text)')
          when kind_count = 0 then concat(path, ': has none of {{ kind_list }}')
          when kind_count > 1 then concat(path, ': has more than one of {{ kind_list }}')
          when text is not null and (json_value(text) is null or json_type(text) = 'boolean')
            then concat(path, '.text: is not a string')
          when file_data is not null and file_uri is null then concat(path, '.fileData.fileUri: is missing')
          when file_data is not null and not (starts_with(file_uri, 'gs://') or starts_with(file_uri, 'https://'))
            then concat(path, '.fileData.fileUri: "', file_uri, '" is not a gs:// or https:// URI')
          when file_data is not null and coalesce(file_mime_type, '') = ''
            then concat(path, '.fileData.mimeType: is missing')
          when inline_data is not null and coalesce(json_value(inline_data, '$.data'), '') = ''
            then concat(path, '.inlineData.data: is missing')
          when inline_data is not null and coalesce(inline_mime_type, '') = ''
            then concat(path, '.inlineData.mimeType: is missing')
        end as problem
      from (
        select *,
          json_value({{ gemini_batch._json_member('file_data', ['fileUri', 'file_uri']) }}) as file_uri,
          json_value({{ gemini_batch._json_member('file_data', ['mimeType', 'mime_type']) }}) as file_mime_type,
          json_value({{ gemini_batch._json_member('inline_data', ['mimeType', 'mime_type']) }}) as inline_mime_type
        from (
          select request_key, item, sub_item, part, {{ path }} as path,
            {{ counted | join(' + ') }} as kind_count,
            json_type(json_query(part, '$.text')) = 'null' as null_text,
            {{ gemini_batch._json_member('part', ['text']) }} as text,
            {{ gemini_batch._json_member('part', ['fileData', 'file_data']) }} as file_data,
            {{ gemini_batch._json_member('part', ['inlineData', 'inline_data']) }} as inline_data
          from {{ part_rows }}
        )
      )
{%- endmacro %}


{#- The member of a JSON object (`json_expr`) under the first of `names` that holds a
    value, as JSON; SQL NULL when none does. A member set to JSON null counts as absent,
    as it does for the service (echoed requests carry "fileData": null next to
    "file_data"), and both spellings of a field are passed as `names`. -#}
{% macro _json_member(json_expr, names) -%}
  {%- set members = [] -%}
  {%- for name in names -%}
    {%- set member = "json_query(" ~ json_expr ~ ", '$." ~ name ~ "')" -%}
    {%- do members.append("if(json_type(" ~ member ~ ") = 'null', null, " ~ member ~ ")") -%}
  {%- endfor -%}
  {{- members[0] if members | length == 1 else 'coalesce(' ~ members | join(', ') ~ ')' -}}
{%- endmacro %}


{#- `key: unknown field` with the nearest of `names` (as request_schema.nearest picks
    it: edit distance within a third of the key's length, then name order), else the
    name of `message`; all three are SQL expressions. -#}
{% macro _unknown_field(key, names, message) -%}
  concat({{ key }}, ': unknown field', coalesce(concat('; did you mean ', (
    select name from unnest({{ names }}) as name
    where edit_distance(lower({{ key }}), lower(name)) <= greatest(1, div(length({{ key }}), 3))
    order by edit_distance(lower({{ key }}), lower(name)), name limit 1), '?'), concat(' of a ', {{ message }})))
{%- endmacro %}


{#- An ARRAY<STRING> literal of `names`. -#}
{% macro _string_array(names) -%}
  [{% for name in names %}'{{ name }}'{{ ', ' if not loop.last }}{% endfor %}]
{%- endmacro %}


{#- Section 1: the objects of _request_schema().objects, each one that is not an object
    and the keys of each that its message does not have (one row per object). -#}
{% macro _request_object_problems(fields, schema) -%}
      select request_key, 1 as section, schema_object.item, 0 as sub_item,
        if(schema_object.path != '' and json_type(schema_object.value) != 'object', concat(schema_object.path, ': is not an object'),
           (select string_agg(concat(schema_object.prefix, {{ gemini_batch._unknown_field('key', 'schema_object.names', 'schema_object.message') }}), '; ' order by key)
            from unnest(json_keys(schema_object.value, 1)) as key
            where key not in unnest(schema_object.fields))) as problem
      from {{ fields }} as request_fields, unnest([
  {%- for object in schema.objects %}
        struct({{ loop.index0 }} as item, '{{ object.path }}' as path, '{{ object.path ~ "." if object.path }}' as prefix,
               request_fields.{{ 'r' if object.path == '' else 'o_' ~ loop.index0 }} as value, '{{ object.message }}' as message,
               {{ gemini_batch._string_array(object.fields) }} as fields, {{ gemini_batch._string_array(object.names) }} as names){{ ',' if not loop.last }}
  {%- endfor %}
      ]) as schema_object
{%- endmacro %}


{#- Sections 7 and 8: unknown fields of a part and of its objects (fileData,
    inlineData, ...), from `part_rows` as _part_problem takes them. -#}
{% macro _part_field_problems(part_rows, section, path, schema) -%}
      select request_key, {{ section }} as section, item, sub_item,
        concat(path, schema_object.prefix, {{ gemini_batch._unknown_field('key', 'schema_object.names', 'schema_object.message') }}) as problem
      from (
        select request_key, item, sub_item, part, {{ path }} as path
        from {{ part_rows }}
      ) as part_rows, unnest([
  {%- for object in schema.part_objects %}
        struct('.{{ object.path ~ "." if object.path }}' as prefix,
               {{ 'part_rows.part' if not object.path else gemini_batch._json_member('part_rows.part', object.steps[0]) }} as value,
               '{{ object.message }}' as message, {{ gemini_batch._string_array(object.fields) }} as fields,
               {{ gemini_batch._string_array(object.names) }} as names){{ ',' if not loop.last }}
  {%- endfor %}
      ]) as schema_object, unnest(json_keys(schema_object.value, 1)) as key
      where key not in unnest(schema_object.fields)
{%- endmacro %}


{#- Section 9: enum fields at fixed paths whose string is not one of the enum's values
    (response schema types are section 10's); section 10: every "type" of the response
    schema, at any depth, that is not one of Schema.type's values. The local emulator's
    TO_JSON_STRING of a JSON_QUERY result is the object's text as a JSON string (BigQuery
    gives the object's text): JSON_VALUE of it parsed undoes that, and is NULL on
    BigQuery, where the text is used as it is. An enum's JSON type and string are taken
    before they go into the struct: the emulator reads JSON_VALUE of a struct's JSON field
    wrongly inside NOT IN (docs/local-stack.md). -#}
{% macro _request_enum_problems(fields, schema) -%}
  {%- set objects = schema.objects -%}
  {%- set listed = schema.schema_types | join(', ') -%}
      select request_key, 9 as section, schema_enum.item, 0 as sub_item,
        if(schema_enum.type = 'string' and schema_enum.text not in unnest(schema_enum.accepted),
           concat(schema_enum.path, ': "', schema_enum.text, '" is not one of ', array_to_string(schema_enum.names, ', '),
                  coalesce(concat('; did you mean ', (
                    select name from unnest(schema_enum.names) as name
                    where edit_distance(lower(schema_enum.text), lower(name)) <= greatest(1, div(length(schema_enum.text), 3))
                    order by edit_distance(lower(schema_enum.text), lower(name)), name limit 1), '?'), '')),
           null) as problem
      from {{ fields }} as request_fields, unnest([
  {%- for enum in schema.enums if not enum.path.startswith('generationConfig.responseSchema.') %}
      {%- set parent = enum.path.rsplit('.', 1)[0] if '.' in enum.path else '' %}
      {%- set value = gemini_batch._json_member('request_fields.' ~ gemini_batch._request_object_column(objects, parent), enum.steps[-1]) %}
        struct({{ loop.index0 }} as item, '{{ enum.path }}' as path,
               json_type({{ value }}) as type, json_value({{ value }}) as text,
               {{ gemini_batch._string_array(enum.accepted) }} as accepted, {{ gemini_batch._string_array(enum['values']) }} as names){{ ',' if not loop.last }}
  {%- endfor %}
      ]) as schema_enum
      union all
      select request_key, 10 as section, 0 as item, 0 as sub_item,
        concat('generationConfig.responseSchema: type "', type_name, '" is not one of {{ listed }}',
          case upper(type_name)
          {%- for name, target in schema.type_synonyms.items() %}
            when '{{ name }}' then '; did you mean {{ target }}?'
          {%- endfor %}
            else coalesce(concat('; did you mean ', (
              select name from unnest({{ gemini_batch._string_array(schema.schema_types) }}) as name
              where edit_distance(lower(type_name), lower(name)) <= greatest(1, div(length(type_name), 3))
              order by edit_distance(lower(type_name), lower(name)), name limit 1), '?'), '')
          end) as problem
      from (
        select distinct request_key, type_name
        from (select request_key, {{ gemini_batch._request_object_column(objects, 'generationConfig.responseSchema') }} as response_schema from {{ fields }}) as schemas,
          unnest(regexp_extract_all(coalesce(json_value(parse_json(to_json_string(schemas.response_schema))),
                                             to_json_string(schemas.response_schema)), r'(?:^|[^\\])"type"\s*:\s*"([^"\\]*)"')) as type_name
        where upper(type_name) not in ({% for name in schema.schema_types %}'{{ name }}', {% endfor %}'TYPE_UNSPECIFIED')
      )
{%- endmacro %}


{#- Section 11: the rules of the request's Gemini model (catalog.py, by way of
    _request_schema().models); nothing when the model is not named or not known. -#}
{% macro _request_model_problems(fields, schema) -%}
  {%- set thinking = gemini_batch._request_object_column(schema.objects, 'generationConfig.thinkingConfig') -%}
  {%- set config = gemini_batch._request_object_column(schema.objects, 'generationConfig') -%}
      select request_key, 11 as section, rules.rule as item, 0 as sub_item, rules.problem as problem
      from (
        select request_key, model_id, m, budget, level, max_output, candidates,
          safe_cast(json_value(budget) as float64) as budget_number,
          safe_cast(json_value(max_output) as float64) as max_output_number,
          safe_cast(json_value(candidates) as float64) as candidates_number
        from (
          select request_key, model_id,
            {{ gemini_batch._json_member(thinking, ['thinkingBudget', 'thinking_budget']) }} as budget,
            {{ gemini_batch._json_member(thinking, ['thinkingLevel', 'thinking_level']) }} as level,
            {{ gemini_batch._json_member(config, ['maxOutputTokens', 'max_output_tokens']) }} as max_output,
            {{ gemini_batch._json_member(config, ['candidateCount', 'candidate_count']) }} as candidates
          from {{ fields }}
        ) as request_rules
        join unnest([
          {%- for name, rule in schema.models.items() %}
          struct('{{ name }}' as name, '{{ rule.model }}' as model, {{ rule.min_budget }} as min_budget, {{ rule.max_budget }} as max_budget,
                 {{ 'true' if rule.can_disable else 'false' }} as can_disable, {{ gemini_batch._string_array(rule.levels) if rule.levels else 'cast([] as array<string>)' }} as levels,
                 {{ rule.max_output_tokens }} as max_output_tokens, {{ rule.max_candidates }} as max_candidates){{ ',' if not loop.last }}
          {%- endfor %}
        ]) as m on m.name = request_rules.model_id
      ) as request_rules, unnest([
        struct(0 as rule, case
          when budget_number is null or budget_number != trunc(budget_number) then null
          when m.max_budget = 0 then if(budget_number = 0, null,
            concat('generationConfig.thinkingConfig.thinkingBudget: ', m.model, ' does not think; remove thinkingBudget'))
          when budget_number = -1 then null
          when budget_number = 0 and m.can_disable then null
          when budget_number = 0 then concat('generationConfig.thinkingConfig.thinkingBudget: 0 turns thinking off, which ',
            m.model, format(' cannot do; use %d to %d, or -1 (dynamic)', m.min_budget, m.max_budget))
          when budget_number < m.min_budget or budget_number > m.max_budget then concat(
            format('generationConfig.thinkingConfig.thinkingBudget: %d is outside what ', cast(budget_number as int64)), m.model,
            format(' takes; use %d to %d, or -1 (dynamic)', m.min_budget, m.max_budget), if(m.can_disable, ', or 0 (off)', ''))
        end as problem),
        struct(1 as rule, case
          when level is null then null
          when array_length(m.levels) = 0 then concat('generationConfig.thinkingConfig.thinkingLevel: ', m.model,
            ' does not take a thinking level (Gemini 3 models do); set thinkingBudget')
          when json_type(level) = 'string' and json_value(level) not in unnest(m.levels) then concat(
            'generationConfig.thinkingConfig.thinkingLevel: "', json_value(level), '" is not a level ', m.model,
            ' takes: ', array_to_string(m.levels, ', '))
        end as problem),
        struct(2 as rule, if(level is not null and budget is not null and array_length(m.levels) > 0,
          'generationConfig.thinkingConfig: thinkingBudget and thinkingLevel cannot both be set; keep one', null) as problem),
        struct(3 as rule, if(max_output_number = trunc(max_output_number)
            and (max_output_number < 1 or max_output_number > m.max_output_tokens),
          concat(format('generationConfig.maxOutputTokens: %d is outside 1 to %d, what ',
            cast(max_output_number as int64), m.max_output_tokens), m.model, ' takes'), null) as problem),
        struct(4 as rule, if(candidates_number = trunc(candidates_number)
            and (candidates_number < 1 or candidates_number > m.max_candidates),
          concat(format('generationConfig.candidateCount: %d is outside 1 to %d, what ',
            cast(candidates_number as int64), m.max_candidates), m.model, ' takes'), null) as problem)
      ]) as rules
{%- endmacro %}
