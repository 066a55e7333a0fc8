"""The recipes example (examples/recipes) end to end, as `make demo` runs it.

The example is copied to a temporary directory (its package entry pointed at this
checkout), built twice with the `gemini-batch` command on the local stack, and checked
the way a user would: exit codes, the closing summary, the rows of the downstream
models, and the jobs the Vertex emulator was given. The first build runs the installed
console script in a process of its own, as `make demo` does; deps and the second build
run in this process, as the other tests do.
"""

from __future__ import annotations

import pytest
from google.cloud import bigquery

from gemini_batch.local.stack import StackState
from helpers.dbt_projects import DbtProjects, cli_ok
from helpers.paths import REPO_ROOT

pytestmark = pytest.mark.slow

EXAMPLE = REPO_ROOT / "examples" / "recipes"


def test_recipes_example_answers_everything_then_resubmits_nothing(
    dbt_projects: DbtProjects, local_stack: StackState, bq: bigquery.Client
) -> None:
    project = dbt_projects.copy(EXAMPLE, dataset_variable="RECIPES_DATASET")
    dataset = project.dataset

    project.dbt_ok("deps")
    first = project.run("gemini-batch", "build")
    # Settings under meta, read the way dbt 1.10+ wants: no warning about custom keys.
    assert "custom config" not in first and "CustomKeyInConfigDeprecation" not in first

    # The closing summary names every batch model with its counts.
    for model, requests in (("recipes", 10), ("media_objects", 3), ("structured_recipes", 10)):
        line = next(row for row in first.splitlines() if f" {model} " in row and "│" in row)
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        assert cells[:6] == [model, str(requests), "0", str(requests), str(requests), "0"], line

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
        "recipes": 10, "media_objects": 3, "structured_recipes": 10}

    jobs = project.vertex()
    mine = [job for job in jobs.list(limit=1000)
            if (job.input_table or "").startswith(f"{table}.")]
    assert len(mine) == 3

    second = cli_ok(project.cli("build"))
    assert "all 10 answerable requests were cached; no job submitted" in second
    assert len([job for job in jobs.list(limit=1000)
                if (job.input_table or "").startswith(f"{table}.")]) == 3
