"""The whole scenario with the project's own DAGs, on real servers and a real metadata database, once with HDFS on
the devstack's WebHDFS server and once on Apache Hadoop's (S3 on the devstack's moto server both times):

    hybrid_tpcds_prepare -> hybrid_cache_warming -> hybrid_query (DuckDB) -> hybrid_migrate_<policy> -> hybrid_query

TPC-DS queries 3, 42, 52 and 55 answer the same before and after the migration, and every store_sales file
older than the policy's age is on S3 and gone from HDFS while the newer ones stay on HDFS.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from airflow_hybrid.cli.demo import QUERY_TASKS, mount_connections, query_answers, run_dag, xcom_value

pytestmark = [pytest.mark.hdfs_servers, pytest.mark.timeout(900)]

DAY = 86400


@pytest.fixture
def scenario(airflow_db, hdfs_server, tmp_path, monkeypatch):
    from airflow_hybrid.devstack.stack import airflow_env

    unique = f"scenario-{uuid.uuid4().hex[:8]}"
    conns = mount_connections(hdfs_server, tmp_path / "cache", hdfs_root=f"/tmp/{unique}", s3_prefix=unique)
    for name, value in airflow_env(conns).items():
        monkeypatch.setenv(name, value)
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        json.dumps(
            {"policies": [{"name": "scenario_sales", "mount": "onprem_union", "path": "/store_sales",
                           "policy": "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
                           "schedule": "@daily", "deferrable": False}]}
        )
    )
    monkeypatch.setenv("AIRFLOW_VAR_HYBRID_POLICIES_FILE", str(policies))
    from airflow_hybrid.mount import HybridMount

    mount = HybridMount.from_conn_id("onprem_union")
    yield mount
    mount.close()


def test_prepare_warm_query_migrate_query(scenario):
    mount = scenario
    run_dag("hybrid_tpcds_prepare.py", "hybrid_tpcds_prepare",
            {"scale_factor": 0.02, "files_per_table": 4, "mtime_spread_days": 60})
    sales = {f.path: f for f in mount.members["hdfs"].walk_files("store_sales")}
    assert len(sales) == 4 and not list(mount.members["s3"].walk_files(""))
    now = time.time()
    old = {p for p, f in sales.items() if now - f.mtime > 30 * DAY}
    assert len(old) == 2, {p: (now - f.mtime) / DAY for p, f in sales.items()}

    warm = run_dag("hybrid_cache_warming.py", "hybrid_cache_warming", {"pin": True})
    prefetch = xcom_value(warm, "prefetch")
    assert prefetch["files"] == 12 and prefetch["failed"] == 0 and prefetch["pinned"] == 12

    before = query_answers(run_dag("hybrid_query.py", "hybrid_query"))
    assert all(before[t]["rows"] > 0 for t in QUERY_TASKS), before

    migrate = run_dag("hybrid_ufs_migrate.py", "hybrid_migrate_scenario_sales")
    report = xcom_value(migrate, "report")
    assert report["moved"] == 2 and report["failed"] == 0, report

    hdfs_now = {f.path for f in mount.members["hdfs"].walk_files("store_sales")}
    s3_now = {f.path for f in mount.members["s3"].walk_files("store_sales")}
    assert s3_now == old  # every file older than 30 days is on S3 ...
    assert hdfs_now == set(sales) - old  # ... and gone from HDFS; the newer ones stay
    for path in old:
        assert mount.members["s3"].info(path).size == sales[path].size

    after = query_answers(run_dag("hybrid_query.py", "hybrid_query"))
    for task in QUERY_TASKS:
        assert after[task]["rows"] == before[task]["rows"], task
        assert _result_rows(after[task]["output_path"]) == _result_rows(before[task]["output_path"]), task


def _result_rows(output_path: str) -> list[dict]:
    """The whole result file a query task wrote (through hybrid://), not only its XCom preview."""
    import pyarrow.parquet as pq

    from airflow_hybrid.mount.filesystem import HybridFileSystem

    with HybridFileSystem().open(output_path, "rb") as result:
        return pq.read_table(result).to_pylist()
