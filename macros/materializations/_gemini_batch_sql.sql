{#- The SQL of the gemini_batch materialization (BigQuery). The responses columns and
    the rule "answered" (gemini_batch._answered) are a contract with
    python/gemini_batch/warehouse.py; gemini_batch.print_rules prints them. -#}

{#- The columns of <model>__responses, in table order: the Jinja side of
    python/gemini_batch/warehouse.py's RESPONSES_SCHEMA, which fills the table
    (tests/unit/test_rules_agree.py holds the two together). The last three are
    derived from status and response when a row is written (ADR 0011). -#}
{% macro _gemini_batch_responses_columns() -%}
  {{ return([
    ('request_id', 'STRING'), ('response', 'JSON'), ('status', 'STRING'),
    ('processed_time', 'TIMESTAMP'), ('attempts', 'INT64'), ('last_error', 'STRING'),
    ('job_name', 'STRING'), ('updated_at', 'TIMESTAMP')]
    + gemini_batch._gemini_batch_derived_columns() | map(attribute='column') | list
    + gemini_batch._gemini_batch_later_columns()) }}
{%- endmacro %}


{#- Columns added after the first release, last, in this order, so a table made before
    them gets them where a new one has them (state/responses.py RESPONSES_SCHEMA):
    retry_at_attempt, what `gemini-batch retry` writes (`attempts` when a request was
    asked again, NULL: never); reused_from, the table an answer was copied from (var
    gemini_batch_answers_from, NULL: this target paid for it). -#}
{% macro _gemini_batch_later_columns() -%}
  {{ return([('retry_at_attempt', 'INT64'), ('reused_from', 'STRING')]) }}
{%- endmacro %}


{#- The derived columns of <model>__responses: (name, type) and the rule that computes
    each from the row's status and response (answers.py writes the same when it merges;
    here they fill a table made before them). -#}
{% macro _gemini_batch_derived_columns() -%}
  {{ return([
    {'column': ('answered', 'BOOL'),
     'rule': gemini_batch._answered('status', 'response')},
    {'column': ('empty_answer', 'BOOL'),
     'rule': gemini_batch._empty_answer('status', 'response')},
    {'column': ('error_code', 'INT64'),
     'rule': gemini_batch._status_error('status')['code'] | trim}]) }}
{%- endmacro %}


{#- Columns the package adds to the model's own in the view: a model may not select
    them. (The derived columns stay in <model>__responses: a model may have an
    `answered` or an `error_code`.) -#}
{% macro _gemini_batch_reserved_columns() -%}
  {%- set derived = gemini_batch._gemini_batch_derived_columns() | map(attribute='column')
        | map(attribute=0) | list -%}
  {%- set kept = derived + gemini_batch._gemini_batch_later_columns() | map(attribute=0) | list -%}
  {{ return(gemini_batch._gemini_batch_responses_columns() | map(attribute=0)
            | reject('in', kept) | list
            + ['request_problem', 'batch_state', '_gemini_batch_raw_request',
               gemini_batch._gemini_batch_key_column()]) }}
{%- endmacro %}


{#- SELECT of <model>__requests: the model's columns (`request` as JSON; a STRING
    request is parsed, NULL when it does not parse), request_id (hex SHA-256 of the Gemini
    model name and the canonical request JSON) and request_problem (NULL when valid,
    else the reason, from gemini_batch.request_problems). The check runs only for the
    request_ids `checks_relation` has no result for under `rules` (the hash of the
    check's SQL): on a rerun, for the new and changed requests (ADR 0010). -#}
{% macro _gemini_batch_requests_sql(model_sql, columns, request_type, gemini_model,
                                    checks_relation, rules) -%}
  {%- set from_string = request_type == 'STRING' -%}
  {%- set parsed = 'safe.parse_json(request)' if from_string else 'request' -%}
  {#- Text that does not parse keeps an id of its own (its raw text), so its reason shows. -#}
  {%- set canonical = 'coalesce(to_json_string(' ~ parsed ~ ')'
        ~ (', request' if from_string else '') ~ ", 'null')" -%}
with model_rows as (
{{ model_sql }}
), hashed as (
  select
    {%- for column in columns %}
    {% if column.name | lower == 'request' -%}
    {{ parsed }} as request,
    {%- else -%}
    {{ adapter.quote(column.name) }},
    {%- endif %}
    {%- endfor %}
    request as _gemini_batch_raw_request,
    to_hex(sha256(concat({{ gemini_batch._sql_string(gemini_model) }}, '\n', {{ canonical }}))) as request_id
  from model_rows
), keyed as (
  select hashed.*, {{ gemini_batch._gemini_batch_key_sql(columns, 'hashed') }} as {{ gemini_batch._gemini_batch_key_column() }}
  from hashed
), known_checks as (
  select request_id, request_problem
  from {{ checks_relation }}
  where checked_with = {{ gemini_batch._sql_string(rules) }}
), unchecked as (
  select request_key, raw_request
  from (
    select hashed.request_id as request_key, hashed._gemini_batch_raw_request as raw_request,
      row_number() over (partition by hashed.request_id) as copy
    from hashed
    left join known_checks on known_checks.request_id = hashed.request_id
    where known_checks.request_id is null
  )
  where copy = 1
), {{ gemini_batch._request_problems_ctes('unchecked', request_type, gemini_batch._sql_string(gemini_model)) }}
select
  {%- for column in columns %}
  keyed.{{ adapter.quote(column.name) }},
  {%- endfor %}
  keyed.request_id,
  if(known_checks.request_id is null, rp_problems.request_problem,
     known_checks.request_problem) as request_problem,
  keyed.{{ gemini_batch._gemini_batch_key_column() }}
from keyed
left join known_checks on known_checks.request_id = keyed.request_id
left join rp_problems on rp_problems.request_key = keyed.request_id
{%- endmacro %}


{#- The rules hash of the request check for requests of `request_type` to
    `gemini_model`: a check kept in <model>__checks under another hash (another package
    version, or another model's rules) is run again. -#}
{% macro _gemini_batch_check_rules(request_type, gemini_model) -%}
  {{ return(local_md5(gemini_batch._request_problems_ctes('unchecked', request_type,
                                                          gemini_batch._sql_string(gemini_model)))) }}
{%- endmacro %}


{#- CREATE TABLE IF NOT EXISTS of <model>__checks: the request check's result per
    request_id, kept across runs so that a rerun checks only what is new. -#}
{% macro _gemini_batch_checks_ddl(relation) -%}
create table if not exists {{ relation }} (
  request_id STRING,
  request_problem STRING,
  checked_with STRING,
  checked_at TIMESTAMP
)
cluster by request_id
{%- endmacro %}


{#- MERGE of the requests just checked (no result under `rules` yet) into
    <model>__checks: reads only the request_id and request_problem columns. -#}
{% macro _gemini_batch_checks_merge(checks_relation, requests_relation, rules) -%}
merge {{ checks_relation }} as checks
using (
  select request_id, min(request_problem) as request_problem
  from {{ requests_relation }}
  where request_id not in (
    select request_id from {{ checks_relation }}
    where checked_with = {{ gemini_batch._sql_string(rules) }}
  )
  group by request_id
) as checked
on checks.request_id = checked.request_id
when matched then
  update set request_problem = checked.request_problem,
    checked_with = {{ gemini_batch._sql_string(rules) }}, checked_at = current_timestamp()
when not matched then
  insert (request_id, request_problem, checked_with, checked_at)
  values (checked.request_id, checked.request_problem,
          {{ gemini_batch._sql_string(rules) }}, current_timestamp())
{%- endmacro %}


{#- CREATE TABLE IF NOT EXISTS of <model>__responses: one row per request_id, the cache
    of answers. Hand-written: no adapter macro creates an empty table from a schema. -#}
{% macro _gemini_batch_responses_ddl(relation) -%}
create table if not exists {{ relation }} (
  {%- for name, type in gemini_batch._gemini_batch_responses_columns() %}
  {{ name }} {{ type }}{{ ',' if not loop.last }}
  {%- endfor %}
)
cluster by request_id
{%- endmacro %}


{#- The derived columns a <model>__responses made by an older version lacks (names), from
    its `existing_columns` (dbt Columns). -#}
{% macro _gemini_batch_missing_derived(existing_columns) -%}
  {%- set have = existing_columns | map(attribute='name') | map('lower') | list -%}
  {{ return(gemini_batch._gemini_batch_derived_columns() | map(attribute='column')
            | map(attribute=0) | reject('in', have) | list) }}
{%- endmacro %}


{#- ALTER TABLE adding the derived column `name` to <model>__responses (one statement
    per column: the local emulator's DuckDB takes one action per ALTER). -#}
{% macro _gemini_batch_responses_add_derived(relation, name) -%}
  {%- for derived in gemini_batch._gemini_batch_derived_columns() if derived.column[0] == name -%}
alter table {{ relation }} add column if not exists {{ derived.column[0] }} {{ derived.column[1] }}
  {%- endfor -%}
{%- endmacro %}


{#- UPDATE filling every derived column from the answers kept: once, when added. -#}
{% macro _gemini_batch_responses_fill_derived(relation) -%}
update {{ relation }}
set
  {%- for derived in gemini_batch._gemini_batch_derived_columns() %}
  {{ derived.column[0] }} = {{ derived.rule }}{{ ',' if not loop.last }}
  {%- endfor %}
where true
{%- endmacro %}


{#- SELECT of the model view: every requests row with its latest answer and batch_state. -#}
{% macro _gemini_batch_view_sql(requests_relation, responses_relation, columns, max_retries,
                                retry_empty_answers=false, empty_retries=0) -%}
select
  {%- for column in columns %}
  requests.{{ adapter.quote(column.name) }},
  {%- endfor %}
  requests.request_id,
  responses.response,
  responses.status,
  responses.processed_time,
  coalesce(responses.attempts, 0) as attempts,
  coalesce(responses.last_error, requests.request_problem) as last_error,
  responses.job_name,
  case
    when coalesce(responses.answered, false) then 'succeeded'
    when requests.request_problem is not null then 'failed'
    when {{ gemini_batch._failed_for_good('responses.status', 'responses.error_code',
                                          'responses.empty_answer', 'responses.attempts',
                                          'responses.retry_at_attempt', max_retries,
                                          retry_empty_answers, 'responses.last_error',
                                          empty_retries) }}
      then 'failed'
    else 'pending'
  end as batch_state
from {{ requests_relation }} as requests
left join {{ responses_relation }} as responses
  on responses.request_id = requests.request_id
{%- endmacro %}


{#- Whether var gemini_batch_reset asks to drop this model's responses: `true` (every
    batch model the run builds) or a list of model names. -#}
{% macro _gemini_batch_reset_requested() -%}
  {%- set reset = var('gemini_batch_reset', false) -%}
  {%- if reset is string -%}
    {%- set reset = reset | lower in ['true', '1', 'yes'] or reset == model.name -%}
  {%- elif reset is iterable and reset is not mapping -%}
    {%- set reset = model.name in reset -%}
  {%- endif -%}
  {{ return(reset is sameas true) }}
{%- endmacro %}


{#- What the tables of a batch model were built from: the MD5 of its compiled SQL and
    its Gemini model (which the request_ids hash). The materialization writes it in the
    model's view (a CTE gemini_batch_built_from); `gemini-batch plan` compares it with
    the model's SQL now
    (python/gemini_batch/build/plan.py computes the same), and estimates from the SQL
    when they differ. -#}
{% macro _gemini_batch_fingerprint(model_sql, gemini_model) -%}
  {{ return(local_md5(model_sql ~ '\n' ~ gemini_model)) }}
{%- endmacro %}


{#- The SELECT of <model>__requests as a build would make it now, from the model's
    compiled SQL (`gemini-batch plan` on tables older than the SQL, or not built): read
    only, its inputs must exist. `checks_relation`: the model's <model>__checks when it
    exists (its kept results are reused), else none. -#}
{% macro _gemini_batch_planned_requests_sql(model_sql, gemini_model, checks_relation=none) -%}
  {%- if not execute -%}{{ return('') }}{%- endif -%}  {#- dbt parses the inline query first -#}
  {%- set columns = get_column_schema_from_query(model_sql) -%}
  {%- set request_types = columns | selectattr('name', 'equalto', 'request')
        | map(attribute='dtype') | map('upper') | list -%}
  {%- if request_types | length == 0 or request_types[0] not in ['JSON', 'STRING'] -%}
    {{ exceptions.raise_compiler_error(
        "the model must select a column `request` of type JSON (or STRING holding JSON "
        ~ "text); it selects: " ~ columns | map(attribute='name') | join(', ')) }}
  {%- endif -%}
  {%- set checks = checks_relation or "(select cast(null as string) as request_id, "
        ~ "cast(null as string) as request_problem, cast(null as string) as checked_with limit 0)" -%}
  {{ return(gemini_batch._gemini_batch_requests_sql(
      model_sql, columns, request_types[0], gemini_model, checks,
      gemini_batch._gemini_batch_check_rules(request_types[0]))) }}
{%- endmacro %}
