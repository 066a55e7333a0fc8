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
