-- Every answered structured recipe must parse into all its typed columns.
select dessert_id, dessert, _parse_error
from {{ ref('structured_recipe_fields') }}
where batch_state = 'succeeded' and _parse_error is not null
