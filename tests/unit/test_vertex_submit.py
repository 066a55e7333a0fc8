"""Creating a batch job never makes two, whatever the create call answers.

A small HTTP server on 127.0.0.1 plays the Job Service's REST surface (create, list,
cancel) and answers the first create the way a busy or cut-off service does; the real
``aiplatform_v1.JobServiceClient`` (REST) talks to it through ``VertexJobs``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from gemini_batch.clients import endpoints
from gemini_batch.clients import vertex as jobs
from gemini_batch.clients.vertex import SUBMIT_LABEL, VertexJobs, vertex_job_client
from gemini_batch.errors import JobServiceError
from helpers.fake_http import JsonHandler

PARENT = "projects/p/locations/us-central1"


class _JobService(JsonHandler):
    """Creates jobs; ``script`` says what each create call answers, in order:
    'ok', 'made-then-504' (the job is made, the answer is lost), '503' or '429'
    (nothing made), '400' (refused)."""

    script: list[str] = []
    jobs: list[dict[str, Any]] = []
    cancelled: list[str] = []
    # How many list calls answer as if the jobs made so far were not listed yet.
    stale_lists = 0

    def _error(self, code: int, status: str) -> None:
        self.send_json(code, {"error": {"code": code, "message": "busy", "status": status}})

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        path = urlparse(self.path).path
        if path.endswith(":cancel"):
            self.cancelled.append(path.removeprefix("/v1/").removesuffix(":cancel"))
            self.send_json(200, {})
            return
        answer = self.script.pop(0) if self.script else "ok"
        if answer in ("429", "503"):
            self._error(int(answer), "RESOURCE_EXHAUSTED" if answer == "429" else "UNAVAILABLE")
            return
        if answer == "400":
            self._error(400, "INVALID_ARGUMENT")
            return
        job = {**body, "name": f"{PARENT}/batchPredictionJobs/{len(self.jobs) + 1}",
               "state": "JOB_STATE_PENDING",
               "createTime": f"2026-12-01T00:00:{len(self.jobs):02d}Z"}
        self.jobs.append(job)
        if answer == "made-then-504":
            self._error(504, "DEADLINE_EXCEEDED")
        else:
            self.send_json(200, job)

    def do_GET(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        if not url.path.endswith("/batchPredictionJobs"):
            name = url.path.removeprefix("/v1/")
            found = [job for job in self.jobs if job["name"] == name]
            self.send_json(200, found[0]) if found else self._error(404, "NOT_FOUND")
            return
        if self.stale_lists:
            type(self).stale_lists -= 1
            self.send_json(200, {"batchPredictionJobs": []})
            return
        wanted = dict(re.findall(r'labels\.(\w+)="([^"]*)"',
                                 parse_qs(url.query).get("filter", [""])[0]))
        listed = [job for job in reversed(self.jobs)  # not newest-first on purpose
                  if all(job.get("labels", {}).get(k) == v for k, v in wanted.items())]
        self.send_json(200, {"batchPredictionJobs": listed})



@pytest.fixture()
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[_JobService]]:
    monkeypatch.setattr(jobs.time, "sleep", lambda seconds: None)  # no real backoff waits
    _JobService.script, _JobService.jobs, _JobService.cancelled = [], [], []
    _JobService.stale_lists = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JobService)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _JobService.endpoint = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield _JobService
    finally:
        server.shutdown()
        server.server_close()


def _submit(service: type[_JobService]):
    vertex = VertexJobs(project="p", location="us-central1",
                        client=vertex_job_client("us-central1", endpoint=service.endpoint))
    return vertex.submit(display_name="shard", gemini_model="gemini-2.5-flash",
                         input_table="p.d.shard", output_table="p.d.out",
                         labels={"tool": "gemini-batch"})


def test_a_create_whose_answer_is_lost_is_found_not_made_again(service) -> None:
    service.script = ["made-then-504"]
    status = _submit(service)
    assert len(service.jobs) == 1
    assert status.name == service.jobs[0]["name"]
    assert status.labels[SUBMIT_LABEL] == service.jobs[0]["labels"][SUBMIT_LABEL]


def test_throttled_and_unavailable_creates_are_sent_again_and_make_one_job(service) -> None:
    service.script = ["429", "503", "ok"]
    status = _submit(service)
    assert len(service.jobs) == 1
    assert status.name == service.jobs[0]["name"]
    assert service.cancelled == []


def test_a_retried_create_that_made_a_second_job_cancels_the_duplicate(service) -> None:
    # The first create made a job the list did not show yet (it was made after the
    # lookup): the second create makes another. The newer one is cancelled.
    service.script = ["made-then-504", "ok"]
    service.stale_lists = 1
    status = _submit(service)
    assert len(service.jobs) == 2
    assert status.name == service.jobs[0]["name"]
    assert service.cancelled == [service.jobs[1]["name"]]


def test_a_refused_create_names_the_table_and_makes_nothing(service) -> None:
    service.script = ["400"]
    with pytest.raises(JobServiceError, match="p.d.shard"):
        _submit(service)
    assert service.jobs == []


def test_a_create_that_never_gets_through_says_no_job_was_made(service) -> None:
    service.script = ["503"] * jobs.CREATE_ATTEMPTS
    with pytest.raises(JobServiceError, match="No job was made"):
        _submit(service)
    assert service.jobs == []


def test_list_sorts_newest_first_whatever_the_service_order(service) -> None:
    service.script = ["ok", "ok", "ok"]
    for _ in range(3):
        _submit(service)
    vertex = VertexJobs(project="p", location="us-central1",
                        client=vertex_job_client("us-central1", endpoint=service.endpoint))
    listed = vertex.list(labels={"tool": "gemini-batch"}, limit=2)
    assert [job.name for job in listed] == [service.jobs[2]["name"], service.jobs[1]["name"]]


def test_global_is_reached_without_a_region_prefix() -> None:
    assert endpoints.google_endpoint("global") == "aiplatform.googleapis.com"
    assert endpoints.google_endpoint("europe-west4") == "europe-west4-aiplatform.googleapis.com"
