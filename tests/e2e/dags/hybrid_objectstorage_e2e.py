"""Test DAG: a task that lists, reads and writes ``hybrid://lake/sales/`` through ObjectStoragePath."""

from __future__ import annotations

from airflow.sdk import DAG, ObjectStoragePath, task

with DAG("hybrid_objectstorage_e2e", schedule=None, catchup=False, tags=["test"]) as dag:

    @task
    def total() -> int:
        base = ObjectStoragePath("hybrid://lake/sales/")
        names = sorted(p.name for p in base.iterdir())
        assert names == ["a.csv", "b.csv"], names
        values = [int(x) for p in base.iterdir() for x in p.read_text().split()]
        (base / "total.txt").write_text(str(sum(values)))
        return sum(values)

    total()
