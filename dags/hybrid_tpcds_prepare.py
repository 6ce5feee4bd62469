"""
Hybrid lake: prepare the TPC-DS sample lake.

Generates TPC-DS ``store_sales``, ``item`` and ``date_dim`` at a chosen scale factor with DuckDB's TPC-DS
generator (the ``duckdb-extension-tpcds`` wheel; nothing is downloaded), writes each table as several Parquet
files into one member of a hybrid mount (``<base_path>/<table>/part-NNNNN.parquet``, by default into the
on-prem ``hdfs`` member), then writes the Hive DDL users run on-prem next to the data
(``<base_path>/create-table.sql``: ``CREATE EXTERNAL TABLE ... STORED AS PARQUET LOCATION 'hdfs://...'``).

With ``mtime_spread_days`` the files' modification times are spread over that many days up to now, oldest
part first (and the oldest sales in the oldest files), so an age-based migration policy such as
``ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)`` moves the older part of each table.
"""

from __future__ import annotations

import datetime

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="hybrid_tpcds_prepare",
    schedule=None,
    catchup=False,
    doc_md=__doc__,
    tags=["hybrid", "tpcds"],
    params={
        "mount": Param("onprem_union", type="string", description="The hybrid_mount connection id."),
        "member": Param(
            "hdfs",
            type=["null", "string"],
            description="Member to write into; empty writes through the mount (its collection.create members).",
        ),
        "scale_factor": Param(
            0.1, type="number", exclusiveMinimum=0, description="TPC-DS scale factor (1 = ~1 GB)."
        ),
        "base_path": Param("", type="string", description="Logical directory of the lake in the mount ('' = its root)."),
        "files_per_table": Param(4, type="integer", minimum=1, description="Parquet files per table."),
        "mtime_spread_days": Param(
            60,
            type="integer",
            minimum=0,
            description="Spread file modification times over this many days (0: now).",
        ),
        "overwrite": Param(False, type="boolean", description="Replace tables that already exist."),
        "ddl_location_root": Param(
            None,
            type=["null", "string"],
            description="Root URI for the DDL's LOCATION clauses (e.g. hdfs://namenode:8020/tmp); default: the member's.",
        ),
    },
) as dag:

    @task
    def generate(params: dict | None = None) -> dict:
        """Generate the tables and stream them, file by file, into the mount member."""
        from airflow_hybrid.mount import HybridMount
        from airflow_hybrid.query import tpcds

        mtime_range = None
        if params["mtime_spread_days"]:
            newest = datetime.datetime.now(datetime.timezone.utc)
            mtime_range = (newest - datetime.timedelta(days=params["mtime_spread_days"]), newest)
        with HybridMount.from_conn_id(params["mount"]) as mount:
            lake = tpcds.write_tpcds(
                mount,
                member=params["member"] or None,
                base_path=params["base_path"],
                scale_factor=params["scale_factor"],
                files_per_table=params["files_per_table"],
                mtime_range=mtime_range,
                overwrite=params["overwrite"],
                ddl=False,
            )
        return lake.to_dict()

    @task
    def write_ddl(lake: dict, params: dict | None = None) -> str:
        """Write create-table.sql next to the data, typed from the Parquet files' schemas."""
        from airflow_hybrid.mount import HybridMount
        from airflow_hybrid.query import tpcds

        with HybridMount.from_conn_id(lake["mount"]) as mount:
            return tpcds.write_hive_ddl(
                mount,
                member=lake["member"],
                base_path=lake["base_path"],
                tables=list(lake["tables"]),
                location_root=params["ddl_location_root"] or None,
            )

    write_ddl(generate())
