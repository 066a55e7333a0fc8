{#- The gemini_batch config keys of the model being built, checked and with defaults
    applied (the same keys, defaults and limits as python/gemini_batch/config.py and
    docs/materialization.md). Raises a compiler error naming the model and the key. -#}
{% macro _gemini_batch_config() -%}
  {%- set meta = config.get('meta', {}) or {} -%}
  {%- set where = "gemini_batch model " ~ model.unique_id ~ " (" ~ model.original_file_path ~ ")" -%}

  {%- set gemini_model = gemini_batch._gemini_batch_setting(meta, 'gemini_model') -%}
  {%- if gemini_model is none or gemini_model is not string or gemini_model | trim == '' -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": config 'gemini_model' is required, e.g. "
        ~ "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash') }}") }}
  {%- endif -%}
  {%- if not modules.re.match('^[A-Za-z0-9][A-Za-z0-9._@/-]*$', gemini_model) -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": config 'gemini_model' = '" ~ gemini_model ~ "' is not a Gemini model name "
        ~ "(letters, digits, '.', '-', '_', '@', '/'; e.g. 'gemini-2.5-flash')") }}
  {%- endif -%}

  {%- set location = gemini_batch._gemini_batch_setting(meta, 'location') -%}
  {%- if location is not none -%}
    {%- if location is not string or not modules.re.match('^[a-z]+(-[a-z0-9]+)*$', location | lower) -%}
      {{ exceptions.raise_compiler_error(
          where ~ ": config 'location' = " ~ location ~ " is not a Google Cloud region "
          ~ "(e.g. 'us-central1'); leave it out to use the dataset's location") }}
    {%- endif -%}
    {%- if location | lower in ['us', 'eu'] -%}
      {{ exceptions.raise_compiler_error(
          where ~ ": config 'location' = '" ~ location ~ "' is a multi-region; Vertex AI "
          ~ "batch jobs need a regional dataset and location (e.g. 'us-central1', 'europe-west4')") }}
    {%- endif -%}
  {%- endif -%}

  {%- set checked = {'gemini_model': gemini_model, 'location': location} -%}
  {%- set whole_numbers = [
      ('max_retries', 2, 0, 100),
      ('shard_size', 200000, 1, 200000),
      ('max_concurrent_jobs', 4, 1, 100)] -%}
  {%- for name, default, lowest, highest in whole_numbers -%}
    {%- set value = gemini_batch._gemini_batch_setting(meta, name, default) -%}
    {%- if value is boolean or value is not number or value != value | int
          or value < lowest or value > highest -%}
      {{ exceptions.raise_compiler_error(
          where ~ ": config '" ~ name ~ "' must be a whole number from " ~ lowest ~ " to "
          ~ highest ~ (" (the Vertex AI limit of requests per batch job)" if name == 'shard_size' else "")
          ~ "; got " ~ value) }}
    {%- endif -%}
    {%- do checked.update({name: value | int}) -%}
  {%- endfor -%}

  {%- set max_cost_usd = gemini_batch._gemini_batch_setting(meta, 'max_cost_usd') -%}
  {%- if max_cost_usd is not none and (max_cost_usd is boolean or max_cost_usd is not number
        or max_cost_usd < 0) -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": config 'max_cost_usd' must be a number of US dollars >= 0 (or left out "
        ~ "for no cap); got " ~ max_cost_usd) }}
  {%- endif -%}
  {%- do checked.update({'max_cost_usd': max_cost_usd}) -%}

  {%- for name, default in [('keep_job_tables', false), ('fail_on_failed_rows', true)] -%}
    {%- set value = gemini_batch._gemini_batch_setting(meta, name, default) -%}
    {%- if value is not boolean -%}
      {{ exceptions.raise_compiler_error(
          where ~ ": config '" ~ name ~ "' must be true or false; got " ~ value) }}
    {%- endif -%}
    {%- do checked.update({name: value}) -%}
  {%- endfor -%}

  {%- set labels = gemini_batch._gemini_batch_setting(meta, 'labels', {}) or {} -%}
  {%- if labels is not mapping -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": config 'labels' must be a mapping of label names to values; got " ~ labels) }}
  {%- endif -%}
  {%- do checked.update({'labels': labels}) -%}

  {%- if config.get('contract', {}).enforced -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": model contracts are not supported by materialized='gemini_batch' (the "
        ~ "model relation is a view with columns the package adds); remove contract.enforced") }}
  {%- endif -%}

  {{ return(checked) }}
{%- endmacro %}


{#- One setting: from config(meta={...}) (where dbt 1.10+ wants custom keys), else from
    the top of config(). meta is read first because dbt warns when config.get() finds a
    key only under meta. -#}
{% macro _gemini_batch_setting(meta, name, default=none) -%}
  {{ return(meta[name] if name in meta else config.get(name, default)) }}
{%- endmacro %}
