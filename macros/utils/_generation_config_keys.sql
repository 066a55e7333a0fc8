{#- The GenerationConfig fields of Vertex AI's REST API (camelCase), each with the kind
    of constant it takes ('number', 'integer', 'bool', 'list', 'dict', or 'sql' for the
    fields a string literal fills, which must be written as SQL: "'text/plain'").
    `gemini_batch.request` checks `generation_config` against it at compile time and
    `gemini_batch.request_problems` checks built requests against it in SQL. -#}
{% macro _generation_config_keys() -%}
  {{ return({
      'audioTimestamp': 'bool',
      'candidateCount': 'integer',
      'enableAffectiveDialog': 'bool',
      'frequencyPenalty': 'number',
      'imageConfig': 'dict',
      'logprobs': 'integer',
      'maxOutputTokens': 'integer',
      'mediaResolution': 'sql',
      'presencePenalty': 'number',
      'responseJsonSchema': 'dict',
      'responseLogprobs': 'bool',
      'responseMimeType': 'sql',
      'responseModalities': 'list',
      'responseSchema': 'dict',
      'routingConfig': 'dict',
      'seed': 'integer',
      'speechConfig': 'dict',
      'stopSequences': 'list',
      'temperature': 'number',
      'thinkingConfig': 'dict',
      'topK': 'number',
      'topP': 'number',
  }) }}
{%- endmacro %}
