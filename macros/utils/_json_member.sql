{#- The member of a JSON object (`json_expr`) under the first of `names` that holds a
    value, as JSON; SQL NULL when none does. A member set to JSON null counts as absent,
    as it does for the service (echoed requests carry "fileData": null next to
    "file_data"), and both spellings of a field are passed as `names`. -#}
{% macro _json_member(json_expr, names) -%}
  {%- set members = [] -%}
  {%- for name in names -%}
    {%- set member = "json_query(" ~ json_expr ~ ", '$." ~ name ~ "')" -%}
    {%- do members.append("if(json_type(" ~ member ~ ") = 'null', null, " ~ member ~ ")") -%}
  {%- endfor -%}
  {{- members[0] if members | length == 1 else 'coalesce(' ~ members | join(', ') ~ ')' -}}
{%- endmacro %}
