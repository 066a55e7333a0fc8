-- Every response parser on every case (the real Vertex AI outputs and response_cases),
-- once with the response as JSON and once as JSON text (input_type='STRING'): one row
-- per (case, input_type, field), the value rendered as a string. Line breaks in texts
-- are written as \n, as in the seeds: BigQuery's CSV loads (dbt seeds) refuse quoted
-- line breaks. is_success reads the status and the parsed `response` in both halves: a
-- status '' whose text does not parse has no answer (as batch_state says).
{%- set safety -%}
  nullif(array_to_string(array(
    select concat(rating.category, '/', rating.probability, '/',
      coalesce(format('%.3f', rating.probability_score), ''), '/', coalesce(rating.severity, ''), '/',
      coalesce(format('%.3f', rating.severity_score), ''), '/', cast(rating.blocked as string))
    from unnest(RATINGS) as rating with offset as rating_index order by rating_index), ' | '), '')
{%- endset -%}
{%- set cited -%}
  nullif(array_to_string(array(
    select concat(cast(citation.start_index as string), '-', coalesce(cast(citation.end_index as string), ''),
      ' ', coalesce(citation.uri, ''), coalesce(concat(' "', citation.title, '"'), ''),
      coalesce(concat(' ', citation.license), ''),
      coalesce(concat(' ', cast(citation.publication_date as string)), ''))
    from unnest(CITATIONS) as citation with offset as citation_index order by citation_index), ' | '), '')
{%- endset %}

with cases as (
    select
        concat('vertex_', sample, '_', cast(line as string)) as case_name,
        coalesce(status, '') as status,
        response_text,
        safe.parse_json(response_text) as response
    from {{ ref('vertex_outputs') }}
    union all
    select
        case_name,
        if(case_name = 'pending', null, coalesce(status, '')) as status,
        response_text,
        safe.parse_json(response_text) as response
    from {{ ref('response_cases') }}
)

{%- for response, input_type in [('response', 'JSON'), ('response_text', 'STRING')] %}
  {%- set fields = {
      'response_text': "replace(" ~ gemini_batch.response_text(response, input_type=input_type) ~ ", '\\n', '\\\\n')",
      'response_text_1': "replace(" ~ gemini_batch.response_text(response, 1, input_type) ~ ", '\\n', '\\\\n')",
      'response_text_5': "replace(" ~ gemini_batch.response_text(response, 5, input_type) ~ ", '\\n', '\\\\n')",
      'finish_reason': gemini_batch.finish_reason(response, input_type=input_type),
      'finish_reason_1': gemini_batch.finish_reason(response, 1, input_type),
      'block_reason': gemini_batch.block_reason(response, input_type),
      'model_version': gemini_batch.model_version(response, input_type),
      'avg_logprobs': "format('%.6f', " ~ gemini_batch.avg_logprobs(response, input_type=input_type) ~ ")",
      'avg_logprobs_1': "format('%.6f', " ~ gemini_batch.avg_logprobs(response, 1, input_type) ~ ")",
      'safety_ratings': safety | replace('RATINGS', gemini_batch.safety_ratings(response, input_type=input_type)),
      'safety_ratings_1': safety | replace('RATINGS', gemini_batch.safety_ratings(response, 1, input_type)),
      'citations': cited | replace('CITATIONS', gemini_batch.citations(response, input_type=input_type)),
      'citations_1': cited | replace('CITATIONS', gemini_batch.citations(response, 1, input_type)),
      'is_success': 'cast(' ~ gemini_batch.is_success('status', 'response') ~ ' as string)',
      'error_code': 'cast(' ~ gemini_batch.error_code('status') ~ ' as string)',
      'error_message': gemini_batch.error_message('status'),
  } -%}
  {%- for kind in ['prompt', 'candidates', 'total', 'thoughts', 'cached'] -%}
    {%- do fields.update({kind ~ '_tokens': 'cast(' ~ gemini_batch.token_count(response, kind, input_type) ~ ' as string)'}) -%}
  {%- endfor -%}
  {%- for name, sql in fields.items() %}
    select case_name, '{{ input_type }}' as input_type, '{{ name }}' as field, {{ sql }} as actual
    from cases
    {{- '\n    union all' if not loop.last }}
  {%- endfor -%}
{{ '\nunion all' if not loop.last }}
{%- endfor %}
