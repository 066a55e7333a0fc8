{#- How the error in a Vertex AI output row's `status` (STRING: '' on success) is read,
    shared by error_code and error_message. Returns a dict of SQL expressions:
      code     INT64, the HTTP status code of the error
      message  STRING, the error's message
    Both are NULL for a success ('') or a NULL status. The formats read, first match wins:
      'Bad Request: {"error": {"code": 400, "message": "...", "status": "INVALID_ARGUMENT"}}'
          (what the service writes: HTTP reason, then the Google API error body), or the
          body alone, or {"code": ..., "message": ...}; a code under 100 is a gRPC code
          and is mapped to its HTTP code
      '429 RESOURCE_EXHAUSTED: message' / '429 Too Many Requests: message' / '503 message'
      'RESOURCE_EXHAUSTED: message', '[ORIGINAL ERROR] generic::resource_exhausted: message'
      'Too Many Requests: message', '... code: 429 ...'
    Anything else: code NULL and the whole (trimmed) status as the message. -#}
{% macro _status_error(status) -%}
  {%- set reasons = [
      ('bad request', 400), ('unauthorized', 401), ('forbidden', 403), ('not found', 404),
      ('conflict', 409), ('too many requests', 429), ('client closed request', 499),
      ('internal server error', 500), ('not implemented', 501), ('bad gateway', 502),
      ('service unavailable', 503), ('gateway timeout', 504)] -%}
  {%- set names = gemini_batch._grpc_status_codes() | map(attribute=0) | join('|') -%}
  {%- set phrases = reasons | map(attribute=0) | join('|') -%}

  {%- set text = "nullif(trim(" ~ status ~ "), '')" -%}
  {%- set body = "safe.parse_json(regexp_extract(" ~ text ~ ", r'(?s)(\\{.*\\})'))" -%}
  {%- set error = "coalesce(json_query(" ~ body ~ ", '$.error'), " ~ body ~ ")" -%}
  {%- set body_code = "lax_int64(json_query(" ~ error ~ ", '$.code'))" -%}

  {%- set code -%}
    coalesce(
      if({{ body_code }} >= 100, {{ body_code }}, case {{ body_code }}
        {%- for name, number, http in gemini_batch._grpc_status_codes() %} when {{ number }} then {{ http }}{% endfor %}
      end),
      {{ gemini_batch._http_code_of_status_name("json_value(" ~ error ~ ", '$.status')") }},
      safe_cast(regexp_extract({{ text }}, r'^([45][0-9][0-9])\b') as int64),
      {{ gemini_batch._http_code_of_status_name("upper(regexp_extract(" ~ text ~ ", r'generic::([a-z_]+)'))") }},
      {{ gemini_batch._http_code_of_status_name("regexp_extract(" ~ text ~ ", r'\\b(" ~ names ~ ")\\b')") }},
      case lower(regexp_extract({{ text }}, r'(?i)^({{ phrases }})\b'))
        {%- for phrase, http in reasons %} when '{{ phrase }}' then {{ http }}{% endfor %}
      end,
      safe_cast(regexp_extract({{ text }}, r'(?i)\bcode\b\W{0,3}([45][0-9][0-9])\b') as int64)
    )
  {%- endset -%}

  {#- What leads a plain-text status: "[ORIGINAL ERROR] ", "generic::name: ", "429 ",
      "RESOURCE_EXHAUSTED" or "Too Many Requests", and the punctuation after them. -#}
  {%- set prefix = "^(?:\\[ORIGINAL ERROR\\]\\s*)?(?:generic::[a-z_]+\\b)?\\W*(?:[45][0-9][0-9]\\b)?\\W*"
      ~ "(?:(?:" ~ names ~ ")\\b|(?i:" ~ phrases ~ ")\\b)?[\\s:.,;-]*" -%}
  {%- set message -%}
    coalesce(
      nullif(trim(json_value({{ error }}, '$.message')), ''),
      nullif(trim(regexp_replace({{ text }}, r'{{ prefix }}', '')), ''),
      {{ text }}
    )
  {%- endset -%}
  {{ return({'code': code, 'message': message}) }}
{%- endmacro %}

{#- gRPC status codes: (name, number, the HTTP code Google APIs map it to). -#}
{% macro _grpc_status_codes() -%}
  {{ return([
      ('CANCELLED', 1, 499), ('UNKNOWN', 2, 500), ('INVALID_ARGUMENT', 3, 400),
      ('DEADLINE_EXCEEDED', 4, 504), ('NOT_FOUND', 5, 404), ('ALREADY_EXISTS', 6, 409),
      ('PERMISSION_DENIED', 7, 403), ('RESOURCE_EXHAUSTED', 8, 429),
      ('FAILED_PRECONDITION', 9, 400), ('ABORTED', 10, 409), ('OUT_OF_RANGE', 11, 400),
      ('UNIMPLEMENTED', 12, 501), ('INTERNAL', 13, 500), ('UNAVAILABLE', 14, 503),
      ('DATA_LOSS', 15, 500), ('UNAUTHENTICATED', 16, 401)]) }}
{%- endmacro %}

{#- The HTTP code (INT64) of a gRPC status name given as a SQL expression; NULL for
    anything else. -#}
{% macro _http_code_of_status_name(name_sql) -%}
  case {{ name_sql }}
    {%- for name, number, http in gemini_batch._grpc_status_codes() %} when '{{ name }}' then {{ http }}{% endfor %}
  end
{%- endmacro %}
