{#- One candidate's safety ratings (candidates[N].safetyRatings) as
    ARRAY<STRUCT<category STRING, probability STRING, probability_score FLOAT64,
    severity STRING, severity_score FLOAT64, blocked BOOL>>, in the service's order.
    Empty when the candidate has none (or does not exist). -#}
{% macro safety_ratings(response, candidate=0, input_type='JSON') -%}
  {{ return(adapter.dispatch('safety_ratings', 'gemini_batch')(response, candidate, input_type)) }}
{%- endmacro %}

{% macro default__safety_ratings(response, candidate, input_type) -%}
  {{ gemini_batch._bigquery_only('safety_ratings') }}
{%- endmacro %}

{% macro bigquery__safety_ratings(response, candidate, input_type) -%}
  {%- set fn = 'gemini_batch.safety_ratings' -%}
  {%- set r = gemini_batch._response_json(response, input_type, fn) -%}
  {%- set path = gemini_batch._candidate_path(candidate, fn) -%}
  array(
    select as struct
      json_value(rating, '$.category') as category,
      json_value(rating, '$.probability') as probability,
      lax_float64(json_query(rating, '$.probabilityScore')) as probability_score,
      json_value(rating, '$.severity') as severity,
      lax_float64(json_query(rating, '$.severityScore')) as severity_score,
      coalesce(lax_bool(json_query(rating, '$.blocked')), false) as blocked
    from unnest({{ gemini_batch._parts_of("json_query(" ~ r ~ ", '" ~ path ~ ".safetyRatings')") }})
      as rating with offset as rating_index
    order by rating_index
  )
{%- endmacro %}
