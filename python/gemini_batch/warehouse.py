"""BigQuery access: client construction for Google Cloud and for the local emulator."""

from __future__ import annotations

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery


def bigquery_client(
    project: str, *, api_endpoint: str | None = None, location: str | None = None
) -> bigquery.Client:
    """A BigQuery client for ``project``.

    With ``api_endpoint`` (the local emulator, or any BigQuery-compatible endpoint) the
    client uses anonymous credentials; without it, Application Default Credentials and
    Google's endpoint.
    """
    if api_endpoint:
        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=api_endpoint),
        )
    return bigquery.Client(project=project, location=location)
