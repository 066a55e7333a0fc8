"""Shared fixtures: the local stack, started once per test session on free ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gemini_batch.bq import bigquery_client
from gemini_batch.local.stack import StackState, start_stack, stop_stack

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real Vertex AI batch inputs and outputs (gemini-1.5-flash-002, from the tutorial).
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "vertex_samples"


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
def bq(local_stack: StackState):
    """A google-cloud-bigquery client on the local BigQuery emulator."""
    return bigquery_client(local_stack.project, api_endpoint=local_stack.bigquery_endpoint)


@pytest.fixture()
def stack_env(local_stack: StackState, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment a user gets from `eval "$(gemini-batch local start)"`."""
    env = local_stack.environment()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **env}
