"""The DuckDB function behind the local BigQuery's ``AI.GENERATE``: rows in, answers out.

Each row becomes a GenerateContentRequest (``model_params`` with the prompt as its
``contents``; ``output_schema`` as a JSON response schema) and is answered by the
Vertex AI emulator's engine through its one entry point (``vertex/generate.py``): the
same engines, thinking, empty answers and prompt markers as a batch job. DuckDB hands
the function a vector of rows at a time (up to 2,048), so an engine answers them as one
batch.

Each answer comes back as BigQuery returns it: ``result`` (the answer's text) or the
output schema's typed fields, ``full_response`` (the GenerateContentResponse) and
``status`` ('' when the call succeeded). A failed row has NULL fields, a NULL
full_response and a status in BigQuery's words: ``A retryable error occurred:
RESOURCE_EXHAUSTED error from remote service/endpoint.`` for 429 and 5xx.

Faults (``PUT /emulator/faults`` with ``{"ai_generate": {...}}``) fail or empty a share
of the calls, drawn from the request's hash and how many times that request failed
before: the same request fails the same way on every run, and a retry draws again.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import threading
from collections.abc import Callable, Mapping
from typing import Any

import orjson
import pyarrow as pa

from gemini_batch.local.ai_generate.schema import OutputSchema
from gemini_batch.local.vertex.engines import Engine, make_engine, settings_from_env
from gemini_batch.local.vertex.faults import FaultError, Faults
from gemini_batch.local.vertex.generate import Call, answer
from gemini_batch.rules import catalog

# AI.GENERATE's endpoint when the call names none (the AI.GENERATE reference page).
DEFAULT_ENDPOINT = "gemini-2.5-flash"
# The fault settings AI.GENERATE takes (the row-level ones of the Vertex emulator).
FAULT_SETTINGS = ("row_failure_rate", "row_failure_codes", "empty_answer_rate",
                  "empty_answer_kinds")
# google.rpc.Code names of the HTTP codes a call can fail with; retryable ones as BigQuery
# words them ("A retryable error occurred: ...").
_STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE",
                 504: "DEADLINE_EXCEEDED"}
_RETRYABLE = frozenset({429, 500, 503, 504})
PLACE = "AI.GENERATE prompt"
# A row whose prompt is NULL (or has a NULL field) is not sent; its status says so.
NULL_PROMPT = "The prompt is NULL (or has a NULL field): nothing was sent to the model."


def bigquery_status(vertex_status: str) -> str:
    """A failed call's `status` as BigQuery writes it, from the Vertex AI row status
    (``faults.row_error``: ``<reason>: {"error": {"code", "message", "status"}}``)."""
    try:
        error = json.loads(vertex_status[vertex_status.index("{"):])["error"]
        code, message = int(error["code"]), str(error["message"])
        name = str(error.get("status") or _STATUS_NAMES.get(code, "UNKNOWN"))
    except (ValueError, KeyError, TypeError):
        return f"An error occurred: {vertex_status}"
    if code in _RETRYABLE:
        return f"A retryable error occurred: {name} error from remote service/endpoint."
    return f"{name} error from remote service/endpoint: {message}"


def model_of(endpoint: str | None) -> str:
    """The model id an ``endpoint`` names: a bare id, a publisher path or a full URL."""
    if endpoint is None:
        return DEFAULT_ENDPOINT
    tail = endpoint.strip()
    for marker in ("/projects/", "/publishers/"):
        if marker in tail:
            tail = tail[tail.index(marker) + 1:]
    return catalog.model_id(tail) or tail


def endpoint_error(endpoint: str | None) -> str | None:
    """Why BigQuery refuses ``endpoint`` (unknown to the catalog, or retired), or None."""
    model = catalog.lookup(model_of(endpoint))
    if model is None:
        near = [name for name in catalog.suggestions(model_of(endpoint))
                if (catalog.lookup(name) or model).for_new_projects]
        hint = f" Did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        return (f"Invalid endpoint {endpoint!r} in AI.GENERATE: not a Gemini model "
                f"BigQuery can call.{hint}")
    if not model.for_new_projects:
        return (f"Invalid endpoint {endpoint!r} in AI.GENERATE: {model.name} is retired; "
                "use gemini-2.0-flash or later.")
    return None


def model_params_error(params: Any, output: OutputSchema) -> str | None:
    """Why BigQuery refuses ``model_params`` (a decoded JSON value), or None."""
    if not isinstance(params, dict):
        return "AI.GENERATE's model_params must be a JSON object (the generateContent body)."
    if "contents" in params:
        return ("AI.GENERATE's model_params cannot set contents: the prompt argument is the "
                "request's contents.")
    config = params.get("generationConfig") or params.get("generation_config") or {}
    if output.text is not None and isinstance(config, dict) and (
            {"responseSchema", "response_schema", "responseJsonSchema",
             "response_json_schema"} & set(config)):
        return ("AI.GENERATE: output_schema and a response schema in model_params cannot be "
                "used together; keep one.")
    return None


def parts_of(prompt: list[str | None]) -> list[dict[str, Any]] | None:
    """The request's parts from the prompt's fields (each as JSON text), combined as
    BigQuery combines them, like CONCAT in order: strings side by side are one text part,
    an ObjectRef or ObjectRefRuntime a file part, an ARRAY's elements each in turn;
    None if a field is NULL (CONCAT with a NULL is NULL)."""
    parts: list[dict[str, Any]] = []
    for item in prompt:
        value = None if item is None else orjson.loads(item)
        if value is None or not _add_parts(parts, value, item):
            return None
    return parts


def _add_parts(parts: list[dict[str, Any]], value: Any, item: str) -> bool:
    """Add ``value`` (a field, or an ARRAY element) to ``parts``; False for a NULL."""
    if value is None:
        return False
    if isinstance(value, str):
        if parts and "text" in parts[-1]:
            parts[-1] = {"text": parts[-1]["text"] + value}
        else:
            parts.append({"text": value})
    elif isinstance(value, dict):
        parts.append(_file_part(value))
    elif isinstance(value, list):
        return all(_add_parts(parts, element, item) for element in value)
    else:
        raise ValueError(
            f"AI.GENERATE's prompt takes STRING, ARRAY<STRING>, ObjectRef and "
            f"ObjectRefRuntime fields, not {type(value).__name__} ({item[:80]}): cast it "
            "to STRING.")
    return True


def _file_part(value: dict[str, Any]) -> dict[str, Any]:
    """An ObjectRef (STRUCT<uri, version, authorizer, details>) or ObjectRefRuntime
    (OBJ.GET_ACCESS_URL's JSON, the ObjectRef under obj_ref) as a fileData part."""
    ref = value.get("obj_ref") if isinstance(value.get("obj_ref"), dict) else value
    uri = ref.get("uri")
    if not isinstance(uri, str) or not uri:
        raise ValueError(
            "AI.GENERATE's prompt takes STRING, ObjectRef and ObjectRefRuntime fields; this "
            "value is neither a string nor an object reference (it has no uri).")
    details = ref.get("details")
    if isinstance(details, str):  # ObjectRef.details is JSON: text in some paths
        details = orjson.loads(details)
    metadata = (details or {}).get("gcs_metadata") or {}
    mime_type = metadata.get("content_type") or mimetypes.guess_type(uri)[0]
    return {"fileData": {"fileUri": uri, "mimeType": mime_type or "application/octet-stream"}}


class AiGenerate:
    """The function's state in the server: its engine, faults and counts (thread-safe)."""

    def __init__(self, engine_factory: Callable[[], Engine] | None = None) -> None:
        self._engine_factory = engine_factory or engine_from_env
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._faults = Faults()
        self._failures: dict[str, int] = {}
        self.rows = 0
        self.failed = 0
        self.statements = 0
        self._registered: set[tuple[int, str]] = set()

    # -- settings and counts ----------------------------------------------------------

    def set_faults(self, values: Mapping[str, Any], *, replace: bool) -> None:
        """New fault settings (``replace``: the others back to off); draws start again."""
        unknown = sorted(set(values) - set(FAULT_SETTINGS))
        if unknown:
            raise ValueError(f"unknown ai_generate fault settings {unknown}: use "
                             f"{list(FAULT_SETTINGS)}")
        try:
            faults = Faults.from_dict(dict(values), None if replace else self._faults)
        except FaultError as exc:
            raise ValueError(f"ai_generate: {exc}") from exc
        with self._lock:
            self._faults = faults
            self._failures = {}

    def fault_settings(self) -> dict[str, Any]:
        settings = self._faults.to_dict()
        return {name: settings[name] for name in FAULT_SETTINGS}

    def counted_statement(self) -> None:
        with self._lock:
            self.statements += 1

    def stats(self) -> dict[str, int]:
        """What ``GET /emulator/ai_generate`` says: rows sent to the model since start
        (failures included), failed ones, statements that called AI.GENERATE."""
        with self._lock:
            return {"rows": self.rows, "failed_rows": self.failed,
                    "statements": self.statements}

    # -- the function -----------------------------------------------------------------

    def register(self, connection: Any, functions: Mapping[str, OutputSchema]) -> None:
        """Make ``functions`` (name -> output schema) callable on ``connection``'s
        database, each once. ``connection`` must live as long as the database: a
        function registered on a cursor dies with it (DuckDB then crashes)."""
        import duckdb

        with self._lock:
            for name, output in functions.items():
                key = (id(connection), name)
                if key in self._registered:
                    continue
                connection.create_function(
                    name, self.function(output),
                    [duckdb.sqltype("VARCHAR[]"), *[duckdb.sqltype("VARCHAR")] * 4],
                    duckdb.sqltype(output.duckdb_type), type="arrow",
                    null_handling="special", side_effects=True)
                self._registered.add(key)

    def engine(self) -> Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._engine_factory()
            return self._engine

    def function(self, output: OutputSchema) -> Callable[..., pa.Array]:
        """The vectorised DuckDB function for calls with ``output`` (Arrow in, Arrow out)."""

        def run(prompts: pa.Array, endpoints: pa.Array, params: pa.Array,
                request_types: pa.Array, connections: pa.Array) -> pa.Array:
            del request_types, connections  # checked when the statement was read
            answers = self.answer_rows(prompts.to_pylist(), endpoints.to_pylist(),
                                       params.to_pylist(), output)
            return pa.array(answers, type=output.arrow_type)

        return run

    def answer_rows(self, prompts: list[list[str | None] | None], endpoints: list[str | None],
                    params: list[str | None], output: OutputSchema) -> list[dict[str, Any]]:
        """One answer per row, as the STRUCT BigQuery returns (a dict per row)."""
        answers: list[dict[str, Any] | None] = [None] * len(prompts)
        by_model: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for endpoint in set(endpoints):  # usually one: a literal
            problem = endpoint_error(endpoint)
            if problem:
                raise ValueError(problem)
        for index, (prompt, endpoint, raw_params) in enumerate(
                zip(prompts, endpoints, params, strict=True)):
            parts = parts_of(prompt) if prompt is not None else None
            if parts is None:
                answers[index] = _row(output, None, None, NULL_PROMPT)
                continue
            request = self._request(parts, raw_params, output)
            by_model.setdefault(model_of(endpoint), []).append((index, request))
        for model, rows in by_model.items():
            for (index, _), value in zip(rows, self._answer(model, rows, output), strict=True):
                answers[index] = value
        return answers  # type: ignore[return-value]  # every row answered

    def _request(self, parts: list[dict[str, Any]], raw_params: str | None,
                 output: OutputSchema) -> dict[str, Any]:
        params = orjson.loads(raw_params) if raw_params is not None else {}
        problem = model_params_error(params, output)
        if problem:
            raise ValueError(problem)
        request = {**params, "contents": [{"role": "user", "parts": parts}]}
        schema = output.response_schema
        if schema is not None:
            config = dict(request.pop("generation_config", None)
                          or request.get("generationConfig") or {})
            config.update(responseMimeType="application/json", responseSchema=schema)
            request["generationConfig"] = config
        return request

    def _answer(self, model: str, rows: list[tuple[int, dict[str, Any]]],
                output: OutputSchema) -> list[dict[str, Any]]:
        keys = [_key(request, model) for _, request in rows]
        with self._lock:
            faults = self._faults
            calls = [Call(request, key, self._failures.get(key, 0), PLACE)
                     for (_, request), key in zip(rows, keys, strict=True)]
        results = answer(calls, engine=self.engine(), faults=faults, model=model)
        values = []
        failed = 0
        with self._lock:
            for key, result in zip(keys, results, strict=True):
                if isinstance(result, str):
                    failed += 1
                    self._failures[key] = self._failures.get(key, 0) + 1
                    values.append(_row(output, None, None, bigquery_status(result)))
                else:
                    values.append(_answered(output, result))
            self.rows += len(rows)
            self.failed += failed
        return values


def _key(request: dict[str, Any], model: str) -> str:
    """What a request's fault draws are keyed by: its content and model."""
    digest = hashlib.blake2b(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)
                             + model.encode(), digest_size=12)
    return digest.hexdigest()


def answer_text(response: dict[str, Any]) -> str | None:
    """The first candidate's text (thought parts left out); None when it has none."""
    candidates = response.get("candidates") or []
    if not candidates:
        return None
    parts = (candidates[0].get("content") or {}).get("parts") or []
    texts = [part["text"] for part in parts if "text" in part and not part.get("thought")]
    return "".join(texts) if texts else None


def _answered(output: OutputSchema, response: dict[str, Any]) -> dict[str, Any]:
    full = orjson.dumps(response).decode()
    text = answer_text(response)
    if output.text is None:
        return _row(output, {"result": text}, full, "")
    if text is None:
        return _row(output, None, full, "")
    try:
        values = output.values(orjson.loads(text))
    except (orjson.JSONDecodeError, ValueError) as exc:
        return _row(output, None, full,
                    f"The model's answer does not fit output_schema ({exc}).")
    return _row(output, values, full, "")


def _row(output: OutputSchema, values: dict[str, Any] | None, full: str | None,
         status: str) -> dict[str, Any]:
    names = [f.name for f in output.fields] or ["result"]
    row = {name: (values or {}).get(name) for name in names}
    row["full_response"] = full
    row["status"] = status
    return row


def engine_from_env(environ: Mapping[str, str] | None = None) -> Engine:
    """The engine ``gemini-batch local start`` chose, as the Vertex emulator reads it."""
    name, settings = settings_from_env(environ)
    return make_engine(name, **settings)


__all__ = ["DEFAULT_ENDPOINT", "FAULT_SETTINGS", "AiGenerate", "answer_text",
           "bigquery_status", "endpoint_error", "engine_from_env", "model_of",
           "model_params_error", "parts_of"]
