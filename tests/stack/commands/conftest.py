"""`gemini-batch build` and the operator commands on the local stack: each test gets the
build project (helpers/build_project.py) in a regional dataset of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helpers.build_project import new_build_project
from helpers.dbt_projects import DbtProjects, DbtTestProject


@pytest.fixture()
def project(dbt_projects: DbtProjects) -> Iterator[DbtTestProject]:
    project = new_build_project(dbt_projects)
    yield project
    project.drop()
