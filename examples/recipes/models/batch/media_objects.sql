-- The tutorial's multimodal prompts: a question plus one or more gs:// images or videos.
-- The files come one row each (as from a BigQuery object table: uri, content_type) and
-- are gathered into the parts of one user turn, in order.
with files as (
    select
        prompt_id,
        array_agg({{ gemini_batch.file_part('file_uri', 'mime_type') }} order by position) as file_parts
    from {{ ref('media_files') }}
    group by prompt_id
)

select
    prompts.prompt_id,
    prompts.prompt,
    {{ gemini_batch.request(contents=[
        gemini_batch.turn('user',
            'array_concat([' ~ gemini_batch.text_part('prompts.prompt') ~ '], files.file_parts)')
    ]) }} as request
from {{ ref('media_prompts') }} as prompts
inner join files on files.prompt_id = prompts.prompt_id
