"""The policies file named by the ``hybrid_policies_file`` Variable, read without Airflow's deprecation
warnings: in a task (the Task SDK's ``Variable`` through the in-process API server of ``dag.test()``), in a
server process such as an ``airflow hybrid`` command (``_AIRFLOW_PROCESS_CONTEXT=server``: the metadata
database) and in a plain Python process (the metadata database through Airflow's ``MetastoreBackend``).
The Variable lives in the metadata database only (no ``AIRFLOW_VAR_*``), so each context has to reach it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.e2e.dag_files import DAGS

TEST_DAGS = DAGS.parent / "tests" / "e2e" / "dags"
POLICY = "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
KEY = "hybrid_policies_file"

#: Loads the policies in a fresh interpreter; prints what it read, the warnings and the warning log records.
PLAIN_PROCESS = textwrap.dedent("""
    import json, logging, warnings
    import airflow.sdk  # Airflow's own import-time warnings are not ours
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger().addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from airflow_hybrid.migration import registry
        path = registry.default_policies_path()
        entries, errors = registry.load_policies_file()
    print(json.dumps({
        "path": str(path), "entries": [e.name for e in entries], "errors": errors,
        "warnings": [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught],
        "log": [r.getMessage() for r in records],
    }))
""")


def _deprecations(messages: list[str]) -> list[str]:
    return [m for m in messages if "Deprecat" in m or "RemovedInAirflow" in m or "deprecated" in m.lower()]


@pytest.fixture
def policies_variable(airflow_db, tmp_path, monkeypatch):
    """A policies file of one entry, named by the Variable in the metadata database (removed afterwards)."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    monkeypatch.delenv(f"AIRFLOW_VAR_{KEY.upper()}", raising=False)
    file = tmp_path / "policies.yaml"
    file.write_text(f"- {{name: from_db, mount: lake, path: x, policy: '{POLICY}', schedule: null}}\n")
    with create_session() as session:
        session.query(Variable).filter(Variable.key == KEY).delete()
        # unencrypted: the other processes' Fernet key is not the one this test session generated
        session.execute(Variable.__table__.insert().values(key=KEY, val=str(file), is_encrypted=False))
    yield file
    with create_session() as session:
        session.query(Variable).filter(Variable.key == KEY).delete()


def test_a_task_reads_the_variable_through_the_task_sdk_without_deprecation(policies_variable, caplog):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(TEST_DAGS / "hybrid_policies_variable_e2e.py"))
    assert bag.import_errors == {}
    run = bag.dags["hybrid_policies_variable_e2e"].test()
    assert run.state == "success"
    from airflow_hybrid.cli.demo import xcom_value

    seen = xcom_value(run, "load")
    assert seen["supervised"] is True  # a real task context: the Task SDK talks to a supervisor
    assert (seen["path"], seen["entries"], seen["errors"]) == (str(policies_variable), ["from_db"], [])
    assert _deprecations(seen["warnings"]) == []
    assert _deprecations([r.getMessage() for r in caplog.records]) == []


@pytest.mark.parametrize("context", ["plain", "server"])
def test_a_process_without_a_supervisor_reads_the_variable_from_the_database(policies_variable, context):
    env = {k: v for k, v in os.environ.items() if k != "_AIRFLOW_PROCESS_CONTEXT"}
    if context == "server":
        env["_AIRFLOW_PROCESS_CONTEXT"] = "server"  # what `airflow hybrid ...` commands set
    result = subprocess.run(  # noqa: S603 - this interpreter on a fixed script
        [sys.executable, "-c", PLAIN_PROCESS], env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert (seen["path"], seen["entries"], seen["errors"]) == (str(policies_variable), ["from_db"], [])
    assert _deprecations(seen["warnings"]) == []
    assert _deprecations(seen["log"]) == []
