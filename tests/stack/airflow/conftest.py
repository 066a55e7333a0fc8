"""Real Airflow 3 for the operator's tests: SQLite in a temporary AIRFLOW_HOME, the
example DAG (examples/airflow/) in its dags folder, run with ``dag.test()``, which runs
each task in this process and a deferred task's trigger in line, as the triggerer would.

The DAG builds the build tests' project (prompts → questions → answers,
helpers/build_project.py), a dataset of its own per test.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.airflow_home import use_temporary_airflow_home
from helpers.build_project import new_build_project
from helpers.dbt_projects import DbtProjects, DbtTestProject
from helpers.paths import REPO_ROOT

AIRFLOW_HOME = use_temporary_airflow_home()
pytest.importorskip("airflow", reason="the airflow extra is not installed")

EXAMPLE_DAG = REPO_ROOT / "examples" / "airflow" / "gemini_batch_recipes.py"
DAG_ID = "gemini_batch_recipes"


@pytest.fixture(scope="session")
def airflow_dags() -> Path:
    """The dags folder, holding the example DAG, and a metadata database made for it."""
    from airflow.utils.db import initdb

    dags = AIRFLOW_HOME / "dags"
    shutil.copy(EXAMPLE_DAG, dags / EXAMPLE_DAG.name)
    initdb()
    return dags


@pytest.fixture()
def project(dbt_projects: DbtProjects) -> Iterator[DbtTestProject]:
    project = new_build_project(dbt_projects)
    yield project
    project.drop()
