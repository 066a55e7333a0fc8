"""`transport: gcs`: a batch model whose jobs travel through Cloud Storage gives the
same answers as one whose jobs read and write BigQuery, and a rerun sends nothing.

One project, built once: `questions_bq` (BigQuery transport), `questions_gcs` (meta
transport='gcs' and a staging_uri; the same rows, from a seed of its own) and
`questions_global` (location 'global', where batch takes no BigQuery tables: Cloud
Storage by default, staging from the var); then reruns that find jobs a dead build left.

The Vertex emulator writes prediction lines as the service is reported to (status,
processed_time, request, response; an input line's other fields dropped): every answer
here is matched to its request by the request the service echoes (ADR 0017).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from gemini_batch.routes.gcs import GcsStaging
from helpers.build_project import PROMPTS, batch_model_sql
from helpers.dbt_projects import DbtProjects, DbtTestProject, cli_ok, environment

pytestmark = pytest.mark.slow

PROJECT_YML = """\
name: transport
version: "1.0"
config-version: 2
profile: transport
flags:
  send_anonymous_usage_stats: false
seeds:
  transport:
    +quote_columns: false
vars:
  gemini_batch_staging_uri: gs://{bucket}/from-var
"""
ANSWER = """\
select id, batch_state, attempts,
       json_value(response, '$.candidates[0].content.parts[0].text') as answer
from `{ds}`.`{model}` order by id
"""


@pytest.fixture(scope="module")
def gcs(local_stack) -> storage.Client:
    return storage.Client(
        project=local_stack.project,
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": local_stack.storage_endpoint},
    )


@pytest.fixture(scope="module")
def built(dbt_projects: DbtProjects, gcs: storage.Client) -> Iterator[tuple[DbtTestProject, str]]:
    """The project after one `gemini-batch build`; and its bucket."""
    bucket = gcs.create_bucket(f"staging-{uuid.uuid4().hex[:8]}").name
    project = dbt_projects.create("transport", {
        "dbt_project.yml": PROJECT_YML.format(bucket=bucket),
        "models/questions_bq.sql": batch_model_sql(),
        "models/questions_gcs.sql": batch_model_sql(
            f", meta={{'transport': 'gcs', 'staging_uri': 'gs://{bucket}/staging'}}",
            source="ref('prompts_gcs')"),
        "models/questions_global.sql": batch_model_sql(
            ", location='global'").replace("gemini-2.5-flash", "gemini-3-flash-preview"),
    }, regional=True)
    project.seed(list(PROMPTS))
    project.write("seeds/prompts_gcs.csv", seed_csv(PROMPTS))  # the same rows
    cli_ok(project.cli("build", "--plain"))
    yield project, bucket
    project.drop()


def seed_csv(prompts: list[str]) -> str:
    return "\n".join(["id,prompt", *(f"{i},{p}" for i, p in enumerate(prompts, 1))]) + "\n"


def answers(project: DbtTestProject, model: str) -> list[dict]:
    return project.rows(ANSWER.replace("{model}", model))


def test_cloud_storage_gives_the_answers_bigquery_gives(built):
    project, _ = built
    by_bigquery = answers(project, "questions_bq")
    assert [row["batch_state"] for row in by_bigquery] == ["succeeded"] * len(PROMPTS)
    assert answers(project, "questions_gcs") == by_bigquery
    through_global = answers(project, "questions_global")
    assert [row["batch_state"] for row in through_global] == ["succeeded"] * len(PROMPTS)
    assert all(row["answer"] for row in through_global)


def test_the_jobs_read_and_wrote_cloud_storage_and_left_nothing_there(built, gcs):
    project, bucket = built
    ledger = project.rows(
        "select dbt_model, location, state, succeeded_count, merged_at is not null as merged "
        "from `{ds}.gemini_batch_jobs` order by dbt_model")
    assert [(row["dbt_model"].rsplit(".", 1)[-1], row["location"], row["state"],
             row["succeeded_count"], row["merged"]) for row in ledger] == [
        ("questions_bq", "us-central1", "SUCCEEDED", 3, True),
        ("questions_gcs", "us-central1", "SUCCEEDED", 3, True),
        ("questions_global", "global", "SUCCEEDED", 3, True),
    ]
    # Merged jobs leave no staging objects and no job tables behind.
    assert [blob.name for blob in gcs.list_blobs(bucket)] == []
    assert not [table for table in project.table_ids() if "__shard_" in table
                or "__output_" in table]


def dead_builds_job(project: DbtTestProject, bucket: str, model_name: str, run: str,
                    write_input: Callable[[GcsStaging, str], list[str]] | None = None):
    """A JSONL job a build killed between creating it and writing its ledger row left:
    the model's pending requests cut into a shard, exported (or written by
    ``write_input``, which gives the input URIs), the job made with the build's labels."""
    from gemini_batch.clients.bigquery import BigQuery
    from gemini_batch.clients.vertex import job_labels
    from gemini_batch.routes.gcs import staging_for
    from gemini_batch.rules.config import BatchModel, BatchModelConfig
    from gemini_batch.state.warehouse import Warehouse

    model = BatchModel(unique_id=f"model.transport.{model_name}", name=model_name,
                       project=project.stack.project, dataset=project.dataset,
                       config=BatchModelConfig(gemini_model="gemini-2.5-flash"),
                       transport="gcs", staging_uri=f"gs://{bucket}/staging")
    (shard,) = Warehouse(BigQuery(project.bq)).create_shards(model, run)
    staging = staging_for(model, "us-central1", {}, local=True)
    assert staging is not None
    with environment(project.environment()):  # STORAGE_EMULATOR_HOST
        input_uris = (write_input(staging, shard.table) if write_input
                      else [staging.export_shard(BigQuery(project.bq), shard.table)])
    return project.vertex().submit_jsonl(
        display_name=run, gemini_model="gemini-2.5-flash", input_uris=input_uris,
        output_prefix=staging.output_prefix(shard.table),
        labels=job_labels(model_name=model_name, invocation_id="dead"),
    )


def test_a_rerun_sends_nothing_and_adopts_a_job_a_dead_build_left(built):
    """A build killed between creating a JSONL job and writing its ledger row: the next
    build finds the job by its labels and staging path, merges it, and sends nothing."""
    project, bucket = built
    project.write("seeds/prompts_gcs.csv", seed_csv([*PROMPTS, "Name a river."]))
    project.dbt_ok("build", "--select", "prompts_gcs", "questions_gcs")  # one pending
    orphan = dead_builds_job(project, bucket, "questions_gcs", "20260101t000000_dead")
    jobs_before = len(project.vertex().list(limit=1000))

    output = cli_ok(project.cli("build", "--plain"))
    assert f"adopting job {orphan.job_id} (1 request)" in output
    assert len(project.vertex().list(limit=1000)) == jobs_before  # nothing new sent
    rows = answers(project, "questions_gcs")
    assert [row["batch_state"] for row in rows] == ["succeeded"] * 4
    assert all(row["attempts"] == 1 for model in ("questions_gcs", "questions_global")
               for row in answers(project, model))


def test_a_job_an_older_version_sent_merges_though_its_request_ids_were_dropped(built, gcs):
    """Jobs made before ADR 0017 sent `input/*.jsonl` with a request_id on each line, and
    relied on it coming back. The service drops it (as the emulator now does): each
    answer still reaches its own request, once."""
    project, bucket = built
    new = ["Name a lake.", "Name a sea.", "Name a mountain."]
    prompts = [*PROMPTS, "Name a river.", *new]  # the river: the test before's
    project.write("seeds/prompts_gcs.csv", seed_csv(prompts))
    project.dbt_ok("build", "--select", "prompts_gcs", "questions_gcs")  # three pending

    def older_input(staging: GcsStaging, shard_table: str) -> list[str]:
        """What the older version wrote: request_id and request, in input/part-*.jsonl."""
        rows = project.rows("select request_id, to_json_string(request) as request "
                            f"from `{shard_table}`")
        lines = [json.dumps({"request_id": row["request_id"],
                             "request": json.loads(row["request"])}) for row in rows]
        folder = staging.job_folder(shard_table).child("input")
        gcs.bucket(bucket).blob(folder.child("part-000000000000.jsonl").name
                                ).upload_from_string("\n".join(lines) + "\n")
        return [f"{folder}/*.jsonl"]

    orphan = dead_builds_job(project, bucket, "questions_gcs", "20260101t000000_old",
                             older_input)
    deadline = time.monotonic() + 300  # only a job that never ends
    while not project.vertex().get(orphan.name).terminal:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    lines = prediction_lines(gcs, bucket)
    assert len(lines) == 3 and not [line for line in lines if "request_id" in line]

    output = cli_ok(project.cli("build", "--plain"))
    assert f"adopting job {orphan.job_id} (3 requests)" in output
    rows = {row["answer"]: row for row in answers(project, "questions_gcs")}
    # Each new request has the answer to its own prompt (the emulator's answers quote
    # it), asked once, and the job's counts are its three answers.
    for prompt in new:
        [row] = [row for answer, row in rows.items() if prompt in answer]
        assert (row["batch_state"], row["attempts"]) == ("succeeded", 1)
    assert len(rows) == len(prompts)
    [ledger] = project.rows(
        f"select succeeded_count, merged_at is not null as merged from `{{ds}}.gemini_batch_jobs` "
        f"where job_name = '{orphan.name}'")
    assert (ledger["succeeded_count"], ledger["merged"]) == (3, True)
    assert not prediction_names(gcs, bucket)  # removed with the job's folder, once merged


def test_answers_that_match_no_request_are_refused_and_kept(built, gcs):
    """A prediction line whose echoed request is none of the shard's: nothing of the job
    is merged, its files stay, its requests are not sent again, and the build says which
    job, which files, how many lines, and what to do."""
    project, bucket = built
    project.write("models/questions_kept.sql", batch_model_sql(
        f", meta={{'transport': 'gcs', 'staging_uri': 'gs://{bucket}/staging'}}",
        source="ref('prompts_kept')"))
    project.write("seeds/prompts_kept.csv", seed_csv(["Name a bird.", "Name a tree."]))
    project.dbt_ok("build", "--select", "prompts_kept", "questions_kept")  # two pending

    def another_request(staging: GcsStaging, shard_table: str) -> list[str]:
        """The input file, its first request changed once written."""
        from gemini_batch.clients.bigquery import BigQuery

        staging.export_shard(BigQuery(project.bq), shard_table)
        path = staging.input_file(shard_table)
        blob = gcs.bucket(path.bucket).blob(path.name)
        first, rest = blob.download_as_text().split("\n", 1)
        blob.upload_from_string(first.replace("Name a ", "Name two ") + "\n" + rest)
        return [str(path)]

    orphan = dead_builds_job(project, bucket, "questions_kept", "20260101t000000_kept",
                             another_request)
    jobs_before = len(project.vertex().list(limit=1000))

    for _ in range(2):  # and again: still nothing merged, nothing sent
        output = cli_ok(project.cli("build", "--plain", "--select", "questions_kept"), code=1)
        assert (f"Job {orphan.job_id}: 1 of the 2 prediction lines in gs://{bucket}/staging/"
                f"{project.stack.project}.") in output
        assert (f"match no request of {project.stack.project}." in output
                and "by the `request` they echo, so none of the job's answers is merged"
                in output)
        assert f"`gemini-batch collect {orphan.job_id}`" in output
        assert len(project.vertex().list(limit=1000)) == jobs_before
    # The prediction file is still there; no answer reached the model; the job is live.
    assert [name for name in prediction_names(gcs, bucket) if "questions_kept" in name]
    rows = answers(project, "questions_kept")
    assert [(row["batch_state"], row["answer"]) for row in rows] == [("pending", None)] * 2
    [ledger] = project.rows(
        "select state, merged_at is null as unmerged from `{ds}.gemini_batch_jobs` "
        f"where job_name = '{orphan.name}'")
    assert (ledger["state"], ledger["unmerged"]) == ("SUCCEEDED", True)
    assert not [table for table in project.table_ids() if "questions_kept__output_" in table]


def prediction_names(gcs: storage.Client, bucket: str) -> list[str]:
    return [blob.name for blob in gcs.list_blobs(bucket) if "/output/" in blob.name]


def prediction_lines(gcs: storage.Client, bucket: str) -> list[dict]:
    return [json.loads(line) for name in prediction_names(gcs, bucket)
            for line in gcs.bucket(bucket).blob(name).download_as_text().splitlines()]
