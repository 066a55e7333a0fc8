-- response_fields next to what the seeds expect (both input types expect the same):
-- a (case, field) the seeds do not list must be NULL.
with expected as (
    select case_name, field, expected from {{ ref('response_cases_expected') }}
    union all
    select concat('vertex_', sample, '_', cast(line as string)), field, expected
    from {{ ref('vertex_outputs_expected') }}
),

expected_per_input as (
    select expected.*, input_type
    from expected
    cross join unnest(['JSON', 'STRING']) as input_type
)

select
    coalesce(actual.case_name, expected.case_name) as case_name,
    coalesce(actual.input_type, expected.input_type) as input_type,
    coalesce(actual.field, expected.field) as field,
    actual.actual,
    expected.expected
from {{ ref('response_fields') }} as actual
full outer join expected_per_input as expected
    on actual.case_name = expected.case_name
    and actual.input_type = expected.input_type
    and actual.field = expected.field
