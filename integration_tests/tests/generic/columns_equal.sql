{#- Fails on every row where `actual` differs from `expected` (NULLs must match too). -#}
{% test columns_equal(model, actual='actual', expected='expected') %}
select *
from {{ model }}
where not coalesce({{ actual }} = {{ expected }}, {{ actual }} is null and {{ expected }} is null)
{% endtest %}
