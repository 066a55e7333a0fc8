"""The local stack's Cloud Storage, as google-cloud-storage users meet it: the variable
`local start` prints is all a client needs, the tutorial's buckets are there, uploads
of every kind land, wildcard-free listing works, and objects outlive a restart."""

from __future__ import annotations

import io
import subprocess
import time
import urllib.request
import uuid

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from gemini_batch.local.stack import StackState, free_port
from gemini_batch.local.storage import (
    storage_health_url,
    storage_server_command,
    tutorial_buckets,
)


def test_the_printed_variable_is_all_a_client_needs(local_stack, stack_env, monkeypatch):
    assert stack_env["STORAGE_EMULATOR_HOST"] == local_stack.storage_endpoint
    # No endpoint, no credentials: google-cloud-storage reads STORAGE_EMULATOR_HOST.
    client = storage.Client(project=local_stack.project)
    names = {bucket.name for bucket in client.list_buckets()}
    assert set(tutorial_buckets(local_stack.project)) <= names

    bucket = client.create_bucket(f"uploads-{uuid.uuid4().hex[:8]}")
    bucket.blob("in/small.jsonl").upload_from_string(b'{"request": {}}\n')  # multipart
    big = bucket.blob("in/big.jsonl", chunk_size=1024 * 1024)  # resumable, in chunks
    payload = b'{"request": {"contents": []}}\n' * 100_000
    big.upload_from_file(io.BytesIO(payload))
    assert [blob.name for blob in client.list_blobs(bucket, prefix="in/")] == [
        "in/big.jsonl",
        "in/small.jsonl",
    ]
    with bucket.blob("in/big.jsonl").open("rb") as stream:
        assert sum(1 for _ in stream) == 100_000
    # Never overwriting an object (how the Vertex emulator writes predictions) is kept.
    with pytest.raises(Exception, match="412"):
        bucket.blob("in/small.jsonl").upload_from_string(b"x", if_generation_match=0)


def test_objects_outlive_a_restart(tmp_path, local_stack: StackState):
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    client = storage.Client(
        project=local_stack.project,
        client_options={"api_endpoint": endpoint},
        credentials=AnonymousCredentials(),
    )

    def started() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            storage_server_command(port=port, data_dir=tmp_path), stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60  # only a server that never starts
        while True:
            try:
                urllib.request.urlopen(storage_health_url(endpoint), timeout=1).close()
                return process
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)

    first = started()
    try:
        client.create_bucket("kept").blob("a/b.jsonl").upload_from_string(b"{}\n")
    finally:
        first.terminate()
        first.wait(10)
    second = started()
    try:
        assert client.bucket("kept").blob("a/b.jsonl").download_as_bytes() == b"{}\n"
    finally:
        second.terminate()
        second.wait(10)


def test_line_files_are_joined_into_one_in_rounds_of_compose(local_stack):
    """How `transport: gcs` makes a job's one input file of what EXPORT DATA writes:
    Cloud Storage's compose, at most 32 sources a call, so 40 parts take two rounds."""
    from gemini_batch.clients.storage import GcsPath, join_line_files

    client = storage.Client(project=local_stack.project, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": local_stack.storage_endpoint})
    bucket = client.create_bucket(f"join-{uuid.uuid4().hex[:8]}")
    for number in range(40):
        ending = b"" if number == 7 else b"\n"  # a last line with no line break
        bucket.blob(f"in/part-{number:03d}.jsonl").upload_from_string(
            b'{"n": %d}\n{"n": %d}' % (2 * number, 2 * number + 1) + ending)
    bucket.blob("in/part-040.jsonl").upload_from_string(b"")  # an empty one
    parts = list(client.list_blobs(bucket, prefix="in/part-"))
    join_line_files(client, parts, GcsPath(bucket.name, "in/requests.jsonl"))
    lines = bucket.blob("in/requests.jsonl").download_as_bytes().splitlines()
    assert lines == [b'{"n": %d}' % number for number in range(80)]
    # The steps are gone; the parts are the caller's to delete.
    assert [blob.name for blob in client.list_blobs(bucket)] == [
        *(blob.name for blob in parts), "in/requests.jsonl"]
