{#- The responseSchema (a dict) for a normalised spec: an OBJECT with one property per
    column, `required` for the non-nullable ones and `propertyOrdering` in spec order
    (JSON objects have no order of their own: BigQuery sorts their keys). -#}
{% macro _output_columns_response_schema(columns) -%}
  {%- set properties = {} -%}
  {%- set names = [] -%}
  {%- set required = [] -%}
  {%- for column in columns -%}
    {%- do properties.update({column['name']: column['schema']}) -%}
    {%- do names.append(column['name']) -%}
    {%- if not column['nullable'] -%}{%- do required.append(column['name']) -%}{%- endif -%}
  {%- endfor -%}
  {{ return({'type': 'OBJECT', 'properties': properties, 'required': required,
             'propertyOrdering': names}) }}
{%- endmacro %}
