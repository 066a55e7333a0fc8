-- The same desserts, answered as typed columns: `output_columns` becomes the request's
-- responseSchema, and parse_output turns the answer back into columns downstream.
select
    dessert_id,
    dessert,
    {{ gemini_batch.request(
        prompt="concat('Write a recipe for ', dessert, '.')",
        system_instruction="'You are a pastry chef. Give precise quantities and short steps.'",
        output_columns=var('recipe_columns'),
    ) }} as request
from {{ ref('desserts') }}
