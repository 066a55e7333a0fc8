{#- Fails on every row whose `column_name` is not a GenerateContentRequest Vertex AI
    batch prediction accepts; each failing row carries the model's columns (which name
    it) and the reason in `request_problem` (see gemini_batch.request_problems). JSON
    and STRING columns both work. `gemini_model` adds that model's rules; when not given,
    the tested model's own `gemini_model` setting (a gemini_batch model's) is used, if it
    has one. On a gemini_batch model's `request` column the test reads the reasons its
    build kept in `<model>__requests` (the same check, not run again). -#}
{% test valid_request(model, column_name, gemini_model=none) %}
  {{ return(adapter.dispatch('test_valid_request', 'gemini_batch')(model, column_name, gemini_model)) }}
{% endtest %}

{% macro default__test_valid_request(model, column_name, gemini_model=none) -%}
  {{ gemini_batch._bigquery_only('valid_request') }}
{%- endmacro %}

{% macro bigquery__test_valid_request(model, column_name, gemini_model=none) -%}
  {%- set found = namespace(model=gemini_model, batch=false) -%}
  {%- if gemini_model is none and execute -%}
    {#- The tested node is the test's parent: a batch model names its Gemini model. -#}
    {%- for node in graph.nodes.values() if node.resource_type == 'model'
          and node.alias == model.identifier and node.schema == model.schema -%}
      {%- set setting = (node.config.get('meta') or {}).get('gemini_model') or node.config.get('gemini_model') -%}
      {%- if setting -%}{%- set found.model = setting -%}{%- endif -%}
      {%- set found.batch = node.config.get('materialized') == 'gemini_batch' -%}
    {%- endfor -%}
  {%- endif -%}
  {%- if found.batch and column_name | lower == 'request' %}
{#- A batch model's requests were checked when it was built, with its own rules: its
    <model>__requests table keeps each row's reason (the rows the view shows). -#}
select *
from {{ api.Relation.create(database=model.database, schema=model.schema,
                            identifier=model.identifier ~ '__requests') }}
where request_problem is not null
  {%- else -%}
  {%- set input_type = gemini_batch._json_or_string_column(model, column_name, 'valid_request') -%}
select *
from (
    select
        *,
        {{ gemini_batch.request_problems(column_name, input_type=input_type,
              gemini_model=gemini_batch._sql_string(found.model) if found.model else none) | indent(8) }} as request_problem
    from {{ model }}
)
where request_problem is not null
  {%- endif -%}
{%- endmacro %}
