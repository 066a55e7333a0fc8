"""Every common dbt command on the local stack, on the recipes example (examples/recipes).

After one `gemini-batch build`, what a user runs next works and says what BigQuery
would: `dbt docs generate` writes a catalog of every table and view (bqemulator has no
``__TABLES__``; the launcher reads INFORMATION_SCHEMA.TABLES for it), `dbt show` prints
rows, `dbt test` passes, `dbt snapshot` keeps each recipe, `dbt source freshness` reads
the job ledger.
"""

from __future__ import annotations

import json
import re

import pytest

from helpers.dbt_projects import DbtProjects, DbtTestProject
from helpers.paths import REPO_ROOT

pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "examples" / "recipes"


@pytest.fixture(scope="module")
def recipes(dbt_projects: DbtProjects) -> DbtTestProject:
    project = dbt_projects.copy(EXAMPLE, dataset_variable="RECIPES_DATASET")
    project.run("dbt", "deps")
    project.run("gemini-batch", "build")
    return project


def test_docs_generate_catalogs_every_relation(recipes: DbtTestProject) -> None:
    output = recipes.run("dbt", "docs", "generate")
    assert "Encountered an error" not in output, output
    catalog = json.loads((recipes.path / "target" / "catalog.json").read_text())
    assert not catalog.get("errors"), catalog["errors"]
    nodes = {key.rsplit(".", 1)[-1]: node for key, node in catalog["nodes"].items()}
    assert {"recipes", "recipe_texts", "desserts"} <= set(nodes)
    assert nodes["recipes"]["metadata"]["type"] == "view"
    assert nodes["recipe_texts"]["metadata"]["type"] == "table"
    assert "batch_state" in {name.lower() for name in nodes["recipes"]["columns"]}


def test_show_prints_rows(recipes: DbtTestProject) -> None:
    output = recipes.run("dbt", "show", "--select", "recipe_texts", "--limit", "3")
    assert "banana bread" in output and "succeeded" in output


def test_test_passes(recipes: DbtTestProject) -> None:
    output = recipes.run("dbt", "test")  # exits 0: no test failed
    assert re.search(r"Done\. PASS=1\d WARN=0 ERROR=0", output), output


def test_snapshot_keeps_each_recipe(recipes: DbtTestProject) -> None:
    recipes.run("dbt", "snapshot")
    rows = recipes.rows("select dessert_id, dbt_valid_to from `{ds}.recipe_text_history`")
    assert len(rows) == 10 and all(row["dbt_valid_to"] is None for row in rows)
    recipes.run("dbt", "snapshot")  # nothing changed: no new version
    assert len(recipes.rows("select 1 from `{ds}.recipe_text_history`")) == 10


def test_source_freshness_reads_the_ledger(recipes: DbtTestProject) -> None:
    output = recipes.run("dbt", "source", "freshness")
    assert "PASS freshness of gemini_batch.gemini_batch_jobs" in output, output
