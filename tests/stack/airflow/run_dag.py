"""`python run_dag.py DAG_ID LOGICAL_DATE`: one dag.test() run of a DAG of the dags
folder, in a process of its own (a worker the kill test can kill). Airflow's home and
the DAG's settings come from the environment the test gives it."""

from __future__ import annotations

import os
import sys
from datetime import datetime

from airflow.dag_processing.dagbag import DagBag


def main(dag_id: str, logical_date: str) -> None:
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        sys.exit(f"DAG import errors: {bag.import_errors}")
    when = datetime.fromisoformat(logical_date)
    bag.get_dag(dag_id).test(logical_date=when, run_after=when)


if __name__ == "__main__":
    main(*sys.argv[1:])
