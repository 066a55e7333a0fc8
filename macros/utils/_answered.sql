{#- The rules "this request is answered" and "it failed for good" (BOOL, never NULL),
    as the view's batch_state and is_success read them. The Python operator writes the
    same predicates (python/gemini_batch/answers.py: answered_sql, final_failure_sql);
    tests/unit/test_rules_agree.py holds the two together.

    Answered: status '' and a candidate with a non-empty text part that is not a
    thought, or a functionCall (parts given as a list or as one object). With
    `response` none (is_success given only a status) it checks the status alone. -#}
{% macro _answered(status, response=none) -%}
  {%- if response is none -%}
    coalesce({{ status }} = '', false)
  {%- else -%}
    coalesce({{ status }} = '' and {{ gemini_batch._usable_answer(response) }}, false)
  {%- endif -%}
{%- endmacro %}


{#- A response (JSON) with something usable in it: see _answered. -#}
{% macro _usable_answer(response) -%}
  {%- set parts = "json_query(_gb_candidate, '$.content.parts')" -%}
  exists (
    select 1
    from unnest(json_query_array({{ response }}, '$.candidates')) as _gb_candidate,
      unnest(case json_type({{ parts }})
               when 'object' then [{{ parts }}]
               when 'array' then json_query_array({{ parts }}) end) as _gb_part
    where (coalesce(json_value(_gb_part, '$.text'), '') != ''
           and not coalesce(lax_bool(json_query(_gb_part, '$.thought')), false))
      or json_query(_gb_part, '$.functionCall') is not null)
{%- endmacro %}


{#- Failed for good: sending the same request again cannot succeed. An invalid request,
    a row error 4xx other than 429 (its code read as error_code reads it), or (unless
    retry_empty_answers) an answer with nothing usable in it, which was paid for. -#}
{% macro _final_failure(status, response, retry_empty_answers=false) -%}
  {%- set code = gemini_batch._status_error(status)['code'] | trim -%}
  coalesce({{ status }} = 'INVALID_REQUEST'
    or ({{ code }} between 400 and 499 and {{ code }} != 429)
    {%- if not retry_empty_answers %}
    or ({{ status }} = '' and {{ response }} is not null
        and not {{ gemini_batch._usable_answer(response) }})
    {%- endif %}, false)
{%- endmacro %}
