"""The request validator: derived from Google's discovery document, checked-in files
current, the issue's requests refused with the field named, the model's rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gemini_batch.local.vertex.requests import RequestError, parse_request
from gemini_batch.rules import catalog, request_schema, request_schema_build

DISCOVERY = Path("/work/shared/google/aiplatform.v1.json")


def _request(config=None, **extra):
    request = {"contents": [{"role": "user", "parts": [{"text": "Rate the urgency."}]}]}
    if config is not None:
        request["generationConfig"] = config
    return {**request, **extra}


def _messages(request):
    return [str(problem) for problem in request_schema.schema_problems(request)]


def test_the_checked_in_schema_and_macro_are_what_the_script_writes():
    shipped = json.loads(request_schema_build.SCHEMA_FILE.read_text())
    assert request_schema_build.MACRO_FILE.read_text() == request_schema_build.macro_text(shipped)
    assert shipped["revision"] == "20261106"
    if DISCOVERY.exists():  # the copy beside the repo on the team's machine
        assert request_schema_build.derive(json.loads(DISCOVERY.read_text())) == shipped
    assert request_schema_build.main(["--check"]) == 0


def test_a_nested_typo_is_named_with_the_field_meant():
    assert _messages(_request({"thinkingConfig": {"thinkingBugdet": 512}})) == [
        "generationConfig.thinkingConfig.thinkingBugdet: unknown field; "
        "did you mean thinkingBudget?"
    ]


@pytest.mark.parametrize(("given", "meant"), [("INT64", "INTEGER"), ("BOOL", "BOOLEAN"),
                                               ("FLOAT64", "NUMBER")])
def test_bigquery_type_names_in_a_response_schema_get_the_openapi_name(given, meant):
    schema = {"type": "OBJECT", "properties": {"urgency": {"type": given}}}
    (problem,) = _messages(_request({"responseSchema": schema}))
    assert problem.startswith(f'generationConfig.responseSchema.properties.urgency.type: "{given}"')
    assert problem.endswith(f"did you mean {meant}?")


@pytest.mark.parametrize("given", ["object", "integer", "String"])
def test_a_response_schema_type_in_any_case_is_taken_as_the_service_takes_it(given):
    schema = {"type": "OBJECT", "properties": {"urgency": {"type": given}}}
    assert _messages(_request({"responseSchema": schema})) == []


def test_types_and_enums_at_any_depth_and_both_spellings():
    request = _request({"max_output_tokens": "many", "temperature": True},
                       safety_settings=[{"category": "HARM_CATEGORY_HATE_SPEECH",
                                         "threshold": "BLOCK_SOME"}])
    assert _messages(request) == [
        "generationConfig.maxOutputTokens: many is not an integer",
        "generationConfig.temperature: true is not a number",
        'safetySettings[0].threshold: "BLOCK_SOME" is not one of BLOCK_LOW_AND_ABOVE, '
        "BLOCK_MEDIUM_AND_ABOVE, BLOCK_ONLY_HIGH, BLOCK_NONE, OFF; did you mean BLOCK_NONE?",
    ]


def test_free_form_members_and_user_names_are_not_checked():
    request = _request({"responseSchema": {"type": "OBJECT", "properties": {
        "weird name": {"type": "STRING", "example": {"anything": 1}}}}},
        labels={"team": "data"})
    assert _messages(request) == []


@pytest.mark.parametrize(("model", "config", "expected"), [
    ("gemini-2.5-pro", {"thinkingConfig": {"thinkingBudget": 0}},
     "generationConfig.thinkingConfig.thinkingBudget: 0 turns thinking off, which "
     "gemini-2.5-pro cannot do; use 128 to 32768, or -1 (dynamic)"),
    ("gemini-2.5-flash", {"thinkingConfig": {"thinkingBudget": 30000}},
     "generationConfig.thinkingConfig.thinkingBudget: 30000 is outside what gemini-2.5-flash "
     "takes; use 1 to 24576, or -1 (dynamic), or 0 (off)"),
    ("gemini-2.5-flash", {"thinkingConfig": {"thinkingLevel": "LOW"}},
     "generationConfig.thinkingConfig.thinkingLevel: gemini-2.5-flash does not take a thinking "
     "level (Gemini 3 models do); set thinkingBudget"),
    ("gemini-3-pro-preview", {"thinkingConfig": {"thinkingLevel": "MEDIUM"}},
     'generationConfig.thinkingConfig.thinkingLevel: "MEDIUM" is not a level '
     "gemini-3-pro-preview takes: LOW, HIGH"),
    ("gemini-2.0-flash-001", {"maxOutputTokens": 65536},
     "generationConfig.maxOutputTokens: 65536 is outside 1 to 8192, what gemini-2.0-flash-001 "
     "takes"),
    ("gemini-2.5-flash", {"candidateCount": 9},
     "generationConfig.candidateCount: 9 is outside 1 to 8, what gemini-2.5-flash takes"),
])
def test_the_models_rules(model, config, expected):
    problems = request_schema.model_problems(_request(config), catalog.MODELS[model])
    assert [str(problem) for problem in problems] == [expected]


def test_what_a_model_takes_passes():
    flash = catalog.MODELS["gemini-2.5-flash"]
    for config in ({"thinkingConfig": {"thinkingBudget": 0}},
                   {"thinkingConfig": {"thinkingBudget": -1}},
                   {"maxOutputTokens": 65536, "candidateCount": 8}):
        assert request_schema.model_problems(_request(config), flash) == []


def test_retired_models_are_refused_with_the_date_and_the_replacement():
    for name in ("gemini-1.5-flash", "gemini-1.5-pro-002",
                 "publishers/google/models/gemini-1.5-flash-001"):
        problem = catalog.check_model(name, "us-central1")
        assert problem is not None
        assert "was retired on 2025-" in problem and "; use gemini-2.5-" in problem
    assert catalog.check_model("gemini-2.5-flash", "us-central1") is None
    models = catalog.MODELS.values()
    assert all(model.source.startswith("https://") and model.read for model in models)


@pytest.mark.parametrize(("request_json", "model", "message"), [
    (_request({"thinkingConfig": {"thinkingBugdet": 512}}), "gemini-2.5-flash",
     "Invalid JSON payload received. Unknown name \"thinkingBugdet\" at "
     "'generation_config.thinking_config': Cannot find field."),
    (_request({"responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INT64"}}}}),
     "gemini-2.5-flash",
     "Invalid value at 'generation_config.response_schema.properties.n.type' (TYPE_ENUM), "
     '"INT64"'),
    (_request({"thinkingConfig": {"thinkingBudget": 0}}), "gemini-2.5-pro",
     "Budget 0 is invalid. This model only works in thinking mode."),
])
def test_the_emulator_refuses_with_the_services_400(request_json, model, message):
    with pytest.raises(RequestError) as refused:
        parse_request(json.dumps(request_json), model)
    assert refused.value.message == message
    assert '"code": 400' in refused.value.status("p.d.t", 0)
