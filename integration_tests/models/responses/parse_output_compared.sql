-- parse_output_fields next to parse_output_expected (every input type expects the
-- same): a (case, column) the seed does not list must be NULL.
with expected_per_input as (
    select expected.*, input_type
    from {{ ref('parse_output_expected') }} as expected
    cross join unnest(['JSON', 'STRING', 'TEXT']) as input_type
    where not (input_type = 'TEXT' and case_name = 'blocked')
)

select
    coalesce(actual.case_name, expected.case_name) as case_name,
    coalesce(actual.input_type, expected.input_type) as input_type,
    coalesce(actual.field, expected.field) as field,
    actual.actual,
    expected.expected
from {{ ref('parse_output_fields') }} as actual
full outer join expected_per_input as expected
    on actual.case_name = expected.case_name
    and actual.input_type = expected.input_type
    and actual.field = expected.field
