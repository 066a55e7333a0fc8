-- The requests echoed in the tutorial's Vertex AI output tables, as JSON and as text.
select
    sample,
    line,
    request_text,
    parse_json(request_text) as request
from {{ ref('vertex_echoed_requests') }}
