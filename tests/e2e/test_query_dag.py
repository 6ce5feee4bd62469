"""The sample-lake and query DAGs on a real metadata database.

``hybrid_tpcds_prepare`` and ``hybrid_query`` run with ``dag.test()``; ``hybrid_query_daily`` is backfilled
with Airflow's own backfill machinery (``_create_backfill``, what ``airflow backfill create`` calls), and
the three backfill runs it creates are then executed in-process by the loop ``dag.test()`` uses (no
scheduler runs in tests). The mount's members are local directories standing in for HDFS and S3.
"""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.cli.demo import xcom_value
from airflow_hybrid.query import tpcds
from airflow_hybrid.query.result import json_value
from tests.e2e.dag_files import project_dag

BACKFILL_DAYS = [datetime.date(2002, 11, 1) + datetime.timedelta(days=i) for i in range(3)]



@pytest.fixture(scope="module")
def sample_lake(airflow_db, tmp_path_factory):
    """Mount ``onprem_union`` (local hdfs + s3 members) with the sample lake written by the prepare DAG."""
    root = tmp_path_factory.mktemp("onprem_union")
    hdfs, s3 = root / "hdfs", root / "s3"
    hdfs.mkdir()
    s3.mkdir()
    extra = {
        "members": {"hdfs": {"uri": f"file://{hdfs}"}, "s3": {"uri": f"file://{s3}"}},
        "priority.read": "s3,hdfs",
        "collection.create": "s3",
    }
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_CONN_ONPREM_UNION", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
        run = project_dag("hybrid_tpcds_prepare.py", "hybrid_tpcds_prepare").test(
            run_conf={"scale_factor": 0.05, "files_per_table": 3, "mtime_spread_days": 30}
        )
        assert run.state == "success"
        yield hdfs, s3


def _reference(hdfs: Path, sql: str) -> list[tuple]:
    """The answer of DuckDB over the plain Parquet files the prepare DAG wrote."""
    con = duckdb.connect()
    for table in tpcds.TPCDS_TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{hdfs}/{table}/*.parquet')")
    return con.execute(sql).fetchall()


def _rows(path: Path) -> list[tuple]:
    return [tuple(row.values()) for row in pq.read_table(path).to_pylist()]


def test_prepare_dag_writes_the_lake_and_its_ddl(sample_lake):
    hdfs, s3 = sample_lake
    for table in tpcds.TPCDS_TABLES:
        assert sorted(os.listdir(hdfs / table)) == [f"part-{i:05d}.parquet" for i in range(3)]
    assert not any(s3.iterdir())  # nothing in the S3 member yet
    ddl = (hdfs / "create-table.sql").read_text()
    assert f"LOCATION 'file://{hdfs}/store_sales/';" in ddl
    mtimes = [os.stat(hdfs / "store_sales" / f"part-{i:05d}.parquet").st_mtime for i in range(3)]
    assert mtimes[2] - mtimes[0] == pytest.approx(30 * 86400)


def test_query_dag_on_duckdb_answers_tpcds_queries(sample_lake):
    hdfs, s3 = sample_lake
    dag = project_dag("hybrid_query.py", "hybrid_query")
    run = dag.test()
    assert run.state == "success"
    run_dir = run.run_id.replace(":", "_").replace("+", "_")
    for number in (3, 42, 52, 55):
        expected = _reference(hdfs, tpcds.tpcds_query(number))
        assert expected
        output = s3 / "results" / "hybrid_query" / f"tpcds_q{number}" / f"{run_dir}.parquet"
        assert _rows(output) == expected
        summary = xcom_value(run, f"tpcds_q{number}")
        assert summary["rows"] == len(expected)
        assert (
            summary["output_path"]
            == f"hybrid://onprem_union/results/hybrid_query/tpcds_q{number}/{run_dir}.parquet"
        )
        assert summary["preview"] == [[json_value(v) for v in row] for row in expected[:10]]


#: What the daily report must hold for one day, written independently of the DAG's own SQL.
DAILY_REFERENCE_SQL = """
SELECT d_date, i_category, count(*), sum(ss_quantity), sum(ss_ext_sales_price)
FROM store_sales, date_dim, item
WHERE ss_sold_date_sk = d_date_sk AND ss_item_sk = i_item_sk AND d_date = DATE '{day}'
GROUP BY d_date, i_category
ORDER BY d_date, i_category
"""


def _register_dags_folder() -> None:
    """Parse ``dags/`` and store the serialized DAGs in the metadata DB, as the dag processor does."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    bundle = manager.get_bundle("dags-folder")
    bundle.initialize()
    bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
    sync_bag_to_db(bag, bundle.name, bundle.version)


def _run_backfill_run(dag, dag_run) -> str:
    """Run one existing DAG run's tasks in-process, the way ``dag.test()`` does, and return its state."""
    from airflow.models.dagrun import DagRun
    from airflow.sdk.definitions.dag import _run_task
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    with create_session() as session:
        dr = session.get(DagRun, dag_run.id)
        dr.dag = scheduler_dag
        dr.state = DagRunState.RUNNING
        session.commit()
        while dr.state == DagRunState.RUNNING:
            session.expire_all()
            schedulable, _ = dr.update_state(session=session)
            for ti in schedulable:
                ti.try_number += 1
                ti.state = TaskInstanceState.SCHEDULED
            session.commit()
            for ti in dr.get_task_instances(session=session):
                if ti.state == TaskInstanceState.SCHEDULED:
                    _run_task(ti=ti, task=dag.task_dict[ti.task_id])
        return dr.state


def test_backfill_of_the_daily_dag_gives_one_run_per_interval(sample_lake):
    from airflow.models.backfill import _create_backfill
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunType
    from sqlalchemy import select

    hdfs, s3 = sample_lake
    dag = project_dag("hybrid_query.py", "hybrid_query_daily")
    _register_dags_folder()
    start = datetime.datetime.combine(BACKFILL_DAYS[0], datetime.time(), tzinfo=datetime.timezone.utc)
    end = datetime.datetime.combine(BACKFILL_DAYS[-1], datetime.time(), tzinfo=datetime.timezone.utc)
    backfill = _create_backfill(
        dag_id="hybrid_query_daily",
        from_date=start,
        to_date=end,
        max_active_runs=3,
        reverse=False,
        dag_run_conf=None,
        triggering_user_name="test",
    )
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(DagRun.backfill_id == backfill.id).order_by(DagRun.logical_date)
        ).all()
        session.expunge_all()
    assert [r.run_type for r in runs] == [DagRunType.BACKFILL_JOB] * 3
    assert [r.data_interval_start.date() for r in runs] == BACKFILL_DAYS
    assert [r.data_interval_end - r.data_interval_start for r in runs] == [datetime.timedelta(days=1)] * 3

    answers = {}
    for run in runs:
        assert _run_backfill_run(dag, run) == "success"
        day = run.data_interval_start.date()
        expected = _reference(hdfs, DAILY_REFERENCE_SQL.format(day=day.isoformat()))
        assert expected, f"no sales on {day}"
        written = _rows(s3 / "results" / "daily_sales" / f"{day.isoformat()}.parquet")
        assert written == expected
        assert {row[0] for row in written} == {day}  # only that interval's sales
        answers[day] = written
    assert len({tuple(v) for v in answers.values()}) == 3
