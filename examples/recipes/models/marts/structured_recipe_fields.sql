-- Structured recipes as typed columns: one column per field of var('recipe_columns'),
-- the spec the request's responseSchema was built from, plus _parse_error.
select
    dessert_id,
    dessert,
    batch_state,
    {{ gemini_batch.parse_output('response', var('recipe_columns')) }}
from {{ ref('structured_recipes') }}
