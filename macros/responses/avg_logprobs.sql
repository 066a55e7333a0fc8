{#- The average log probability of one candidate's tokens (candidates[N].avgLogprobs),
    FLOAT64. NULL when absent, and when the service wrote "NaN" (it does for a candidate
    without tokens, e.g. finishReason RECITATION), so that AVG() over a column stays a
    number. -#}
{% macro avg_logprobs(response, candidate=0, input_type='JSON') -%}
  {{ return(adapter.dispatch('avg_logprobs', 'gemini_batch')(response, candidate, input_type)) }}
{%- endmacro %}

{% macro default__avg_logprobs(response, candidate, input_type) -%}
  {{ gemini_batch._bigquery_only('avg_logprobs') }}
{%- endmacro %}

{% macro bigquery__avg_logprobs(response, candidate, input_type) -%}
  {%- set fn = 'gemini_batch.avg_logprobs' -%}
  {%- set r = gemini_batch._response_json(response, input_type, fn) -%}
  {%- set value = "lax_float64(json_query(" ~ r ~ ", '" ~ gemini_batch._candidate_path(candidate, fn) ~ ".avgLogprobs'))" -%}
  case when not is_nan({{ value }}) then {{ value }} end
{%- endmacro %}
