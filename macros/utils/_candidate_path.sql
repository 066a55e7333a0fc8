{#- The JSONPath of one candidate of a GenerateContentResponse, '$.candidates[N]'. A
    JSONPath must be a literal in BigQuery, so the index is a number known when the
    model compiles, never a column. -#}
{% macro _candidate_path(candidate, fn) -%}
  {%- if candidate is not number or candidate is boolean or candidate != candidate | int
        or candidate < 0 -%}
    {{ exceptions.raise_compiler_error(
        fn ~ ": candidate is the index of a candidate, a whole number from 0 (the first, "
        ~ "and the only one unless generationConfig.candidateCount > 1); got " ~ candidate) }}
  {%- endif -%}
  {{- '$.candidates[' ~ candidate | int ~ ']' -}}
{%- endmacro %}
