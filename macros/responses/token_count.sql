{#- A token count from usageMetadata, INT64. kind: 'prompt' (promptTokenCount),
    'candidates' (candidatesTokenCount), 'total' (totalTokenCount), 'thoughts'
    (thoughtsTokenCount), 'cached' (cachedContentTokenCount) or 'tool_use_prompt'
    (toolUsePromptTokenCount). The service leaves out counts that are zero, so a count
    missing from a usageMetadata that is there is 0; without usageMetadata (a failed
    request) it is NULL. -#}
{% macro token_count(response, kind='total', input_type='JSON') -%}
  {{ return(adapter.dispatch('token_count', 'gemini_batch')(response, kind, input_type)) }}
{%- endmacro %}

{% macro default__token_count(response, kind, input_type) -%}
  {{ gemini_batch._bigquery_only('token_count') }}
{%- endmacro %}

{% macro bigquery__token_count(response, kind, input_type) -%}
  {%- set fn = 'gemini_batch.token_count' -%}
  {%- set fields = {
      'prompt': 'promptTokenCount',
      'candidates': 'candidatesTokenCount',
      'total': 'totalTokenCount',
      'thoughts': 'thoughtsTokenCount',
      'cached': 'cachedContentTokenCount',
      'tool_use_prompt': 'toolUsePromptTokenCount',
  } -%}
  {%- if kind not in fields -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": kind is one of " ~ fields.keys() | join(', ') ~ "; got " ~ kind) }}
  {%- endif -%}
  {%- set r = gemini_batch._response_json(response, input_type, fn) -%}
  case when json_type(json_query({{ r }}, '$.usageMetadata')) = 'object'
    then coalesce(lax_int64(json_query({{ r }}, '$.usageMetadata.{{ fields[kind] }}')), 0)
  end
{%- endmacro %}
