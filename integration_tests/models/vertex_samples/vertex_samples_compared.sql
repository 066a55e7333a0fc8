-- Each real Vertex AI input next to the same request built by the macros: `expected`
-- is the tutorial's request in canonical form (camelCase, parts as a list, sorted keys).
with actual as (
    select 'text' as sample, line, to_json_string(request) as actual
    from {{ ref('vertex_text_requests') }}
    union all
    select 'multimodal' as sample, line, to_json_string(request) as actual
    from {{ ref('vertex_multimodal_requests') }}
)

select
    expected.sample,
    expected.line,
    actual.actual,
    expected.expected_request as expected
from {{ ref('vertex_expected_requests') }} as expected
left join actual
    on actual.sample = expected.sample and actual.line = expected.line
