{#- The rules "this request is answered", "its answer is empty" and "it failed for
    good" (BOOL, never NULL), as is_success, the view's batch_state and the filling of
    an older responses table read them. The Python operator writes the same predicates
    (python/gemini_batch/answers.py: answered_sql, empty_answer_sql, final_failure_sql);
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


{#- An answer with nothing usable in it (status '', a response, no usable part): paid
    for. <model>__responses keeps it in its empty_answer column, as it keeps _answered
    in `answered` (ADR 0011); the materialization fills both for a table made by an
    older version. -#}
{% macro _empty_answer(status, response) -%}
  coalesce({{ status }} = '' and {{ response }} is not null
    and not {{ gemini_batch._usable_answer(response) }}, false)
{%- endmacro %}


{#- Failed for good: sending the same request again cannot succeed. An invalid request,
    a row error 4xx other than 409 ABORTED and 429, or (unless retry_empty_answers) an answer with
    nothing usable in it, which was paid for. `error_code` and `empty_answer` are the
    columns of <model>__responses that keep the row's error code (as error_code reads
    it) and _empty_answer: neither status nor response is parsed here. -#}
{% macro _final_failure(status, error_code, empty_answer, retry_empty_answers=false) -%}
  {%- set code = error_code -%}
  coalesce({{ status }} = 'INVALID_REQUEST'
    or ({{ code }} between 400 and 499 and {{ code }} not in (409, 429))
    {%- if not retry_empty_answers %}
    or {{ empty_answer }}
    {%- endif %}, false)
{%- endmacro %}


{#- Failed for good, the row's `batch_state = 'failed'` (with a responses row; an invalid
    request is failed before this): its attempts since the last `gemini-batch retry`
    are used up, or _final_failure, where an empty answer of a transient kind
    (_transient_empty_pattern, by `last_error`) is not final until `empty_retries`
    resends are spent. A retry asked since its last answer
    (`retry_at_attempt` = `attempts`) makes it pending whatever the rest says.
    python/gemini_batch/rules/answers.py's failed_for_good_sql is the same rule. -#}
{% macro _failed_for_good(status, error_code, empty_answer, attempts, retry_at_attempt,
                          max_retries, retry_empty_answers=false, last_error='NULL',
                          empty_retries=0) -%}
  {%- set since = 'coalesce(' ~ attempts ~ ', 0) - coalesce(' ~ retry_at_attempt ~ ', 0)' -%}
  {%- set final_empty = '(' ~ empty_answer ~ ' and not (coalesce(regexp_contains(' ~ last_error
        ~ ", '" ~ gemini_batch._transient_empty_pattern() ~ "'), false) and " ~ since ~ ' <= '
        ~ empty_retries ~ '))' -%}
  (coalesce({{ retry_at_attempt }} != {{ attempts }}, true)
  and ({{ since }} > {{ max_retries }}
       or {{ gemini_batch._final_failure(status, error_code, final_empty,
                                         retry_empty_answers) }}))
{%- endmacro %}


{#- Empty answers the same request often gets past when sent again (finishReason STOP
    with no parts, no candidates, OTHER, MALFORMED_FUNCTION_CALL), by their last_error:
    sent again up to the model's empty_retries times. rules/answers.py's
    TRANSIENT_EMPTY_PATTERN. -#}
{% macro _transient_empty_pattern() -%}
  {{ return('^EMPTY_ANSWER: (no text in the answer|no candidates|OTHER |MALFORMED_FUNCTION_CALL )') }}
{%- endmacro %}
