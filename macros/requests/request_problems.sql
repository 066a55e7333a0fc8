{#- What is wrong with a GenerateContentRequest, as a SQL STRING expression: NULL for a
    request Vertex AI batch prediction accepts, otherwise every problem found, each
    naming its field ("contents[0].parts[1]: has none of text, fileData, ..."),
    joined by "; ". `request` is a SQL expression of type JSON, or of type STRING with
    input_type='STRING' (JSON text; text that does not parse is a problem). -#}
{% macro request_problems(request, input_type='JSON') -%}
  {{ return(adapter.dispatch('request_problems', 'gemini_batch')(request, input_type)) }}
{%- endmacro %}

{% macro default__request_problems(request, input_type) -%}
  {{ gemini_batch._bigquery_only('request_problems') }}
{%- endmacro %}

{% macro bigquery__request_problems(request, input_type) -%}
  {#- The request of the caller's row as a one-row table: the check is one correlated
      subquery. The materialization checks many requests in one pass with
      _request_problems_ctes: the same SQL, over a table. -#}
  {%- set fields = '(' ~ gemini_batch._request_problems_fields(
        "(select " ~ gemini_batch._sql_value(request) ~ " as raw_request)", input_type, '0') ~ ')' -%}
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
    with columns request_key (one row per key) and raw_request (JSON, or STRING with
    input_type='STRING'). The last CTE, rp_problems, has one row per request_key with
    its request_problem (NULL for a valid request), as request_problems says it. No
    correlated subquery: each list in a request (turns, parts, keys) is unnested once,
    beside its request. -#}
{% macro _request_problems_ctes(source, input_type='JSON') -%}
  rp_fields as (
{{ gemini_batch._request_problems_fields(source, input_type, 'request_key') }}
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
  string_agg(problem, '; ' order by section, item, sub_item)
{%- endmacro %}


{#- One row per request of `source` (columns raw_request and, when `key` names it,
    request_key): request_key (`key`), is_null, r (the request as JSON) and its members
    contents, content_list, generation_config, system_instruction, system_parts,
    cached_content. -#}
{% macro _request_problems_fields(source, input_type, key) -%}
  {%- if input_type | upper not in ['JSON', 'STRING'] -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.request_problems: input_type is 'JSON' or 'STRING' (the type of the "
        ~ "request expression); got " ~ input_type) }}
  {%- endif -%}
      select *,
        if(json_type(contents) = 'array', json_query_array(contents), null) as content_list,
        {{ gemini_batch._parts_of(gemini_batch._json_member('system_instruction', ['parts'])) }} as system_parts
      from (
        select request_key, is_null, r,
          {{ gemini_batch._json_member('r', ['contents']) }} as contents,
          {{ gemini_batch._json_member('r', ['generationConfig', 'generation_config']) }} as generation_config,
          {{ gemini_batch._json_member('r', ['systemInstruction', 'system_instruction']) }} as system_instruction,
          {{ gemini_batch._json_member('r', ['cachedContent', 'cached_content']) }} as cached_content
        from (
          select {{ key }} as request_key, raw_request is null as is_null,
            {{ 'safe.parse_json(raw_request)' if input_type | upper == 'STRING' else 'raw_request' }} as r
          from {{ source }}
        )
      )
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
    listed: 0 the request itself, 1 unknown request fields, 2 turns and their parts,
    3 systemInstruction parts, 4 cachedContent, 5 and 6 generationConfig. -#}
{% macro _request_problem_rows(fields, contents) -%}
  {%- set config_keys = [] -%}
  {%- for key in gemini_batch._generation_config_keys() -%}
    {%- do config_keys.append(key) -%}
    {%- do config_keys.append(modules.re.sub('([A-Z])', '_\\1', key) | lower) -%}
  {%- endfor -%}
  {%- set request_keys = ['contents', 'systemInstruction', 'system_instruction', 'generationConfig',
      'generation_config', 'safetySettings', 'safety_settings', 'tools', 'toolConfig', 'tool_config',
      'labels', 'cachedContent', 'cached_content'] -%}
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
      select request_key, 1 as section, key_offset as item, 0 as sub_item,
        concat(key, ': unknown field of a GenerateContentRequest') as problem
      from {{ fields }} as request_fields, unnest(json_keys(request_fields.r, 1)) as key
        with offset as key_offset
      where key not in ({% for key in request_keys %}'{{ key }}'{{ ', ' if not loop.last }}{% endfor %})
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
      select request_key, 5 as section, 0 as item, 0 as sub_item,
        if(json_type(generation_config) != 'object', 'generationConfig: is not an object', null) as problem
      from {{ fields }}
      union all
      select request_key, 6 as section, key_offset as item, 0 as sub_item,
        concat('generationConfig.', key, ': unknown field of a GenerationConfig') as problem
      from {{ fields }} as request_fields, unnest(json_keys(request_fields.generation_config, 1)) as key
        with offset as key_offset
      where key not in ({% for key in config_keys %}'{{ key }}'{{ ', ' if not loop.last }}{% endfor %})
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
