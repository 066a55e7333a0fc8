{#- The SQL of the gemini_batch materialization (BigQuery). The responses columns and
    the rule "answered" (gemini_batch._answered) are a contract with
    python/gemini_batch/warehouse.py; gemini_batch.print_rules prints them. -#}

{#- The columns of <model>__responses, in table order: the Jinja side of
    python/gemini_batch/warehouse.py's RESPONSES_SCHEMA, which fills the table
    (tests/unit/test_rules_agree.py holds the two together). -#}
{% macro _gemini_batch_responses_columns() -%}
  {{ return([
    ('request_id', 'STRING'), ('response', 'JSON'), ('status', 'STRING'),
    ('processed_time', 'TIMESTAMP'), ('attempts', 'INT64'), ('last_error', 'STRING'),
    ('job_name', 'STRING'), ('updated_at', 'TIMESTAMP')]) }}
{%- endmacro %}


{#- Columns the package adds to the model's own: a model may not select them. -#}
{% macro _gemini_batch_reserved_columns() -%}
  {{ return(gemini_batch._gemini_batch_responses_columns() | map(attribute=0) | list
            + ['request_problem', 'batch_state']) }}
{%- endmacro %}


{#- SELECT of <model>__requests: the model's columns (`request` as JSON; a STRING
    request is parsed, NULL when it does not parse), request_id (hex SHA-256 of the Gemini
    model name and the canonical request JSON) and request_problem (NULL when valid,
    else the reason, from gemini_batch.request_problems). -#}
{% macro _gemini_batch_requests_sql(model_sql, columns, request_type, gemini_model) -%}
  {%- set from_string = request_type == 'STRING' -%}
  {%- set parsed = 'safe.parse_json(request)' if from_string else 'request' -%}
  {#- Text that does not parse keeps an id of its own (its raw text), so its reason shows. -#}
  {%- set canonical = 'coalesce(to_json_string(' ~ parsed ~ ')'
        ~ (', request' if from_string else '') ~ ", 'null')" -%}
{#- A CTE and unqualified column names: the emulator cannot resolve an outer table alias
    inside the correlated subqueries of request_problems (docs/local-stack.md). -#}
with model_rows as (
{{ model_sql }}
)
select
  {%- for column in columns %}
  {% if column.name | lower == 'request' -%}
  {{ parsed }} as request,
  {%- else -%}
  {{ adapter.quote(column.name) }},
  {%- endif %}
  {%- endfor %}
  to_hex(sha256(concat({{ gemini_batch._sql_string(gemini_model) }}, '\n', {{ canonical }}))) as request_id,
  {{ gemini_batch.request_problems('request', request_type) }} as request_problem
from model_rows
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


{#- SELECT of the model view: every requests row with its latest answer and batch_state. -#}
{% macro _gemini_batch_view_sql(requests_relation, responses_relation, columns, max_retries,
                                retry_empty_answers=false) -%}
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
    when {{ gemini_batch._answered('responses.status', 'responses.response') }} then 'succeeded'
    when requests.request_problem is not null then 'failed'
    when coalesce(responses.attempts, 0) > {{ max_retries }} then 'failed'
    when {{ gemini_batch._final_failure('responses.status', 'responses.response',
                                        retry_empty_answers) }} then 'failed'
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
