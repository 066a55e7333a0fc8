{#- The gemini_batch settings, in the order the docs list them: name -> type ('string',
    'integer', 'number', 'boolean', 'mapping'), default, required, inclusive limits
    (min, max) or an exclusive lower one (above), the pattern a string must match, or
    the choices it must be one of; a key left out is none. The Jinja side of python/gemini_batch/config.py's BatchModelConfig:
    tests/unit/test_rules_agree.py holds the two together, docs/materialization.md
    explains them. -#}
{% macro _gemini_batch_settings() -%}
  {{ return({
      'gemini_model': {'type': 'string', 'required': true, 'pattern': '^[A-Za-z0-9][A-Za-z0-9._@/-]*$'},
      'location': {'type': 'string', 'pattern': '^[a-z]+(-[a-z0-9]+)*$'},
      'max_retries': {'type': 'integer', 'default': 2, 'min': 0, 'max': 100},
      'shard_size': {'type': 'integer', 'default': 200000, 'min': 1, 'max': 200000},
      'max_concurrent_jobs': {'type': 'integer', 'default': 4, 'min': 1, 'max': 100},
      'max_queue_hours': {'type': 'number', 'above': 0, 'max': 72},
      'max_cost_usd': {'type': 'number', 'min': 0},
      'max_cost_mode': {'type': 'string', 'default': 'estimate', 'choices': ['estimate', 'worst_case']},
      'keep_job_tables': {'type': 'boolean', 'default': false},
      'labels': {'type': 'mapping', 'default': {}},
      'fail_on_failed_rows': {'type': 'boolean', 'default': true},
      'retry_empty_answers': {'type': 'boolean', 'default': false},
      'empty_retries': {'type': 'integer', 'default': 1, 'min': 0, 'max': 100},
      'canary': {'type': 'boolean', 'default': true},
      'canary_min_rows': {'type': 'integer', 'default': 2000, 'min': 1, 'max': 20000000},
      'canary_max_failed_share': {'type': 'number', 'default': 0.2, 'min': 0, 'max': 1},
      'canary_share': {'type': 'number', 'default': 0.01, 'min': 0, 'max': 1},
      'canary_min_sample': {'type': 'integer', 'default': 100, 'min': 1, 'max': 200000},
      'canary_max_sample': {'type': 'integer', 'default': 1000, 'min': 1, 'max': 200000},
      'route': {'type': 'string', 'default': 'batch', 'choices': ['batch', 'ai_generate', 'auto']},
      'ai_generate_max_rows': {'type': 'integer', 'default': 10000, 'min': 1, 'max': 10000000},
      'connection_id': {'type': 'string', 'pattern': '^[A-Za-z0-9_-]+([.][A-Za-z0-9_-]+){0,2}$'},
      'ai_generate_request_type': {'type': 'string', 'default': 'UNSPECIFIED', 'choices': ['UNSPECIFIED', 'SHARED', 'DEDICATED']},
  }) }}
{%- endmacro %}


{#- BigQuery's multi-region locations, lowercase: Vertex AI batch jobs refuse them (they
    need a regional dataset). The Jinja side of config.MULTI_REGIONS. -#}
{% macro _gemini_batch_multi_regions() -%}
  {{ return(['eu', 'us']) }}
{%- endmacro %}


{#- The gemini_batch config keys of the model being built, checked and with defaults
    applied (_gemini_batch_settings). Raises a compiler error naming the model and the
    key. -#}
{% macro _gemini_batch_config() -%}
  {%- set meta = config.get('meta', {}) or {} -%}
  {%- set where = "gemini_batch model " ~ model.unique_id ~ " (" ~ model.original_file_path ~ ")" -%}
  {%- set settings = gemini_batch._gemini_batch_settings() -%}

  {%- set gemini_model = gemini_batch._gemini_batch_setting(meta, 'gemini_model') -%}
  {%- if gemini_model is none or gemini_model is not string or gemini_model | trim == '' -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": config 'gemini_model' is required, e.g. "
        ~ "{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash') }}") }}
  {%- endif -%}
  {%- if not modules.re.match(settings.gemini_model.pattern, gemini_model) -%}
    {{ exceptions.raise_compiler_error(
        where ~ ": config 'gemini_model' = '" ~ gemini_model ~ "' is not a Gemini model name "
        ~ "(letters, digits, '.', '-', '_', '@', '/'; e.g. 'gemini-2.5-flash')") }}
  {%- endif -%}

  {%- set location = gemini_batch._gemini_batch_setting(meta, 'location') -%}
  {%- if location is not none -%}
    {%- if location is not string or not modules.re.match(settings.location.pattern, location | lower) -%}
      {{ exceptions.raise_compiler_error(
          where ~ ": config 'location' = " ~ location ~ " is not a Google Cloud region "
          ~ "(e.g. 'us-central1'); leave it out to use the dataset's location") }}
    {%- endif -%}
    {%- if location | lower in gemini_batch._gemini_batch_multi_regions() -%}
      {{ exceptions.raise_compiler_error(
          where ~ ": config 'location' = '" ~ location ~ "' is a multi-region; Vertex AI "
          ~ "batch jobs need a regional dataset and location (e.g. 'us-central1', 'europe-west4')") }}
    {%- endif -%}
  {%- endif -%}

  {%- set checked = {'gemini_model': gemini_model, 'location': location} -%}
  {%- for name, setting in settings.items() if name not in checked -%}
    {%- set value = gemini_batch._gemini_batch_setting(meta, name, setting.get('default')) -%}
    {%- set lowest, highest = setting.get('min'), setting.get('max') -%}
    {%- if setting.type == 'integer' -%}
      {%- if value is boolean or value is not number or value != value | int
            or value < lowest or value > highest -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": config '" ~ name ~ "' must be a whole number from " ~ lowest ~ " to "
            ~ highest ~ (" (the Vertex AI limit of requests per batch job)" if name == 'shard_size' else "")
            ~ "; got " ~ value) }}
      {%- endif -%}
      {%- set value = value | int -%}
    {%- elif setting.type == 'number' -%}
      {%- set above = setting.get('above') -%}
      {%- if value is not none and (value is boolean or value is not number
            or (lowest is not none and value < lowest) or (above is not none and value <= above)
            or (highest is not none and value > highest)) -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": config '" ~ name ~ "' must be "
            ~ ("a number of hours above " ~ above ~ " and at most " ~ highest ~ " (a job still "
               ~ "queued at " ~ highest ~ " hours expires), or left out for no deadline"
               if above is not none
               else "a number of US dollars >= " ~ lowest ~ " (or left out for no cap)"
               if highest is none else "a share from " ~ lowest ~ " to " ~ highest)
            ~ "; got " ~ value) }}
      {%- endif -%}
    {%- elif setting.type == 'boolean' -%}
      {%- if value is not boolean -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": config '" ~ name ~ "' must be true or false; got " ~ value) }}
      {%- endif -%}
    {%- elif setting.type == 'string' and setting.pattern -%}
      {%- if value is not none and (value is not string or not modules.re.match(setting.pattern, value)) -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": config '" ~ name ~ "' = " ~ value ~ " is not a BigQuery connection id "
            ~ "('connection' in the dataset's location, 'location.connection' or "
            ~ "'project.location.connection'); leave it out to use your own credentials") }}
      {%- endif -%}
    {%- elif setting.type == 'string' -%}
      {%- if value not in setting.choices -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": config '" ~ name ~ "' must be one of '" ~ setting.choices | join("', '")
            ~ "'; got " ~ value) }}
      {%- endif -%}
    {%- elif setting.type == 'mapping' -%}
      {%- set value = value or {} -%}
      {%- if value is not mapping -%}
        {{ exceptions.raise_compiler_error(
            where ~ ": config '" ~ name ~ "' must be a mapping of label names to values; got " ~ value) }}
      {%- endif -%}
    {%- endif -%}
    {%- do checked.update({name: value}) -%}
  {%- endfor -%}

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
