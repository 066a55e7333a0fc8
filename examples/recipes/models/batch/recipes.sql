-- One free-text recipe per dessert: the tutorial's text prompts, written in SQL.
select
    dessert_id,
    dessert,
    {{ gemini_batch.request(
        prompt="concat('Give me a recipe for ', dessert, '.')",
        generation_config={'temperature': 0.2, 'maxOutputTokens': 2048},
    ) }} as request
from {{ ref('desserts') }}
