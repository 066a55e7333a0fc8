-- gemini_batch.parse_output on every parse_output_cases row, three ways: the response
-- as JSON, as JSON text (input_type='STRING'), and the answer text already extracted
-- (input_type='TEXT'; a blocked answer has no text, so it reads as nothing to parse and
-- is left out). One row per (case, input_type, column), the value as a string.
{%- set recipe_columns = {
    'title': 'STRING',
    'calories': 'INT64',
    'rating': {'type': 'FLOAT64', 'nullable': true},
    'price': 'NUMERIC',
    'vegan': 'BOOL',
    'published_on': 'DATE',
    'cooked_at': 'TIMESTAMP',
    'ingredients': 'ARRAY<STRING>',
    'steps': 'ARRAY<INT64>',
} %}

with cases as (
    select
        case_name,
        response_text,
        safe.parse_json(response_text) as response,
        {{ gemini_batch.response_text('response_text', input_type='STRING') }} as answer
    from {{ ref('parse_output_cases') }}
),

parsed as (
    select case_name, 'JSON' as input_type,
        {{ gemini_batch.parse_output('response', recipe_columns) }}
    from cases
    union all
    select case_name, 'STRING' as input_type,
        {{ gemini_batch.parse_output('response_text', recipe_columns, input_type='STRING') }}
    from cases
    union all
    select case_name, 'TEXT' as input_type,
        {{ gemini_batch.parse_output('answer', recipe_columns, input_type='TEXT') }}
    from cases
    where case_name != 'blocked'
),

-- Each column as text. (The emulator cannot unpivot these expressions inside STRUCT()
-- directly: see docs/local-stack.md.)
rendered as (
    select
        case_name,
        input_type,
        title,
        cast(calories as string) as calories,
        format('%.2f', rating) as rating,
        format('%.2f', price) as price,
        cast(vegan as string) as vegan,
        cast(published_on as string) as published_on,
        format_timestamp('%Y-%m-%dT%H:%M:%SZ', cooked_at) as cooked_at,
        nullif(array_to_string(ingredients, '|'), '') as ingredients,
        nullif(array_to_string(array(
            select cast(step as string) from unnest(steps) as step with offset as step_index
            order by step_index), ','), '') as steps,
        _parse_error
    from parsed
)

select rendered.case_name, rendered.input_type, unpivoted.field, unpivoted.actual
from rendered
cross join unnest([
    {%- for name in ['title', 'calories', 'rating', 'price', 'vegan', 'published_on', 'cooked_at',
                     'ingredients', 'steps', '_parse_error'] %}
    struct('{{ name }}' as field, rendered.{{ name }} as actual){{ ',' if not loop.last }}
    {%- endfor %}
]) as unpivoted
