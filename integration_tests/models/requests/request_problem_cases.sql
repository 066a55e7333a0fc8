-- Valid and broken requests: `expected` is what gemini_batch.request_problems must say
-- (NULL for a valid request), from the request as JSON text and as a JSON value.
select
    case_name,
    request_text,
    safe.parse_json(request_text) as request,
    {{ gemini_batch.request_problems('request_text', input_type='STRING', gemini_model='gemini_model') }} as actual_from_string,
    {{ gemini_batch.request_problems('safe.parse_json(request_text)', gemini_model='gemini_model') }} as actual_from_json,
    expected_problem as expected
from {{ ref('request_problem_inputs') }}
