"""The Vertex emulator's BigQuery calls (local/vertex/tables.py) when BigQuery drops a
connection or answers 503: sent again, and a load sent again loads its rows once.

BigQuery is an httpx mock here: it says which calls came and answers each in turn.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gemini_batch.local.vertex.tables import BigQueryError, BigQueryRest, TableRef

TABLE = TableRef("p", "d", "t")
SCHEMA = [{"name": "request_id", "type": "STRING"}]
Answer = Callable[[httpx.Request], httpx.Response]


def dropped(request: httpx.Request) -> httpx.Response:
    raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                    request=request)


def answer(status: int, body: dict | None = None) -> Answer:
    return lambda request: httpx.Response(status, json=body or {})


def bigquery(answers: list[Answer]) -> tuple[BigQueryRest, list[str]]:
    """A client whose calls get ``answers`` in turn; the calls made (method and path)."""
    calls: list[str] = []
    queue = list(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        return queue.pop(0)(request)

    client = BigQueryRest("http://bigquery.local")
    client._http = httpx.Client(base_url="http://bigquery.local",
                                transport=httpx.MockTransport(handle))
    return client, calls


def test_a_dropped_connection_and_a_503_are_sent_again():
    client, calls = bigquery([dropped, answer(503, {"error": {"message": "backendError"}}),
                              answer(200, {"schema": {"fields": SCHEMA}})])
    assert client.get_table(TABLE) == {"schema": {"fields": SCHEMA}}
    assert calls == ["GET /bigquery/v2/projects/p/datasets/d/tables/t"] * 3


def test_a_timeout_or_a_refusal_is_not_sent_again():
    client, calls = bigquery([answer(400, {"error": {"message": "bad", "errors": [
        {"reason": "invalid"}]}})])
    with pytest.raises(BigQueryError, match="bad"):
        client.get_table(TABLE)

    def timed_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    client, calls = bigquery([timed_out])
    with pytest.raises(httpx.ReadTimeout):
        client.get_table(TABLE)
    assert len(calls) == 1


def test_a_load_sent_again_after_its_job_was_made_waits_for_that_job():
    done = {"status": {"state": "DONE"}, "jobReference": {"projectId": "p", "jobId": "j"}}
    # The first upload made its job but its answer was lost; the second is refused as
    # a duplicate of the same job id: the load waits for the first, and sends no third.
    client, calls = bigquery([dropped, answer(409, {"error": {
        "message": "Already Exists: Job p:vertex_...", "errors": [{"reason": "duplicate"}]}}),
        answer(200, done)])
    client.load_rows(TABLE, SCHEMA, [{"request_id": "a"}])
    assert calls[:2] == ["POST /upload/bigquery/v2/projects/p/jobs"] * 2
    assert calls[2].startswith("GET /bigquery/v2/projects/p/jobs/vertex_")
    assert len(calls) == 3
