"""Cache operators in real DAG runs (dag.test() on a metadata database) against the devstack's HDFS and S3.

DAGs: tests/e2e/dags/hybrid_cache_e2e.py. The mount ``cache_e2e_lake`` is the devstack's union (HDFS + S3) with
a local-directory tier ``SSD`` and a SQLite catalog in the test's directory.
"""

from __future__ import annotations

import copy
import io
import json
import os

import pytest

from airflow_hybrid.mount import HybridMount

MOUNT = "cache_e2e_lake"
KiB = 1024


@pytest.fixture
def cache_e2e_lake(airflow_db, airflow_connections, tmp_path, monkeypatch):
    extra = copy.deepcopy(airflow_connections["onprem_union"]["extra"])
    extra["cache"] = {
        "tiers": [{"alias": "MEM", "uri": f"file://{tmp_path}/tier-mem", "quota": "1MB"},
                  {"alias": "SSD", "uri": f"file://{tmp_path}/tier-ssd", "quota": "2MB"}],
        "catalog_url": f"sqlite:///{tmp_path}/catalog.db",
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{MOUNT.upper()}", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    mount = HybridMount.from_conn_id(MOUNT)
    if mount.exists("cache-e2e"):
        mount.delete("cache-e2e", recursive=True)
    files = {}
    for i in range(6):  # four parts on-prem (HDFS), two already migrated to S3
        path = f"cache-e2e/sales/part-{i:05d}.parquet"
        files[path] = os.urandom(100 * KiB + i)
        mount.members["hdfs" if i < 4 else "s3"].write(path, io.BytesIO(files[path]))
    mount.members["hdfs"].write("cache-e2e/sales/_SUCCESS", io.BytesIO(b""))
    yield mount, files
    mount.close()


def xcoms(run) -> dict[str, object]:
    """Return values of the run's tasks, by task id."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, key="return_value")).all()
        return {row.task_id: XComModel.deserialize_value(row) for row in rows}


def test_prefetch_pin_report_unpin_free_in_a_dag_run(cache_e2e_lake):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from tests.e2e.dags.hybrid_cache_e2e import dag

    mount, files = cache_e2e_lake
    total = sum(map(len, files.values()))
    run = dag.test()
    assert run.state == "success"
    values = xcoms(run)

    prefetch = values["prefetch"]
    assert {k: prefetch[k] for k in ("mount", "tier", "files", "bytes", "loaded", "loaded_bytes", "fresh",
                                     "busy", "failed", "pinned", "pinned_bytes")} == {
        "mount": MOUNT, "tier": "SSD", "files": 6, "bytes": total, "loaded": 6, "loaded_bytes": total,
        "fresh": 0, "busy": 0, "failed": 0, "pinned": 6, "pinned_bytes": total}
    assert "part-00000" not in json.dumps(prefetch)  # counts, never the file list

    report = values["report"]
    ssd = next(t for t in report["tiers"] if t["alias"] == "SSD")
    assert (report["files"], ssd["files"], ssd["used_bytes"], ssd["pinned_bytes"]) == (6, 6, total, total)
    assert ssd["capacity_bytes"] == 2 * 1024 * KiB and ssd["oldest_entry"]["path"].startswith("cache-e2e/sales/")

    assert values["free_unpinned"] == {"mount": MOUNT, "files": 0, "bytes": 0, "skipped_pinned": 6}
    assert values["unpin"] == {"mount": MOUNT, "unpinned": 2}
    unpinned = len(files["cache-e2e/sales/part-00000.parquet"]) + len(files["cache-e2e/sales/part-00001.parquet"])
    assert values["free"] == {"mount": MOUNT, "files": 2, "bytes": unpinned, "skipped_pinned": 4}
    after = next(t for t in values["report_after"]["tiers"] if t["alias"] == "SSD")
    assert (after["files"], after["used_bytes"], after["pinned_bytes"]) == (4, total - unpinned, total - unpinned)

    for path, data in files.items():  # sources untouched, in their members
        with mount.members["hdfs" if int(path[-13:-8]) < 4 else "s3"].open_read(path) as stream:
            assert stream.read() == data

    with create_session() as session:
        uris = session.scalars(
            select(AssetModel.uri).join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run.run_id)
        ).all()
    assert uris == [f"hybrid://{MOUNT}/cache-e2e/sales"]


def test_a_glob_matching_nothing_fails_the_task_and_changes_nothing(cache_e2e_lake):
    from tests.e2e.dags.hybrid_cache_e2e import bad_glob_dag

    mount, _ = cache_e2e_lake
    run = bad_glob_dag.test()
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"prefetch": "failed", "report": "upstream_failed"}
    assert list(mount.cache.entries("cache-e2e")) == []
