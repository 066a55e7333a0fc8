{#- The answer text of one candidate: its text parts joined in order, `thought` parts
    (a thinking model's reasoning) left out. NULL when the candidate is missing (a
    blocked prompt), has no content (finishReason SAFETY, RECITATION, ...) or no text
    part. `parts` is read as a list or as a single part object. -#}
{% macro response_text(response, candidate=0, input_type='JSON') -%}
  {{ return(adapter.dispatch('response_text', 'gemini_batch')(response, candidate, input_type)) }}
{%- endmacro %}

{% macro default__response_text(response, candidate, input_type) -%}
  {{ gemini_batch._bigquery_only('response_text') }}
{%- endmacro %}

{% macro bigquery__response_text(response, candidate, input_type) -%}
  {%- set fn = 'gemini_batch.response_text' -%}
  {%- set r = gemini_batch._response_json(response, input_type, fn) -%}
  {%- set path = gemini_batch._candidate_path(candidate, fn) -%}
  (
    select string_agg(json_value(part, '$.text'), '' order by part_index)
    from unnest({{ gemini_batch._parts_of("json_query(" ~ r ~ ", '" ~ path ~ ".content.parts')") }})
      as part with offset as part_index
    where json_value(part, '$.text') is not null
      and not coalesce(lax_bool(json_query(part, '$.thought')), false)
  )
{%- endmacro %}
