"""gemini_batch.clients.vertex without a service: retries of a busy endpoint (a tiny HTTP server
that answers 429 before it answers), terminal states, label rules, poll delays."""

from __future__ import annotations

import subprocess
import sys
import threading
from http.server import ThreadingHTTPServer

import pytest

from gemini_batch.clients.polling import Backoff
from gemini_batch.clients.vertex import (
    TERMINAL_STATES,
    JobStatus,
    VertexJobs,
    job_labels,
    label_value,
    vertex_job_client,
)
from gemini_batch.errors import ConfigError
from gemini_batch.local.stack import LOCAL_POLL_INTERVAL
from helpers.fake_http import JsonHandler


class _ThrottlingHandler(JsonHandler):
    """Answers 429 (then 503) before it answers a job: what a busy service does."""

    calls: list[int] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.calls.append(1)
        if len(self.calls) <= 2:
            code = 429 if len(self.calls) == 1 else 503
            body = {"error": {"code": code, "message": "busy", "status": "UNAVAILABLE"}}
        else:
            code = 200
            body = {"name": self.path.removeprefix("/v1/"), "state": "JOB_STATE_RUNNING"}
        self.send_json(code, body)


def test_429_and_503_are_retried() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ThrottlingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        vertex = VertexJobs(
            project="p", location="us-central1",
            client=vertex_job_client("us-central1", endpoint=endpoint),
        )
        status = vertex.get("projects/p/locations/us-central1/batchPredictionJobs/1")
        assert status.state == "RUNNING"
        assert len(_ThrottlingHandler.calls) == 3  # 429, 503, then the answer
    finally:
        server.shutdown()
        server.server_close()


def test_terminal_states_are_our_own_set() -> None:
    assert {
        "SUCCEEDED", "PARTIALLY_SUCCEEDED", "FAILED", "CANCELLED", "EXPIRED",
    } == TERMINAL_STATES
    assert not JobStatus(name="j", state="PAUSED").terminal  # it goes on when resumed
    assert not JobStatus(name="j", state="CANCELLING").terminal
    assert JobStatus(name="j", state="EXPIRED").terminal
    assert JobStatus(name="j", state="PARTIALLY_SUCCEEDED").answered


def test_labels_follow_the_label_rules() -> None:
    assert label_value("My Model.V2!") == "my-model-v2"
    assert len(label_value("x" * 100)) == 63
    labels = job_labels(model_name="m", invocation_id="i", extra={"tool": "mine", "9": "a"})
    assert labels["tool"] == "gemini-batch"  # config labels never replace ours
    assert labels["k9"] == "a"


def test_multi_region_location_is_refused_for_google_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GEMINI_BATCH_VERTEX_ENDPOINT", raising=False)
    with pytest.raises(ConfigError, match="regional"):
        vertex_job_client("US")


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=3.0, factor=2.0)
    assert [backoff.next_delay() for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0
    with pytest.raises(ConfigError):
        Backoff(initial=0)


# In a new interpreter: this process may have imported the whole client already.
_JOB_CLIENT_ALONE = """
import sys
from gemini_batch.clients.vertex import state_name, vertex_job_client

vertex_job_client("us-central1", endpoint="http://127.0.0.1:9")
print(state_name(4))
print(sorted(m for m in sys.modules if m.startswith("google.cloud.aiplatform_v1.services.")
             and m.count(".") == 4))
print("google.cloud.aiplatform_v1.types.tensorboard_service" in sys.modules)
from google.cloud import aiplatform_v1  # what other code in the process may do next
print(aiplatform_v1.ModelServiceClient.__name__, len(aiplatform_v1.__all__) > 1000)
"""


def test_the_job_client_comes_without_the_rest_of_vertex_ai() -> None:
    """Only the Job Service's modules are imported (aiplatform_v1's __init__ imports every
    service, about 60 MB more), and the package still works whole for other code."""
    run = subprocess.run([sys.executable, "-c", _JOB_CLIENT_ALONE], capture_output=True,
                         text=True, check=True)
    assert run.stdout.splitlines() == [
        "SUCCEEDED",
        "['google.cloud.aiplatform_v1.services.job_service']",
        "False",
        "ModelServiceClient True",
    ]


@pytest.mark.parametrize(("environment", "flags", "first_poll"), [
    ({}, [], 1.0),  # Vertex AI: jobs take minutes at least
    # What `local start` exports (the figure docs/cli.md and docs/local-stack.md give).
    ({"GEMINI_BATCH_POLL_INTERVAL": "0.1"}, [], LOCAL_POLL_INTERVAL),
    ({"GEMINI_BATCH_POLL_INTERVAL": "0.2"}, ["--poll-interval", "3"], 3.0),  # the flag wins
])
def test_the_first_poll_of_a_build(monkeypatch, environment, flags, first_poll):
    from click.testing import CliRunner

    from gemini_batch.build import stages as build
    from gemini_batch.build.stages import BuildResult
    from gemini_batch.cli import main
    from gemini_batch.exit_codes import ExitCode

    seen = []

    def recorded_build(options, *, settings, **_):
        seen.append(settings)
        return BuildResult(summaries=[], errors=[], exit_code=ExitCode.OK)

    monkeypatch.setattr(build, "build", recorded_build)
    monkeypatch.delenv("GEMINI_BATCH_POLL_INTERVAL", raising=False)
    result = CliRunner().invoke(main, ["build", *flags], env=environment)
    assert result.exit_code == 0, result.output
    assert [settings.poll_initial for settings in seen] == [first_poll]


def test_the_local_stack_polls_its_jobs_at_once():
    from gemini_batch.local.stack import StackState

    state = StackState(data_dir="d", project="p", engine="simulate", bigquery_port=1,
                       bigquery_grpc_port=2, vertex_port=3, bigquery_pid=4, vertex_pid=5)
    first_poll = float(state.environment()["GEMINI_BATCH_POLL_INTERVAL"])
    assert first_poll < Backoff().initial  # Vertex AI's default stays as it is
