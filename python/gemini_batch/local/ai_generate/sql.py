"""A statement's ``AI.GENERATE(...)`` calls, rewritten into calls DuckDB can run.

bqemulator translates BigQuery SQL to DuckDB with sqlglot, which knows no AI.GENERATE.
Before that, each call is found by its tokens (so a string holding "AI.GENERATE" is
left alone, and the rest of the statement is not regenerated), its arguments are read
and checked as BigQuery checks them, and the call becomes::

    gemini_batch_ai_generate[_<schema>]([TO_JSON_STRING(<prompt part>), ...],
        <endpoint>, TO_JSON_STRING(<model_params>), <request_type>, <connection_id>)

a DuckDB Python function (``rows.py``) returning the STRUCT BigQuery returns. The
prompt's parts go as JSON so a STRING and an object reference (a STRUCT, or JSON) stay
apart; the values stay expressions of the statement (columns, literals, parameters),
never pasted text. ``AI.GENERATE(...).*`` becomes ``SPREAD(...)`` (below), DuckDB's
UNNEST of the STRUCT into columns. ``OBJ.MAKE_REF(uri[, authorizer])``, which the local
BigQuery lacks, becomes the ObjectRef STRUCT.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.tokens import Token, TokenType

from gemini_batch.local.ai_generate import rows
from gemini_batch.local.ai_generate import schema as output_schemas

FUNCTION = "gemini_batch_ai_generate"
# ``AI.GENERATE(...).*`` becomes SPREAD(<call>), which the local BigQuery translates to
# DuckDB's ``UNNEST([<call>], max_depth := 2)``: the STRUCT's fields as columns, the
# call made once per row (``UNNEST(<call>)`` calls it once per field).
SPREAD = "gemini_batch_ai_generate_spread"
# AI.GENERATE's named arguments, in the order the function takes them after the prompt.
ARGUMENTS = ("prompt", "connection_id", "endpoint", "request_type", "model_params",
             "output_schema")
REQUEST_TYPES = ("SHARED", "DEDICATED", "UNSPECIFIED")
_MENTION = re.compile(r"\b(?:AI\s*\.\s*GENERATE|OBJ\s*\.\s*MAKE_REF)\s*\(", re.IGNORECASE)
# OBJ.MAKE_REF(uri[, authorizer]) as the ObjectRef STRUCT BigQuery makes (the local
# BigQuery has no OBJ functions): an AI.GENERATE prompt field reads it as a file part.
_OBJECT_REF = ("STRUCT({uri} AS uri, CAST(NULL AS STRING) AS version, "
               "{authorizer} AS authorizer, CAST(NULL AS JSON) AS details)")


class AiGenerateError(ValueError):
    """An AI.GENERATE call BigQuery refuses before running; the query fails with it."""


@dataclass(frozen=True)
class Rewritten:
    """A statement with its AI.GENERATE calls rewritten."""

    sql: str
    calls: int
    # Function name -> the output schema it returns (each needs registering once).
    functions: dict[str, output_schemas.OutputSchema]


def function_name(output: output_schemas.OutputSchema) -> str:
    return f"{FUNCTION}_{output.key}" if output.key else FUNCTION


def mentions(sql: str) -> bool:
    """A cheap test: may ``sql`` call AI.GENERATE (or OBJ.MAKE_REF)?"""
    return _MENTION.search(sql) is not None


def rewrite(sql: str) -> Rewritten | None:
    """``sql`` with each AI.GENERATE (and OBJ.MAKE_REF) call rewritten; None when it has
    none. AiGenerateError for a call BigQuery would refuse."""
    if not mentions(sql):
        return None
    functions: dict[str, output_schemas.OutputSchema] = {}
    text, calls = _rewrite(sql, functions)
    return Rewritten(text, calls, functions) if text != sql else None


def _rewrite(sql: str, functions: dict[str, output_schemas.OutputSchema]) -> tuple[str, int]:
    try:
        tokens = sqlglot.Dialect.get_or_raise("bigquery").tokenize(sql)
    except sqlglot.errors.SqlglotError:
        return sql, 0  # bqemulator reports the syntax error
    pieces: list[str] = []
    done = 0  # characters of sql already in pieces
    calls = 0
    index = 0
    while index < len(tokens):
        generate = _starts_call(tokens, index, "AI", "GENERATE")
        if not generate and not _starts_call(tokens, index, "OBJ", "MAKE_REF"):
            index += 1
            continue
        close = _closing(tokens, index + 3)
        if close is None:
            return sql, 0  # unbalanced: bqemulator reports the syntax error
        call_text = sql[tokens[index].start:tokens[close].end + 1]
        replacement = (_replacement(call_text, functions) if generate
                       else _object_ref(call_text, functions))
        end = tokens[close].end + 1
        after = close + 1
        spread = (generate and after + 1 < len(tokens)
                  and tokens[after].token_type == TokenType.DOT
                  and tokens[after + 1].token_type == TokenType.STAR)
        if spread:
            replacement = f"{SPREAD}({replacement})"
            end = tokens[after + 1].end + 1
            after += 2
        pieces += [sql[done:tokens[index].start], replacement]
        done = end
        calls += generate
        index = after
    pieces.append(sql[done:])
    return "".join(pieces), calls


def _starts_call(tokens: list[Token], index: int, namespace: str, name: str) -> bool:
    return (index + 3 < len(tokens)
            and tokens[index].text.upper() == namespace
            and tokens[index + 1].token_type == TokenType.DOT
            and tokens[index + 2].text.upper() == name
            and tokens[index + 3].token_type == TokenType.L_PAREN
            and (index == 0 or tokens[index - 1].token_type != TokenType.DOT))


def _closing(tokens: list[Token], open_index: int) -> int | None:
    depth = 0
    for index in range(open_index, len(tokens)):
        kind = tokens[index].token_type
        if kind == TokenType.L_PAREN:
            depth += 1
        elif kind == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return index
    return None


def _arguments(call_text: str) -> dict[str, exp.Expression]:
    """The call's arguments by name (the first positional one is the prompt)."""
    try:
        select = sqlglot.parse_one(f"SELECT {call_text}", read="bigquery")
    except sqlglot.errors.SqlglotError as exc:
        raise AiGenerateError(f"Syntax error in AI.GENERATE: {exc}") from None
    call = next((node for node in select.walk()
                 if isinstance(node, exp.AIGenerate)
                 or (isinstance(node, exp.Anonymous) and node.name.upper() == "GENERATE")),
                None)
    if call is None:
        raise AiGenerateError(f"Syntax error: cannot read {call_text[:200]}")
    named: dict[str, exp.Expression] = {}
    for position, argument in enumerate(call.expressions):
        if isinstance(argument, exp.Kwarg):
            name = argument.this.name.lower()
            if name not in ARGUMENTS:
                raise AiGenerateError(
                    f"AI.GENERATE has no argument named {argument.this.name}; it takes "
                    f"{', '.join(ARGUMENTS)}.")
            if name in named:
                raise AiGenerateError(f"AI.GENERATE: argument {name} is given twice.")
            named[name] = argument.expression
        elif position == 0:
            named["prompt"] = argument
        else:
            raise AiGenerateError(
                "AI.GENERATE takes the prompt as its only positional argument, first; name "
                "the others (connection_id => ..., endpoint => ..., model_params => ..., "
                "output_schema => ...).")
    if "prompt" not in named:
        raise AiGenerateError("AI.GENERATE needs a prompt: AI.GENERATE('...', ...) or "
                              "AI.GENERATE(prompt => ..., ...).")
    return named


def _replacement(call_text: str, functions: dict[str, output_schemas.OutputSchema]) -> str:
    named = _arguments(call_text)
    output = _output_schema(named.get("output_schema"))
    name = function_name(output)
    functions[name] = output
    prompt = named["prompt"]
    if isinstance(prompt, exp.Tuple | exp.Struct):
        parts = [_field_value(part) for part in prompt.expressions]
    else:
        parts = [prompt]
    _check_literals(named, output)

    def sql(node: exp.Expression | None) -> str:
        if node is None:
            return "NULL"
        text = node.sql(dialect="bigquery")
        # An argument may itself call AI.GENERATE (a prompt from an answer).
        return _rewrite(text, functions)[0] if mentions(text) else text

    prompt_sql = ", ".join(f"TO_JSON_STRING({sql(part)})" for part in parts)
    params = named.get("model_params")
    params_sql = f"TO_JSON_STRING({sql(params)})" if params is not None else "NULL"
    return (f"{name}([{prompt_sql}], {sql(named.get('endpoint'))}, {params_sql}, "
            f"{sql(named.get('request_type'))}, {sql(named.get('connection_id'))})")


def _object_ref(call_text: str, functions: dict[str, output_schemas.OutputSchema]) -> str:
    """``OBJ.MAKE_REF(uri[, authorizer])`` as an ObjectRef STRUCT."""
    try:
        select = sqlglot.parse_one(f"SELECT {call_text}", read="bigquery")
    except sqlglot.errors.SqlglotError as exc:
        raise AiGenerateError(f"Syntax error in OBJ.MAKE_REF: {exc}") from None
    call = next((node for node in select.walk() if isinstance(node, exp.Anonymous)
                 and node.name.upper() == "MAKE_REF"), None)
    arguments = list(call.expressions) if call is not None else []
    if not 1 <= len(arguments) <= 2 or any(isinstance(a, exp.Kwarg) for a in arguments) or (
            isinstance(arguments[0], exp.ParseJSON)):
        raise AiGenerateError(
            "OBJ.MAKE_REF on the local BigQuery takes (uri) or (uri, authorizer): "
            f"{call_text[:200]}")

    def sql(node: exp.Expression) -> str:
        text = node.sql(dialect="bigquery")
        return _rewrite(text, functions)[0] if mentions(text) else text

    authorizer = sql(arguments[1]) if len(arguments) == 2 else "CAST(NULL AS STRING)"
    return _OBJECT_REF.format(uri=sql(arguments[0]), authorizer=authorizer)


def _field_value(field: exp.Expression) -> exp.Expression:
    """A STRUCT field's value, without its name (``'a' AS x``)."""
    if isinstance(field, exp.Alias):
        return field.this
    if isinstance(field, exp.PropertyEQ):
        return field.expression
    return field


def _output_schema(node: exp.Expression | None) -> output_schemas.OutputSchema:
    if node is None:
        return output_schemas.DEFAULT
    text = _string(node)
    if text is None:
        raise AiGenerateError("AI.GENERATE's output_schema must be a string literal, e.g. "
                              "output_schema => 'name STRING, age INT64'.")
    try:
        return output_schemas.parse(text)
    except output_schemas.SchemaError as exc:
        raise AiGenerateError(str(exc)) from None


def _check_literals(named: dict[str, exp.Expression], output: output_schemas.OutputSchema
                    ) -> None:
    """What BigQuery refuses before running: a request_type it does not know (and
    DEDICATED, with no Provisioned Throughput here), an endpoint that is no model it
    serves, model_params that are no JSON literal, no object, or set the contents."""
    request_type = _string(named.get("request_type"))
    if request_type is not None and request_type.upper() not in REQUEST_TYPES:
        raise AiGenerateError(f"Invalid request_type {request_type!r} in AI.GENERATE: use "
                              f"{', '.join(REQUEST_TYPES)}.")
    if request_type is not None and request_type.upper() == "DEDICATED":
        raise AiGenerateError(
            "AI.GENERATE with request_type => 'DEDICATED': Provisioned throughput is not "
            "purchased or is not active (the local stack has none; use SHARED or "
            "UNSPECIFIED).")
    endpoint = named.get("endpoint")
    if endpoint is None or _string(endpoint) is not None:
        problem = rows.endpoint_error(_string(endpoint))
        if problem:
            raise AiGenerateError(problem)
    params = named.get("model_params")
    if params is None or isinstance(params, exp.Parameter | exp.Placeholder):
        return  # a query parameter is checked when the rows are answered
    if not (isinstance(params, exp.ParseJSON) and _string(params.this) is not None):
        raise AiGenerateError(
            "AI.GENERATE's model_params must be a JSON literal, e.g. model_params => "
            "JSON '{\"generationConfig\": {\"temperature\": 0}}'.")
    try:
        value = json.loads(params.this.this)
    except ValueError as exc:
        raise AiGenerateError(f"Invalid JSON in AI.GENERATE's model_params: {exc}") from None
    problem = rows.model_params_error(value, output)
    if problem:
        raise AiGenerateError(problem)


def _string(node: exp.Expression | None) -> str | None:
    """A string literal's value; None for anything else."""
    return node.this if isinstance(node, exp.Literal) and node.is_string else None


__all__ = ["ARGUMENTS", "FUNCTION", "SPREAD", "AiGenerateError", "Rewritten", "function_name",
           "mentions", "rewrite"]
