-- One row per way of calling the request builders: `request` as built, `actual` its
-- JSON text, `expected` the text it must be, byte for byte (request_cases_expected seed).
{%- set recipe_columns = {
    'title': {'type': 'STRING', 'description': 'Name of the dish'},
    'calories': 'INT64',
    'vegan': 'BOOL',
    'ingredients': 'ARRAY<STRING>',
    'price': 'NUMERIC',
    'rating': {'type': 'float64', 'nullable': true},
    'published_on': 'DATE',
    'cooked_at': 'TIMESTAMP',
    'steps': 'array<int64>',
} %}

with dishes as (
    select * from {{ ref('recipe_dishes') }}
),

documents as (
    select * from {{ ref('documents') }}
),

cases as (
    select 'prompt_literal' as case_name,
        {{ gemini_batch.request(prompt="'Give me a recipe for banana bread.'") }} as request

    union all
    select 'prompt_from_columns',
        {{ gemini_batch.request(prompt="concat('Give me a recipe for ', dish, '.')") }}
    from dishes where dish_id = 3

    union all
    -- A line comment in an expression must not swallow the macro's closing parenthesis.
    select 'expression_with_comment',
        {{ gemini_batch.request(prompt="concat('Give me a recipe for ', dish, '.') -- one per dish") }}
    from dishes where dish_id = 1

    union all
    select 'system_instruction_and_config',
        {{ gemini_batch.request(
            prompt='dish',
            system_instruction="'You are a pastry chef. Answer in French.'",
            generation_config={
                'temperature': 0.2, 'topP': 0.95, 'topK': 40, 'maxOutputTokens': 1024,
                'seed': 7, 'candidateCount': 1, 'responseLogprobs': false,
                'stopSequences': ["it's done", 'back\\slash', 'crème "brûlée"'],
                'thinkingConfig': {'thinkingBudget': 0, 'includeThoughts': false},
                'responseModalities': ['TEXT'],
            }) }}
    from dishes where dish_id = 1

    union all
    -- The same settings given in another order: the same bytes.
    select 'system_instruction_and_config_reordered',
        {{ gemini_batch.request(
            generation_config={
                'responseModalities': ['TEXT'],
                'thinkingConfig': {'includeThoughts': false, 'thinkingBudget': 0},
                'stopSequences': ["it's done", 'back\\slash', 'crème "brûlée"'],
                'responseLogprobs': false, 'candidateCount': 1, 'seed': 7,
                'maxOutputTokens': 1024, 'topK': 40, 'topP': 0.95, 'temperature': 0.2,
            },
            system_instruction="'You are a pastry chef. Answer in French.'",
            prompt='dish') }}
    from dishes where dish_id = 1

    union all
    select 'per_row_config',
        {{ gemini_batch.request(
            prompt='dish',
            generation_config={
                'temperature': 'temperature',
                'responseMimeType': "'text/plain'",
                'maxOutputTokens': 'if(dish_id = 2, 256, 512)',
                'mediaResolution': "'MEDIA_RESOLUTION_LOW'",
            }) }}
    from dishes where dish_id = 2

    union all
    select 'generation_config_expression',
        {{ gemini_batch.request(prompt='dish', generation_config="json_object('temperature', temperature)") }}
    from dishes where dish_id = 1

    union all
    select 'output_columns',
        {{ gemini_batch.request(prompt='dish', output_columns=recipe_columns) }}
    from dishes where dish_id = 1

    union all
    -- A column as a spec with enum (and description): one spec for the request and parse_output.
    select 'output_columns_enum',
        {{ gemini_batch.request(prompt='dish', output_columns={
            'course': {'type': 'STRING', 'enum': ['starter', 'main', 'dessert'],
                       'description': 'Where it goes in a meal'},
            'allergens': {'type': 'ARRAY<STRING>', 'enum': ['gluten', 'nuts', 'milk']},
            'servings': 'INT64',
        }) }}
    from dishes where dish_id = 1

    union all
    -- Plain text with a quote, a backslash, double quotes and a line break: just works.
    select 'system_instruction_literal',
        {{ gemini_batch.request(
            prompt='dish',
            system_instruction=gemini_batch.literal("You're a \"pastry\" chef.\nSave to C:\\recipes.")) }}
    from dishes where dish_id = 1

    union all
    select 'response_schema_dict',
        {{ gemini_batch.request(
            prompt='dish',
            response_schema={'type': 'ARRAY', 'items': {'type': 'STRING'}},
            generation_config={'temperature': 0}) }}
    from dishes where dish_id = 1

    union all
    select 'safety_and_tools',
        {{ gemini_batch.request(
            prompt='dish',
            safety_settings=[
                {'category': 'HARM_CATEGORY_HATE_SPEECH', 'threshold': 'BLOCK_ONLY_HIGH'},
                {'category': 'HARM_CATEGORY_DANGEROUS_CONTENT', 'threshold': 'BLOCK_NONE', 'method': 'SEVERITY'},
            ],
            tools=[{'googleSearch': {}}]) }}
    from dishes where dish_id = 1

    union all
    select 'multi_turn',
        {{ gemini_batch.request(contents=[
            gemini_batch.turn('user', [gemini_batch.text_part("'Name a cake.'")]),
            gemini_batch.turn('model', [gemini_batch.text_part('dish')]),
            gemini_batch.turn('user', [gemini_batch.text_part("'Now a recipe for it.'")]),
        ]) }}
    from dishes where dish_id = 2

    union all
    select 'file_part_object_table',
        {{ gemini_batch.request(
            contents=[gemini_batch.turn('user', [
                gemini_batch.file_part('uri', 'content_type'),
                gemini_batch.text_part('question'),
            ])],
            system_instruction=[gemini_batch.text_part("'Read the document.'")]) }}
    from documents where content_type = 'application/pdf'

    union all
    select 'https_file_part',
        {{ gemini_batch.request(contents=[gemini_batch.turn('user', [
            gemini_batch.text_part('question'),
            gemini_batch.file_part('uri', 'content_type'),
        ])]) }}
    from documents where starts_with(uri, 'https://')

    union all
    select 'contents_expression',
        {{ gemini_batch.request(
            contents="json_array(" ~ gemini_batch.turn('user', "json_array(" ~ gemini_batch.text_part('notes') ~ ")") ~ ")") }}
    from dishes where dish_id = 2
)

select
    cases.case_name,
    cases.request,
    to_json_string(cases.request) as actual,
    expected.expected
from {{ ref('request_cases_expected') }} as expected
full outer join cases
    on cases.case_name = expected.case_name
