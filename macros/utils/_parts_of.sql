{#- A `parts` value (JSON) as ARRAY<JSON>: a list, or a single part object, which the
    service accepts too; NULL (no parts to check) for anything else. -#}
{% macro _parts_of(parts) -%}
  case json_type({{ parts }})
    when 'object' then [{{ parts }}]
    when 'array' then json_query_array({{ parts }})
  end
{%- endmacro %}
