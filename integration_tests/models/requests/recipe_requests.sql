-- A model as a user writes one: a recipe request per dish, with a per-row temperature
-- and structured output. `request_json` is there for the unit test (JSON values cannot
-- be compared with EXCEPT on BigQuery).
with requests as (
    select
        dish_id,
        {{ gemini_batch.request(
            prompt="concat('Give me a recipe for ', dish, '.')",
            system_instruction="'You are a chef.'",
            generation_config={'temperature': 'temperature', 'maxOutputTokens': 1024},
            output_columns={
                'title': {'type': 'STRING', 'description': 'Name of the dish'},
                'minutes': 'INT64',
            },
        ) | indent(8) }} as request
    from {{ ref('recipe_dishes') }}
)

select dish_id, request, to_json_string(request) as request_json
from requests
