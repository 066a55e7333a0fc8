{#- What a plain `dbt run` does about a batch model's requests with no answer: with
    route='ai_generate' it answers them through AI.GENERATE (the flow below), and with
    route='auto' too when at most ai_generate_max_rows of them can be; on every
    route it logs how many are left and the command that answers them. Plain Jinja,
    run_query, statement and adapter.get_relation only: it renders on dbt Fusion too. -#}

{#- The relation of a `project.dataset.table` name read from the ledger. -#}
{% macro _gemini_batch_table_relation(name) -%}
  {%- set parts = name.split('.') -%}
  {{ return(api.Relation.create(database=parts[0], schema=parts[1], identifier=parts[2], type='table')) }}
{%- endmacro %}


{#- gemini_batch_jobs and gemini_batch_locks (var gemini_batch_ledger_dataset, else the
    target dataset), created if missing with the columns ledger.py gives them. -#}
{% macro _gemini_batch_ledger_relations(create=false) -%}
  {%- set dataset = var('gemini_batch_ledger_dataset', target.schema) -%}
  {%- set jobs = api.Relation.create(database=target.database, schema=dataset, identifier='gemini_batch_jobs', type='table') -%}
  {%- set locks = api.Relation.create(database=target.database, schema=dataset, identifier='gemini_batch_locks', type='table') -%}
  {%- if create -%}
    {%- do adapter.create_schema(api.Relation.create(database=target.database, schema=dataset)) -%}
    {%- for relation, columns in [(jobs, gemini_batch._gemini_batch_ledger_columns()),
                                  (locks, gemini_batch._gemini_batch_locks_columns())] -%}
      {%- call statement('gemini_batch_ledger_' ~ relation.identifier) -%}
        create table if not exists {{ relation }} (
          {%- for name, type in columns %}
          {{ name }} {{ type }}{{ ',' if not loop.last }}
          {%- endfor %}
        )
      {%- endcall -%}
    {%- endfor -%}
  {%- endif -%}
  {{ return({'jobs': jobs, 'locks': locks}) }}
{%- endmacro %}


{#- The shard tables of the model's live batch jobs (ledger.Ledger.live_shard_tables)
    that still exist: their requests are in flight. -#}
{% macro _gemini_batch_live_shards(jobs) -%}
  {%- set rows = run_query(
        "select distinct shard_table from " ~ jobs ~ " where dbt_model = "
        ~ gemini_batch._sql_string(model.unique_id) ~ " and (state not in ('"
        ~ gemini_batch._gemini_batch_ended_states() | join("', '") ~ "') or merged_at is null)"
        ~ " and coalesce(shard_table, '') != ''") -%}
  {%- set shards = [] -%}
  {%- for row in rows -%}
    {%- set relation = gemini_batch._gemini_batch_table_relation(row[0]) -%}
    {%- if adapter.get_relation(database=relation.database, schema=relation.schema,
                                identifier=relation.identifier) is not none -%}
      {%- do shards.append(relation) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(shards) }}
{%- endmacro %}


{#- Claim the model's lock in gemini_batch_locks as `gemini-batch build` does
    (ledger.Ledger.lock): one MERGE, then the holder. Someone else's: a compiler error
    naming them. The lock expires 15 minutes after the claim if this run dies first. -#}
{% macro _gemini_batch_claim_lock(locks, token, where, claim=true) -%}
  {%- if claim -%}
  {%- call statement('gemini_batch_lock') -%}
merge {{ locks }} as t
using (select {{ gemini_batch._sql_string(model.unique_id) }} as dbt_model) as s
on t.dbt_model = s.dbt_model
when matched and (t.token = {{ gemini_batch._sql_string(token) }} or t.expires_at < current_timestamp()) then
  update set token = {{ gemini_batch._sql_string(token) }}, host = 'dbt run', pid = 0,
    since = current_timestamp(),
    expires_at = timestamp_add(current_timestamp(), interval 900 second)
when not matched then
  insert (dbt_model, token, host, pid, since, expires_at)
  values (s.dbt_model, {{ gemini_batch._sql_string(token) }}, 'dbt run', 0, current_timestamp(),
          timestamp_add(current_timestamp(), interval 900 second))
  {%- endcall -%}
  {%- endif -%}
  {%- set holder = run_query("select token, host, pid, cast(since as string) from " ~ locks
        ~ " where dbt_model = " ~ gemini_batch._sql_string(model.unique_id)) -%}
  {%- if holder | length == 0 or holder[0][0] != token -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": its requests are being sent by another process ("
        ~ (holder[0][1] ~ " pid " ~ holder[0][2] ~ " since " ~ holder[0][3] if holder | length else "unknown")
        ~ "), holding its lock in " ~ locks ~ ". Nothing was sent: wait for it to finish "
        ~ "and run again (a lock left by a killed process expires 15 minutes after its last refresh).") }}
  {%- endif -%}
{%- endmacro %}

{#- The environment variable a build sets to its lock token (ledger.LOCK_TOKEN_ENV). -#}
{% macro _gemini_batch_lock_token_env() -%}
  {{ return('GEMINI_BATCH_LOCK_TOKEN') }}
{%- endmacro %}

{% macro _gemini_batch_release_lock(locks, token) -%}
  {%- call statement('gemini_batch_unlock') -%}
    delete from {{ locks }} where dbt_model = {{ gemini_batch._sql_string(model.unique_id) }}
      and token = {{ gemini_batch._sql_string(token) }}
  {%- endcall -%}
{%- endmacro %}


{#- (answer, thoughts) tokens per answered request of the model in the ledger, or none
    (ledger.Ledger.observed_tokens). -#}
{% macro _gemini_batch_observed_tokens(jobs, gemini_model) -%}
  {%- set row = run_query(
        "select sum(candidates_tokens), sum(coalesce(thoughts_tokens, 0)), sum(succeeded_count) from "
        ~ jobs ~ " where gemini_model = " ~ gemini_batch._sql_string(gemini_model)
        ~ " and succeeded_count > 0 and candidates_tokens is not null")[0] -%}
  {%- if not row[2] -%}{{ return(none) }}{%- endif -%}
  {{ return([row[0] / row[2], row[1] / row[2]]) }}
{%- endmacro %}


{#- One line per run of a batch model with requests that have no answer: how many, and
    the command that answers them (every route). Not under `gemini-batch build`, which
    answers them next and says so itself. -#}
{% macro _gemini_batch_log_unanswered(batch, requests_relation, responses_relation) -%}
  {%- if not execute or env_var(gemini_batch._gemini_batch_lock_token_env(), '') -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set pending = gemini_batch._gemini_batch_pending_sql(
        requests_relation, responses_relation, batch.max_retries, batch.retry_empty_answers,
        [], batch.empty_retries) -%}
  {%- set count = run_query("select count(*) from (" ~ pending ~ ")")[0][0] -%}
  {%- if count -%}
    {{ log("gemini_batch: " ~ model.name ~ ": " ~ count ~ " request" ~ ('s' if count != 1)
           ~ " with no answer; `gemini-batch build --select " ~ model.name ~ "` answers them"
           ~ ("" if batch.route == 'batch' else " by batch job"), info=true) }}
  {%- endif -%}
{%- endmacro %}


{#- route='ai_generate': answer the model's pending requests through AI.GENERATE, after
    <model>__requests and <model>__responses are built. Under the model's lock (the one
    `gemini-batch build` takes), leaving out the requests of live batch jobs: a
    snapshot of what is pending, the estimate checked against max_cost_usd (nothing sent
    over it), then rounds of one statement per model_params group, each merged into
    <model>__responses and written to the ledger; rows that failed with a retryable
    error (429, 5xx) go again in the next round, up to max_retries (ADR 0009). -#}
{% macro _gemini_batch_answer_with_ai_generate(batch, requests_relation, responses_relation, where) -%}
  {%- set ledger = gemini_batch._gemini_batch_ledger_relations(create=true) -%}
  {#- Under `gemini-batch build` (dbt in its process), the build holds the lock: its
      token (env GEMINI_BATCH_LOCK_TOKEN, ledger.LOCK_TOKEN_ENV) is checked, not claimed. -#}
  {%- set inherited = env_var(gemini_batch._gemini_batch_lock_token_env(), '') -%}
  {%- set token = inherited or 'dbt-' ~ invocation_id -%}
  {%- set run_key = invocation_id | replace('-', '') -%}
  {%- set snapshot = api.Relation.create(database=this.database, schema=this.schema,
        identifier=this.identifier ~ '__ai_generate_' ~ run_key[:12], type='table') -%}
  {%- set answers = api.Relation.create(database=this.database, schema=this.schema,
        identifier=this.identifier ~ '__ai_generate_answers', type='table') -%}
  {%- do gemini_batch._gemini_batch_claim_lock(ledger.locks, token, where, claim=not inherited) -%}

  {#- Answers of a run killed between its AI.GENERATE statement and their merge: paid
      for, so merged now (under the lock: no other run writes them). -#}
  {%- if adapter.get_relation(database=answers.database, schema=answers.schema,
                              identifier=answers.identifier) is not none -%}
    {{ log("gemini_batch: " ~ model.name ~ ": merging the answers a stopped run left in "
           ~ answers, info=true) }}
    {%- call statement('gemini_batch_ai_generate_recover') -%}
      {{ gemini_batch._gemini_batch_ai_generate_merge_sql(responses_relation, answers) }}
    {%- endcall -%}
    {%- do adapter.drop_relation(answers) -%}
  {%- endif -%}

  {%- set live = gemini_batch._gemini_batch_live_shards(ledger.jobs) -%}
  {%- set pending = gemini_batch._gemini_batch_pending_sql(
        requests_relation, responses_relation, batch.max_retries, batch.retry_empty_answers, live,
        batch.empty_retries) -%}
  {#- Answers other datasets hold are copied, not sent (var gemini_batch_answers_from);
      then at most var gemini_batch_sample requests are sent, the same rows each run. -#}
  {%- do gemini_batch._gemini_batch_reuse_answers(batch, ledger.jobs, responses_relation, pending, where) -%}
  {%- set sample = gemini_batch._gemini_batch_sample_size(where) -%}
  {%- if sample is not none -%}
    {%- set outside = run_query("select count(*) from (" ~ pending ~ ") where request_id not in (select request_id from ("
          ~ gemini_batch._gemini_batch_sample_sql(pending, requests_relation, sample) ~ "))")[0][0] | int -%}
    {%- if outside -%}
      {{ log("gemini_batch: " ~ model.name ~ ": " ~ outside ~ " pending request" ~ ('s' if outside != 1)
             ~ " outside the sample (var gemini_batch_sample=" ~ sample ~ ") not sent", info=true) }}
    {%- endif -%}
    {%- set pending = gemini_batch._gemini_batch_sample_sql(pending, requests_relation, sample) -%}
  {%- endif -%}
  {%- call statement('gemini_batch_ai_generate_snapshot') -%}
create or replace table {{ snapshot }}
options (expiration_timestamp = timestamp_add(current_timestamp(), interval 1 day))
as {{ gemini_batch._gemini_batch_ai_generate_snapshot_sql(pending, batch.ai_generate_max_rows,
                                                           batch.connection_id is not none) }}
  {%- endcall -%}

  {%- set finish = {'error': none} -%}
  {%- set counts = run_query("select countif(selected), countif(unsupported is null and not selected), "
        ~ "count(distinct if(selected, params_group, null)), coalesce(sum(if(selected, length(to_json_string(request)), 0)), 0) "
        ~ "from " ~ snapshot)[0] -%}
  {%- set selected, held_back, groups, selected_bytes = counts[0] | int, counts[1] | int, counts[2] | int, counts[3] | int -%}
  {%- set unsupported = run_query("select unsupported, count(*) from " ~ snapshot
        ~ " where unsupported is not null group by unsupported order by 2 desc, 1") -%}
  {%- for row in unsupported -%}
    {{ log("gemini_batch: " ~ model.name ~ ": " ~ row[1] ~ " request" ~ ('s' if row[1] != 1)
           ~ " not sent by AI.GENERATE (" ~ row[0] ~ "); they stay pending: `gemini-batch build --select "
           ~ model.name ~ "` sends them by batch job", info=true) }}
  {%- endfor -%}
  {#- route='auto': more than ai_generate_max_rows it can send go by batch job, all of
      them: nothing is sent here (`gemini-batch build` sends them after this stage). -#}
  {%- set by_batch = batch.route == 'auto' and held_back > 0 -%}
  {%- if by_batch -%}
    {{ log("gemini_batch: " ~ model.name ~ ": route auto: " ~ (selected + held_back) ~ " pending requests, over ai_generate_max_rows="
           ~ batch.ai_generate_max_rows ~ ": none sent by AI.GENERATE; `gemini-batch build --select " ~ model.name
           ~ "` sends them by batch jobs", info=true) }}
  {%- elif held_back -%}
    {{ log("gemini_batch: " ~ model.name ~ ": " ~ held_back ~ " more request" ~ ('s' if held_back != 1)
           ~ " over ai_generate_max_rows=" ~ batch.ai_generate_max_rows ~ (" stays" if held_back == 1 else " stay") ~ " pending: the next "
           ~ "`dbt run` sends them, or `gemini-batch build --select " ~ model.name ~ "` by batch job", info=true) }}
  {%- endif -%}

  {%- set bound = gemini_batch._gemini_batch_max_groups() -%}
  {%- if groups > bound and not by_batch -%}
    {%- do finish.update({'error': where ~ ": " ~ selected ~ " pending requests need " ~ groups
          ~ " different model_params (system instruction, generation config, safety settings, "
          ~ "tools) or prompt shapes; AI.GENERATE takes one per statement and one run makes at most "
          ~ bound ~ ". Nothing was sent: share the settings across rows, lower ai_generate_max_rows, "
          ~ "or send them by batch job (route 'batch', then `gemini-batch build --select " ~ model.name ~ "`)."}) -%}
  {%- endif -%}

  {%- set estimate = {'usd': 0, 'processing_usd': 0, 'requests': 0} -%}
  {%- if selected and finish.error is none and not by_batch -%}
    {%- set grouped = run_query(gemini_batch._gemini_batch_estimate_groups_sql(
          "select request_id, request from " ~ snapshot ~ " where selected", batch.gemini_model)) -%}
    {%- set rows = [] -%}
    {%- for row in grouped -%}
      {%- do rows.append({'requested_budget': row[0], 'max_output_tokens': row[1], 'candidate_count': row[2],
                          'long_context': row[3], 'requests': row[4], 'input_tokens': row[5],
                          'audio_tokens': row[6]}) -%}
    {%- endfor -%}
    {%- set cost = gemini_batch._gemini_batch_estimate(batch.gemini_model, rows,
          gemini_batch._gemini_batch_observed_tokens(ledger.jobs, batch.gemini_model)) -%}
    {%- if cost.thinking_trap -%}
      {{ log("gemini_batch: " ~ model.name ~ ": warning: " ~ cost.thinking_trap, info=True) }}
    {%- endif -%}
    {%- set processing = selected_bytes / 1099511627776 * gemini_batch._gemini_batch_bigquery_usd_per_tib() -%}
    {%- do estimate.update({'usd': cost.usd, 'processing_usd': processing, 'requests': selected, 'cost': cost}) -%}
    {%- set cap = batch.max_cost_usd -%}
    {%- if cap is not none and cost.usd is none -%}
      {%- do finish.update({'error': where ~ " sets max_cost_usd=" ~ cap ~ " but no price is known for '"
            ~ batch.gemini_model ~ "': add it to var gemini_batch_prices ({input: <USD per 1M tokens>, "
            ~ "output: <USD per 1M tokens>}). Nothing was sent."}) -%}
    {%- elif cap is not none -%}
      {%- set checked = (cost.worst_case_usd if batch.max_cost_mode == 'worst_case' else cost.usd) + processing -%}
      {%- if checked > cap -%}
        {%- do finish.update({'error': where ~ ": " ~ selected ~ " pending requests through AI.GENERATE are "
              ~ ("at most" if batch.max_cost_mode == 'worst_case' else "estimated at") ~ " $"
              ~ '%.4f' | format(checked) ~ " (" ~ cost.input_tokens ~ " input + "
              ~ ((cost.worst_case_output_tokens if batch.max_cost_mode == 'worst_case'
                  else cost.thinking_tokens + cost.answer_tokens) | round | int)
              ~ " output tokens of " ~ batch.gemini_model ~ " at the batch rate, plus $"
              ~ '%.6f' | format(processing) ~ " of BigQuery ML data processing), over max_cost_usd=$"
              ~ '%.4f' | format(cap) ~ ". Nothing was sent: raise max_cost_usd, lower "
              ~ "ai_generate_max_rows, or select fewer rows."}) -%}
      {%- endif -%}
    {%- endif -%}
  {%- endif -%}

  {%- set totals = {'sent': 0, 'answered': 0, 'failed': 0, 'statements': 0} -%}
  {%- if finish.error is none and selected and not by_batch -%}
    {%- set state = {'done': false} -%}
    {%- for round in range(batch.max_retries + 1) if not state.done -%}
      {%- set todo = run_query(gemini_batch._gemini_batch_ai_generate_groups_sql(snapshot, pending)) -%}
      {%- if todo | length == 0 -%}
        {%- do state.update({'done': true}) -%}
      {%- endif -%}
      {%- for group in todo -%}
        {%- do gemini_batch._gemini_batch_ai_generate_statement(
              batch, ledger.jobs, responses_relation, answers, snapshot, pending, group,
              gemini_batch._gemini_batch_ai_generate_prefix() ~ invocation_id ~ '/' ~ (round + 1) ~ '-' ~ loop.index,
              estimate, selected, totals) -%}
      {%- endfor -%}
    {%- endfor -%}
    {{ log("gemini_batch: " ~ model.name ~ ": AI.GENERATE answered " ~ totals.answered ~ " of "
           ~ selected ~ " request" ~ ('s' if selected != 1) ~ " in " ~ totals.statements ~ " statement"
           ~ ('s' if totals.statements != 1)
           ~ ("; " ~ (selected - totals.answered) ~ " not answered (see last_error in " ~ this ~ ")"
              if selected > totals.answered else ""), info=true) }}
  {%- endif -%}

  {%- do adapter.drop_relation(snapshot) -%}
  {%- if not inherited -%}
    {%- do gemini_batch._gemini_batch_release_lock(ledger.locks, token) -%}
  {%- endif -%}
  {%- if finish.error is not none -%}
    {{ exceptions.raise_compiler_error(finish.error) }}
  {%- endif -%}
{%- endmacro %}


{#- BigQuery ML's data-processing charge of AI.GENERATE, USD per TiB of the requests'
    JSON text (on-demand price; docs/costs.md): pricing.bigquery_usd_per_tib. -#}
{% macro _gemini_batch_bigquery_usd_per_tib() -%}
  {{ return(var('gemini_batch_bigquery_usd_per_tib', 6.25) | float) }}
{%- endmacro %}


{#- At most this many AI.GENERATE statements per round of one run (one per model_params
    group and prompt shape): a bound on statements, not on rows. -#}
{% macro _gemini_batch_max_groups() -%}
  {{ return(20) }}
{%- endmacro %}


{#- One AI.GENERATE statement of `group` and its ledger row. -#}
{% macro _gemini_batch_ai_generate_statement(batch, jobs, responses, answers, snapshot, pending,
                                            group, job_name, estimate, selected, totals) -%}
  {%- set started = modules.datetime.datetime.utcnow().isoformat() -%}
  {%- call statement('gemini_batch_ai_generate', fetch_result=false) -%}
    {{ gemini_batch._gemini_batch_ai_generate_answers_sql(answers, snapshot, pending, group, job_name, batch) }}
  {%- endcall -%}
  {%- set result = load_result('gemini_batch_ai_generate') -%}
  {%- set job_id = (result.response.job_id if result and result.response is defined else none) | default(none) -%}
  {%- call statement('gemini_batch_ai_generate_merge') -%}
    {{ gemini_batch._gemini_batch_ai_generate_merge_sql(responses, answers) }}
  {%- endcall -%}
  {%- do adapter.drop_relation(answers) -%}
  {%- set usage = run_query(gemini_batch._gemini_batch_ai_generate_usage_sql(responses, job_name))[0] -%}
  {%- set sent = group['requests'] | int -%}
  {%- set share = sent / selected -%}
  {%- set facts = gemini_batch._gemini_batch_model_facts(batch.gemini_model) -%}
  {%- set estimated = none if estimate.usd is none else (estimate.usd + estimate.processing_usd) * share -%}
  {%- set actual = none if facts.price is none else gemini_batch._gemini_batch_batch_usd(
        facts.price, usage[3] | int, (usage[4] | int) + (usage[5] | int), 0, false) + estimate.processing_usd * share -%}
  {%- set succeeded, failed = usage[0] | int, usage[1] | int -%}
  {%- call statement('gemini_batch_ai_generate_ledger') -%}
insert into {{ jobs }} ({{ gemini_batch._gemini_batch_ledger_columns() | map(attribute=0) | join(', ') }})
values (
  {{ gemini_batch._sql_string(job_name) }}, {{ gemini_batch._sql_string(job_id) if job_id else 'null' }},
  {{ gemini_batch._sql_string(model.unique_id) }},
  {{ gemini_batch._sql_string(this.database ~ '.' ~ this.schema ~ '.' ~ this.identifier) }},
  {{ gemini_batch._sql_string(invocation_id) }}, '', '', {{ gemini_batch._sql_string(batch.gemini_model) }},
  {{ gemini_batch._sql_string(batch.location or target.get('location') or '') }},
  {{ "'SUCCEEDED'" if failed == 0 else "'PARTIALLY_SUCCEEDED'" }}, {{ sent }}, {{ succeeded }}, {{ failed }},
  {{ usage[3] | int }}, {{ usage[4] | int }}, {{ usage[5] | int }}, {{ usage[6] | int }},
  {{ 'null' if estimated is none else estimated }}, {{ 'null' if actual is none else actual }},
  timestamp {{ gemini_batch._sql_string(started ~ '+00:00') }}, current_timestamp(), current_timestamp(),
  null, current_timestamp())
  {%- endcall -%}
  {%- do totals.update({'sent': totals.sent + sent, 'answered': totals.answered + succeeded,
                        'failed': totals.failed + failed, 'statements': totals.statements + 1}) -%}
  {{ log("gemini_batch: " ~ model.name ~ ": AI.GENERATE " ~ job_name ~ (" (BigQuery job " ~ job_id ~ ")" if job_id else "")
         ~ ": " ~ sent ~ " sent, " ~ succeeded ~ " answered, " ~ failed ~ " failed"
         ~ (" (" ~ usage[2] ~ " retryable)" if usage[2] else ""), info=true) }}
{%- endmacro %}
