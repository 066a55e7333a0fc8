{#- Answers from other datasets, the sample, and the key history (ADR 0016). The copy
    and the sample are the SQL python/gemini_batch/state/reuse.py runs under
    `gemini-batch build` (copy_answers_sql, sample_sql); tests/unit/test_rules_agree.py
    holds the two sides together through gemini_batch.print_rules. -#}

{#- The column of <model>__requests the sample is ordered by (reuse.KEY_COLUMN). -#}
{% macro _gemini_batch_key_column() -%}
  {{ return('_gemini_batch_key') }}
{%- endmacro %}


{#- SQL: the hash of a row's key columns (the model's columns but `request`), read from
    `alias`; a model with no key column is keyed by its request_id. -#}
{% macro _gemini_batch_key_sql(columns, alias) -%}
  {%- set keys = columns | rejectattr('name', 'equalto', 'request') | map(attribute='name') | list -%}
  {%- if keys -%}
to_hex(sha256(to_json_string(struct(
  {%- for name in keys %}{{ alias }}.{{ adapter.quote(name) }} as {{ adapter.quote(name) }}{{ ', ' if not loop.last }}{% endfor -%}
))))
  {%- else -%}
{{ alias }}.request_id
  {%- endif -%}
{%- endmacro %}


{#- SELECT of the answers `source` (a responses table) holds for the requests `pending`
    selects (reuse.copy_source_sql). -#}
{% macro _gemini_batch_copy_source_sql(source, pending) -%}
  select request_id, {{ gemini_batch._gemini_batch_copied_columns() | join(', ') }}
  from {{ source }}
  where coalesce(answered, false)
    and request_id in (select request_id from ({{ pending }}))
{%- endmacro %}

{% macro _gemini_batch_copied_columns() -%}
  {{ return(['response', 'status', 'processed_time', 'attempts', 'last_error', 'job_name',
             'answered', 'empty_answer', 'error_code']) }}
{%- endmacro %}


{#- MERGE copying the answers of the `pending` requests from `source` into `responses`,
    reused_from = `source_name` (reuse.copy_answers_sql). -#}
{% macro _gemini_batch_copy_answers_sql(responses, source, source_name, pending) -%}
  {%- set copied = gemini_batch._gemini_batch_copied_columns() -%}
merge {{ responses }} as t
using ({{ gemini_batch._gemini_batch_copy_source_sql(source, pending) }}
) as s
on t.request_id = s.request_id
when matched and not coalesce(t.answered, false) then
  update set {% for c in copied %}{{ c }} = s.{{ c }}, {% endfor %}
    updated_at = current_timestamp(), reused_from = {{ gemini_batch._sql_string(source_name) }}
when not matched then
  insert (request_id, {{ copied | join(', ') }}, updated_at, reused_from)
  values (s.request_id, {% for c in copied %}s.{{ c }}, {% endfor %}current_timestamp(), {{ gemini_batch._sql_string(source_name) }})
{%- endmacro %}


{#- The `pending` requests among the first `size` request_ids of `requests` by key hash
    (reuse.sample_sql). -#}
{% macro _gemini_batch_sample_sql(pending, requests, size) -%}
  select request_id, request
  from ({{ pending }})
  where request_id in (
    select request_id
    from (
      select request_id, row_number() over (order by sample_key, request_id) as sample_rank
      from (
        select request_id, min({{ gemini_batch._gemini_batch_key_column() }}) as sample_key
        from {{ requests }}
        group by request_id
      )
    )
    where sample_rank <= {{ size | int }}
  )
{%- endmacro %}


{#- Var gemini_batch_sample as a positive int, or none. -#}
{% macro _gemini_batch_sample_size(where) -%}
  {%- set value = var('gemini_batch_sample', none) -%}
  {%- if value is none or value in ['', 0, '0'] -%}{{ return(none) }}{%- endif -%}
  {%- if (value | string | trim) != (value | int | string) or value | int < 1 -%}
    {{ exceptions.raise_compiler_error(where ~ ": var gemini_batch_sample=" ~ value
        ~ ": give a whole number of requests per batch model (at least 1).") }}
  {%- endif -%}
  {{ return(value | int) }}
{%- endmacro %}


{#- The `project.dataset`s answers are read from (reuse.source_datasets): var
    gemini_batch_answers_from, else the dataset dbt --defer reads this model from. -#}
{% macro _gemini_batch_answer_sources(where) -%}
  {%- set value = var('gemini_batch_answers_from', none) -%}
  {%- if value is none -%}
    {%- set deferred = model.get('defer_relation') -%}
    {%- set names = [deferred.database ~ '.' ~ deferred.schema] if deferred else [] -%}
  {%- elif value is string -%}
    {%- set names = value.split(',') | map('trim') | reject('equalto', '') | list -%}
  {%- else -%}
    {%- set names = value | map('string') | map('trim') | list -%}
  {%- endif -%}
  {%- set datasets = [] -%}
  {%- for name in names -%}
    {%- set parts = name.split('.') -%}
    {%- if parts | length != 2 or not parts[0] or not parts[1] -%}
      {{ exceptions.raise_compiler_error(where ~ ": var gemini_batch_answers_from: '" ~ name
          ~ "' is not 'project.dataset' (e.g. 'my-project.analytics_prod').") }}
    {%- endif -%}
    {%- if name != this.database ~ '.' ~ this.schema and name not in datasets -%}
      {%- do datasets.append(name) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(datasets) }}
{%- endmacro %}


{#- Copy into `responses` the answers the answer sources hold for `pending`, a ledger row
    per source; a source table that is missing or cannot be read is a warning. -#}
{% macro _gemini_batch_reuse_answers(batch, jobs, responses, pending, where) -%}
  {%- set total = {'n': 0} -%}
  {%- for dataset in gemini_batch._gemini_batch_answer_sources(where) -%}
    {%- set parts = dataset.split('.') -%}
    {%- set name = dataset ~ '.' ~ this.identifier ~ '__responses' -%}
    {%- set source = adapter.get_relation(database=parts[0], schema=parts[1],
                                          identifier=this.identifier ~ '__responses') -%}
    {%- if source is none -%}
      {{ log("gemini_batch: " ~ model.name ~ ": warning: answers from " ~ name
             ~ " not read (no such table, or no permission to see it); its requests are sent as usual", info=true) }}
    {%- else -%}
      {%- set count = run_query("select count(*) from (" ~ gemini_batch._gemini_batch_copy_source_sql(source, pending) ~ ")")[0][0] | int -%}
      {%- if count -%}
        {%- call statement('gemini_batch_reuse') -%}
          {{ gemini_batch._gemini_batch_copy_answers_sql(responses, source, name, pending) }}
        {%- endcall -%}
        {%- call statement('gemini_batch_reuse_ledger') -%}
insert into {{ jobs }} ({{ gemini_batch._gemini_batch_ledger_columns() | map(attribute=0) | join(', ') }})
values (
  {{ gemini_batch._sql_string(gemini_batch._gemini_batch_reused_prefix() ~ invocation_id ~ '/' ~ name) }},
  {{ gemini_batch._sql_string(name) }}, {{ gemini_batch._sql_string(model.unique_id) }},
  {{ gemini_batch._sql_string(this.database ~ '.' ~ this.schema ~ '.' ~ this.identifier) }},
  {{ gemini_batch._sql_string(invocation_id) }}, '', {{ gemini_batch._sql_string(name) }},
  {{ gemini_batch._sql_string(batch.gemini_model) }},
  {{ gemini_batch._sql_string(batch.location or target.get('location') or '') }},
  'SUCCEEDED', {{ count }}, {{ count }}, 0, null, null, null, null, 0, 0,
  current_timestamp(), current_timestamp(), current_timestamp(), null, current_timestamp())
        {%- endcall -%}
        {{ log("gemini_batch: " ~ model.name ~ ": " ~ count ~ " answer" ~ ('s' if count != 1)
               ~ " copied from " ~ name ~ " (not sent)", info=true) }}
        {%- do total.update({'n': total.n + count}) -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(total.n) }}
{%- endmacro %}

{#- job_name prefix of a ledger row for copied answers (ledger.REUSED_PREFIX). -#}
{% macro _gemini_batch_reused_prefix() -%}
  {{ return('reused/') }}
{%- endmacro %}


{#- <model>__keys: which request_id each key hash had, and since when; kept across runs
    (a full refresh too) so `gemini-batch diff` finds a row's earlier answer. -#}
{% macro _gemini_batch_keys_ddl(relation) -%}
create table if not exists {{ relation }} (
  key_hash STRING,
  request_id STRING,
  first_seen TIMESTAMP
)
cluster by key_hash
{%- endmacro %}

{% macro _gemini_batch_keys_insert(keys_relation, requests_relation) -%}
insert into {{ keys_relation }} (key_hash, request_id, first_seen)
select distinct r.{{ gemini_batch._gemini_batch_key_column() }}, r.request_id, current_timestamp()
from {{ requests_relation }} as r
left join {{ keys_relation }} as k
  on k.key_hash = r.{{ gemini_batch._gemini_batch_key_column() }} and k.request_id = r.request_id
where k.request_id is null
{%- endmacro %}
