-- What Gemini saw in each image or video prompt.
select
    prompt_id,
    prompt,
    batch_state,
    {{ gemini_batch.response_text('response') }} as answer,
    {{ gemini_batch.finish_reason('response') }} as finish_reason,
    {{ gemini_batch.token_count('response', 'prompt') }} as prompt_tokens,
    {{ gemini_batch.token_count('response', 'total') }} as total_tokens
from {{ ref('media_objects') }}
