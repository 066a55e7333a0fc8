"""The recipes example (examples/recipes) end to end, as `make demo` runs it, and then
every common dbt command a user runs next, on the same built project.

The example is copied to a temporary directory (its package entry pointed at this
checkout), built with the `gemini-batch` command on the local stack, and checked the way
a user would: exit codes, the closing summary, the rows of the downstream models, and
the jobs the Vertex emulator was given. The first build runs the installed console
script in a process of its own, as `make demo` does; everything after it runs in this
process, as the other tests do: a second build that submits nothing, then `dbt docs
generate` (a catalog of every relation: bqemulator has no ``__TABLES__``, the launcher
answers it from its catalog), `dbt show`, `dbt test`, `dbt snapshot` and `dbt source
freshness` (the job ledger as a source).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest
from google.cloud import bigquery

from gemini_batch.local.stack import StackState
from helpers.dbt_projects import DbtProjects, DbtTestProject, cli_ok
from helpers.paths import REPO_ROOT

pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "examples" / "recipes"


@dataclass(frozen=True)
class Built:
    project: DbtTestProject
    first_build: str  # what the first `gemini-batch build` printed


@pytest.fixture(scope="module")
def recipes(dbt_projects: DbtProjects) -> Built:
    """The example, built once by the installed console script."""
    project = dbt_projects.copy(EXAMPLE, dataset_variable="RECIPES_DATASET")
    project.dbt_ok("deps")
    return Built(project, project.run("gemini-batch", "build"))


def test_recipes_example_answers_everything_then_resubmits_nothing(
    recipes: Built, local_stack: StackState, bq: bigquery.Client
) -> None:
    project, first = recipes.project, recipes.first_build
    dataset = project.dataset

    # Settings under meta, read the way dbt 1.10+ wants: no warning about custom keys.
    assert "custom config" not in first and "CustomKeyInConfigDeprecation" not in first

    # The closing summary names every batch model with its counts.
    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]]
            for line in first.splitlines() if re.search("[│┃]", line)]
    header = next(row for row in rows if row[:2] == ["model", "requests"])
    for model, requests in (("recipes", 10), ("media_objects", 3), ("structured_recipes", 10)):
        cells = dict(zip(header, next(row for row in rows if row[0] == model), strict=True))
        assert cells == cells | {"requests": str(requests), "cached": "0", "reused": "0",
                                 "submitted": str(requests), "succeeded": str(requests),
                                 "failed": "0"}, cells

    table = f"{local_stack.project}.{dataset}"
    texts = list(bq.query(
        f"select dessert, batch_state, recipe_text, finish_reason, total_tokens "
        f"from `{table}.recipe_texts` order by dessert_id").result())
    assert [row.dessert for row in texts][:2] == ["banana bread", "chocolate cake"]
    assert {row.batch_state for row in texts} == {"succeeded"}
    assert all("simulated" in row.recipe_text.lower() for row in texts)
    assert "banana bread" in texts[0].recipe_text
    assert {row.finish_reason for row in texts} == {"STOP"}
    assert all(row.total_tokens > 0 for row in texts)

    recipes = list(bq.query(
        f"select title, servings, minutes, ingredients, steps, _parse_error "
        f"from `{table}.structured_recipe_fields`").result())
    assert len(recipes) == 10
    for row in recipes:
        assert row._parse_error is None
        assert isinstance(row.title, str) and row.title
        assert isinstance(row.servings, int) and isinstance(row.minutes, int)
        assert isinstance(row.ingredients, list) and isinstance(row.steps, list)

    media = list(bq.query(
        f"select prompt_id, answer from `{table}.media_descriptions` order by prompt_id"
    ).result())
    assert [row.prompt_id for row in media] == [1, 2, 3]
    assert "gs://cloud-samples-data/generative-ai/video/animals.mp4" in media[2].answer

    usage = {row.batch_model: row for row in bq.query(
        f"select * from `{table}.llm_usage_summary`").result()}
    assert {name: row.succeeded for name, row in usage.items()} == {
        "recipes": 10, "media_objects": 3, "structured_recipes": 10, "dessert_tips": 10}

    jobs = project.vertex()
    mine = [job for job in jobs.list(limit=1000)
            if (job.input_table or "").startswith(f"{table}.")]
    assert len(mine) == 3

    second = cli_ok(project.cli("build"))
    assert "all 10 answerable requests were cached; no job submitted" in second
    assert len([job for job in jobs.list(limit=1000)
                if (job.input_table or "").startswith(f"{table}.")]) == 3


# -- the dbt commands a user runs next, on the built example -----------------------------


def _results(result) -> dict[str, object]:
    """Node name -> its result, of an invocation that succeeded."""
    assert result.success, result.exception or result.result
    return {r.node.name: r for r in result.result.results}


def test_docs_generate_catalogs_every_relation(recipes: Built) -> None:
    project = recipes.project
    project.dbt_ok("docs", "generate")
    catalog = json.loads((project.path / "target" / "catalog.json").read_text())
    assert not catalog.get("errors"), catalog["errors"]
    nodes = {key.rsplit(".", 1)[-1]: node for key, node in catalog["nodes"].items()}
    assert {"recipes", "recipe_texts", "desserts", "structured_recipe_fields"} <= set(nodes)
    assert nodes["recipes"]["metadata"]["type"] == "view"
    assert nodes["recipe_texts"]["metadata"]["type"] == "table"
    assert "batch_state" in {name.lower() for name in nodes["recipes"]["columns"]}
    # Tables carry their statistics, as BigQuery's catalog gives them.
    assert nodes["recipe_texts"]["stats"]["num_rows"]["value"] == 10


def test_show_prints_the_answers(recipes: Built) -> None:
    result = recipes.project.dbt_ok("show", "--select", "recipe_texts", "--limit", "3")
    [shown] = [r for r in result.result.results if r.node.name == "recipe_texts"]
    rows = [dict(zip(shown.agate_table.column_names, row, strict=True))
            for row in shown.agate_table.rows]
    assert len(rows) == 3 and {row["batch_state"] for row in rows} == {"succeeded"}
    # `dbt show` previews rows in no particular order: any 3 of the seed's desserts.
    seed = (EXAMPLE / "seeds" / "desserts.csv").read_text().splitlines()[1:]
    desserts = {line.split(",", 1)[1] for line in seed}
    assert {row["dessert"] for row in rows} <= desserts
    assert all(row["recipe_text"] for row in rows)


def test_test_passes_every_data_test(recipes: Built) -> None:
    results = _results(recipes.project.dbt_ok("test"))
    assert len(results) >= 10
    assert {str(r.status) for r in results.values()} == {"pass"}


def test_snapshot_keeps_each_recipe_once(recipes: Built) -> None:
    project = recipes.project
    project.dbt_ok("snapshot")
    rows = project.rows("select dessert_id, dbt_valid_to from `{ds}.recipe_text_history`")
    assert len(rows) == 10 and all(row["dbt_valid_to"] is None for row in rows)
    project.dbt_ok("snapshot")  # nothing changed: no new version
    assert len(project.rows("select 1 from `{ds}.recipe_text_history`")) == 10


def test_source_freshness_reads_the_job_ledger(recipes: Built) -> None:
    result = recipes.project.dbt("source", "freshness")
    assert result.success, result.exception
    [ledger] = result.result.results
    assert ledger.node.unique_id.endswith("gemini_batch.gemini_batch_jobs")
    assert str(ledger.status) == "pass" and ledger.max_loaded_at is not None
