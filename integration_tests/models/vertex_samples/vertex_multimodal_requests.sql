-- The multimodal tutorial's requests, rebuilt from one row per part: a text part or a
-- file part (gs:// URI + MIME type, as an object table's `uri` and `content_type`
-- give them), gathered in order into one user turn per request.
with parts as (
    select
        line,
        part_index,
        case
            when text is not null then {{ gemini_batch.text_part('text') }}
            else {{ gemini_batch.file_part('file_uri', 'mime_type') }}
        end as part
    from {{ ref('vertex_multimodal_parts') }}
),

requests as (
    select line, array_agg(part order by part_index) as parts
    from parts
    group by line
)

select
    line,
    {{ gemini_batch.request(contents=[gemini_batch.turn('user', 'parts')]) }} as request
from requests
