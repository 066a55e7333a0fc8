"""The Vertex emulator's JSONL side without a server: which objects a wildcard takes,
how prediction files are named as a job exports, the shape of an output line, and how
an input line is read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from gemini_batch.local.vertex.jsonl import (
    EXTRA,
    WHERE,
    JsonlSink,
    _input_row,
    echo_shape,
    echoed,
    output_directory_name,
    output_line,
    wildcard_pattern,
)
from helpers.paths import FIXTURES


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("in/*.jsonl", "in/a.jsonl", True),
        ("in/*.jsonl", "in/sub/a.jsonl", False),  # * stays within a folder
        ("in/**.jsonl", "in/sub/a.jsonl", True),
        ("in/part-?.jsonl", "in/part-1.jsonl", True),
        ("in/part-[12].jsonl", "in/part-3.jsonl", False),
        ("in/a.jsonl", "in/a.jsonlx", False),
    ],
)
def test_wildcards_match_as_cloud_storage_wildcards(pattern, name, matches):
    assert bool(wildcard_pattern(pattern).match(name)) is matches


class Uploads:
    """What a job's writes upload: object names and their lines."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def bucket(self, name: str) -> Uploads:
        return self

    def blob(self, name: str) -> Uploads:
        self._name = name
        return self

    def upload_from_string(self, data: bytes, **kwargs: Any) -> None:
        assert kwargs["if_generation_match"] == 0  # never over an existing file
        self.objects[self._name] = data


def test_each_export_of_a_long_job_is_a_file_of_its_own():
    uploads = Uploads()
    job = {"inputConfig": {"gcsSource": {"uris": ["gs://bkt/in.jsonl"]}},
           "outputConfig": {"gcsDestination": {"outputUriPrefix": "gs://bkt/out"}}}
    files = JsonlSink(uploads, job)  # type: ignore[arg-type]
    moment = datetime(2026, 1, 2, tzinfo=UTC)
    files.output_dir = files.output_dir.child(output_directory_name(moment))
    row = {"request": {"contents": []}, "status": "", "processed_time": 1_767_312_000_000_000,
           "response": '{"candidates":[]}', WHERE: "x", EXTRA: {"id": 7}}
    files.write([row])
    files.write([row, row])
    folder = "out/prediction-model-2026-01-02T00:00:00.000000Z"
    assert {name: data.count(b"\n") for name, data in uploads.objects.items()} == {
        f"{folder}/predictions.jsonl": 1,
        f"{folder}/predictions_1.jsonl": 2,
    }
    assert files.output_info == {"gcsOutputDirectory": f"gs://bkt/{folder}"}


def test_an_output_line_is_shaped_like_the_services():
    row = {
        "request": {"contents": []}, "status": "", "processed_time": 1_730_821_703_527_000,
        "response": '{"candidates": []}', WHERE: "gs://b/in.jsonl, line 1",
        EXTRA: {"request_id": "ab12"},
    }
    line = json.loads(output_line(row))
    # What the service writes, and nothing else: the input line's request_id is dropped.
    assert list(line) == ["status", "processed_time", "request", "response"]
    assert line["processed_time"] == "2024-11-05T15:48:23.527+00:00"  # as in the fixtures
    kept = json.loads(output_line(row, keep_input_fields=True))  # the setting
    assert list(kept) == ["status", "processed_time", "request_id", "request", "response"]
    failed = json.loads(output_line({"request": "x", "status": "Bad Request: ...",
                                     "processed_time": 0, "response": None}))
    assert "response" not in failed


def test_a_string_request_is_a_plain_text_prompt_echoed_as_given():
    """As reported of the service (python-aiplatform#4074), a JSON text included."""
    text = '{"contents": [{"parts": [{"text": "hi"}]}]}'
    row = _input_row(json.dumps({"request": text, "id": 7}).encode(), "gs://b/in.jsonl, line 1")
    assert row["request"] == {"contents": [{"role": "user", "parts": [{"text": text}]}]}
    assert row[EXTRA] == {"id": 7}
    line = json.loads(output_line({**row, "status": "", "processed_time": 0,
                                   "response": '{"candidates": []}'}))
    assert line["request"] == text


@pytest.mark.parametrize("sample", ["text", "multimodal"])
def test_the_echoed_request_is_the_one_the_service_wrote(sample: str) -> None:
    """Through the shape of all the input's lines, each request is echoed as the real
    output in tests/fixtures/vertex_samples has it: keys sorted, and a null member for
    each field another line has at that place (``"fileData": null`` beside
    ``file_data``)."""
    inputs = [json.loads(line)["request"] for line in
              (FIXTURES / f"batch_request_{sample}_input.jsonl").read_text().splitlines()
              if line.strip()]
    outputs = [json.loads(line)["request"] for line in
               (FIXTURES / f"batch_request_{sample}_output.jsonl").read_text().splitlines()
               if line.strip()]
    shape = None
    for request in inputs:
        shape = echo_shape(shape, request)
    echoes = [json.dumps(echoed(request, shape)) for request in inputs]
    # The output's lines come in another order; each is the echo of one input line.
    assert sorted(echoes) == sorted(json.dumps(request) for request in outputs)
    assert list(echoed({"b": 1, "a": {"y": 2, "x": 1}}, None)) == ["a", "b"]
