-- A batch model on route ai_generate: `dbt build` answers it through BigQuery's
-- AI.GENERATE (the local BigQuery answers it on the stack). The per-row temperature
-- makes one model_params group per distinct value: one statement each.
{{ config(materialized='gemini_batch',
          meta={'gemini_model': 'gemini-2.5-flash', 'route': 'ai_generate',
                'max_cost_usd': 1}) }}

select
    dish_id,
    {{ gemini_batch.request(
        prompt="concat('Give me a recipe for ', dish, '.')",
        system_instruction="'You are a chef.'",
        generation_config={'temperature': 'temperature', 'maxOutputTokens': 1024},
        output_columns={'title': 'STRING', 'minutes': 'INT64'},
    ) }} as request
from {{ ref('recipe_dishes') }}
