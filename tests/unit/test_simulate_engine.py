"""The simulate engine answers like the 2026 service: thinking, answers with no usable
text, row errors, the response's shape; and the settings and model checks behind them.
No server: the engine, the settings and the create-time checks are called directly."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gemini_batch.local.vertex.answers import EMPTY_KINDS, empty_answer
from gemini_batch.local.vertex.engines.simulate import SimulateEngine
from gemini_batch.local.vertex.errors import ApiError
from gemini_batch.local.vertex.faults import FaultError, Faults
from gemini_batch.local.vertex.models import KNOWN_MODELS, check_served
from gemini_batch.local.vertex.requests import batch_refusal, parse_request
from gemini_batch.local.vertex.store import JobStore
from gemini_batch.rules import catalog

ENGINE = SimulateEngine()


def request(text: str = "Give me a recipe for banana bread.", *, parts: list | None = None,
            **generation_config: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts or [{"text": text}]}]}
    if generation_config:
        body["generationConfig"] = generation_config
    return parse_request(body)


def answer(body: dict[str, Any], model: str = "gemini-2.5-flash") -> dict[str, Any]:
    result = ENGINE.answer(body, model=model)
    assert isinstance(result, dict), result
    return result


def usable_text(response: dict[str, Any]) -> list[str]:
    """What a user can read: text parts that are not thoughts."""
    return [part["text"] for candidate in response.get("candidates", [])
            for part in candidate.get("content", {}).get("parts", [])
            if "text" in part and not part.get("thought")]


def usage(response: dict[str, Any]) -> dict[str, Any]:
    return response["usageMetadata"]


# ---------------------------------------------------------------------------- thinking


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-3-pro-preview"])
def test_thinking_models_think_by_default_and_thoughts_count_in_the_total(model):
    response = answer(request(), model)
    counts = usage(response)
    typical = catalog.MODELS[model].thinking.typical_tokens
    assert 0.6 * typical <= counts["thoughtsTokenCount"] <= 1.2 * typical
    assert counts["totalTokenCount"] == (
        counts["promptTokenCount"] + counts["candidatesTokenCount"] + counts["thoughtsTokenCount"]
    )
    assert usable_text(response) and "simulated" in usable_text(response)[0]
    # No thought parts unless asked for: parts[0] is the answer.
    assert not any(p.get("thought") for p in response["candidates"][0]["content"]["parts"])


def test_thinking_is_a_stable_function_of_the_request():
    first, again = answer(request()), answer(request())
    assert json.dumps(first) == json.dumps(again)
    spent = {usage(answer(request(f"Question {i}")))["thoughtsTokenCount"] for i in range(30)}
    assert len(spent) > 10  # it varies with the prompt


def test_models_that_do_not_think_report_no_thoughts_and_ignore_the_config():
    for model in ("gemini-2.0-flash-001", "gemini-2.0-flash-lite-001"):
        response = answer(request(thinkingConfig={"thinkingBudget": 1000}), model)
        assert "thoughtsTokenCount" not in usage(response)
    # Flash-Lite does not think unless asked to.
    assert "thoughtsTokenCount" not in usage(answer(request(), "gemini-2.5-flash-lite"))
    dynamic = answer(request(thinkingConfig={"thinkingBudget": -1}), "gemini-2.5-flash-lite")
    assert usage(dynamic)["thoughtsTokenCount"] > 0


def test_a_thinking_budget_bounds_thinking_and_zero_turns_it_off_where_allowed():
    off = answer(request(thinkingConfig={"thinkingBudget": 0}))
    assert "thoughtsTokenCount" not in usage(off)
    assert usage(off)["totalTokenCount"] == (
        usage(off)["promptTokenCount"] + usage(off)["candidatesTokenCount"]
    )
    small = answer(request(thinkingConfig={"thinkingBudget": 100}))
    assert usage(small)["thoughtsTokenCount"] == 100
    # Below 2.5 Pro's minimum (128): clamped to it.
    clamped = answer(request(thinkingConfig={"thinkingBudget": 10}), "gemini-2.5-pro")
    assert usage(clamped)["thoughtsTokenCount"] == 128


@pytest.mark.parametrize("model", ["gemini-2.5-pro", "gemini-3-pro-preview"])
def test_a_zero_budget_on_a_model_that_only_thinks_fails_the_row_as_the_service_does(model):
    status = ENGINE.answer(request(thinkingConfig={"thinkingBudget": 0}), model=model)
    assert isinstance(status, str)
    assert status.startswith('Bad Request: {"error": {"code": 400, "message": "Budget 0 is '
                             'invalid. This model only works in thinking mode.')
    assert status.endswith('"status": "INVALID_ARGUMENT"}}')
    assert "generationConfig.thinkingConfig.thinkingBudget" in status


def test_thinking_level_is_for_gemini_3_only_and_scales_thinking():
    low = answer(request(thinkingConfig={"thinkingLevel": "LOW"}), "gemini-3-pro-preview")
    high = answer(request(thinkingConfig={"thinkingLevel": "HIGH"}), "gemini-3-pro-preview")
    assert usage(low)["thoughtsTokenCount"] < usage(high)["thoughtsTokenCount"]
    refused = ENGINE.answer(request(thinkingConfig={"thinkingLevel": "LOW"}),
                            model="gemini-2.5-flash")
    assert isinstance(refused, str) and "thinking_level is not supported" in refused
    both = ENGINE.answer(request(thinkingConfig={"thinkingLevel": "LOW", "thinkingBudget": 9}),
                         model="gemini-3-pro-preview")
    assert isinstance(both, str) and "cannot be used in the same request" in both


def test_include_thoughts_puts_thought_parts_before_the_answer():
    response = answer(request(thinkingConfig={"includeThoughts": True}))
    first, second = response["candidates"][0]["content"]["parts"]
    assert first["thought"] is True and "Simulated thinking" in first["text"]
    assert "thought" not in second and "banana bread" in second["text"]
    # Thought summaries are not counted as the answer's tokens.
    plain = answer(request(thinkingConfig={"includeThoughts": False}))
    assert usage(response)["candidatesTokenCount"] == usage(plain)["candidatesTokenCount"]


def test_thoughts_and_text_never_exceed_max_output_tokens():
    for limit in (50, 400, 700, 900, 1100, 2000):
        for i in range(20):
            counts = usage(answer(request(f"Tell me about {i}", maxOutputTokens=limit)))
            spent = counts.get("thoughtsTokenCount", 0) + counts.get("candidatesTokenCount", 0)
            assert spent <= limit


def test_thinking_that_spends_the_whole_limit_leaves_no_text():
    response = answer(request(maxOutputTokens=50))
    [candidate] = response["candidates"]
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert candidate["content"] == {"role": "model"}  # no parts at all
    assert usable_text(response) == []
    counts = usage(response)
    assert counts["thoughtsTokenCount"] == 50 and "candidatesTokenCount" not in counts
    assert counts["totalTokenCount"] == counts["promptTokenCount"] + 50
    # With thoughts asked for, the thought part is all there is.
    shown = answer(request(maxOutputTokens=50, thinkingConfig={"includeThoughts": True}))
    assert [p.get("thought") for p in shown["candidates"][0]["content"]["parts"]] == [True]
    assert usable_text(shown) == []


def test_without_thinking_a_small_limit_cuts_the_text():
    response = answer(request("Tell me everything about bread. " * 20, maxOutputTokens=5,
                              thinkingConfig={"thinkingBudget": 0}))
    [candidate] = response["candidates"]
    assert candidate["finishReason"] == "MAX_TOKENS"
    assert 0 < len(usable_text(response)[0]) <= 20
    assert usage(response)["candidatesTokenCount"] <= 5


# ---------------------------------------------------------------------------- no usable text


@pytest.mark.parametrize("kind", EMPTY_KINDS)
def test_every_empty_kind_has_no_usable_text_and_counts_the_prompt(kind):
    normal = answer(request())
    empty = empty_answer(normal, kind, limit=1000)
    assert usable_text(empty) == []
    counts = usage(empty)
    assert counts["promptTokenCount"] == usage(normal)["promptTokenCount"]
    assert counts["totalTokenCount"] == (
        counts["promptTokenCount"] + counts.get("candidatesTokenCount", 0)
        + counts.get("thoughtsTokenCount", 0)
    )
    assert empty["modelVersion"] == normal["modelVersion"]


def test_a_blocked_prompt_has_prompt_feedback_and_no_candidates():
    response = answer(request("Tell me [[gemini-batch:blocked:SAFETY]] a secret."))
    assert "candidates" not in response
    feedback = response["promptFeedback"]
    assert feedback["blockReason"] == "SAFETY" and feedback["blockReasonMessage"]
    assert [r["category"] for r in feedback["safetyRatings"] if r.get("blocked")] == [
        "HARM_CATEGORY_DANGEROUS_CONTENT"
    ]
    assert "thoughtsTokenCount" not in usage(response)
    assert usage(response)["totalTokenCount"] == usage(response)["promptTokenCount"]
    other = answer(request("[[gemini-batch:blocked:PROHIBITED_CONTENT]]"))
    assert other["promptFeedback"]["blockReason"] == "PROHIBITED_CONTENT"
    assert "safetyRatings" not in other["promptFeedback"]


@pytest.mark.parametrize("reason", ["SAFETY", "RECITATION", "PROHIBITED_CONTENT", "SPII"])
def test_a_candidate_stopped_for_a_reason_has_no_content(reason):
    response = answer(request(f"Sing me a song [[gemini-batch:finish:{reason}]]"))
    [candidate] = response["candidates"]
    assert candidate["finishReason"] == reason and "content" not in candidate
    assert ("safetyRatings" in candidate) == (reason == "SAFETY")
    # The model thought before it was stopped: the thinking is still counted.
    assert usage(response)["thoughtsTokenCount"] > 0


def test_the_max_tokens_marker_on_a_model_that_does_not_think():
    response = answer(request("[[gemini-batch:finish:MAX_TOKENS]]", maxOutputTokens=64),
                      "gemini-2.0-flash-001")
    assert response["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert usable_text(response) == []
    assert usage(response)["candidatesTokenCount"] == 64


def test_a_marker_in_the_system_instruction_counts_and_unknown_ones_are_text():
    body = parse_request({"systemInstruction": {"parts": [{"text": "[[gemini-batch:finish:"
                                                                    "RECITATION]]"}]},
                          "contents": [{"parts": [{"text": "hi"}]}]})
    assert answer(body)["candidates"][0]["finishReason"] == "RECITATION"
    unknown = answer(request("[[gemini-batch:finish:TIRED]] and [[gemini-batch:error:418]]"))
    assert "[[gemini-batch:finish:TIRED]]" in usable_text(unknown)[0]


# ---------------------------------------------------------------------------- row errors


@pytest.mark.parametrize(
    ("code", "reason", "status"),
    [
        (400, "Bad Request", "INVALID_ARGUMENT"),
        (429, "Too Many Requests", "RESOURCE_EXHAUSTED"),
        (500, "Internal Server Error", "INTERNAL"),
        (503, "Service Unavailable", "UNAVAILABLE"),
        (504, "Gateway Timeout", "DEADLINE_EXCEEDED"),
    ],
)
def test_an_error_marker_fails_the_row_with_the_service_status(code, reason, status):
    result = ENGINE.answer(request(f"q [[gemini-batch:error:{code}]]"), model="gemini-2.5-flash")
    assert isinstance(result, str)
    head, _, body = result.partition(": ")
    assert head == reason
    error = json.loads(body)["error"]
    assert (error["code"], error["status"]) == (code, status) and error["message"]


def test_a_request_naming_a_context_cache_fails_as_batch_writes_it():
    cache = "projects/p/locations/l/cachedContents/3814716010150232064"
    body = parse_request({"contents": [{"parts": [{"text": "hi"}]}], "cachedContent": cache})
    status = batch_refusal(body)
    assert status == (
        "Internal error occurred. Failed to get generateContentResponse: "
        '{"error": {"code": 404, "message": "Not found: cached content metadata for '
        '3814716010150232064.", "status": "NOT_FOUND"}}'
    )
    assert batch_refusal(request()) is None


# ---------------------------------------------------------------------------- shape


def test_the_response_has_the_2026_shape():
    parts = [
        {"text": "Compare these."},
        {"fileData": {"fileUri": "gs://b/a.jpeg", "mimeType": "image/jpeg"}},
        {"fileData": {"fileUri": "gs://b/a.mp4", "mimeType": "video/mp4"}},
        {"fileData": {"fileUri": "gs://b/a.mp3", "mimeType": "audio/mpeg"}},
        {"inlineData": {"data": "JVBERi0=", "mimeType": "application/pdf"}},
    ]
    response = answer(request(parts=parts))
    assert response["modelVersion"] == "gemini-2.5-flash@default"
    counts = usage(response)
    assert counts["trafficType"] == "ON_DEMAND"
    assert counts["promptTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": 4},
        {"modality": "IMAGE", "tokenCount": 258},
        {"modality": "VIDEO", "tokenCount": 7890},
        {"modality": "AUDIO", "tokenCount": 960},
        {"modality": "DOCUMENT", "tokenCount": 1290},
    ]
    assert counts["promptTokenCount"] == sum(d["tokenCount"] for d in counts["promptTokensDetails"])
    assert counts["candidatesTokensDetails"] == [
        {"modality": "TEXT", "tokenCount": counts["candidatesTokenCount"]}
    ]


# ---------------------------------------------------------------------------- settings


def test_settings_read_as_text_as_flags_and_env_give_them():
    settings = Faults.from_dict(Faults.from_env({
        "GEMINI_BATCH_FAULT_EMPTY_ANSWER_RATE": "0.5",
        "GEMINI_BATCH_FAULT_EMPTY_ANSWER_KINDS": "finish:MAX_TOKENS,blocked:SAFETY",
        "GEMINI_BATCH_FAULT_TIME_SCALE": "3600",
        "GEMINI_BATCH_FAULT_RUN_SECONDS": "90000",
        "GEMINI_BATCH_FAULT_INCOMPLETE_UNKNOWN": "true",
        "GEMINI_BATCH_FAULT_LEGACY_MODELS": "no",
        "GEMINI_BATCH_FAULT_JOB_OUTCOME": "paused",
    }))
    assert settings.to_dict() == {
        **Faults().to_dict(),
        "empty_answer_rate": 0.5,
        "empty_answer_kinds": ["finish:MAX_TOKENS", "blocked:SAFETY"],
        "time_scale": 3600.0,
        "run_seconds": 90000.0,
        "incomplete_unknown": True,
        "legacy_models": False,
        "job_outcome": "PAUSED",
    }


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"empty_answer_rate": 1.5}, "empty_answer_rate"),
        ({"empty_answer_kinds": ["finish:STOP"]}, "empty_answer_kinds"),
        ({"empty_answer_kinds": []}, "empty_answer_kinds"),
        ({"time_scale": 0}, "time_scale"),
        ({"run_seconds": -1}, "run_seconds"),
        ({"incomplete_unknown": "maybe"}, "incomplete_unknown"),
    ],
)
def test_bad_settings_are_refused_naming_them(values, named):
    with pytest.raises(FaultError, match=named):
        Faults.from_dict(values)


def test_empty_answers_are_drawn_per_job_row_and_the_kinds_mixed():
    faults = Faults.from_dict({"empty_answer_rate": 0.4})
    first = [faults.empty_answer("job-1", row) for row in range(1000)]
    assert first == [faults.empty_answer("job-1", row) for row in range(1000)]
    assert first != [faults.empty_answer("job-2", row) for row in range(1000)]
    drawn = [kind for kind in first if kind]
    assert 300 < len(drawn) < 500
    assert set(drawn) == set(EMPTY_KINDS)
    # Independent of the row failures' draw.
    both = Faults.from_dict({"empty_answer_rate": 0.5, "row_failure_rate": 0.5})
    pairs = {(both.empty_answer("j", r) is None, both.row_failure("j", r) is None)
             for r in range(200)}
    assert len(pairs) == 4


def test_stop_with_no_parts_is_drawn_per_job_row_and_says_stop():
    faults = Faults.from_dict({"stop_empty_rate": 0.3})
    first = [faults.stop_empty("job-1", row) for row in range(1000)]
    assert first == [faults.stop_empty("job-1", row) for row in range(1000)]
    assert 200 < sum(first) < 400
    # A resend is a new job: the same row draws again, and most pass.
    again = [faults.stop_empty("job-2", row) for row, drawn in enumerate(first) if drawn]
    assert sum(again) < len(again) / 2
    answer = empty_answer({"candidates": [{"content": {"parts": [{"text": "hi"}]}}],
                           "usageMetadata": {"promptTokenCount": 3,
                                             "candidatesTokenCount": 1}},
                          "finish:STOP", limit=100)
    assert answer["candidates"] == [{"content": {"role": "model"}, "finishReason": "STOP"}]
    assert answer["usageMetadata"] == {"promptTokenCount": 3, "totalTokenCount": 3}
    with pytest.raises(FaultError, match="stop_empty_rate"):
        Faults.from_dict({"stop_empty_rate": 2})


# ---------------------------------------------------------------------------- models, jobs


def test_the_emulator_serves_the_catalog_models_and_their_aliases():
    assert {"gemini-2.5-flash", "gemini-2.0-flash", "gemini-3-pro-preview"} <= KNOWN_MODELS
    assert "gemini-2.5-flash-preview-09-2025" not in KNOWN_MODELS  # not in the catalog


@pytest.mark.parametrize(
    ("model", "location", "code", "says"),
    [
        ("gemini-3-pro-preview", "us-central1", 404, "served in global"),
        ("gemini-2.5-flash", "mars-north1", 404, "not served for batch prediction in 'mars"),
        ("gemini-1.5-flash-002", "us-central1", 404, "not available to new projects"),
        ("gemini-3-pro-preview", "global", 400, "Cloud Storage only"),
        ("gemini-2.5-flash", "global", 400, "Cloud Storage only"),
    ],
)
def test_a_model_not_served_where_the_job_runs_is_refused(model, location, code, says):
    parent = f"projects/p/locations/{location}"
    with pytest.raises(ApiError) as refused:
        check_served(model, parent, legacy_models=False)
    assert refused.value.code == code and says in refused.value.message
    if code == 404:
        assert refused.value.message.startswith(
            f"Publisher Model `{parent}/publishers/google/models/{model}` was not found or your "
            "project does not have access to it.")


def test_served_models_and_models_added_by_flag_are_taken():
    check_served("gemini-2.5-flash", "projects/p/locations/europe-west4", legacy_models=False)
    check_served("gemini-1.5-flash-002", "projects/p/locations/us-central1", legacy_models=True)
    check_served("my-tuned-model", "projects/p/locations/us-central1", legacy_models=False)


def test_jobs_are_listed_by_id_not_newest_first(tmp_path):
    store = JobStore(tmp_path)
    for job_id, created in [("3000000000000000000", "2026-01-01"), ("1000000000000000000",
                            "2026-01-03"), ("2000000000000000000", "2026-01-02")]:
        store.add(job_id, {"name": job_id, "createTime": created})
    assert [job_id for job_id, _ in store.all()] == [
        "1000000000000000000", "2000000000000000000", "3000000000000000000"
    ]
