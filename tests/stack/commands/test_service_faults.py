"""When the service misbehaves: no answer lost, nothing paid twice (issue 23).

Each fault is the Vertex emulator's (docs/vertex-emulator.md), set for one test.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from gemini_batch.rules import catalog
from helpers.build_project import batch_model_sql
from helpers.dbt_projects import DbtTestProject

pytestmark = pytest.mark.slow


def test_a_job_whose_output_is_missing_stays_unmerged_until_it_can_be_read(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # The job ends SUCCEEDED with 3 answers and nothing where its outputInfo points.
    faults.put("/emulator/faults", json={"drop_output": True}).raise_for_status()
    first = project.cli("build", "--plain")
    assert first.exit_code == 1, first.output
    [job] = project.jobs()
    assert job.state == "SUCCEEDED" and job.succeeded == 3
    output = job.output_table
    assert output and "__output_" in output
    text = " ".join(first.output.split())
    assert f"job {job.job_id} ended SUCCEEDED with 3 answers but nothing was found" in text
    assert f"output table {output} (outputInfo.bigqueryOutputTable, as asked)" in text
    assert "not found; check that the table exists" in text
    assert f"gemini-batch collect {job.job_id}" in text
    tables = project.table_ids()
    shard = job.input_table.rsplit(".", 1)[-1]
    assert shard in tables  # nothing dropped

    # A second build sends nothing again: the job's requests are still in flight.
    again = project.cli("build", "--plain")
    assert again.exit_code == 1, again.output
    assert f"{job.job_id} ended SUCCEEDED with 3 answers" in " ".join(again.output.split())
    assert len(project.jobs()) == 1

    # `collect` says the same while the output is still missing.
    still = project.cli("collect", job.job_id)
    assert still.exit_code == 1, still.output
    assert f"output table {output} (outputInfo" in " ".join(still.output.split())

    # The output turns up: `collect` merges it, once, and cleans up after it.
    faults.put("/emulator/faults", json={}).raise_for_status()
    project.bq.query(f"CREATE TABLE `{output}` AS SELECT * FROM `{output}__dropped`").result()
    collected = project.cli("collect", job.job_id)
    assert collected.exit_code == 0, collected.output
    assert f"job {job.job_id} merged" in collected.output
    done = project.cli("build", "--plain")
    assert done.exit_code == 0, done.output
    assert len(project.jobs()) == 1
    rows = project.rows("select batch_state, answer from `{ds}.answers` order by id")
    assert [row["batch_state"] for row in rows] == ["succeeded"] * 3
    assert all(row["answer"] for row in rows)
    assert shard not in project.table_ids()


def test_prediction_files_are_found_in_the_folder_the_job_reports(
    project: DbtTestProject, faults: httpx.Client, local_stack
) -> None:
    gcs = storage.Client(project=local_stack.project, credentials=AnonymousCredentials(),
                         client_options={"api_endpoint": local_stack.storage_endpoint})
    bucket = gcs.create_bucket(f"staging-{uuid.uuid4().hex[:8]}")
    project.write("models/questions.sql", batch_model_sql(
        f", meta={{'transport': 'gcs', 'staging_uri': 'gs://{bucket.name}/staging'}}"))
    faults.put("/emulator/faults", json={"drop_output": True}).raise_for_status()
    first = project.cli("build", "--plain")
    assert first.exit_code == 1, first.output
    [job] = [job for job in project.vertex().list(limit=1000)
             if any(bucket.name in uri for uri in job.input_uris)]
    folder = job.output_directory
    assert job.state == "SUCCEEDED" and folder and "/output/prediction-model-" in folder
    text = " ".join(first.output.split())
    assert (f"job {job.job_id} ended SUCCEEDED with 3 answers but nothing was found to "
            f"merge: prediction files in {folder} (outputInfo.gcsOutputDirectory") in text
    assert (f"{folder} (outputInfo.gcsOutputDirectory; asked for a folder under "
            f"gs://{bucket.name}/staging/") in text
    assert "not found; check that folder's objects" in text

    # The files turn up in the folder the service reports, under a name no pattern
    # knows: the next build lists the folder, merges them and removes the job's files.
    faults.put("/emulator/faults", json={}).raise_for_status()
    path = folder.removeprefix(f"gs://{bucket.name}/")
    [dropped] = list(gcs.list_blobs(bucket.name, prefix=f"{path}__dropped/"))
    bucket.copy_blob(dropped, bucket, f"{path}/000000000000.jsonl")
    done = project.cli("build", "--plain")
    assert done.exit_code == 0, done.output
    rows = project.rows("select batch_state, answer from `{ds}.answers` order by id")
    assert [row["batch_state"] for row in rows] == ["succeeded"] * 3
    assert list(gcs.list_blobs(bucket.name, prefix="staging/")) == []


def test_answers_of_another_model_are_billed_at_its_rates_with_a_note(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # gemini-2.5-flash was asked; the service says 2.5 Flash-Lite answered.
    faults.put("/emulator/faults", json={"model_version": "gemini-2.5-flash-lite@default"}
               ).raise_for_status()
    built = project.cli("build", "--plain")
    assert built.exit_code == 0, built.output
    assert ("answered by gemini-2.5-flash-lite, not gemini-2.5-flash: priced at its rates"
            in " ".join(built.output.split()))
    [job] = project.rows("select prompt_tokens, candidates_tokens, thoughts_tokens, "
                         "actual_cost_usd from `{ds}.gemini_batch_jobs`")
    lite = catalog.MODELS["gemini-2.5-flash-lite"].price
    assert job["actual_cost_usd"] == pytest.approx(lite.batch_usd(
        job["prompt_tokens"], job["candidates_tokens"] + job["thoughts_tokens"]))
    assert job["actual_cost_usd"] < catalog.MODELS["gemini-2.5-flash"].price.batch_usd(
        job["prompt_tokens"], job["candidates_tokens"] + job["thoughts_tokens"])


def test_an_empty_stop_is_sent_again_once_and_max_tokens_is_final(
    project: DbtTestProject, faults: httpx.Client
) -> None:
    # Every answer comes back finishReason STOP with no parts, in every job.
    faults.put("/emulator/faults", json={"stop_empty_rate": 1.0}).raise_for_status()
    built = project.cli("build", "--plain", "--select", "+questions")
    assert built.exit_code == 3, built.output  # fail_on_failed_rows: the 3 stay failed
    assert [job.succeeded + job.failed for job in project.jobs()] == [3, 3]  # sent again once
    rows = project.rows("select batch_state, attempts, last_error from `{ds}.questions`")
    assert {(r["batch_state"], r["attempts"], r["last_error"]) for r in rows} == {
        ("failed", 2, "EMPTY_ANSWER: no text in the answer")}

    # MAX_TOKENS comes back the same for the same bytes: sent once, final.
    project.write("models/capped.sql",
                  batch_model_sql(", max_retries=1", prompt="concat(prompt, '!')"))
    faults.put("/emulator/faults", json={"empty_answer_rate": 1.0,
                                         "empty_answer_kinds": ["finish:MAX_TOKENS"]}
               ).raise_for_status()
    capped = project.cli("build", "--plain", "--select", "+capped")
    assert capped.exit_code == 3, capped.output
    assert len(project.jobs()) == 3  # one more job, not two
    rows = project.rows("select batch_state, attempts from `{ds}.capped`")
    assert {(r["batch_state"], r["attempts"]) for r in rows} == {("failed", 1)}
