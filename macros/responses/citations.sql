{#- One candidate's citations (candidates[N].citationMetadata.citations, or
    .citationSources as the Gemini API names them) as ARRAY<STRUCT<start_index INT64,
    end_index INT64, uri STRING, title STRING, license STRING, publication_date DATE>>,
    in the service's order. start_index is 0 when left out (the service omits zeros);
    publication_date is NULL unless year, month and day are all given. Empty when the
    candidate cites nothing. -#}
{% macro citations(response, candidate=0, input_type='JSON') -%}
  {{ return(adapter.dispatch('citations', 'gemini_batch')(response, candidate, input_type)) }}
{%- endmacro %}

{% macro default__citations(response, candidate, input_type) -%}
  {{ gemini_batch._bigquery_only('citations') }}
{%- endmacro %}

{% macro bigquery__citations(response, candidate, input_type) -%}
  {%- set fn = 'gemini_batch.citations' -%}
  {%- set r = gemini_batch._response_json(response, input_type, fn) -%}
  {%- set path = gemini_batch._candidate_path(candidate, fn) -%}
  {%- set list -%}
    coalesce(json_query({{ r }}, '{{ path }}.citationMetadata.citations'),
             json_query({{ r }}, '{{ path }}.citationMetadata.citationSources'))
  {%- endset -%}
  array(
    select as struct
      coalesce(lax_int64(json_query(citation, '$.startIndex')), 0) as start_index,
      lax_int64(json_query(citation, '$.endIndex')) as end_index,
      json_value(citation, '$.uri') as uri,
      json_value(citation, '$.title') as title,
      json_value(citation, '$.license') as license,
      safe.date(
        lax_int64(json_query(citation, '$.publicationDate.year')),
        lax_int64(json_query(citation, '$.publicationDate.month')),
        lax_int64(json_query(citation, '$.publicationDate.day'))) as publication_date
    from unnest({{ gemini_batch._parts_of(list) }}) as citation with offset as citation_index
    order by citation_index
  )
{%- endmacro %}
