"""The ``openai`` engine: answers from any OpenAI-compatible chat completions server.

Ollama (``http://localhost:11434/v1``), vLLM, llama.cpp's server and the like. Each
GenerateContentRequest becomes a ``POST {base_url}/chat/completions``: the system
instruction a system message, ``model`` turns assistant messages, ``generationConfig``
the sampling parameters, and ``responseSchema`` a ``json_schema`` response format. The
answer comes back as a GenerateContentResponse; an HTTP error, a timeout or a refused
connection becomes the row's `status`, as the service writes a failed request. Requests
run concurrently, at most ``concurrency`` at a time.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from gemini_batch.local.vertex.engines import Result
from gemini_batch.local.vertex.faults import row_error

_FINISH_REASONS = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "content_filter": "SAFETY",
    "tool_calls": "STOP",
    "function_call": "STOP",
}
# generationConfig field -> chat completions parameter (same meaning and units).
_SAMPLING = {
    "temperature": "temperature",
    "topP": "top_p",
    "maxOutputTokens": "max_tokens",
    "stopSequences": "stop",
    "candidateCount": "n",
    "seed": "seed",
    "presencePenalty": "presence_penalty",
    "frequencyPenalty": "frequency_penalty",
}


def _text(part: dict[str, Any]) -> str | None:
    return part.get("text") if isinstance(part.get("text"), str) else None


def _content_item(part: dict[str, Any]) -> dict[str, Any]:
    """One part as a chat message content item (text, or an image URL the server fetches)."""
    if "text" in part:
        return {"type": "text", "text": part["text"]}
    if "inlineData" in part:
        blob = part["inlineData"]
        if blob["mimeType"].startswith("image/"):
            url = f"data:{blob['mimeType']};base64,{blob['data']}"
            return {"type": "image_url", "image_url": {"url": url}}
        return {"type": "text", "text": f"[inline {blob['mimeType']} data omitted]"}
    if "fileData" in part:
        blob = part["fileData"]
        uri = blob["fileUri"]
        if blob["mimeType"].startswith("image/") and uri.startswith(("http://", "https://")):
            return {"type": "image_url", "image_url": {"url": uri}}
        # gs:// objects are not readable from here: say what was attached.
        return {"type": "text", "text": f"[attached file {uri} ({blob['mimeType']})]"}
    kind = next(iter(part))
    return {"type": "text", "text": f"[{kind}: {part[kind]}]"}


def _message_content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    items = [_content_item(part) for part in parts]
    if all(item["type"] == "text" for item in items):
        # Plain text is what every server understands.
        return "\n".join(item["text"] for item in items)
    return items


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini's OpenAPI-subset schema (types in upper case, ``nullable``) as JSON Schema."""
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            result["type"] = value.lower()
        elif key == "properties":
            result["properties"] = {name: json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            result[key] = json_schema(value)
        elif key in ("anyOf", "oneOf", "allOf"):
            result[key] = [json_schema(sub) for sub in value]
        elif key in ("nullable", "propertyOrdering"):
            continue
        else:
            result[key] = value
    if schema.get("nullable") and isinstance(result.get("type"), str):
        result["type"] = [result["type"], "null"]
    return result


def chat_request(request: dict[str, Any], model: str) -> dict[str, Any]:
    """The chat completions body for a normalised GenerateContentRequest."""
    messages: list[dict[str, Any]] = []
    if "systemInstruction" in request:
        parts = request["systemInstruction"]["parts"]
        messages.append({"role": "system", "content": "\n".join(_text(p) or "" for p in parts)})
    for content in request["contents"]:
        role = "assistant" if content.get("role") == "model" else "user"
        messages.append({"role": role, "content": _message_content(content["parts"])})
    body: dict[str, Any] = {"model": model, "messages": messages}
    config = request.get("generationConfig", {})
    for gemini_name, openai_name in _SAMPLING.items():
        if gemini_name in config:
            body[openai_name] = config[gemini_name]
    if config.get("responseMimeType") == "application/json":
        schema = config.get("responseJsonSchema") or (
            json_schema(config["responseSchema"]) if "responseSchema" in config else None
        )
        body["response_format"] = (
            {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
            if schema
            else {"type": "json_object"}
        )
    return body


def generate_content_response(answer: dict[str, Any], model: str) -> dict[str, Any]:
    """A chat completion as a GenerateContentResponse."""
    candidates = []
    for index, choice in enumerate(answer.get("choices") or []):
        message = choice.get("message") or {}
        candidate: dict[str, Any] = {
            "content": {"parts": [{"text": message.get("content") or ""}], "role": "model"},
            "finishReason": _FINISH_REASONS.get(choice.get("finish_reason") or "stop", "OTHER"),
        }
        if len(answer["choices"]) > 1:
            candidate["index"] = choice.get("index", index)
        candidates.append(candidate)
    usage = answer.get("usage") or {}
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    return {
        "candidates": candidates,
        "modelVersion": answer.get("model") or model,
        "usageMetadata": {
            "candidatesTokenCount": completion,
            "promptTokenCount": prompt,
            "totalTokenCount": int(usage.get("total_tokens") or prompt + completion),
        },
    }


def _http_error(response: httpx.Response) -> str:
    try:
        detail = response.json().get("error", response.text)
        message = detail.get("message", str(detail)) if isinstance(detail, dict) else str(detail)
    except ValueError:
        message = response.text
    code = response.status_code
    if code >= 500:
        code = 503 if code in (502, 503) else 500
    elif code not in (400, 429):
        code = 400
    return row_error(code, f"OpenAI-compatible server answered {response.status_code}: {message}")


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        model: str | None = None,
        api_key: str | None = None,
        concurrency: int = 8,
        timeout: float = 120.0,
    ) -> None:
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai")
        self._model = model
        self.batch_size = concurrency * 4
        self._model_lock = threading.Lock()

    def _server_model(self, job_model: str) -> str:
        """The configured model, else the server's first listed one, else the job's."""
        with self._model_lock:
            if self._model is None:
                try:
                    listed = self._http.get(f"{self._base_url}/models").json().get("data") or []
                    self._model = listed[0]["id"] if listed else job_model
                except (httpx.HTTPError, ValueError, KeyError, TypeError):
                    return job_model
            return self._model

    def generate(self, requests: list[dict[str, Any]], *, model: str) -> list[Result]:
        server_model = self._server_model(model)
        return list(self._pool.map(lambda request: self._one(request, server_model), requests))

    def _one(self, request: dict[str, Any], model: str) -> Result:
        try:
            response = self._http.post(
                f"{self._base_url}/chat/completions", json=chat_request(request, model)
            )
        except httpx.TimeoutException as exc:
            return row_error(504, f"The OpenAI-compatible server did not answer in time: {exc}")
        except httpx.HTTPError as exc:
            return row_error(
                503, f"The OpenAI-compatible server at {self._base_url} is unreachable: {exc}"
            )
        if response.status_code >= 400:
            return _http_error(response)
        try:
            return generate_content_response(response.json(), model)
        except (ValueError, AttributeError, TypeError) as exc:
            return row_error(
                500,
                f"The OpenAI-compatible server answered something else than "
                f"a chat completion: {exc}",
            )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
