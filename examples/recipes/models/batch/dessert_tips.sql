-- One pastry tip per dessert, answered inside a plain `dbt run`: route 'ai_generate'
-- sends the pending requests through BigQuery's AI.GENERATE (at the batch rate, into
-- the same cache as a batch job's answers; docs/routes.md). No `gemini-batch` step.
{{ config(meta={'route': 'ai_generate', 'max_cost_usd': 1}) }}

select
    dessert_id,
    dessert,
    {{ gemini_batch.request(
        prompt="concat('One tip, in one sentence, for baking ', dessert, '.')",
        system_instruction="'You are a pastry chef. Answer in one sentence.'",
        generation_config={'maxOutputTokens': 256, 'thinkingConfig': {'thinkingBudget': 0}},
    ) }} as request
from {{ ref('desserts') }}
