"""One rule for where each client goes and whether it sends Google credentials."""

from __future__ import annotations

import asyncio

import pytest
from google.auth.credentials import AnonymousCredentials

from gemini_batch.build.dbt_project import DbtTarget
from gemini_batch.clients.bigquery import bigquery_client
from gemini_batch.clients.endpoints import VERTEX_ENDPOINT_ENV, is_local, vertex_endpoint
from gemini_batch.clients.vertex_async import AsyncVertexJobs, vertex_async_client
from gemini_batch.errors import ConfigError


@pytest.mark.parametrize(("endpoint", "local"), [
    ("http://127.0.0.1:9050", True),
    ("http://localhost:9050/", True),
    ("HTTP://[::1]:9050", True),
    ("https://bigquery.private.example.com", False),
    ("https://127.0.0.1:8443", False),  # TLS: someone's real endpoint, not our emulator
    ("europe-west4-aiplatform.googleapis.com", False),
    ("", False),
    (None, False),
])
def test_only_a_plain_http_endpoint_is_an_emulator(endpoint: str | None, local: bool) -> None:
    assert is_local(endpoint) is local


class _Credentials(AnonymousCredentials):
    """Stands for the user's credentials (ADC, a key file): any object but anonymous."""


def test_a_private_https_bigquery_endpoint_gets_the_users_credentials() -> None:
    mine = _Credentials()
    private = bigquery_client("p", api_endpoint="https://bq.private.example.com",
                              credentials=mine)
    assert private._credentials is mine
    assert private._connection.API_BASE_URL == "https://bq.private.example.com"
    emulator = bigquery_client("p", api_endpoint="http://127.0.0.1:9050", credentials=mine)
    assert type(emulator._credentials) is AnonymousCredentials
    assert emulator._connection.API_BASE_URL == "http://127.0.0.1:9050"


@pytest.mark.parametrize(("endpoint", "dbt_credentials"), [
    ("https://bq.private.example.com", True), (None, True), ("http://127.0.0.1:9050", False),
])
def test_the_dbt_target_lends_its_credentials_to_all_but_an_emulator(
    endpoint: str | None, dbt_credentials: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dbt.adapters.bigquery import credentials as dbt_bigquery

    made = object()
    monkeypatch.setattr(dbt_bigquery, "create_google_credentials", lambda creds: made)
    target = DbtTarget(project="p", data_project="p", dataset="d", location=None,
                       api_endpoint=endpoint, credentials=object())
    assert (target.google_credentials() is made) is dbt_credentials


def test_multi_regions_are_refused_by_the_sync_and_the_async_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(VERTEX_ENDPOINT_ENV, raising=False)
    with pytest.raises(ConfigError, match="need a region"):
        vertex_endpoint("US")
    with pytest.raises(ConfigError, match="need a region"):
        vertex_async_client("eu")
    with pytest.raises(ConfigError, match="need a region"):
        AsyncVertexJobs("us")
    # An emulator answers for any location, as before.
    assert vertex_endpoint("us", "http://127.0.0.1:9").local


def test_the_endpoint_override_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(VERTEX_ENDPOINT_ENV, " https://vertex.private.example.com/ ")
    where = vertex_endpoint("europe-west4")
    assert (where.host, where.rest, where.local) == (
        "https://vertex.private.example.com", True, False)
    assert vertex_endpoint("europe-west4", "http://127.0.0.1:9").host == "http://127.0.0.1:9"
    monkeypatch.delenv(VERTEX_ENDPOINT_ENV)
    assert vertex_endpoint("global").host == "aiplatform.googleapis.com"

    async def anonymous() -> bool:
        jobs = AsyncVertexJobs("europe-west4", endpoint="http://127.0.0.1:9")
        try:
            return "Anonymous" in type(jobs.client.transport._credentials).__name__
        finally:
            await jobs.close()

    assert asyncio.run(anonymous())
