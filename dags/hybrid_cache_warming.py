"""
Hybrid lake: warm the cache with the data queries are about to read ("zero-copy" bursting).

``hybrid_cache_warming`` prefetches logical paths or globs of a hybrid mount into a cache tier (in parallel,
skipping copies that are still fresh against the source), optionally pins them (never evicted) with a TTL,
then logs the cache report (Alluxio's ``fsadmin report`` for our tiers). Its prefetch task's outlets are the
``hybrid://onprem_union/<table>`` Assets, so ``hybrid_query`` runs as soon as the data is warm.

Trigger it from the UI with other params (mount, paths, tier, pin, ttl) to warm anything else; users' own
DAGs use the same operators (``airflow_hybrid.operators.cache``).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset, Param

from airflow_hybrid.operators.cache import HybridCacheReportOperator, HybridPrefetchOperator

MOUNT = "onprem_union"
TABLES = ("store_sales", "item", "date_dim")
#: Same URIs as the query DAG's schedule: warming a table makes the query DAG run.
TABLE_ASSETS = [Asset(f"hybrid://{MOUNT}/{table}") for table in TABLES]

with DAG(
    dag_id="hybrid_cache_warming",
    description="Prefetch (and optionally pin) hybrid-mount paths into a cache tier, then report the cache",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,  # the paths param renders as a list
    tags=["hybrid", "cache"],
    params={
        "mount": Param(MOUNT, type="string", description="The hybrid_mount connection id."),
        "paths": Param(
            [f"/{table}/*.parquet" for table in TABLES],
            type="array",
            items={"type": "string"},
            description="Logical paths, directories or globs under the mount.",
        ),
        "tier": Param(None, type=["null", "string"], description="Cache tier alias (default: the first tier)."),
        "pin": Param(False, type="boolean", description="Pin the files: eviction never removes them."),
        "ttl": Param(None, type=["null", "string"], description="Lifetime of the copies, e.g. 6h or 2d."),
    },
    doc_md=__doc__,
) as dag:
    prefetch = HybridPrefetchOperator(
        task_id="prefetch",
        mount_conn_id="{{ params.mount }}",
        paths="{{ params.paths }}",
        tier="{{ params.tier or '' }}",
        pin="{{ params.pin }}",
        ttl="{{ params.ttl or '' }}",
        concurrency=8,
        outlets=TABLE_ASSETS,
    )
    report = HybridCacheReportOperator(task_id="report", mount_conn_id="{{ params.mount }}")
    prefetch >> report
