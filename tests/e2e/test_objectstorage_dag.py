"""A real DAG run (dag.test() on a metadata database) whose tasks use ObjectStoragePath("hybrid://...")."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def local_mount(tmp_path, monkeypatch):
    hdfs, s3 = tmp_path / "hdfs", tmp_path / "s3"
    (hdfs / "sales").mkdir(parents=True)
    (s3 / "sales").mkdir(parents=True)
    (hdfs / "sales" / "a.csv").write_text("1\n2\n")
    (s3 / "sales" / "b.csv").write_text("3\n")
    extra = {
        "members": {"hdfs": {"uri": f"file://{hdfs}"}, "s3": {"uri": f"file://{s3}"}},
        "priority.read": "s3,hdfs",
        "collection.create": "s3",
    }
    monkeypatch.setenv("AIRFLOW_CONN_LAKE", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    return hdfs, s3


def test_dag_reads_and_writes_hybrid_paths(airflow_db, local_mount):
    from tests.e2e.dags.hybrid_objectstorage_e2e import dag

    hdfs, s3 = local_mount
    run = dag.test()
    assert run.state == "success"
    assert (s3 / "sales" / "total.txt").read_text() == "6"  # created in the collection.create member
    assert not (hdfs / "sales" / "total.txt").exists()
