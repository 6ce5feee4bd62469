"""Test DAG of tests/e2e/test_no_secret_leaks.py: warm the cache (a local tier and an S3 tier), query the warm
table with the embedded DuckDB engine, report the cache; the mount ``leak_lake`` carries planted secrets."""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_hybrid.operators.cache import HybridCacheReportOperator, HybridPrefetchOperator
from airflow_hybrid.operators.query import HybridQueryOperator

MOUNT = "leak_lake"

with DAG("hybrid_leak_cache_query_e2e", schedule=None, catchup=False, tags=["test"]) as dag:
    prefetch_s3 = HybridPrefetchOperator(  # one copy per file: the S3 tier gets this one, MEM the others
        task_id="prefetch_s3_tier", mount_conn_id=MOUNT, paths="/leak-e2e/sales/part-00000.parquet", tier="S3"
    )
    prefetch = HybridPrefetchOperator(
        task_id="prefetch", mount_conn_id=MOUNT, paths="/leak-e2e/sales/*.parquet", tier="MEM", concurrency=2
    )
    query = HybridQueryOperator(
        task_id="query",
        mount_conn_id=MOUNT,
        sql="SELECT count(*) AS n, sum(v) AS total FROM sales",
        tables={"sales": "/leak-e2e/sales"},
    )
    report = HybridCacheReportOperator(task_id="report", mount_conn_id=MOUNT)
    prefetch_s3 >> prefetch >> query >> report
