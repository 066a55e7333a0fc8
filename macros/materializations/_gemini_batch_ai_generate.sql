{#- The AI.GENERATE route (config route='ai_generate'): a plain `dbt run` answers the
    model's pending requests with BigQuery's AI.GENERATE, inside the materialization,
    into <model>__responses with the columns and rules of a batch job's answers. The
    statements are built here; the flow (lock, estimate, rounds, ledger) is
    _gemini_batch_answer_with_ai_generate in _gemini_batch_route.sql. docs/routes.md. -#}

{#- What the ledger's job_name of an AI.GENERATE statement starts with (no Vertex AI job
    name does): `ai_generate/<invocation_id>/<round>-<group>`. ledger.AI_GENERATE_PREFIX. -#}
{% macro _gemini_batch_ai_generate_prefix() -%}
  {{ return('ai_generate/') }}
{%- endmacro %}


{#- The columns of gemini_batch_locks (ledger.LOCKS_SCHEMA), and the states after which a
    job never changes (ledger.ENDED_STATES): the route takes the same lock a
    `gemini-batch build` takes and leaves out the requests of live batch jobs. -#}
{% macro _gemini_batch_locks_columns() -%}
  {{ return([('dbt_model', 'STRING'), ('token', 'STRING'), ('host', 'STRING'),
             ('pid', 'INT64'), ('since', 'TIMESTAMP'), ('expires_at', 'TIMESTAMP')]) }}
{%- endmacro %}

{% macro _gemini_batch_ended_states() -%}
  {{ return(['CANCELLED', 'EXPIRED', 'FAILED', 'NOT_FOUND', 'PARTIALLY_SUCCEEDED', 'SUCCEEDED']) }}
{%- endmacro %}


{#- SELECT of the pending requests (request_id, request; one row per request_id): valid,
    no answer, attempts left, not failed for good, not in `live_shards` (relations of the
    shard tables of live batch jobs). The Jinja side of warehouse.Warehouse.pending_query
    (tests/unit/test_rules_agree.py ties them). -#}
{% macro _gemini_batch_pending_sql(requests, responses, max_retries, retry_empty_answers,
                                  live_shards=[], empty_retries=0) -%}
  select request_id, request
  from (
    select r.request_id, r.request,
      row_number() over (partition by r.request_id) as copy
    from {{ requests }} as r
    left join {{ responses }} as s on s.request_id = r.request_id
    where r.request_problem is null
      and not coalesce(s.answered, false)
      and not {{ gemini_batch._failed_for_good('s.status', 's.error_code', 's.empty_answer',
                                               's.attempts', 's.retry_at_attempt', max_retries,
                                               retry_empty_answers, 's.last_error',
                                               empty_retries) }}
      {%- if live_shards %}
      and r.request_id not in ({% for shard in live_shards %}select request_id from {{ shard }}{{ ' union all ' if not loop.last }}{% endfor %})
      {%- endif %}
  )
  where copy = 1
{%- endmacro %}


{#- The kind of one part (JSON `p`) for AI.GENERATE: 'T' text, 'F' a Cloud Storage file,
    'X' what it cannot send (inline data, function calls and responses, code, thoughts,
    video offsets, files outside Cloud Storage). -#}
{% macro _gemini_batch_part_kind(p) -%}
  case
    when json_query({{ p }}, '$.inlineData') is not null or json_query({{ p }}, '$.inline_data') is not null
      or json_query({{ p }}, '$.functionCall') is not null or json_query({{ p }}, '$.function_call') is not null
      or json_query({{ p }}, '$.functionResponse') is not null or json_query({{ p }}, '$.function_response') is not null
      or json_query({{ p }}, '$.executableCode') is not null or json_query({{ p }}, '$.executable_code') is not null
      or json_query({{ p }}, '$.codeExecutionResult') is not null or json_query({{ p }}, '$.code_execution_result') is not null
      or json_query({{ p }}, '$.videoMetadata') is not null or json_query({{ p }}, '$.video_metadata') is not null
      or coalesce(lax_bool(json_query({{ p }}, '$.thought')), false) then 'X'
    when json_value({{ p }}, '$.text') is not null then 'T'
    when starts_with(coalesce(json_value({{ p }}, '$.fileData.fileUri'), json_value({{ p }}, '$.file_data.file_uri'), ''), 'gs://') then 'F'
    else 'X'
  end
{%- endmacro %}


{#- The request fields AI.GENERATE takes in model_params (the generateContent body but
    `contents`): (key in model_params, the request's camelCase and snake_case paths). -#}
{% macro _gemini_batch_model_params_fields() -%}
  {{ return([
      ('systemInstruction', '$.systemInstruction', '$.system_instruction'),
      ('generationConfig', '$.generationConfig', '$.generation_config'),
      ('safetySettings', '$.safetySettings', '$.safety_settings'),
      ('tools', '$.tools', '$.tools'),
      ('toolConfig', '$.toolConfig', '$.tool_config'),
      ('labels', '$.labels', '$.labels')]) }}
{%- endmacro %}


{#- SELECT of the pending requests as AI.GENERATE statements take them, from `pending`
    (a SELECT of request_id, request): `part_values` (the text or Cloud Storage URI of
    each part of the one user turn), `shape` (a letter per part: see _gemini_batch_part_kind), the model_params
    fields as JSON text, `params_group` (hex MD5 of those and the shape: one statement per
    group), `unsupported` (why AI.GENERATE cannot send it; NULL if it can) and `selected`
    (the first `max_rows` it can send, by request_id: what this run sends). -#}
{% macro _gemini_batch_ai_generate_snapshot_sql(pending, max_rows, has_connection) -%}
  {%- set fields = gemini_batch._gemini_batch_model_params_fields() -%}
with turns as (
  select request_id, request,
    json_query_array(request, '$.contents') as contents,
    json_query(request, '$.contents[0].parts') as first_parts
  from ({{ pending }})
), shaped as (
  select request_id, request, contents,
    case json_type(first_parts)
      when 'object' then [first_parts]
      when 'array' then json_query_array(first_parts) end as parts,
    {%- for key, camel, snake in fields %}
    to_json_string(coalesce(json_query(request, '{{ camel }}'), json_query(request, '{{ snake }}'))) as param_{{ key | lower }},
    {%- endfor %}
    coalesce(json_query(request, '$.cachedContent'), json_query(request, '$.cached_content')) is not null as cached_content
  from turns
), kinds as (
  select request_id, request, contents, cached_content,
    {%- for key, camel, snake in fields %}
    param_{{ key | lower }},
    {%- endfor %}
    (select string_agg({{ gemini_batch._gemini_batch_part_kind('_gb_part') }}, '' order by _gb_offset)
     from unnest(parts) as _gb_part with offset as _gb_offset) as shape,
    array(select coalesce(json_value(_gb_part, '$.text'), json_value(_gb_part, '$.fileData.fileUri'),
                          json_value(_gb_part, '$.file_data.file_uri'))
          from unnest(parts) as _gb_part with offset as _gb_offset order by _gb_offset) as part_values
  from shaped
), reasons as (
  select kinds.*,
    case
      when coalesce(array_length(contents), 0) != 1
        or coalesce(lower(json_value(contents[safe_offset(0)], '$.role')), 'user') != 'user'
        then 'a conversation (several turns, or a model turn): AI.GENERATE sends one user turn'
      when cached_content
        then 'cachedContent: AI.GENERATE takes no cached content'
      when coalesce(shape, '') = ''
        then 'no parts to send'
      when strpos(shape, 'X') > 0
        then 'a part AI.GENERATE cannot send (inline data, a function call or response, code, a thought, a video offset, or a file outside Cloud Storage)'
      {%- if not has_connection %}
      when strpos(shape, 'F') > 0
        then 'a Cloud Storage file part: AI.GENERATE reads files as ObjectRef through a connection; set config connection_id'
      {%- endif %}
    end as unsupported
  from kinds
)
select request_id, request, part_values, shape,
  {%- for key, camel, snake in fields %}
  param_{{ key | lower }},
  {%- endfor %}
  to_hex(md5(concat(shape
    {%- for key, camel, snake in fields %}, '|', coalesce(param_{{ key | lower }}, ''){% endfor %}))) as params_group,
  unsupported,
  unsupported is null
    and row_number() over (partition by unsupported is null order by request_id) <= {{ max_rows }} as selected
from reasons
{%- endmacro %}


{#- model_params of one group (a row of the groups query: the fields as JSON text) as a
    JSON literal: the values are data read from the table, escaped by _sql_string. -#}
{% macro _gemini_batch_model_params_literal(group) -%}
  {%- set params = {} -%}
  {%- for key, camel, snake in gemini_batch._gemini_batch_model_params_fields() -%}
    {%- set text = group['param_' ~ key | lower] -%}
    {%- if text is not none -%}{%- do params.update({key: fromjson(text)}) -%}{%- endif -%}
  {%- endfor -%}
  {{ return('JSON ' ~ gemini_batch._sql_string(tojson(params, sort_keys=True))) }}
{%- endmacro %}


{#- The prompt argument for requests of `shape` (from `part_values`): the
    text of a single text part as a STRING, else a STRUCT with one field per part (text,
    or an ObjectRefRuntime of the Cloud Storage file). -#}
{% macro _gemini_batch_prompt_sql(shape, connection_id) -%}
  {%- set fields = [] -%}
  {%- for kind in shape -%}
    {%- set value = "part_values[safe_offset(" ~ loop.index0 ~ ")]" -%}
    {%- if kind == 'T' -%}
      {%- do fields.append(value) -%}
    {%- else -%}
      {%- do fields.append("obj.get_access_url(obj.make_ref(" ~ value ~ ", "
            ~ gemini_batch._sql_string(connection_id) ~ "), 'r')") -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if shape == 'T' -%}
    {{ fields[0] }}
  {%- else -%}
    struct({% for field in fields %}{{ field }} as part_{{ loop.index0 }}{{ ', ' if not loop.last }}{% endfor %})
  {%- endif -%}
{%- endmacro %}


{#- SELECT of the groups of the run's requests still to send now (selected, and pending
    by `pending`): one statement each. -#}
{% macro _gemini_batch_ai_generate_groups_sql(snapshot, pending) -%}
select params_group, any_value(shape) as shape,
  {%- for key, camel, snake in gemini_batch._gemini_batch_model_params_fields() %}
  any_value(param_{{ key | lower }}) as param_{{ key | lower }},
  {%- endfor %}
  count(*) as requests
from {{ snapshot }}
where selected and request_id in (select request_id from ({{ pending }}))
group by params_group
order by params_group
{%- endmacro %}


{#- The reason a user reads in last_error for an answer that is not one: the Jinja side
    of answers.failure_reason_sql (tests/unit/test_rules_agree.py ties them). -#}
{% macro _failure_reason(status, response, request) -%}
  {%- set body = "safe.parse_json(regexp_extract(" ~ status ~ ", r'^[^{]*(\\{.*\\})\\s*$'))" -%}
  {%- set block = "json_value(" ~ response ~ ", '$.promptFeedback.blockReason')" -%}
  {%- set finish = "json_value(" ~ response ~ ", '$.candidates[0].finishReason')" -%}
  {%- set thoughts = "json_value(" ~ response ~ ", '$.usageMetadata.thoughtsTokenCount')" -%}
  {%- set limit = "coalesce(json_value(" ~ request ~ ", '$.generationConfig.maxOutputTokens'), json_value("
        ~ request ~ ", '$.generation_config.max_output_tokens'))" -%}
  case
    when coalesce({{ status }}, '') != '' then coalesce(
      concat(json_value({{ body }}, '$.error.code'), ' ', json_value({{ body }}, '$.error.status'),
             ': ', json_value({{ body }}, '$.error.message')),
      {{ status }})
    when {{ response }} is null then 'no response'
    when {{ block }} is not null then concat('BLOCKED: ', {{ block }})
    when {{ finish }} = 'MAX_TOKENS' then concat(
      'EMPTY_ANSWER: MAX_TOKENS (thinking used ', coalesce({{ thoughts }}, '0'), ' of ',
      coalesce({{ limit }}, 'the model''s maximum'),
      ' output tokens; raise maxOutputTokens or lower thinkingBudget)')
    when {{ finish }} is not null and {{ finish }} != 'STOP'
      then concat('EMPTY_ANSWER: ', {{ finish }}, ' (no text in the answer)')
    when json_query({{ response }}, '$.candidates[0]') is null
      then 'EMPTY_ANSWER: no candidates'
    else 'EMPTY_ANSWER: no text in the answer'
  end
{%- endmacro %}


{#- One AI.GENERATE statement: the group's requests still to send, answered into
    `answers` (request_id, request, job_name, response, status, processed_time). The
    answers are kept in a table before they are merged: the rules read each answer once,
    and the answers of a run killed before its merge are merged by the next run
    (_gemini_batch_ai_generate_merge_sql), never paid for twice. -#}
{% macro _gemini_batch_ai_generate_answers_sql(answers, snapshot, pending, group, job_name,
                                              batch) -%}
  {%- set args = ["prompt => " ~ gemini_batch._gemini_batch_prompt_sql(group['shape'], batch.connection_id)] -%}
  {%- if batch.connection_id -%}
    {%- do args.append("connection_id => " ~ gemini_batch._sql_string(batch.connection_id)) -%}
  {%- endif -%}
  {%- do args.append("endpoint => " ~ gemini_batch._sql_string(batch.gemini_model)) -%}
  {%- do args.append("request_type => " ~ gemini_batch._sql_string(batch.ai_generate_request_type)) -%}
  {%- do args.append("model_params => " ~ gemini_batch._gemini_batch_model_params_literal(group)) -%}
create or replace table {{ answers }}
options (expiration_timestamp = timestamp_add(current_timestamp(), interval 7 day))
as
select request_id, request, {{ gemini_batch._sql_string(job_name) }} as job_name,
  answer.full_response as response, coalesce(answer.status, '') as status,
  current_timestamp() as processed_time
from (
  select request_id, request,
    ai.generate({{ args | join(', ') }}) as answer
  from {{ snapshot }}
  where selected and params_group = {{ gemini_batch._sql_string(group['params_group']) }}
    and request_id in (select request_id from ({{ pending }}))
)
{%- endmacro %}


{#- MERGE of an answers table (see above) into <model>__responses as a batch job's
    answers are merged: the derived columns by the rules of ADR 0008/0011, a success
    replaces, a failure counts an attempt and never overwrites an answer. A statement
    merged already (its job_name on the row) changes nothing. -#}
{% macro _gemini_batch_ai_generate_merge_sql(responses, answers) -%}
merge {{ responses }} as t
using (
  select request_id, job_name, response, status, processed_time, succeeded,
    {{ gemini_batch._empty_answer('status', 'response') }} as empty_answer,
    {{ gemini_batch._status_error('status')['code'] }} as error_code,
    if(succeeded, null, {{ gemini_batch._failure_reason('status', 'response', 'request') }}) as error
  from (
    select request_id, request, job_name, response, status, processed_time,
      {{ gemini_batch._answered('status', 'response') }} as succeeded
    from {{ answers }}
  )
) as s
on t.request_id = s.request_id
when matched and coalesce(t.job_name, '') != s.job_name and s.succeeded then
  update set response = s.response, status = '', processed_time = s.processed_time,
    attempts = coalesce(t.attempts, 0) + 1, last_error = null, job_name = s.job_name,
    updated_at = current_timestamp(), answered = true, empty_answer = false, error_code = null,
    reused_from = null
when matched and coalesce(t.job_name, '') != s.job_name and not s.succeeded
  and not coalesce(t.answered, false) then
  update set response = s.response, status = s.status, processed_time = s.processed_time,
    attempts = coalesce(t.attempts, 0) + 1, last_error = s.error, job_name = s.job_name,
    updated_at = current_timestamp(), answered = false, empty_answer = s.empty_answer,
    error_code = s.error_code
when not matched then
  {# The columns named: a column this route leaves NULL (retry_at_attempt) or a table
      made before a newer one was added stays right. #}
  insert (request_id, response, status, processed_time, attempts, last_error, job_name,
    updated_at, answered, empty_answer, error_code)
  values (s.request_id, s.response, s.status, s.processed_time, 1,
    if(s.succeeded, null, s.error), s.job_name, current_timestamp(),
    s.succeeded, s.empty_answer, s.error_code)
{%- endmacro %}


{#- What one statement brought (its rows of <model>__responses): counts and tokens. -#}
{% macro _gemini_batch_ai_generate_usage_sql(responses, job_name) -%}
  {%- set usage = "coalesce(sum(lax_int64(json_query(response, '$.usageMetadata.{}'))), 0)" -%}
select
  countif(answered) as succeeded,
  countif(not answered) as failed,
  countif(not answered and (error_code = 429 or error_code >= 500)) as retryable,
  {{ usage.replace('{}', 'promptTokenCount') }} as prompt_tokens,
  {{ usage.replace('{}', 'candidatesTokenCount') }} as candidates_tokens,
  {{ usage.replace('{}', 'thoughtsTokenCount') }} as thoughts_tokens,
  {{ usage.replace('{}', 'totalTokenCount') }} as total_tokens,
  {{ usage.replace('{}', 'cachedContentTokenCount') }} as cached_tokens,
  countif(lax_int64(json_query(response, '$.usageMetadata.promptTokenCount')) > 200000) as long_context
from {{ responses }}
where job_name = {{ gemini_batch._sql_string(job_name) }}
{%- endmacro %}
