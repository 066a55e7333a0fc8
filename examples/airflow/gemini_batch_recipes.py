"""The recipes example (examples/recipes) as an Airflow 3 DAG.

One task builds the dbt project with gemini-batch: the upstream models, the Gemini
batch jobs, then the downstream marts. While Vertex AI runs the jobs (minutes to hours)
the task is deferred: it holds no worker slot, and Airflow's triggerer polls the jobs.
A second task reads the build's summary from XCom.

Where the project is, and which dbt target: environment variables, read when the DAG is
parsed (defaults: the example beside this folder, its own profiles.yml, target local).
Before the first run, install the package into the project: `dbt deps` in it.
See docs/airflow.md.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param, task

from gemini_batch.airflow import GeminiBatchBuildOperator

PROJECT_DIR = Path(os.environ.get("RECIPES_PROJECT_DIR")
                   or Path(__file__).resolve().parents[1] / "recipes")
PROFILES_DIR = Path(os.environ.get("RECIPES_PROFILES_DIR") or PROJECT_DIR)

with DAG(
    dag_id="gemini_batch_recipes",
    description="dbt build of the recipes project, Gemini batch jobs included",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # one build at a time: gemini-batch locks the batch models anyway
    params={"select": Param("", type="string", description="dbt selection; empty: all")},
    tags=["dbt", "gemini-batch"],
):
    build = GeminiBatchBuildOperator(
        task_id="dbt_build",
        project_dir=PROJECT_DIR,
        profiles_dir=PROFILES_DIR,
        target=os.environ.get("RECIPES_TARGET", "local"),
        select="{{ params.select }}",
        poll_interval=float(os.environ.get("RECIPES_POLL_SECONDS", "30")),
        max_poll_interval=600,
        # retries: a failed step resumes from the ledger, nothing is sent twice.
        retries=2,
    )

    @task
    def report(summary: dict) -> str:
        """One line per batch model: what was answered and what it cost."""
        lines = [
            f"{model['model']}: {model['succeeded']} answered, {model['cached']} cached, "
            f"{model['failed']} failed, ${model['actual_cost_usd'] or 0:.4f}"
            for model in summary["models"]
        ]
        lines.append(f"deferred {summary['deferrals']} time(s)")
        print("\n".join(lines))
        return "\n".join(lines)

    report(build.output)
