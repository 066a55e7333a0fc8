"""The Airflow operator and trigger without a stack: the operator's constructor and the
arguments it gives dbt, the trigger's serialization (what Airflow stores and rebuilds it
from), its polls and backoff against a small Vertex AI REST server on 127.0.0.1, the
events it fires, and the same endpoint rule as the sync client."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from typing import Any

import pytest

from helpers.airflow_home import use_temporary_airflow_home
from helpers.fake_http import JsonHandler

use_temporary_airflow_home()
pytest.importorskip("airflow", reason="the airflow extra is not installed")

from airflow.sdk.exceptions import AirflowException  # noqa: E402

from gemini_batch.airflow import (  # noqa: E402
    GeminiBatchBuildOperator,
    GeminiBatchJobTrigger,
    triggers,
)
from gemini_batch.clients import retries  # noqa: E402
from gemini_batch.errors import ConfigError  # noqa: E402

JOB = "projects/p/locations/us-central1/batchPredictionJobs/{}"


# -- the operator ------------------------------------------------------------------------


def test_the_operator_takes_keyword_arguments_only() -> None:
    with pytest.raises(TypeError):
        GeminiBatchBuildOperator("build", "/dbt")  # type: ignore[misc]


def test_the_operator_gives_dbt_what_the_cli_would() -> None:
    op = GeminiBatchBuildOperator(
        task_id="build", project_dir="/dbt/project", profiles_dir="/dbt/profiles",
        target="prod", select="questions+ answers", exclude=["tag:slow", "legacy"],
        vars={"day": "2026-01-01", "n": 3}, full_refresh=True, threads=8,
        dbt_args=["--fail-fast"],
    )
    options = op.dbt_options()
    assert (options.project_dir, options.profiles_dir, options.target) == (
        "/dbt/project", "/dbt/profiles", "prod")
    assert options.select == ("questions+", "answers")
    assert options.exclude == ("tag:slow", "legacy")
    assert json.loads(options.vars) == {"day": "2026-01-01", "n": 3}
    assert options.extra == ("--fail-fast", "--full-refresh", "--threads", "8")
    # Empty templated values (a DAG param left empty) mean "not given".
    bare = GeminiBatchBuildOperator(task_id="b", project_dir="/p", select="", vars="")
    assert bare.dbt_options().select == () and bare.dbt_options().vars is None
    assert bare.dbt_options().target is None


def test_selection_and_vars_are_templated() -> None:
    import jinja2

    op = GeminiBatchBuildOperator(
        task_id="build", project_dir="/p", select="{{ params.select }}",
        vars={"day": "{{ ds }}"},
    )
    assert {"select", "exclude", "vars", "target"} <= set(op.template_fields)
    op.render_template_fields({"params": {"select": "questions"}, "ds": "2026-01-01"},
                              jinja_env=jinja2.Environment())
    assert op.dbt_options().select == ("questions",)
    assert json.loads(op.dbt_options().vars) == {"day": "2026-01-01"}


@pytest.mark.parametrize("kwargs, message", [
    ({"command": "test"}, "command must be 'build' or 'run'"),
    ({"poll_interval": 0}, "poll interval must be > 0"),
    ({"poll_interval": 60, "max_poll_interval": 10}, "at most its cap"),
    ({"threads": 0}, "threads must be at least 1"),
])
def test_the_operator_refuses_impossible_settings_when_the_dag_is_parsed(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        GeminiBatchBuildOperator(task_id="build", project_dir="/p", **kwargs)


def test_a_trigger_that_could_not_read_a_job_fails_the_task_with_its_message() -> None:
    op = GeminiBatchBuildOperator(task_id="build", project_dir="/p")
    message = f"Vertex AI refused to read job {JOB.format(1)}: PermissionDenied: 403"
    with pytest.raises(AirflowException, match="refused to read job"):
        op.execute_complete({}, {"status": "error", "message": message, "deferral": 1})


def test_killed_outside_a_build_step_the_operator_does_nothing() -> None:
    GeminiBatchBuildOperator(task_id="build", project_dir="/p", cancel_on_kill=True).on_kill()


# -- the trigger: what Airflow stores ------------------------------------------------------


def test_the_trigger_serializes_to_what_rebuilds_it() -> None:
    trigger = GeminiBatchJobTrigger(
        job_names=[JOB.format(1), JOB.format(2)], endpoint="http://127.0.0.1:9",
        poll_interval=5, max_poll_interval=300, unreadable_timeout=60,
        cancel_on_kill=True, deferral=2,
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "gemini_batch.airflow.triggers.GeminiBatchJobTrigger"
    json.dumps(kwargs)  # plain values only: Airflow keeps them in its database
    module, name = classpath.rsplit(".", 1)
    rebuilt = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["job_names"] == [JOB.format(1), JOB.format(2)] and kwargs["deferral"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"job_names": []}, "at least one job name"),
    ({"job_names": ["batchPredictionJobs/1"]}, "Not a Vertex AI batch prediction job name"),
    ({"job_names": [JOB.format(1)], "poll_interval": 10, "max_poll_interval": 1},
     "at most its cap"),
    ({"job_names": [JOB.format(1)], "unreadable_timeout": 0}, "unreadable_timeout"),
])
def test_the_trigger_refuses_what_it_could_not_poll(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        GeminiBatchJobTrigger(**kwargs)


# -- the trigger against a Vertex AI REST server ----------------------------------------------


class FakeVertex:
    """Answers GET /v1/<job name> with each job's next state from a script (the last one
    repeats), or an HTTP error code; records the cancels."""

    def __init__(self) -> None:
        self.scripts: dict[str, list[str | int]] = {}
        self.created: dict[str, str] = {}  # job name -> createTime (RFC 3339)
        self.reads: list[str] = []
        self.cancels: list[str] = []
        server = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                name = self.path.split("?")[0].removeprefix("/v1/")
                server.reads.append(name)
                script = server.scripts.get(name)
                if not script:
                    self.send_json(404, {"error": {"code": 404, "message": "not found",
                                                   "status": "NOT_FOUND"}})
                    return
                step = script.pop(0) if len(script) > 1 else script[0]
                if isinstance(step, int):
                    self.send_json(step, {"error": {"code": step, "message": f"HTTP {step}"}})
                    return
                done = 3 if step == "SUCCEEDED" else 0
                job = {"name": name, "state": f"JOB_STATE_{step}",
                       "completionStats": {"successfulCount": str(done)}}
                if name in server.created:
                    job["createTime"] = server.created[name]
                self.send_json(200, job)

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                server.cancels.append(path.removeprefix("/v1/").removesuffix(":cancel"))
                self.send_json(200, {})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def vertex() -> Iterator[FakeVertex]:
    server = FakeVertex()
    yield server
    server.close()


@pytest.fixture()
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The trigger's waits between polls, recorded instead of waited."""
    recorded: list[float] = []

    async def record(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(triggers, "_sleep", record)
    return recorded


def _events(trigger: GeminiBatchJobTrigger) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(collect())


def test_the_trigger_fires_once_every_job_ended_polling_with_backoff(
    vertex: FakeVertex, waits: list[float]
) -> None:
    first, second = JOB.format(1), JOB.format(2)
    vertex.scripts = {
        first: ["QUEUED"] * 5 + ["RUNNING", "SUCCEEDED"],
        second: ["RUNNING", "SUCCEEDED"],
    }
    trigger = GeminiBatchJobTrigger(job_names=[first, second], endpoint=vertex.endpoint,
                                    poll_interval=1, max_poll_interval=2, deferral=3)
    [event] = _events(trigger)
    assert event["status"] == "ended" and event["deferral"] == 3
    assert {job["name"]: job["state"] for job in event["jobs"]} == {
        first: "SUCCEEDED", second: "SUCCEEDED"}
    # Both jobs read in each round, an ended one no more; the waits grow while nothing
    # moves, up to the cap, and start again after a change.
    assert vertex.reads.count(first) == 7 and vertex.reads.count(second) == 2
    assert waits == [1.0, 1.0, 1.5, 2.0, 2.0, 1.0]


def test_a_job_the_service_lost_counts_as_ended(vertex: FakeVertex, waits: list[float]) -> None:
    [event] = _events(GeminiBatchJobTrigger(job_names=[JOB.format(7)], endpoint=vertex.endpoint))
    assert event["status"] == "ended"
    assert event["jobs"][0]["state"] == "NOT_FOUND"


def test_a_job_refused_to_be_read_fires_an_error_naming_it(
    vertex: FakeVertex, waits: list[float]
) -> None:
    vertex.scripts = {JOB.format(1): ["RUNNING"], JOB.format(2): [403]}
    trigger = GeminiBatchJobTrigger(job_names=[JOB.format(1), JOB.format(2)],
                                    endpoint=vertex.endpoint)
    [event] = _events(trigger)
    assert event["status"] == "error"
    assert f"refused to read job {JOB.format(2)}" in event["message"]
    assert "Forbidden" in event["message"]


def test_errors_that_may_pass_are_retried_then_fire_an_error(
    vertex: FakeVertex, waits: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retries, "INITIAL", 0.01)
    vertex.scripts = {JOB.format(1): [503, "SUCCEEDED"], JOB.format(2): [503]}
    trigger = GeminiBatchJobTrigger(job_names=[JOB.format(2)], endpoint=vertex.endpoint,
                                    unreadable_timeout=0.5)
    [event] = _events(trigger)
    assert event["status"] == "error"
    assert f"{JOB.format(2)} could not be read for 0.5 s" in event["message"]
    # A 503 that passes is no error at all.
    recovered = GeminiBatchJobTrigger(job_names=[JOB.format(1)], endpoint=vertex.endpoint,
                                      unreadable_timeout=30)
    assert [event["status"] for event in _events(recovered)] == ["ended"]


def _hours_ago(hours: float) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_job_queued_past_its_deadline_fires_the_trigger_naming_it(
    vertex: FakeVertex, waits: list[float]
) -> None:
    stuck, young, running = JOB.format(1), JOB.format(2), JOB.format(3)
    vertex.scripts = {stuck: ["QUEUED"], young: ["QUEUED"], running: ["RUNNING"]}
    vertex.created = {stuck: _hours_ago(30), young: _hours_ago(2), running: _hours_ago(30)}
    trigger = GeminiBatchJobTrigger(
        job_names=[stuck, young, running], endpoint=vertex.endpoint,
        queue_deadlines={stuck: 24, young: 24, running: 24})
    [event] = _events(trigger)
    assert event["status"] == "queue_deadline"
    # Only the job still queued past its deadline: a young one waits, a running one
    # answers (the service's own limits end it).
    assert event["past_deadline"] == [stuck]
    assert "job 1 still QUEUED after 30.0 h, past max_queue_hours 24" in event["message"]
    assert vertex.cancels == []  # the operator's next step cancels it, not the trigger
    # Serialized for the triggerer, the deadlines come back.
    _, kwargs = trigger.serialize()
    assert GeminiBatchJobTrigger(**kwargs).queue_deadlines == {stuck: 24, young: 24,
                                                              running: 24}


def test_without_a_deadline_a_queued_job_is_waited_for(
    vertex: FakeVertex, waits: list[float]
) -> None:
    name = JOB.format(1)
    vertex.scripts = {name: ["QUEUED", "QUEUED", "SUCCEEDED"]}
    vertex.created = {name: _hours_ago(30)}
    [event] = _events(GeminiBatchJobTrigger(job_names=[name], endpoint=vertex.endpoint))
    assert event["status"] == "ended"


def test_killed_with_cancel_on_kill_the_trigger_cancels_its_jobs(vertex: FakeVertex) -> None:
    names = [JOB.format(1), JOB.format(2)]
    asyncio.run(GeminiBatchJobTrigger(job_names=names, endpoint=vertex.endpoint).on_kill())
    assert vertex.cancels == []  # default: the jobs keep running, the next run collects
    killed = GeminiBatchJobTrigger(job_names=names, endpoint=vertex.endpoint,
                                   cancel_on_kill=True)
    asyncio.run(killed.on_kill())
    assert vertex.cancels == names


# -- one endpoint rule for the sync and the async client ----------------------------------


@pytest.mark.parametrize("endpoint", [
    "http://127.0.0.1:9050", "https://vertex-proxy.internal:8443",
    "europe-west4-aiplatform.googleapis.com", None,
])
def test_the_async_client_goes_where_the_sync_client_goes(
    endpoint: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    from gemini_batch.clients.endpoints import VERTEX_ENDPOINT_ENV
    from gemini_batch.clients.vertex import vertex_job_client
    from gemini_batch.clients.vertex_async import vertex_async_client

    monkeypatch.delenv(VERTEX_ENDPOINT_ENV, raising=False)
    # No Google account here: the clients are made, never used.
    monkeypatch.setattr(google.auth, "default",
                        lambda *args, **kwargs: (AnonymousCredentials(), "p"))

    async def both() -> tuple[Any, Any]:
        sync = vertex_job_client("europe-west4", endpoint=endpoint)
        client = vertex_async_client("europe-west4", endpoint=endpoint)
        try:
            return sync.transport, client.transport
        finally:
            await client.transport.close()

    sync, async_ = asyncio.run(both())
    assert sync._host == async_._host
    assert ("Rest" in type(sync).__name__) == ("Rest" in type(async_).__name__)
