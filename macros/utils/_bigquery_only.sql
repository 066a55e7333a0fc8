{#- The default__ of every dispatched macro: the package writes BigQuery SQL only. -#}
{% macro _bigquery_only(macro_name) -%}
  {{ exceptions.raise_compiler_error(
      "gemini_batch." ~ macro_name ~ " supports BigQuery only, but this project runs on '"
      ~ adapter.type() ~ "'. Use a dbt-bigquery profile (Vertex AI batch prediction "
      ~ "reads its requests from BigQuery).") }}
{%- endmacro %}
