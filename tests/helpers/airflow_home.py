"""A home for Airflow of this test process, set before Airflow is first imported.

Airflow reads its home, dags folder and metadata database (SQLite here) once, when it
is imported; whichever test module or conftest imports it first calls this beforehand,
and every caller in one process gets the same directory (it is named after the pid).
It is removed when the process exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path


def use_temporary_airflow_home() -> Path:
    home = Path(tempfile.gettempdir()) / f"gemini-batch-airflow-{os.getpid()}"
    if os.environ.get("AIRFLOW_HOME") == str(home):
        return home
    if "airflow" in sys.modules:
        raise RuntimeError(
            "airflow was imported before the tests gave it a home of its own: call "
            "helpers.airflow_home.use_temporary_airflow_home() before importing it."
        )
    (home / "dags").mkdir(parents=True, exist_ok=True)
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    })
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    return home
