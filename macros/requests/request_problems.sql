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
  {%- if input_type | upper not in ['JSON', 'STRING'] -%}
    {{ exceptions.raise_compiler_error(
        "gemini_batch.request_problems: input_type is 'JSON' or 'STRING' (the type of the "
        ~ "request expression); got " ~ input_type) }}
  {%- endif -%}
  {%- set from_string = input_type | upper == 'STRING' -%}
  {%- set config_keys = [] -%}
  {%- for key in gemini_batch._generation_config_keys() -%}
    {%- do config_keys.append(key) -%}
    {%- do config_keys.append(modules.re.sub('([A-Z])', '_\\1', key) | lower) -%}
  {%- endfor -%}
  {%- set request_keys = ['contents', 'systemInstruction', 'system_instruction', 'generationConfig',
      'generation_config', 'safetySettings', 'safety_settings', 'tools', 'toolConfig', 'tool_config',
      'labels', 'cachedContent', 'cached_content'] -%}
  {#- One row per turn (item = its index), written out where it is used. The offset is
      renamed on its way out: the emulator rewrites references to a WITH OFFSET name in
      outer queries. -#}
  {%- set content_rows -%}
      (select content_offset as item, content,
        {{ gemini_batch._json_member('content', ['role']) }} as role,
        {{ gemini_batch._json_member('content', ['parts']) }} as parts
      from unnest(content_list) as content with offset as content_offset)
  {%- endset -%}
  {#- No WITH clause: the request expression is correlated to the caller's row, and a
      CTE may not reference the outer query (BigQuery and most engines). Each section
      is an ARRAY subquery over the one-row derived table of the request's fields. -#}
  (
    select nullif(array_to_string(array_concat(
      array(
        select problem
        from unnest([
          case
            when is_null then 'request: is NULL'
            when r is null then 'request: is not valid JSON'
            when json_type(r) != 'object' then 'request: is not a JSON object'
            when contents is null then 'contents: is missing'
            when json_type(contents) != 'array' then 'contents: is not a list'
            when array_length(content_list) = 0 then 'contents: is empty'
          end
        ]) as problem
        where problem is not null
      ),
      array(
        select concat(key, ': unknown field of a GenerateContentRequest')
        from unnest(json_keys(r, 1)) as key with offset as key_index
        where key not in ({% for key in request_keys %}'{{ key }}'{{ ', ' if not loop.last }}{% endfor %})
        order by key_index
      ),
      array(
        select problem
        from (
          select item, -1 as sub_item,
            case
              when json_type(content) != 'object' then format('contents[%d]: is not an object', item)
              when role is not null and coalesce(json_value(role), '') not in ('user', 'model')
                then format('contents[%d].role: "%s" is not user or model', item,
                            coalesce(json_value(role), to_json_string(role)))
              when role is null and array_length(content_list) > 1
                then format('contents[%d].role: is missing (in a conversation of several '
                            || 'turns each names its role, user or model)', item)
              when parts is null then format('contents[%d].parts: is missing', item)
              when json_type(parts) not in ('array', 'object')
                then format('contents[%d].parts: is not a list of parts', item)
              when json_type(parts) = 'array' and array_length(json_query_array(parts)) = 0
                then format('contents[%d].parts: is empty', item)
            end as problem
          from {{ content_rows }}
          union all
{{ gemini_batch._part_problem(
    "(select item, part_offset as sub_item, part from " ~ content_rows ~ ", unnest("
      ~ gemini_batch._parts_of('parts') ~ ") as part with offset as part_offset)",
    "format('contents[%d].parts[%d]', item, sub_item)") }}
        )
        where problem is not null
        order by item, sub_item
      ),
      array(
        select problem
        from (
{{ gemini_batch._part_problem(
    "(select 0 as item, part_offset as sub_item, part from unnest(system_parts) as part with offset as part_offset)",
    "format('systemInstruction.parts[%d]', sub_item)") }}
        )
        where problem is not null
        order by sub_item
      ),
      if(cached_content is not null, ['cachedContent: batch prediction does not take a '
         || 'context cache (remove it; repeated prompt prefixes are cached implicitly)'], []),
      if(json_type(generation_config) != 'object', ['generationConfig: is not an object'], []),
      array(
        select concat('generationConfig.', key, ': unknown field of a GenerationConfig')
        from unnest(json_keys(generation_config, 1)) as key with offset as key_index
        where key not in ({% for key in config_keys %}'{{ key }}'{{ ', ' if not loop.last }}{% endfor %})
        order by key_index
      )
    ), '; '), '')
    from (
      select *,
        if(json_type(contents) = 'array', json_query_array(contents), null) as content_list,
        {{ gemini_batch._parts_of(gemini_batch._json_member('system_instruction', ['parts'])) }} as system_parts
      from (
        select is_null, r,
          {{ gemini_batch._json_member('r', ['contents']) }} as contents,
          {{ gemini_batch._json_member('r', ['generationConfig', 'generation_config']) }} as generation_config,
          {{ gemini_batch._json_member('r', ['systemInstruction', 'system_instruction']) }} as system_instruction,
          {{ gemini_batch._json_member('r', ['cachedContent', 'cached_content']) }} as cached_content
        from (
          select raw_request is null as is_null,
            {{ 'safe.parse_json(raw_request)' if from_string else 'raw_request' }} as r
          from (select {{ gemini_batch._sql_value(request) }} as raw_request)
        )
      )
    )
  )
{%- endmacro %}


{#- A SELECT of (item, sub_item, problem) with what is wrong with each part
    that `part_rows` gives (a FROM clause with columns item, sub_item, part), `path` a
    SQL STRING expression over them naming the part ('contents[0].parts[1]'). problem is
    NULL for a good part. A part holds exactly one of text, fileData, inlineData,
    functionCall, functionResponse; both the camelCase and snake_case spellings count,
    as the service accepts both. Fields are read once, in inner selects, to keep the
    query small. -#}
{% macro _part_problem(part_rows, path) -%}
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
      select item, sub_item,
        case
          when json_type(part) != 'object' then concat(path, ': is not an object')
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
          select item, sub_item, part, {{ path }} as path,
            {{ counted | join(' + ') }} as kind_count,
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
