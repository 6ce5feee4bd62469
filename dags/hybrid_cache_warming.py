"""
Hybrid lake: warm the cache with the data queries are about to read ("zero-copy" bursting), and keep it warm
when the data changes.

``hybrid_cache_warming`` prefetches logical paths or globs of a hybrid mount into a cache tier (in parallel,
skipping copies that are still fresh against the source), optionally pins them (never evicted) with a TTL,
then logs the cache report (Alluxio's ``fsadmin report`` for our tiers). Its prefetch task's outlets are the
``hybrid://onprem_union/<table>`` Assets, so ``hybrid_query`` runs as soon as the data is warm.
Trigger it from the UI with other params (mount, paths, tier, pin, ttl) to warm anything else; users' own
DAGs use the same operators (``airflow_hybrid.operators.cache``).

``hybrid_cache_refresh`` runs when a table's files change, not on a clock (Alluxio's Active Sync): each table
has a source Asset ``hybrid-source://onprem_union/<table>`` with an ``AssetWatcher`` whose
``HybridChangeTrigger`` polls the mount on the triggerer (two HDFS requests and one S3 listing page per poll
while nothing changes) and emits an Asset event when the table's Parquet files are added, removed, resized or
rewritten. The run re-warms the tables that changed and emits all three table Assets (the others are unchanged,
and ``hybrid_query`` needs an event of each), so ``hybrid_query`` follows every change. It is created paused:
unpause it to start the watchers (Airflow runs an Asset's watchers only while an unpaused DAG is scheduled on
it). The poll interval is the ``[hybrid] freshness_poll_interval`` option (seconds, default 30;
``AIRFLOW__HYBRID__FRESHNESS_POLL_INTERVAL``).
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, Param, conf, task
from airflow.sdk.exceptions import AirflowSkipException

from airflow_hybrid.operators.cache import HybridCacheReportOperator, HybridPrefetchOperator
from airflow_hybrid.triggers.freshness import HybridChangeTrigger

MOUNT = "onprem_union"
TABLES = ("store_sales", "item", "date_dim")
#: Same URIs as the query DAG's schedule: warming a table makes the query DAG run.
TABLE_ASSETS = [Asset(f"hybrid://{MOUNT}/{table}") for table in TABLES]
#: Seconds between two looks at a table's files.
POLL_INTERVAL = conf.getfloat("hybrid", "freshness_poll_interval", fallback=30.0)


def table_files(table: str) -> str:
    return f"/{table}/*.parquet"


#: The tables' files as they change, one watched Asset per table.
SOURCE_ASSETS = {
    table: Asset(
        name=f"{MOUNT}_{table}_source",
        uri=f"hybrid-source://{MOUNT}/{table}",
        group="hybrid-source",
        watchers=[AssetWatcher(
            name=f"{MOUNT}_{table}_changes",
            trigger=HybridChangeTrigger(mount_conn_id=MOUNT, path=table_files(table), poll_interval=POLL_INTERVAL),
        )],
    )
    for table in TABLES
}

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


with DAG(
    dag_id="hybrid_cache_refresh",
    description="Re-warm the tables whose files changed (an AssetWatcher on each), then report the cache",
    schedule=SOURCE_ASSETS["store_sales"] | SOURCE_ASSETS["item"] | SOURCE_ASSETS["date_dim"],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # events arriving meanwhile make one more run, which sees them all
    is_paused_upon_creation=True,  # opt in: unpaused, its watchers start polling the lake
    tags=["hybrid", "cache"],
    doc_md=__doc__,
) as refresh_dag:

    @task
    def changed_tables(triggering_asset_events: Any = None) -> list[str]:
        """The files of the tables whose source Assets triggered the run (all tables in a manual run); tables
        whose last event found no file are left out (nothing to warm), and with none left the run is skipped."""
        by_uri = {asset.uri: table for table, asset in SOURCE_ASSETS.items()}
        files_left: dict[str, int] = {}
        for asset in triggering_asset_events or {}:
            events = triggering_asset_events[asset] if asset.uri in by_uri else []
            if events:
                payload = (events[-1].extra or {}).get("payload") or {}
                files_left[by_uri[asset.uri]] = int(payload.get("files", 1))
        tables = [t for t in TABLES if t in files_left] or list(TABLES)
        warm = [t for t in tables if files_left.get(t, 1)]
        if not warm:
            raise AirflowSkipException(f"tables {', '.join(tables)} have no files left: nothing to warm")
        print(f"Refreshing {', '.join(warm)}; left out (no files): {', '.join(set(tables) - set(warm)) or 'none'}")
        return [table_files(t) for t in warm]

    refresh = HybridPrefetchOperator(
        task_id="prefetch",
        mount_conn_id=MOUNT,
        paths=changed_tables(),
        concurrency=8,
        outlets=TABLE_ASSETS,
    )
    refresh >> HybridCacheReportOperator(task_id="report", mount_conn_id=MOUNT)
