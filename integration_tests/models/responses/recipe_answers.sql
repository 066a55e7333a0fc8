-- A downstream model as a user writes it: the answer of each row of a batch model (here
-- the parse_output_cases seed, its response as JSON text), its finish reason and tokens,
-- and the recipe it holds as typed columns.
select
    case_name,
    {{ gemini_batch.response_text('response_text', input_type='STRING') }} as answer_text,
    {{ gemini_batch.finish_reason('response_text', input_type='STRING') }} as finish_reason,
    {{ gemini_batch.token_count('response_text', 'total', input_type='STRING') }} as total_tokens,
    {{ gemini_batch.parse_output('response_text', {
        'title': 'STRING',
        'calories': 'INT64',
        'ingredients': 'ARRAY<STRING>',
    }, input_type='STRING') }}
from {{ ref('parse_output_cases') }}
