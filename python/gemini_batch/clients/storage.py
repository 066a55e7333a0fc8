"""Cloud Storage basics for JSONL batch jobs: ``gs://`` paths, the client, uploads that
never overwrite, streamed lines, line files joined into one, a job's prediction files.

The client is google-cloud-storage with Application Default Credentials; on the local
stack it follows ``STORAGE_EMULATOR_HOST`` (which `gemini-batch local start` prints),
needing no credentials there. Talks to Cloud Storage only.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gemini_batch.clients.endpoints import storage_emulator
from gemini_batch.errors import ConfigError, StorageError

if TYPE_CHECKING:
    from google.cloud import storage

# Sources one compose call takes at most (Cloud Storage's limit).
COMPOSE_LIMIT = 32
_GCS_URI = re.compile(r"^gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(?P<name>.*))?$")
PREDICTION_FILE = re.compile(r"predictions(?:_\d+)?\.jsonl$")


@dataclass(frozen=True)
class GcsPath:
    """``gs://bucket/name``: an object, or a prefix when ``name`` is a folder."""

    bucket: str
    name: str = ""

    @classmethod
    def parse(cls, uri: str) -> GcsPath | None:
        """``gs://bucket[/name]`` as a path, or None if it is not one."""
        match = _GCS_URI.match(uri.strip())
        if not match:
            return None
        return cls(match["bucket"], match["name"] or "")

    @classmethod
    def of(cls, uri: str, what: str) -> GcsPath:
        """Like ``parse``, raising ConfigError naming ``what`` (an option, a setting)."""
        path = cls.parse(uri)
        if path is None:
            raise ConfigError(
                f"{what} {uri!r} is not a Cloud Storage location: write gs://bucket/prefix "
                "(bucket names are 3 to 63 lowercase letters, digits, dots, dashes and _)."
            )
        return path

    def child(self, name: str) -> GcsPath:
        return GcsPath(self.bucket, f"{self.name.rstrip('/')}/{name}".lstrip("/"))

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.name}"


def storage_client(project: str | None = None) -> storage.Client:
    """google-cloud-storage: ADC, or the emulator of ``STORAGE_EMULATOR_HOST`` when set."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    if storage_emulator():
        return storage.Client(project=project or "local-project",
                              credentials=AnonymousCredentials())  # type: ignore[no-untyped-call]
    return storage.Client(project=project)


def _storage_error(what: str, exc: Exception) -> StorageError:
    return StorageError(f"Cloud Storage refused to {what}: {exc}")


def require_bucket(client: storage.Client, path: GcsPath, what: str) -> None:
    """Fail with what to do when ``path``'s bucket does not exist or cannot be read."""
    from google.api_core import exceptions as google_errors

    try:
        found = client.lookup_bucket(path.bucket)
    except google_errors.GoogleAPIError as exc:
        raise _storage_error(f"read bucket gs://{path.bucket} ({what})", exc) from exc
    if found is None:
        raise StorageError(
            f"The bucket gs://{path.bucket} ({what}) does not exist: create it in the "
            "project and region of the batch jobs (gcloud storage buckets create "
            f"gs://{path.bucket} --location=<region>), and give the Vertex AI service agent "
            "access to it (README: Cloud Storage permissions)."
        )


def upload_file(client: storage.Client, source: Path, target: GcsPath) -> None:
    """Upload ``source`` unless ``target`` exists (names carry the content's hash, so an
    object already there is this file, uploaded by an earlier run)."""
    from google.api_core import exceptions as google_errors

    blob = client.bucket(target.bucket).blob(target.name)
    try:
        blob.upload_from_filename(str(source), content_type="application/jsonl",
                                  if_generation_match=0)
    except google_errors.PreconditionFailed:
        return
    except google_errors.GoogleAPIError as exc:
        raise _storage_error(f"take {source} as {target}", exc) from exc


def object_lines(client: storage.Client, path: GcsPath, *, chunk_size: int | None = None
                 ) -> Generator[bytes, None, None]:
    """The lines of one object, streamed (a few MB in memory whatever its size; reads of
    ``chunk_size`` bytes, google-cloud-storage's 40 MB by default)."""
    from google.api_core import exceptions as google_errors

    blob = client.bucket(path.bucket).blob(path.name)
    try:
        with blob.open("rb", chunk_size=chunk_size) as stream:
            yield from stream
    except google_errors.NotFound as exc:
        raise StorageError(f"{path} does not exist: check the URI, or upload the file.") from exc
    except google_errors.GoogleAPIError as exc:
        raise _storage_error(f"read {path}", exc) from exc


def prediction_files(client: storage.Client, directory: str) -> list[GcsPath]:
    """The prediction files of a JSONL job: every ``.jsonl`` object directly in the folder
    the service reports (``outputInfo.gcsOutputDirectory``), found by listing it (Google
    does not document the names of a long job's later files): predictions.jsonl first,
    then predictions_<n>.jsonl by n, then any other by name."""
    folder = GcsPath.of(directory, "the job's output directory")
    prefix = folder.name.rstrip("/") + "/"
    names = [
        blob.name
        for blob in client.list_blobs(folder.bucket, prefix=prefix)
        if blob.name.endswith(".jsonl") and "/" not in blob.name.removeprefix(prefix)
    ]

    def order(name: str) -> tuple[int, int, str]:
        base = name.removeprefix(prefix)
        if not PREDICTION_FILE.fullmatch(base):
            return (1, 0, base)
        number = re.search(r"_(\d+)\.jsonl$", base)
        return (0, int(number.group(1)) if number else 0, base)

    return [GcsPath(folder.bucket, name) for name in sorted(names, key=order)]


def join_line_files(client: storage.Client, parts: list[storage.Blob], target: GcsPath,
                    content_type: str = "application/jsonl") -> None:
    """Write the lines of ``parts`` (listed objects of ``target``'s bucket, in order) as
    one object ``target``, by composing them in Cloud Storage (nothing is downloaded):
    ``COMPOSE_LIMIT`` sources a call, in rounds through objects named after ``target``,
    deleted at the end. An empty part is left out; one whose last line has no line
    break gets one, so two lines never run together. The parts are kept."""
    from google.api_core import exceptions as google_errors

    bucket = client.bucket(target.bucket)
    made: list[storage.Blob] = []

    def object_named(name: str) -> storage.Blob:
        blob = bucket.blob(name)
        blob.content_type = content_type
        return blob

    try:
        sources: list[storage.Blob] = []
        newline: storage.Blob | None = None
        for part in parts:
            if not part.size:
                continue
            sources.append(part)
            if part.download_as_bytes(start=part.size - 1) != b"\n":
                if newline is None:
                    newline = object_named(f"{target.name}.newline")
                    newline.upload_from_string(b"\n", content_type=content_type)
                    made.append(newline)
                sources.append(newline)
        level = 0
        while len(sources) > COMPOSE_LIMIT:
            joined = []
            for start in range(0, len(sources), COMPOSE_LIMIT):
                step = object_named(f"{target.name}.join-{level}-{start // COMPOSE_LIMIT}")
                step.compose(sources[start:start + COMPOSE_LIMIT])
                made.append(step)
                joined.append(step)
            sources, level = joined, level + 1
        whole = object_named(target.name)
        if sources:
            whole.compose(sources)
        else:  # nothing but empty parts
            whole.upload_from_string(b"", content_type=content_type)
        for blob in made:
            blob.delete()
    except google_errors.GoogleAPIError as exc:
        raise _storage_error(f"join {len(parts)} files into {target}", exc) from exc
