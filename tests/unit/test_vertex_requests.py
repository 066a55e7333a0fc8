"""The emulator's request reading, simulate engine, fault draws and hold (no servers)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from gemini_batch.local.vertex.clock import Stopwatch
from gemini_batch.local.vertex.engines.openai import chat_request, json_schema
from gemini_batch.local.vertex.engines.simulate import SimulateEngine
from gemini_batch.local.vertex.errors import Cancelled, JobFailure
from gemini_batch.local.vertex.faults import FaultError, Faults, setting_from_text
from gemini_batch.local.vertex.requests import RequestError, parse_request
from gemini_batch.local.vertex.runner import JobRunner


def test_snake_case_objects_for_lists_and_nulls_are_read_as_the_service_reads_them():
    # As the multimodal sample echoes it from a STRUCT column: nulls for absent fields.
    raw = {
        "contents": {
            "role": "user",
            "parts": [
                {"fileData": None, "file_data": None, "text": "Describe."},
                {
                    "file_data": {"file_uri": "gs://b/x.jpeg", "mime_type": "image/jpeg"},
                    "text": None,
                },
            ],
        },
        "system_instruction": {"parts": {"text": "Be brief."}},
        "generation_config": {
            "max_output_tokens": 10,
            "response_mime_type": "application/json",
            "response_schema": {
                "type": "OBJECT",
                "properties": {"first_name": {"type": "STRING"}},
                "property_ordering": ["first_name"],
            },
            "stop_sequences": "END",
        },
    }
    request = parse_request(json.dumps(raw))
    assert request == {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Describe."},
                    {"fileData": {"fileUri": "gs://b/x.jpeg", "mimeType": "image/jpeg"}},
                ],
            }
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {
            "maxOutputTokens": 10,
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "OBJECT",
                "properties": {"first_name": {"type": "STRING"}},  # user's name kept
                "propertyOrdering": ["first_name"],
            },
            "stopSequences": ["END"],
        },
    }


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ("{not json", "", "Invalid JSON payload"),
        ('"just a string"', "", "must be an object"),
        ("{}", "contents", "no contents"),
        (
            '{"contents": [{"role": "tool", "parts": [{"text": "x"}]}]}',
            "contents[0].role",
            "valid role",
        ),
        ('{"contents": [{"role": "user"}]}', "contents[0].parts", "at least one parts"),
        ('{"contents": [{"parts": [{"text": ""}]}]}', "contents[0].parts[0].text", "empty text"),
        (
            '{"contents": [{"parts": [{"fileData": {"fileUri": "gs://b/x"}}]}]}',
            "contents[0].parts[0].fileData.mimeType",
            "mimeType is required",
        ),
        (
            '{"contents": [{"parts": [{"text": "a", "inlineData": {"data": "AA==", '
            '"mimeType": "image/png"}}]}]}',
            "contents[0].parts[0]",
            "one kind of data",
        ),
        (
            '{"contents": [{"parts": [{"text": "a"}]}], "generationConfg": {}}',
            "generationConfg",
            "Unknown name",
        ),
    ],
)
def test_requests_the_service_refuses_name_the_field(raw, field, message):
    with pytest.raises(RequestError) as caught:
        parse_request(raw)
    assert caught.value.field == field
    assert message in caught.value.message
    status = caught.value.status("p.d.t", 7)
    assert status.startswith("Bad Request: ") and '"INVALID_ARGUMENT"' in status
    assert "table p.d.t, row 7, field request" in status


def test_simulate_is_deterministic_and_says_it_is_simulated():
    engine = SimulateEngine()
    request = parse_request('{"contents": {"parts": {"text": "What is dbt?"}}}')
    first, again = (engine.answer(request, model="gemini-2.5-flash") for _ in range(2))
    assert json.dumps(first) == json.dumps(again)
    text = first["candidates"][0]["content"]["parts"][0]["text"]
    assert "simulated" in text and "What is dbt?" in text
    other = engine.answer(request, model="gemini-2.5-pro")
    assert other["modelVersion"] == "gemini-2.5-pro@default" and other != first


def test_enum_mime_type_answers_one_of_the_values():
    request = parse_request(
        json.dumps(
            {
                "contents": [{"parts": [{"text": "Sentiment?"}]}],
                "generationConfig": {
                    "responseMimeType": "text/x.enum",
                    "responseSchema": {"type": "STRING", "enum": ["good", "bad"]},
                },
            }
        )
    )
    answer = SimulateEngine().answer(request, model="gemini-2.5-flash")
    assert answer["candidates"][0]["content"]["parts"][0]["text"] in ("good", "bad")


def test_row_failures_are_stable_per_job_and_differ_between_jobs():
    faults = Faults.from_dict({"row_failure_rate": 0.3, "row_failure_codes": [500]})
    first = [faults.row_failure("job-1", row) for row in range(1000)]
    assert first == [faults.row_failure("job-1", row) for row in range(1000)]
    second = [faults.row_failure("job-2", row) for row in range(1000)]
    assert first != second
    failed = [status for status in first if status]
    assert 200 < len(failed) < 400
    assert all(
        status.startswith("Internal Server Error: ") and '"INTERNAL"' in status for status in failed
    )
    with pytest.raises(FaultError, match="row_failure_codes"):
        Faults.from_dict({"row_failure_codes": [418]})
    with pytest.raises(FaultError, match="job_outcome"):
        Faults.from_dict({"job_outcome": "SUCCEEDED"})


def test_hold_keeps_a_job_queued_until_released_or_cancelled():
    current = Faults.from_dict({"hold": True})
    runner = JobRunner(
        None, bigquery_endpoint="http://127.0.0.1:1", engine=SimulateEngine(),
        faults=lambda: current,
    )
    outcomes: list[str] = []

    def queue(cancel: threading.Event) -> None:
        try:
            # The snapshot a job took when it started, and its clock.
            runner._queued("job-1", cancel, current, Stopwatch(current.time_scale))
            outcomes.append("released")
        except Cancelled:
            outcomes.append("cancelled")

    released, cancelled = threading.Event(), threading.Event()
    waiting = [threading.Thread(target=queue, args=(event,)) for event in (released, cancelled)]
    for thread in waiting:
        thread.start()
    waiting[0].join(timeout=0.5)
    assert waiting[0].is_alive() and waiting[1].is_alive() and outcomes == []
    cancelled.set()  # a cancel ends a held job
    waiting[1].join(timeout=30)
    assert outcomes == ["cancelled"]
    current = Faults.from_dict({"hold": False}, base=current)  # what PATCH does
    waiting[0].join(timeout=30)
    assert outcomes == ["cancelled", "released"]
    assert Faults.from_dict({}).hold is False
    assert Faults.from_dict({"hold": "true"}).hold is True  # as flags and env give it
    with pytest.raises(FaultError, match="hold is true or false"):
        Faults.from_dict({"hold": "maybe"})


def test_released_lets_one_job_go_while_hold_holds_the_others():
    faults = Faults.from_dict({"hold": True, "released": ["123"]})
    assert not faults.holds("123") and faults.holds("124")
    assert Faults.from_dict({"released": ["123", "124"]}).released == ("123", "124")
    assert Faults.from_dict({"released": ["123"]}).holds("124") is False  # hold is off
    assert setting_from_text("released", "7,8") == ["7", "8"]  # flag / env form


def test_backdate_ages_the_next_jobs_and_the_queue_expiry_counts_from_it():
    faults = Faults.from_dict({"backdate": ["108000", "0"]})  # as flags and env give it
    assert faults.backdate == (108000.0, 0.0)
    assert setting_from_text("backdate", "108000,0") == ["108000", "0"]
    with pytest.raises(FaultError, match="backdate"):
        Faults.from_dict({"backdate": [-1]})
    runner = JobRunner(None, bigquery_endpoint="http://127.0.0.1:1", engine=SimulateEngine(),
                       faults=Faults)
    # Queued 30 hours already: it goes on; 72 hours already: it expires, unanswered.
    runner._queued("job-1", threading.Event(), Faults(), Stopwatch(1.0, already=30 * 3600))
    with pytest.raises(JobFailure) as expired:
        runner._queued("job-2", threading.Event(), Faults(), Stopwatch(1.0, already=72 * 3600))
    assert expired.value.state == "JOB_STATE_EXPIRED"


def test_chat_request_maps_json_mode_without_schema():
    request = parse_request(
        json.dumps(
            {
                "contents": [{"parts": [{"text": "List three colours as JSON."}]}],
                "generationConfig": {"responseMimeType": "application/json", "seed": 3},
            }
        )
    )
    body = chat_request(request, "llama3.2")
    assert body["response_format"] == {"type": "json_object"}
    assert body["seed"] == 3
    assert body["messages"] == [{"role": "user", "content": "List three colours as JSON."}]
    assert json_schema({"type": "ARRAY", "items": {"type": "INTEGER"}}) == {
        "type": "array",
        "items": {"type": "integer"},
    }


def test_openai_engine_turns_transport_errors_into_row_statuses():
    from gemini_batch.local.stack import free_port
    from gemini_batch.local.vertex.engines.openai import OpenAIEngine

    request = parse_request('{"contents": [{"parts": [{"text": "hi"}]}]}')
    unreachable = OpenAIEngine(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m")
    [status] = unreachable.generate([request], model="gemini-2.5-flash")
    assert status.startswith("Service Unavailable: ") and "unreachable" in status
    unreachable.close()

    # A server that accepts the connection and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        slow = OpenAIEngine(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=0.3)
        [status] = slow.generate([request], model="gemini-2.5-flash")
        slow.close()
    assert status.startswith("Gateway Timeout: ") and '"DEADLINE_EXCEEDED"' in status
