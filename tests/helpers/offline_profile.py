"""A BigQuery profile dbt can parse and compile with, that is never connected to: for
unit tests that run dbt with no server (parse, run-operation of a macro with no query)."""


def offline_profile(name: str) -> str:
    return f"""\
{name}:
  target: offline
  outputs:
    offline:
      type: bigquery
      method: oauth-secrets
      token: x
      project: p
      dataset: d
      location: us-central1
      threads: 1
"""
