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
  {#- One row per turn, written out where it is used. The offset is renamed on its way
      out: the emulator rewrites references to a WITH OFFSET name in outer queries. -#}
  {%- set content_rows -%}
      (select content_offset as content_index, content,
        {{ gemini_batch._json_member('content', ['role']) }} as role,
        {{ gemini_batch._json_member('content', ['parts']) }} as parts
      from request, unnest(content_list) as content with offset as content_offset)
  {%- endset -%}
  (
    -- The request is read once; every check below reads the columns of `request`.
    with request as (
      select *,
        if(json_type(contents) = 'array', json_query_array(contents), null) as content_list,
        {{ gemini_batch._parts_of(gemini_batch._json_member('system_instruction', ['parts'])) }} as system_parts
      from (
        select is_null, r,
          {{ gemini_batch._json_member('r', ['contents']) }} as contents,
          {{ gemini_batch._json_member('r', ['generationConfig', 'generation_config']) }} as generation_config,
          {{ gemini_batch._json_member('r', ['systemInstruction', 'system_instruction']) }} as system_instruction
        from (
          select ({{ request }}) is null as is_null,
            {{ 'safe.parse_json(' ~ request ~ ')' if from_string else '(' ~ request ~ ')' }} as r
        )
      )
    )

    select string_agg(problem, '; ' order by section, item, sub_item)
    from (
      select 0 as section, 0 as item, 0 as sub_item,
        case
          when is_null then 'request: is NULL'
          when r is null then 'request: is not valid JSON'
          when json_type(r) != 'object' then 'request: is not a JSON object'
          when contents is null then 'contents: is missing'
          when json_type(contents) != 'array' then 'contents: is not a list'
          when array_length(content_list) = 0 then 'contents: is empty'
        end as problem
      from request
      union all
      select 1, key_index, 0, concat(key, ': unknown field of a GenerateContentRequest')
      from request, unnest(json_keys(r, 1)) as key with offset as key_index
      where key not in ({% for key in request_keys %}'{{ key }}'{{ ', ' if not loop.last }}{% endfor %})
      union all
      select 2, content_index, -1,
        case
          when json_type(content) != 'object' then format('contents[%d]: is not an object', content_index)
          when role is not null and coalesce(json_value(role), '') not in ('user', 'model')
            then format('contents[%d].role: "%s" is not user or model', content_index,
                        coalesce(json_value(role), to_json_string(role)))
          when parts is null then format('contents[%d].parts: is missing', content_index)
          when json_type(parts) not in ('array', 'object')
            then format('contents[%d].parts: is not a list of parts', content_index)
          when json_type(parts) = 'array' and array_length(json_query_array(parts)) = 0
            then format('contents[%d].parts: is empty', content_index)
        end
      from {{ content_rows }}
      union all
{{ gemini_batch._part_problem(
    "(select content_index as item, part_index as sub_item, part from " ~ content_rows ~ ", unnest("
      ~ gemini_batch._parts_of('parts') ~ ") as part with offset as part_index)",
    "format('contents[%d].parts[%d]', item, sub_item)", 2) }}
      union all
{{ gemini_batch._part_problem(
    "(select 0 as item, part_index as sub_item, part from request, unnest(system_parts) as part with offset as part_index)",
    "format('systemInstruction.parts[%d]', sub_item)", 3) }}
      union all
      select 4, 0, 0, 'generationConfig: is not an object'
      from request
      where json_type(generation_config) != 'object'
      union all
      select 4, key_index, 0, concat('generationConfig.', key, ': unknown field of a GenerationConfig')
      from request, unnest(json_keys(generation_config, 1)) as key with offset as key_index
      where key not in ({% for key in config_keys %}'{{ key }}'{{ ', ' if not loop.last }}{% endfor %})
    )
    where problem is not null
  )
{%- endmacro %}
