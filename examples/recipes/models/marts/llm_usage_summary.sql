-- One row per batch model: how many rows are answered, and what they used.
{% set batch_models = ['recipes', 'media_objects', 'structured_recipes', 'dessert_tips'] %}
{% for model_name in batch_models %}
select
    '{{ model_name }}' as batch_model,
    count(*) as requests,
    countif(batch_state = 'succeeded') as succeeded,
    countif(batch_state = 'pending') as pending,
    countif(batch_state = 'failed') as failed,
    sum({{ gemini_batch.token_count('response', 'prompt') }}) as prompt_tokens,
    sum({{ gemini_batch.token_count('response', 'candidates') }}) as candidates_tokens,
    sum({{ gemini_batch.token_count('response', 'total') }}) as total_tokens
from {{ ref(model_name) }}
{% if not loop.last %}union all{% endif %}
{% endfor %}
