-- Every dish of the route ai_generate model is answered by the `dbt build` that built
-- it, and its answer parses into the typed columns of its output_columns.
select dish_id, batch_state, _parse_error
from (
    select dish_id, batch_state,
        {{ gemini_batch.parse_output('response', {'title': 'STRING', 'minutes': 'INT64'}) }}
    from {{ ref('recipe_answers_ai_generate') }}
)
where batch_state != 'succeeded' or _parse_error is not null or title is null
