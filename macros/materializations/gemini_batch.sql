{#- materialized='gemini_batch': the model's SQL selects key columns and `request` (a
    Gemini GenerateContentRequest as JSON). Builds, in the model's dataset:
      <model>__requests   the model's rows + request_id + request_problem (replaced)
      <model>__checks     the request check's result per request_id (kept: a rerun
                          checks only the new requests; rebuilt by --full-refresh)
      <model>__responses  the answers, one row per request_id (created if missing; never
                          dropped, except with var gemini_batch_reset)
      <model>__keys       each key hash's request_ids and since when (kept: what
                          `gemini-batch diff` compares; ADR 0016)
      <model>             a view: each request with its latest answer and batch_state
    Never submits a job: `gemini-batch build` does (docs/materialization.md). With
    config route='ai_generate' (or 'auto' with at most ai_generate_max_rows pending) it
    answers the pending requests itself, through BigQuery's AI.GENERATE (_gemini_batch_route.sql, docs/routes.md). -#}
{% materialization gemini_batch, adapter='bigquery' -%}
  {%- set batch = gemini_batch._gemini_batch_config() -%}
  {%- set where = "gemini_batch model " ~ model.unique_id ~ " (" ~ model.original_file_path ~ ")" -%}
  {%- set grant_config = config.get('grants') -%}

  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set requests_relation = api.Relation.create(
        database=this.database, schema=this.schema,
        identifier=this.identifier ~ '__requests', type='table') -%}
  {%- set checks_relation = api.Relation.create(
        database=this.database, schema=this.schema,
        identifier=this.identifier ~ '__checks', type='table') -%}
  {%- set responses_relation = api.Relation.create(
        database=this.database, schema=this.schema,
        identifier=this.identifier ~ '__responses', type='table') -%}
  {%- set keys_relation = api.Relation.create(
        database=this.database, schema=this.schema,
        identifier=this.identifier ~ '__keys', type='table') -%}
  {%- set existing_relation = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier) -%}
  {%- set existing_responses = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier ~ '__responses') -%}

  {#- The model's columns, without building anything: `request` must be there, as JSON
      or STRING, and the package's own column names must not. -#}
  {%- set columns = get_column_schema_from_query(sql) -%}
  {%- set column_names = columns | map(attribute='name') | map('lower') | list -%}
  {%- set request_types = columns | selectattr('name', 'equalto', 'request')
        | map(attribute='dtype') | map('upper') | list -%}
  {%- if 'request' not in column_names or request_types | length == 0 -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": the model must select a column named `request` (lowercase) holding the "
        ~ "Gemini request, e.g. `{{ gemini_batch.request(...) }} as request`; it selects: "
        ~ column_names | join(', ')) }}
  {%- endif -%}
  {%- set request_type = request_types[0] -%}
  {%- if request_type not in ['JSON', 'STRING'] -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": column `request` is " ~ request_type ~ "; it must be JSON (or STRING "
        ~ "holding JSON text), e.g. built with gemini_batch.request(...)") }}
  {%- endif -%}
  {%- set clashes = column_names | select('in', gemini_batch._gemini_batch_reserved_columns()) | list -%}
  {%- if clashes -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": the model selects " ~ clashes | join(', ') ~ ", which the package adds "
        ~ "itself; rename " ~ ('it' if clashes | length == 1 else 'them') ~ " in the model's SQL") }}
  {%- endif -%}

  {{ run_hooks(pre_hooks) }}

  {#- Answers cost money: only an explicit reset drops them (not --full-refresh). -#}
  {%- if existing_responses is not none and gemini_batch._gemini_batch_reset_requested() -%}
    {{ log("gemini_batch: var gemini_batch_reset drops " ~ existing_responses
           ~ " and every answer in it", info=true) }}
    {%- do adapter.drop_relation(existing_responses) -%}
  {%- endif -%}

  {#- The request check runs once per request_id and is kept (ADR 0010); a full
      refresh checks every request again (answers are kept all the same). -#}
  {%- set existing_checks = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier ~ '__checks') -%}
  {%- if existing_checks is not none and should_full_refresh() -%}
    {%- do adapter.drop_relation(existing_checks) -%}
  {%- endif -%}
  {%- set check_rules = gemini_batch._gemini_batch_check_rules(request_type, batch.gemini_model) -%}
  {%- call statement('checks') -%}
    {{ gemini_batch._gemini_batch_checks_ddl(checks_relation) }}
  {%- endcall -%}

  {%- call statement('requests') -%}
    {{ create_table_as(false, requests_relation,
         gemini_batch._gemini_batch_requests_sql(sql, columns, request_type, batch.gemini_model,
                                                 checks_relation, check_rules)) }}
  {%- endcall -%}

  {%- call statement('checks_merge') -%}
    {{ gemini_batch._gemini_batch_checks_merge(checks_relation, requests_relation, check_rules) }}
  {%- endcall -%}

  {%- call statement('keys') -%}
    {{ gemini_batch._gemini_batch_keys_ddl(keys_relation) }}
  {%- endcall -%}
  {%- call statement('keys_insert') -%}
    {{ gemini_batch._gemini_batch_keys_insert(keys_relation, requests_relation) }}
  {%- endcall -%}

  {%- call statement('responses') -%}
    {{ gemini_batch._gemini_batch_responses_ddl(responses_relation) }}
  {%- endcall -%}
  {#- A responses table kept from an older version gets the derived columns, filled
      once from its answers (ADR 0011): nothing paid for is asked again. -#}
  {%- if existing_responses is not none and not gemini_batch._gemini_batch_reset_requested() -%}
    {%- set kept_columns = adapter.get_columns_in_relation(responses_relation) -%}
    {%- set missing_derived = gemini_batch._gemini_batch_missing_derived(kept_columns) -%}
    {%- if missing_derived -%}
      {{ log("gemini_batch: adding " ~ missing_derived | join(', ') ~ " to "
             ~ responses_relation ~ " and filling them from its answers", info=true) }}
      {%- for name in missing_derived -%}
        {%- call statement('responses_add_' ~ name) -%}
          {{ gemini_batch._gemini_batch_responses_add_derived(responses_relation, name) }}
        {%- endcall -%}
      {%- endfor -%}
      {%- call statement('responses_fill_derived') -%}
        {{ gemini_batch._gemini_batch_responses_fill_derived(responses_relation) }}
      {%- endcall -%}
    {%- endif -%}
    {#- Made before `gemini-batch retry` or var gemini_batch_answers_from: no retry was
        asked of its rows, and this target paid for its answers (NULL). -#}
    {%- set kept_names = kept_columns | map(attribute='name') | map('lower') | list -%}
    {%- for column in gemini_batch._gemini_batch_later_columns() -%}
      {%- if column[0] not in kept_names -%}
        {%- call statement('responses_add_' ~ column[0]) -%}
          alter table {{ responses_relation }} add column if not exists {{ column[0] }} {{ column[1] }}
        {%- endcall -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}

  {#- A table left where the view goes (the model was materialized otherwise before). -#}
  {%- if existing_relation is not none and not existing_relation.is_view -%}
    {{ log("gemini_batch: replacing " ~ existing_relation.type ~ " " ~ existing_relation
           ~ " with a view", info=true) }}
    {%- do adapter.drop_relation(existing_relation) -%}
  {%- endif -%}

  {#- The view says what its tables were built from, in a CTE it does not read (a
      comment would not survive every SQL parser): `gemini-batch plan` reads it. -#}
  {%- call statement('main') -%}
    {{ get_create_view_as_sql(target_relation,
         "with gemini_batch_built_from as (select '"
         ~ gemini_batch._gemini_batch_fingerprint(sql, batch.gemini_model) ~ "' as fingerprint)\n"
         ~ gemini_batch._gemini_batch_view_sql(requests_relation, responses_relation,
                                               columns, batch.max_retries,
                                               batch.retry_empty_answers,
                                               batch.empty_retries)) }}
  {%- endcall -%}

  {%- set should_revoke = should_revoke(existing_relation, full_refresh_mode=true) -%}
  {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke) -%}
  {%- do persist_docs(target_relation, model) -%}

  {#- route='ai_generate' (and 'auto' with at most ai_generate_max_rows pending): this
      run answers the pending requests (BigQuery's AI.GENERATE); every route then says how many have no answer and what answers them. -#}
  {%- if batch.route in ['ai_generate', 'auto'] -%}
    {%- do gemini_batch._gemini_batch_answer_with_ai_generate(
          batch, requests_relation, responses_relation, where) -%}
  {%- endif -%}
  {%- do gemini_batch._gemini_batch_log_unanswered(batch, requests_relation, responses_relation) -%}

  {{ run_hooks(post_hooks) }}

  {{ return({'relations': [target_relation, requests_relation, checks_relation, responses_relation, keys_relation]}) }}
{%- endmaterialization %}
