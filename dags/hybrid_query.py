"""
Hybrid lake: SQL over the TPC-DS tables, wherever their files live.

Two DAGs, because they answer two different needs:

* ``hybrid_query`` runs when the data is ready: it is scheduled on the Assets
  ``hybrid://onprem_union/{store_sales,item,date_dim}`` (produced by the cache-warming and migration
  DAGs) and runs TPC-DS queries 3, 42, 52 and 55 (their text from the generator's own query set). Each result
  goes to ``hybrid://<mount>/results/hybrid_query/<task>/<run_id>.parquet``.
* ``hybrid_query_daily`` is a daily report: its SQL filters the sales of its data interval
  (``{{ data_interval_start | ds }}`` to ``{{ data_interval_end | ds }}``) and writes
  ``hybrid://<mount>/results/daily_sales/<ds>.parquet``, so ``airflow backfill create --dag-id
  hybrid_query_daily --from-date 2002-12-01 --to-date 2002-12-03`` produces one correct run per day (TPC-DS
  sales fall between 1998-01-02 and 2003-01-02). Its schedule is ``CronDataIntervalTimetable("@daily")``,
  not the string ``"@daily"``: Airflow 3 turns a cron string into a ``CronTriggerTimetable`` (unless
  ``[scheduler] create_cron_data_intervals`` is on), whose runs are points in time (``data_interval_start
  == data_interval_end``), an empty window for a per-day report. A run whose window is empty fails; a day
  without sales is written (an empty result) with a warning in the task log. A single DAG with
  ``AssetOrTimeSchedule`` would mix asset-triggered runs, whose data interval is not a day of sales, into a
  per-day report.

Both use ``HybridQueryOperator``: the embedded DuckDB engine by default (``engine`` param), or ``emr`` with
``emr_cluster_id`` to run the same SQL as a Spark SQL / Trino / Presto step over the tables' physical URIs.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Param

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.operators.query import HybridQueryOperator

MOUNT = "onprem_union"
BASE_PATH = ""  # the tables sit at the mount root: hdfs:///tmp/tpcds/<table>/ on the devstack
TABLES = ("store_sales", "item", "date_dim")
TPCDS_QUERIES = (3, 42, 52, 55)
#: The tables as Assets; the cache-warming and migration DAGs list the same URIs as their outlets.
TABLE_ASSETS = {
    table: Asset(f"hybrid://{MOUNT}/" + "/".join(part for part in (BASE_PATH, table) if part)) for table in TABLES
}

DAILY_SALES_SQL = """
SELECT d.d_date AS sold_date,
       i.i_category AS category,
       count(*) AS sales,
       sum(ss.ss_quantity) AS quantity,
       sum(ss.ss_ext_sales_price) AS revenue
FROM store_sales ss
JOIN date_dim d ON ss.ss_sold_date_sk = d.d_date_sk
JOIN item i ON ss.ss_item_sk = i.i_item_sk
WHERE d.d_date >= DATE '{{ data_interval_start | ds }}'
  AND d.d_date < DATE '{{ data_interval_end | ds }}'
GROUP BY d.d_date, i.i_category
ORDER BY d.d_date, i.i_category
"""


def tpcds_query(number: int) -> str:
    """Template function: the text of TPC-DS query ``number`` (loads DuckDB only when a task renders it)."""
    from airflow_hybrid.query.tpcds import tpcds_query as query_text

    return query_text(number)


def require_a_window(context: Any) -> None:
    """``pre_execute`` of the daily report: refuse a run whose data interval is empty (a point in time)."""
    start, end = context["data_interval_start"], context["data_interval_end"]
    if start is None or end is None or end <= start:
        raise HybridConfigError(
            f"{context['dag'].dag_id}.{context['task'].task_id}, run {context['run_id']}: the data interval "
            f"{start} .. {end} is empty, so the report would select no sales; schedule the DAG with a "
            "data-interval timetable such as CronDataIntervalTimetable('@daily', timezone='UTC')"
        )


def warn_when_empty(context: Any, result: Any) -> None:
    """``post_execute`` of the daily report: say so loudly when a day had no sales."""
    if isinstance(result, dict) and result.get("rows") == 0:
        context["task"].log.warning(
            "No sales between %s and %s: %s holds an empty result (is the lake loaded, and are these days "
            "within the data's dates?)",
            context["data_interval_start"], context["data_interval_end"], result.get("output_path"),
        )


def _params() -> dict[str, Param]:
    return {
        "mount": Param(MOUNT, type="string", description="The hybrid_mount connection id."),
        "base_path": Param(BASE_PATH, type="string", description="Logical directory of the TPC-DS tables."),
        "engine": Param("duckdb", enum=["duckdb", "emr", "spark"], description="Embedded DuckDB, a step on EMR, or your Spark."),
        "emr_cluster_id": Param(None, type=["null", "string"], description="EMR cluster id (engine=emr)."),
        "emr_cli": Param("spark-sql", enum=["spark-sql", "trino", "presto"], description="EMR engine."),
    }


def _query(task_id: str, sql: str, **kwargs) -> HybridQueryOperator:
    return HybridQueryOperator(
        task_id=task_id,
        sql=sql,
        mount_conn_id="{{ params.mount }}",
        tables={table: "{{ params.base_path }}/" + table for table in TABLES},
        engine="{{ params.engine }}",
        emr_cluster_id="{{ params.emr_cluster_id or '' }}",
        emr_cli="{{ params.emr_cli }}",
        **kwargs,
    )


with DAG(
    dag_id="hybrid_query",
    schedule=TABLE_ASSETS["store_sales"] & TABLE_ASSETS["item"] & TABLE_ASSETS["date_dim"],
    catchup=False,
    doc_md=__doc__,
    tags=["hybrid", "tpcds", "query"],
    params=_params(),
    user_defined_macros={"tpcds_query": tpcds_query},
) as hybrid_query:
    for number in TPCDS_QUERIES:
        _query(f"tpcds_q{number}", f"{{{{ tpcds_query({number}) }}}}")


with DAG(
    dag_id="hybrid_query_daily",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(1998, 1, 1, tz="UTC"),
    catchup=False,
    doc_md=__doc__,
    tags=["hybrid", "tpcds", "query"],
    params=_params(),
) as hybrid_query_daily:
    _query(
        "daily_sales",
        DAILY_SALES_SQL,
        output_path="hybrid://{{ params.mount }}/results/daily_sales/{{ data_interval_start | ds }}.parquet",
        pre_execute=require_a_window,
        post_execute=warn_when_empty,
    )
