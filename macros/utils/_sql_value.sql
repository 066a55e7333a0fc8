{#- The one rule for every value a request macro takes: a Python string is a SQL
    expression (a column, `'text/plain'` with its quotes, a CASE ...), pasted in
    parentheses; anything else (number, bool, list, dict) is a JSON constant.
    `argument` names the macro and the argument in errors, e.g.
    'gemini_batch.request: system_instruction'. -#}
{% macro _sql_value(value, argument='gemini_batch: an argument') -%}
  {%- if value is string -%}
    {%- do gemini_batch._check_sql_expression(value, argument) -%}
    {#- A line comment in the expression would swallow the closing parenthesis. -#}
    ({{ value }}{{ '\n' if '--' in value or '#' in value }})
  {%- else -%}
    {{ gemini_batch._json_literal(value) }}
  {%- endif -%}
{%- endmacro %}


{#- A compiler error naming `argument` when `text`, a SQL expression, is empty or does
    not parse as one expression: a quote, backtick or comment not closed, a bracket not
    matched, or a comma or semicolon outside brackets. BigQuery would report these with a
    column of the whole statement ("Expected "," but got keyword AS ... Col: 1192");
    here the argument and its text are named. (Jinja has no SQL parser: this is the
    lexical part of one, which is where text pasted as SQL goes wrong.) -#}
{% macro _check_sql_expression(text, argument) -%}
  {%- set problem = gemini_batch._sql_expression_problem(text) -%}
  {%- if problem -%}
    {%- set shown = text if text | length <= 300 else text[:300] ~ '...' -%}
    {{ exceptions.raise_compiler_error(
        argument ~ " is a SQL expression, and this one does not parse (" ~ problem ~ "): "
        ~ shown ~ "\nFor plain text, pass gemini_batch.literal(\"...\") (any quotes, "
        ~ "backslashes and line breaks in it are escaped), or write a SQL string literal "
        ~ "with its quotes and escapes, e.g. \"'It\\'s done.'\".") }}
  {%- endif -%}
{%- endmacro %}


{#- Why `text` is not one SQL expression, or none. -#}
{% macro _sql_expression_problem(text) -%}
  {#- Comments, string literals (any prefix, triple-quoted too) and quoted identifiers,
      leftmost first, so a quote inside a comment or a comment mark inside a string is
      not read as one. -#}
  {%- set tokens -%}
--[^\n]*|#[^\n]*|/\*[\s\S]*?\*/|[rRbB]{0,2}(?:'''[\s\S]*?'''|"""[\s\S]*?"""|'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")|`(?:[^`\\\n]|\\.)*`
  {%- endset -%}
  {%- set rest = modules.re.sub(tokens | trim, ' ', text) -%}
  {%- if text | trim == '' -%}
    {{ return("an empty string was given where a SQL expression is expected; for an empty "
              ~ "text constant write \"''\"") }}
  {%- endif -%}
  {%- set found = namespace(value=false) -%}
  {%- for token in modules.re.finditer(tokens | trim, text) if token.group(0)[0] not in '-#/' -%}
    {%- set found.value = true -%}
    {%- if token.group(0)[-1] in '\'"' and text[token.end():token.end() + 1] in ['\'', '"'] -%}
      {{ return("two string literals side by side at " ~ token.group(0)[-12:] ~ text[token.end():token.end() + 1]
                ~ "...: BigQuery escapes a quote inside a string with a backslash, \\', not by doubling it") }}
    {%- endif -%}
  {%- endfor -%}
  {%- if rest | trim == '' and not found.value -%}
    {{ return("it is only a comment") }}
  {%- endif -%}
  {%- for mark, what in [("'", "a quote ' is not closed"), ('"', 'a quote " is not closed'),
                         ('`', 'a backtick ` is not closed'), ('/*', 'a /* comment is not closed')] -%}
    {%- if mark in rest -%}
      {{ return(what) }}
    {%- endif -%}
  {%- endfor -%}
  {%- set ns = namespace(open=[], problem=none) -%}
  {%- set closing = {')': '(', ']': '['} -%}
  {%- for char in rest if ns.problem is none -%}
    {%- if char in '([' -%}
      {%- do ns.open.append(char) -%}
    {%- elif char in closing -%}
      {%- if ns.open and ns.open[-1] == closing[char] -%}
        {%- do ns.open.pop() -%}
      {%- else -%}
        {%- set ns.problem = "a " ~ char ~ " with no " ~ closing[char] ~ " before it" -%}
      {%- endif -%}
    {%- elif char in ',;' and not ns.open -%}
      {%- set ns.problem = "a " ~ char ~ " outside brackets: one expression is expected, "
                          ~ "not a list" -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if ns.problem is none and ns.open -%}
    {%- set ns.problem = "a " ~ ns.open[-1] ~ " is not closed" -%}
  {%- endif -%}
  {{ return(ns.problem) }}
{%- endmacro %}


{#- A JSON constant: `value` (number, bool, list, dict, or a string inside them) as
    BigQuery JSON, its object keys sorted, so the same value always gives the same bytes. -#}
{% macro _json_literal(value) -%}
  JSON {{ gemini_batch._sql_string(tojson(value, sort_keys=True)) }}
{%- endmacro %}
