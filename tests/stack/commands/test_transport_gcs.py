"""`transport: gcs`: a batch model whose jobs travel through Cloud Storage gives the
same answers as one whose jobs read and write BigQuery, and a rerun sends nothing.

One project, built once: `questions_bq` (BigQuery transport), `questions_gcs` (meta
transport='gcs' and a staging_uri; the same rows, from a seed of its own) and
`questions_global` (location 'global', where batch takes no BigQuery tables: Cloud
Storage by default, staging from the var); then one rerun.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

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


def test_a_rerun_sends_nothing_and_adopts_a_job_a_dead_build_left(built):
    """A build killed between creating a JSONL job and writing its ledger row: the next
    build finds the job by its labels and staging path, merges it, and sends nothing."""
    from gemini_batch.clients.bigquery import BigQuery
    from gemini_batch.clients.vertex import job_labels
    from gemini_batch.routes.gcs import staging_for
    from gemini_batch.rules.config import BatchModel, BatchModelConfig
    from gemini_batch.state.warehouse import Warehouse

    project, bucket = built
    project.write("seeds/prompts_gcs.csv", seed_csv([*PROMPTS, "Name a river."]))
    project.dbt_ok("build", "--select", "prompts_gcs", "questions_gcs")  # one pending
    model = BatchModel(unique_id="model.transport.questions_gcs", name="questions_gcs",
                       project=project.stack.project, dataset=project.dataset,
                       config=BatchModelConfig(gemini_model="gemini-2.5-flash"),
                       transport="gcs", staging_uri=f"gs://{bucket}/staging")
    (shard,) = Warehouse(BigQuery(project.bq)).create_shards(model, "20260101t000000_dead")
    staging = staging_for(model, "us-central1", {}, local=True)
    assert staging is not None
    with environment(project.environment()):  # STORAGE_EMULATOR_HOST
        input_uri = staging.export_shard(BigQuery(project.bq), shard.table)
    orphan = project.vertex().submit_jsonl(
        display_name="orphan", gemini_model="gemini-2.5-flash", input_uris=[input_uri],
        output_prefix=staging.output_prefix(shard.table),
        labels=job_labels(model_name="questions_gcs", invocation_id="dead"),
    )
    jobs_before = len(project.vertex().list(limit=1000))

    output = cli_ok(project.cli("build", "--plain"))
    assert f"adopting job {orphan.job_id} (1 request)" in output
    assert len(project.vertex().list(limit=1000)) == jobs_before  # nothing new sent
    rows = answers(project, "questions_gcs")
    assert [row["batch_state"] for row in rows] == ["succeeded"] * 4
    assert all(row["attempts"] == 1 for model in ("questions_gcs", "questions_global")
               for row in answers(project, model))
