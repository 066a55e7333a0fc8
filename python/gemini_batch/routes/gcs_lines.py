"""What `transport: gcs` reads back from Cloud Storage, and how: the first lines of a
job's input file, checked before the job is made, and the prediction lines, each
matched to its request by the request the service echoes (docs/decisions/0017).

An input line is ``{"request": {...}}`` and nothing else: Google documents no other
field as kept, and the service is reported to drop them (litellm#14044). A prediction
line is what the service writes: ``status``, ``processed_time``, the echoed ``request``,
``response``. Functions return BigQuery SQL or raise; routes/gcs.py runs them. Talks to
no service.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gemini_batch.clients.bigquery import quote_table
from gemini_batch.errors import InputError

if TYPE_CHECKING:
    from google.cloud import bigquery

    from gemini_batch.clients.storage import GcsPath


def prediction_schema() -> list[bigquery.SchemaField]:
    """What the loading table takes from a prediction line: what the service writes
    (``status``, ``processed_time``, the echoed ``request``, ``response``), and the
    ``request_id`` jobs made before docs/decisions/0017 put in their input lines, when
    the service kept it."""
    from google.cloud import bigquery

    return [
        bigquery.SchemaField("request_id", "STRING"),
        bigquery.SchemaField("request", "JSON"),
        bigquery.SchemaField("response", "JSON"),
        bigquery.SchemaField("status", "STRING"),
        bigquery.SchemaField("processed_time", "TIMESTAMP"),
    ]


def match_key_sql(request: str) -> str:
    """What a request is matched by: the SHA-256 of its canonical JSON with every null
    member left out. The service's echo adds a null member for each field another line
    of the file has (tests/fixtures/vertex_samples/batch_request_multimodal_output.jsonl:
    ``"fileData": null`` in parts that hold ``file_data``), and a null member means the
    field is unset to the service, so both sides drop them."""
    return f"SHA256(TO_JSON_STRING(JSON_STRIP_NULLS({request})))"


def matched_predictions_sql(lines_table: str, shard_table: str) -> str:
    """The prediction lines of ``lines_table``, each with the request_id of the request of
    ``shard_table`` its echoed ``request`` is (NULL: none), ``passed_request_id`` (the
    line's own request_id, from a job made before docs/decisions/0017, which must name
    that same request) and ``echoed`` (whether the line has a ``request``). Requests that
    differ only in null members are one request to the service: a line answers each."""
    return f"""
SELECT shard.request_id, lines.request_id AS passed_request_id,
  lines.request IS NOT NULL AS echoed,
  lines.request, lines.response, lines.status, lines.processed_time
FROM (SELECT *, {match_key_sql("request")} AS match_key
      FROM {quote_table(lines_table)}) AS lines
LEFT JOIN (SELECT request_id, {match_key_sql("request")} AS match_key
           FROM {quote_table(shard_table)}) AS shard
  ON shard.match_key = lines.match_key
  AND (lines.request_id IS NULL OR lines.request_id = shard.request_id)"""


def check_request_lines(lines: Iterable[bytes], *, shard_table: str, path: GcsPath) -> None:
    """Refuse an input file (before its job is made) unless its ``lines`` are JSON
    objects whose ``request`` is a JSON object. The service reads a string ``request`` as
    a plain-text prompt (python-aiplatform#4074): it would answer, and bill, the JSON text
    itself; and an answer to a request that is not the shard's can never be matched."""
    read = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        read += 1
        try:
            value = json.loads(line)
        except ValueError:
            problem = "is not JSON"
        else:
            request = value.get("request") if isinstance(value, dict) else None
            if isinstance(request, dict):
                continue
            problem = ("has no `request`" if request is None
                       else f"has `request` as a JSON {_json_kind(request)}, not an object")
        raise InputError(
            f"The requests of {shard_table} were written to {path}, but its line {number} "
            f"{problem}. The service reads a string `request` as a plain-text prompt "
            "(python-aiplatform#4074), so no job was created. The shard's request column "
            "is JSON, which EXPORT DATA is expected to write as an object: report this "
            "with that line, and use transport 'bigquery' with a regional location "
            "meanwhile."
        )
    if not read:
        raise InputError(f"The requests of {shard_table} were written to {path}, but it "
                         "holds no line: no job was created. Run the build again.")


def _json_kind(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "boolean"
    return "number"


__all__ = ["check_request_lines", "match_key_sql", "matched_predictions_sql",
           "prediction_schema"]
