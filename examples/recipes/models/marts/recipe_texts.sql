-- Free-text recipes, one row per dessert, ready for analysis.
select
    dessert_id,
    dessert,
    batch_state,
    {{ gemini_batch.response_text('response') }} as recipe_text,
    {{ gemini_batch.finish_reason('response') }} as finish_reason,
    {{ gemini_batch.token_count('response', 'prompt') }} as prompt_tokens,
    {{ gemini_batch.token_count('response', 'candidates') }} as candidates_tokens,
    {{ gemini_batch.token_count('response', 'total') }} as total_tokens,
    {{ gemini_batch.model_version('response') }} as model_version,
    {{ gemini_batch.error_message('status') }} as error_message
from {{ ref('recipes') }}
