"""The package's macros through dbt: the integration project (integration_tests/) as
it is, on the local stack, shared by the modules that build or compile it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dbt.cli.main import dbtRunnerResult

from helpers.dbt_projects import DbtProjects, DbtTestProject
from helpers.paths import REPO_ROOT

INTEGRATION_DIR = REPO_ROOT / "integration_tests"


@pytest.fixture(scope="session")
def integration_project(dbt_projects: DbtProjects) -> DbtTestProject:
    """A copy of integration_tests/ (the checkout is left as it is, and test sessions
    side by side do not share one dbt_packages/) on a dataset of its own, the package
    installed by `dbt deps`, offline: it only links the package into dbt_packages/."""
    project = dbt_projects.copy(INTEGRATION_DIR, dataset_variable="GEMINI_BATCH_DATASET")
    project.dbt_ok("deps")
    return project


@pytest.fixture(scope="session")
def compile_inline(integration_project: DbtTestProject) -> Callable[[str], dbtRunnerResult]:
    """`dbt compile --inline <sql>` in the integration project, on a manifest parsed once.
    A compiler error needs no relation from BigQuery: the cache is not filled (it lists
    every table of the dataset, which the integration build fills)."""
    manifest = integration_project.dbt_ok("parse").result

    def compile_sql(sql: str) -> dbtRunnerResult:
        return integration_project.dbt(
            "compile", "--no-populate-cache", "--inline", sql, manifest=manifest
        )

    return compile_sql
