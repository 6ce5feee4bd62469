"""The project's DAG files (``dags/``) as the tests load them."""

from __future__ import annotations

from pathlib import Path

DAGS = Path(__file__).resolve().parents[2] / "dags"


def project_dag(file_name: str, dag_id: str):
    """DAG ``dag_id`` of ``dags/<file_name>``, parsed by a DagBag that must report no import error."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / file_name))
    assert bag.import_errors == {}
    return bag.dags[dag_id]
