-- The text tutorial's requests, rebuilt from their prompts: one user turn per row.
select
    line,
    {{ gemini_batch.request(prompt='prompt') }} as request
from {{ ref('vertex_text_prompts') }}
