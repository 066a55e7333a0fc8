"""The project of the build tests: prompts (a seed) → questions (a batch model) →
answers (a view over its answers), and the batch-model SQL tests vary it with."""

from __future__ import annotations

import textwrap

from helpers.dbt_projects import DbtProjects, DbtTestProject

PROMPTS = ["Name a fruit.", "Name a colour.", "Name a city."]


def batch_model_sql(config: str = "", source: str = "ref('prompts')",
                    prompt: str = "prompt") -> str:
    return textwrap.dedent(f"""\
        {{{{ config(materialized='gemini_batch', gemini_model='gemini-2.5-flash'{config}) }}}}
        select id, {{{{ gemini_batch.request(prompt="{prompt}") }}}} as request
        from {{{{ {source} }}}}
        """)


ANSWERS_SQL = """\
select id, batch_state,
       json_value(response, '$.candidates[0].content.parts[0].text') as answer
from {{ ref('questions') }}
"""

E2E_PROJECT_YML = """\
name: e2e
version: "1.0"
config-version: 2
profile: e2e
flags:
  send_anonymous_usage_stats: false
seeds:
  e2e:
    +quote_columns: false
"""


def new_build_project(dbt_projects: DbtProjects) -> DbtTestProject:
    """prompts (three rows) → questions (max_retries=1) → answers, in a regional dataset."""
    project = dbt_projects.create("e2e", {
        "dbt_project.yml": E2E_PROJECT_YML,
        "models/questions.sql": batch_model_sql(", max_retries=1"),
        "models/answers.sql": ANSWERS_SQL,
    }, regional=True)
    project.seed(list(PROMPTS))
    return project


def sibling_models_files(models: tuple[str, ...], prompts: list[str], config: str
                         ) -> dict[str, str]:
    """Batch models side by side, each asking ``<model>: <prompt>`` of every row of one
    seed (``prompts``), with ``config`` after the gemini_model (", shard_size=4")."""
    files = {
        "dbt_project.yml": E2E_PROJECT_YML,
        "seeds/prompts.csv": "id,prompt\n" + "".join(
            f"{n},{prompt}\n" for n, prompt in enumerate(prompts, start=1)),
    }
    for name in models:
        files[f"models/{name}.sql"] = batch_model_sql(config, prompt=f"concat('{name}: ', prompt)")
    return files

