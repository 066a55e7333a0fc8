"""The local stack, started once per test session on free ports, and what every stack
area uses: BigQuery and Vertex AI clients, the fault settings, the dbt-project factory.

Only tests under tests/stack/ load this file: `pytest tests/unit` starts no server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from google.cloud import bigquery

from gemini_batch.clients.bigquery import bigquery_client
from gemini_batch.local.stack import StackState, start_stack, stop_stack
from helpers.dbt_projects import DbtProjects, as_in_a_new_process


@pytest.fixture(autouse=True)
def _dbt_as_in_a_new_process() -> None:
    """For tests that run dbt themselves, not through a DbtTestProject."""
    as_in_a_new_process()


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackState]:
    """Both emulators, on free ports, with their data in a temporary directory."""
    data_dir = tmp_path_factory.mktemp("local-stack")
    state, _ = start_stack(data_dir)
    try:
        yield state
    finally:
        stop_stack(data_dir)


@pytest.fixture(scope="session")
def bq(local_stack: StackState) -> bigquery.Client:
    """A google-cloud-bigquery client on the local BigQuery emulator."""
    return bigquery_client(local_stack.project, api_endpoint=local_stack.bigquery_endpoint)


@pytest.fixture()
def stack_env(local_stack: StackState, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a user gets from `eval "$(gemini-batch local start)"`."""
    env = local_stack.environment()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **env}


@pytest.fixture()
def faults(local_stack: StackState) -> Iterator[httpx.Client]:
    """The Vertex emulator's admin endpoint (`/emulator/faults`); every fault is off
    again after the test, `hold` included (the stack is shared)."""
    with httpx.Client(base_url=local_stack.vertex_endpoint) as client:
        yield client
        client.put("/emulator/faults", json={}).raise_for_status()


@pytest.fixture()
def bigquery_faults(local_stack: StackState) -> Iterator[httpx.Client]:
    """The BigQuery emulator's fault settings (`/emulator/faults`: DML refused as
    concurrent updates); off again after the test."""
    from gemini_batch.local.bigquery import FAULTS_PATH

    with httpx.Client(base_url=local_stack.bigquery_endpoint) as client:
        yield client
        client.put(FAULTS_PATH, json={}).raise_for_status()


@pytest.fixture(scope="session")
def dbt_projects(
    local_stack: StackState, bq: bigquery.Client, tmp_path_factory: pytest.TempPathFactory
) -> DbtProjects:
    """Makes dbt projects on the stack, each in its own directory and dataset."""
    return DbtProjects(local_stack, bq, tmp_path_factory.mktemp("dbt-projects"))
