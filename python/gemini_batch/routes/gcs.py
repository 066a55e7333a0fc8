"""`transport: gcs`: a batch model's jobs travel through Cloud Storage as JSONL.

Everything else stays as it is: the shard table is still what a job sends (the ledger,
the live-shard rule and the counts read it), and the predictions are loaded into the
job's BigQuery output table (``<model>__output_<run>_<n>``), which the usual MERGE folds
into ``<model>__responses``. Only the way between the two changes:

- shard table → one JSONL file, ``<staging_uri>/<shard table>/input/requests.jsonl``
  (Google's batch page: a job takes one JSONL file), one ``{"request": {...}}`` per
  line: on BigQuery an ``EXPORT DATA`` statement into ``input/part-*.jsonl`` (it takes a
  wildcard and may write several files), the parts then composed into that one file in
  Cloud Storage (no request row passes through this process); on the local stack (whose
  BigQuery cannot write to its Cloud Storage) pages of rows streamed by this process.
  Its first lines are read back: ``request`` must be a JSON object (the service reads a
  string as a plain-text prompt), else no job is created;
- the job: ``instancesFormat``/``predictionsFormat`` ``jsonl``, output under
  ``<staging_uri>/<shard table>/output/``;
- predictions → the output table: the files loaded into a loading table (on BigQuery a
  load job; on the local stack streamed a chunk at a time), then each line matched to
  its request by the ``request`` the service echoes (docs/decisions/0017: no other
  field of an input line is kept), and only when every line matched, the output table
  made with the matched request_ids (so a merge never sees half, or a line it cannot
  place). A line that matches no request keeps the whole job unmerged.

Settings, per model (``config(meta={...})``) or for all (dbt vars
``gemini_batch_transport`` / ``gemini_batch_staging_uri``): ``transport`` (``bigquery``,
or ``gcs``; default ``gcs`` for a model whose location is ``global``, where batch takes
no BigQuery tables, else ``bigquery``) and ``staging_uri`` (``gs://bucket/prefix``).
They are the operator's alone: the materialization builds the same tables either way.
``GcsRoute`` is the route (base.Route) over ``GcsStaging``. Talks to BigQuery, Cloud
Storage and Vertex AI.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from gemini_batch.clients.bigquery import quote_table
from gemini_batch.clients.endpoints import is_local
from gemini_batch.clients.storage import (
    PREDICTION_FILE,
    GcsPath,
    join_line_files,
    object_lines,
    prediction_files,
    storage_client,
)
from gemini_batch.errors import ConfigError, StorageError
from gemini_batch.routes.gcs_lines import (
    check_request_lines,
    matched_predictions_sql,
    prediction_schema,
)
from gemini_batch.routes.vertex_batch import VertexBatchRoute
from gemini_batch.rules import catalog
from gemini_batch.rules.config import BatchModel

if TYPE_CHECKING:
    from collections.abc import Callable

    from google.cloud import storage

    from gemini_batch.build.workspace import Workspace
    from gemini_batch.clients.bigquery import BigQuery
    from gemini_batch.clients.vertex import JobStatus, VertexJobs
    from gemini_batch.routes.base import OutputPlace
    from gemini_batch.state.ledger import LedgerEntry
    from gemini_batch.state.warehouse import MergeResult, Shard, Warehouse

TRANSPORTS = ("bigquery", "gcs")
TRANSPORT_VAR = "gemini_batch_transport"
STAGING_VAR = "gemini_batch_staging_uri"
# Rows per page read from a shard, and lines per load chunk, on the local stack.
LOCAL_CHUNK_ROWS = 20_000
# A job's one input file, and what EXPORT DATA writes before the parts are joined.
INPUT_FILE = "requests.jsonl"
EXPORT_PARTS = "part-*.jsonl"
# The input URI of jobs made before the single file (docs/decisions/0017): still
# recognised, so that such a job is adopted and merged.
OLD_INPUT_WILDCARD = "*.jsonl"
# Lines of the input file read back before its job is created: the export writes every
# line alike, so the first say how all were written.
CHECKED_LINES = 10
CHECK_READ_BYTES = 1024 * 1024


def model_transport(model: BatchModel, location: str, dbt_vars: Mapping[str, Any]) -> str:
    """``bigquery`` or ``gcs`` for ``model`` (its setting, the var, else by location)."""
    chosen = model.transport or dbt_vars.get(TRANSPORT_VAR)
    global_needs_gcs = location == catalog.GLOBAL and not catalog.GLOBAL_BATCH_TAKES_BIGQUERY
    if chosen is None:
        return "gcs" if global_needs_gcs else "bigquery"
    if chosen not in TRANSPORTS:
        raise ConfigError(
            f"Model {model.unique_id}: transport {chosen!r} is not one of "
            f"{', '.join(TRANSPORTS)} (set in the model's meta, or var {TRANSPORT_VAR})."
        )
    if chosen == "bigquery" and global_needs_gcs:
        raise ConfigError(
            f"Model {model.unique_id}: batch jobs on 'global' take no BigQuery tables; "
            "use transport 'gcs' (with a staging_uri) or a regional location."
        )
    return str(chosen)


def staging_for(
    model: BatchModel, location: str, dbt_vars: Mapping[str, Any], *, local: bool
) -> GcsStaging | None:
    """The model's Cloud Storage staging, or None for BigQuery transport.

    ``local``: the BigQuery endpoint is the local emulator (rows are moved by this
    process, a page at a time)."""
    if model_transport(model, location, dbt_vars) != "gcs":
        return None
    uri = model.staging_uri or dbt_vars.get(STAGING_VAR)
    if not uri:
        raise ConfigError(
            f"Model {model.unique_id} sends its jobs through Cloud Storage (transport gcs"
            f"{', the default on global' if model.transport is None else ''}) but has no "
            f"staging_uri: set meta staging_uri='gs://bucket/prefix' or var {STAGING_VAR}."
        )
    root = GcsPath.of(str(uri), f"Model {model.unique_id}: staging_uri")
    return GcsStaging(root=root, project=model.project, local=local)


def workspace_staging(ws: Workspace, model: BatchModel, location: str) -> GcsStaging | None:
    """``staging_for`` with the workspace's vars and BigQuery endpoint."""
    return staging_for(model, location, ws.dbt_vars, local=is_local(ws.target.api_endpoint))


@dataclass
class GcsStaging:
    """Where one model's jobs travel through Cloud Storage, and how rows get there."""

    root: GcsPath
    project: str
    local: bool
    _client: storage.Client | None = None

    @property
    def client(self) -> storage.Client:
        if self._client is None:
            self._client = storage_client(self.project)
        return self._client

    def job_folder(self, shard_table: str) -> GcsPath:
        """``<staging_uri>/<project.dataset.shard>``: one job's input and output."""
        return self.root.child(shard_table)

    def input_file(self, shard_table: str) -> GcsPath:
        """The job's one input file."""
        return self.job_folder(shard_table).child("input").child(INPUT_FILE)

    def input_uri(self, shard_table: str) -> str:
        return str(self.input_file(shard_table))

    def output_prefix(self, shard_table: str) -> str:
        return str(self.job_folder(shard_table).child("output"))

    def shard_of(self, input_uris: list[str]) -> str | None:
        """The shard table a job's input URIs name (how an unrecorded job is recognised):
        ``.../<shard>/input/requests.jsonl``, or the wildcard of an older job."""
        prefix = f"{self.root}".rstrip("/") + "/"
        for uri in input_uris:
            for name in (INPUT_FILE, OLD_INPUT_WILDCARD):
                ending = f"/input/{name}"
                if uri.startswith(prefix) and uri.endswith(ending):
                    return uri[len(prefix): -len(ending)]
        return None

    # -- shard → JSONL --------------------------------------------------------------

    def export_shard(self, bq: BigQuery, shard_table: str) -> str:
        """Write the shard's requests as the job's one JSONL input file, check how its
        lines were written (``check_request_lines``), and return its URI."""
        self._require_bucket()
        target = self.input_file(shard_table)
        folder = self.job_folder(shard_table).child("input")
        self._delete_under(folder)  # what an earlier attempt at this shard left
        if self.local:
            self._write_requests(bq, shard_table, target)
        else:
            self._export_requests(bq, shard_table, folder, target)
        with closing(object_lines(self.client, target, chunk_size=CHECK_READ_BYTES)) as lines:
            check_request_lines(islice(lines, CHECKED_LINES), shard_table=shard_table,
                                path=target)
        return str(target)

    def _export_requests(self, bq: BigQuery, shard_table: str, folder: GcsPath,
                         target: GcsPath) -> None:
        """EXPORT DATA into ``input/part-*.jsonl`` (BigQuery wants one ``*`` and writes as
        many files as it likes), then the parts joined into ``target`` and deleted."""
        # OPTIONS take literals only (no query parameters): sqlglot quotes the URI.
        literal = exp.Literal.string(str(folder.child(EXPORT_PARTS))).sql(dialect="bigquery")
        bq.query(
            f"EXPORT DATA OPTIONS (uri = {literal}, format = 'JSON', overwrite = true) AS "
            f"SELECT request FROM {quote_table(shard_table)}"
        )
        prefix = folder.child(EXPORT_PARTS.split("*", 1)[0]).name
        parts = sorted(self.client.list_blobs(folder.bucket, prefix=prefix),
                       key=lambda blob: blob.name)
        if not parts:
            raise StorageError(
                f"EXPORT DATA of {shard_table} ended, but no file is under {folder}: check "
                "the bucket's lifecycle rules and this account's storage.objects.list "
                "permission, then build again.")
        join_line_files(self.client, parts, target)
        for part in parts:
            part.delete()

    def _write_requests(self, bq: BigQuery, shard_table: str, target: GcsPath) -> None:
        """The local stack's export: the shard's rows, a page at a time, as lines."""
        from google.api_core import exceptions as google_errors

        blob = self.client.bucket(target.bucket).blob(target.name)
        try:
            with blob.open("wb", content_type="application/jsonl") as out:
                for rows in _pages(bq, shard_table):
                    out.write(b"".join(_line(row["request"]) for row in rows))
        except google_errors.GoogleAPIError as exc:
            raise StorageError(f"Writing the requests of {shard_table} to {target} "
                               f"failed: {exc}") from exc

    # -- predictions → output table -------------------------------------------------

    def asked_predictions(self, shard_table: str) -> list[GcsPath]:
        """Prediction files anywhere under the output prefix asked for: where to look
        when the service reports no output directory (a job it no longer knows)."""
        prefix = GcsPath.of(self.output_prefix(shard_table), "output prefix")
        return sorted(
            (GcsPath(prefix.bucket, blob.name)
             for blob in self.client.list_blobs(prefix.bucket, prefix=prefix.name + "/")
             if PREDICTION_FILE.search(blob.name)),
            key=lambda path: path.name,
        )

    def predictions(self, shard_table: str, directory: str | None) -> list[GcsPath]:
        """The job's prediction files: those in the folder the service reports
        (``outputInfo.gcsOutputDirectory``), else under the prefix asked for."""
        if directory:
            return prediction_files(self.client, directory)
        return self.asked_predictions(shard_table)

    def load_predictions(self, bq: BigQuery, files: Callable[[], list[GcsPath]], *,
                         output_table: str, shard_table: str, job: str) -> bool:
        """Load the prediction ``files`` of ``job`` into ``output_table``, each line with the
        request_id of the request of ``shard_table`` it echoes; False when there are
        none. A table already there was made by an earlier build (and was checked then).

        The output table is made only once every line is matched (``_check_matches``):
        the lines go first to ``<output>__loading`` and, matched, to ``<output>__matched``;
        both are dropped at the end, also when the check refuses."""
        from google.cloud import bigquery

        if bq.table_exists(output_table):
            return True
        paths = files()
        if not paths:
            return False
        loading, matched = f"{output_table}__loading", f"{output_table}__matched"
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            schema=prediction_schema(),
            ignore_unknown_values=True,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        bq.drop_tables([loading, matched])
        try:
            # Made first, so that files of no line still give a (matched, empty) table.
            bq.client.create_table(bigquery.Table(loading, schema=prediction_schema()))
            if not self.local:
                bq.client.load_table_from_uri(
                    [str(path) for path in paths], loading, job_config=config
                ).result()
            else:
                for chunk in self._chunks(paths):
                    bq.client.load_table_from_file(io.BytesIO(chunk), loading,
                                                   job_config=config).result()
            bq.query(f"CREATE TABLE {quote_table(matched)} AS "
                     f"{matched_predictions_sql(loading, shard_table)}")
            self._check_matches(bq, matched, paths, shard_table=shard_table, job=job)
            bq.query(f"CREATE TABLE {quote_table(output_table)} AS "
                     "SELECT request_id, request, response, status, processed_time "
                     f"FROM {quote_table(matched)}")
        finally:
            bq.drop_tables([loading, matched])
        return True

    def _check_matches(self, bq: BigQuery, matched: str, files: list[GcsPath], *,
                       shard_table: str, job: str) -> None:
        """Every prediction line must be the answer to a request of the shard: one that
        is not could not be merged, its request would look unanswered and be paid for
        again. So nothing is merged: the job stays unmerged (its requests in flight, not
        sent again), its files stay, and the build says so."""
        [row] = bq.query(
            f"""SELECT COUNT(*) AS lines, COUNTIF(NOT echoed) AS no_request,
  COUNTIF(echoed AND request_id IS NULL) AS unmatched
FROM {quote_table(matched)}"""
        )
        unplaced = row["no_request"] + row["unmatched"]
        if not unplaced:
            return
        job_id = job.rsplit("/", 1)[-1]
        none = f" ({row['no_request']} echo none)" if row["no_request"] else ""
        raise StorageError(
            f"Job {job_id}: {unplaced} of the {row['lines']} prediction lines in "
            f"{', '.join(str(path) for path in files)} match no request of {shard_table} "
            f"by the `request` they echo{none}, so none of the job's answers is merged: "
            "an answer that cannot be placed would leave its request looking unanswered, "
            "to be paid for again. The files stay there, the job stays unmerged and its "
            "requests are not sent again. Report this with one such line; once a version "
            f"of gemini-batch matches them, `gemini-batch collect {job_id}` (or the next "
            "build) merges the job."
        )

    def _chunks(self, files: list[GcsPath]) -> Iterator[bytes]:
        chunk: list[bytes] = []
        for path in files:
            for line in object_lines(self.client, path):
                if line.strip():
                    chunk.append(line if line.endswith(b"\n") else line + b"\n")
                if len(chunk) >= LOCAL_CHUNK_ROWS:
                    yield b"".join(chunk)
                    chunk = []
        if chunk:
            yield b"".join(chunk)

    def remove(self, shard_table: str) -> None:
        """Delete the job's objects (inputs and predictions), once merged."""
        self._delete_under(self.job_folder(shard_table))

    def _delete_under(self, folder: GcsPath) -> None:
        for blob in self.client.list_blobs(folder.bucket, prefix=folder.name + "/"):
            blob.delete()

    def _require_bucket(self) -> None:
        from gemini_batch.clients.storage import require_bucket

        require_bucket(self.client, self.root, "staging_uri")


class GcsRoute(VertexBatchRoute):
    """A JSONL batch job per shard table, through the model's staging folder."""

    name = "gcs"

    def __init__(
        self,
        model: BatchModel,
        location: str,
        warehouse: Warehouse,
        vertex: Callable[[str], VertexJobs],
        staging: GcsStaging,
    ) -> None:
        super().__init__(model, location, warehouse, vertex)
        self.staging = staging

    def submit(self, shard: Shard, *, output_table: str, labels: Mapping[str, str]
               ) -> JobStatus:
        # The predictions are loaded into output_table when the job ends (collect).
        return self.jobs.submit_jsonl(
            display_name=self.display_name(shard.table),
            gemini_model=self.model.config.gemini_model,
            input_uris=[self.staging.export_shard(self.warehouse.bq, shard.table)],
            output_prefix=self.staging.output_prefix(shard.table),
            labels=labels,
        )

    def shard_of(self, job: JobStatus) -> str:
        """Its input table, or the one its JSONL input was exported from."""
        return super().shard_of(job) or self.staging.shard_of(list(job.input_uris)) or ""

    def output_of(self, job: JobStatus) -> str:
        if job.output_table:
            return job.output_table
        return self.shard_of(job).replace("__shard_", "__output_", 1)

    def has_output(self, job: JobStatus) -> bool:
        if job.output_table:
            return super().has_output(job)
        return bool(self.staging.predictions(self.shard_of(job), job.output_directory))

    def _files(self, entry: LedgerEntry) -> Callable[[], list[GcsPath]]:
        return lambda: self.staging.predictions(
            entry.shard_table, self.status(entry).output_directory)

    def locate(self, entry: LedgerEntry) -> OutputPlace:
        from gemini_batch.routes.base import OutputPlace

        asked = self.staging.output_prefix(entry.shard_table)
        reported = self.status(entry).output_directory
        files = self.staging.predictions(entry.shard_table, reported)
        if reported:
            where = (f"prediction files in {reported} (outputInfo.gcsOutputDirectory; asked "
                     f"for a folder under {asked})")
        else:
            where = (f"prediction files under {asked} (asked for; the service reports no "
                     "outputInfo.gcsOutputDirectory)")
        return OutputPlace(
            found=bool(files) or self.warehouse.bq.table_exists(entry.output_table),
            where=where,
            check="check that folder's objects (a lifecycle rule or a retention setting "
                  "that deleted them, this account's storage.objects.list permission)",
        )

    def collect(self, entry: LedgerEntry) -> MergeResult | None:
        self.staging.load_predictions(
            self.warehouse.bq, self._files(entry), output_table=entry.output_table,
            shard_table=entry.shard_table, job=entry.job_name)
        return super().collect(entry)

    def clean_up(self, entry: LedgerEntry) -> None:
        super().clean_up(entry)
        self.staging.remove(entry.shard_table)


def _pages(bq: BigQuery, table: str) -> Iterator[list[Any]]:
    """The rows of ``table`` a page at a time (request as parsed JSON)."""
    rows = bq.client.list_rows(table, page_size=LOCAL_CHUNK_ROWS)
    for page in rows.pages:
        yield list(page)


def _line(request: Any) -> bytes:
    """One input line: the request alone, as Google's batch page shows it."""
    if isinstance(request, str):  # a JSON column read as text
        request = json.loads(request)
    return (json.dumps({"request": request}, separators=(",", ":"), ensure_ascii=False)
            + "\n").encode()
