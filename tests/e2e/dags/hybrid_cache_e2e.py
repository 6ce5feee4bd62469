"""Test DAGs: warm a mount's cache (prefetch + pin), report it, free it; and a prefetch of a glob matching nothing.

The mount is the connection ``cache_e2e_lake`` that tests/e2e/test_cache_dag.py defines on the devstack.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_hybrid.operators.cache import (
    HybridCacheReportOperator,
    HybridFreeOperator,
    HybridPrefetchOperator,
    HybridUnpinOperator,
)

MOUNT = "cache_e2e_lake"

with DAG("hybrid_cache_e2e", schedule=None, catchup=False, tags=["test"]) as dag:
    prefetch = HybridPrefetchOperator(
        task_id="prefetch", mount_conn_id=MOUNT, paths="/cache-e2e/sales/*.parquet", tier="SSD", pin=True,
        ttl="1d", concurrency=4,
    )
    report = HybridCacheReportOperator(task_id="report", mount_conn_id=MOUNT)
    free_unpinned = HybridFreeOperator(task_id="free_unpinned", mount_conn_id=MOUNT, paths="cache-e2e")
    unpin = HybridUnpinOperator(task_id="unpin", mount_conn_id=MOUNT, paths="cache-e2e/sales/part-0000[01].parquet")
    free = HybridFreeOperator(task_id="free", mount_conn_id=MOUNT, paths="cache-e2e")
    report_after = HybridCacheReportOperator(task_id="report_after", mount_conn_id=MOUNT)
    prefetch >> report >> free_unpinned >> unpin >> free >> report_after

with DAG("hybrid_cache_bad_glob_e2e", schedule=None, catchup=False, tags=["test"]) as bad_glob_dag:
    missing = HybridPrefetchOperator(task_id="prefetch", mount_conn_id=MOUNT, paths="cache-e2e/sales/*.orc")
    after = HybridCacheReportOperator(task_id="report", mount_conn_id=MOUNT)
    missing >> after
