"""A fresh deployment, set up as the README says: ``airflow hybrid devstack up``, then the shipped DAGs.

A real deployment (:class:`tests.airflow_deployment.AirflowDeployment`: PostgreSQL metadata database,
``api-server``, ``scheduler`` with the LocalExecutor, ``dag-processor`` and ``triggerer`` as processes, Airflow's
default settings, so ``[scheduler] create_cron_data_intervals`` is off) parses the project's ``dags/`` folder.
``airflow hybrid devstack up`` starts the devstack and writes its connections into that deployment's metadata
database; nothing else configures the mount. Then, through the REST API and the ``airflow`` CLI:

* the mount it wrote has a cache (tiers with quotas under the stack's data directory, a catalog);
* ``hybrid_tpcds_prepare`` writes the sample lake into the devstack's HDFS, ``hybrid_cache_warming`` prefetches
  it into the cache (its prefetch finds a tier) and ``hybrid_query``, scheduled on the warmed tables' Assets,
  runs on it;
* ``airflow backfill create --dag-id hybrid_query_daily`` over three days makes the scheduler run one run per
  day, each writing the rows DuckDB computes for that day directly on the lake's Parquet files.
"""

from __future__ import annotations

import datetime
import io
import json
import subprocess
import sys
from pathlib import Path

import boto3
import duckdb
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.devstack.control import DevStackClient, devstack_down
from airflow_hybrid.devstack.stack import DEFAULT_BUCKET, S3_KEY
from airflow_hybrid.query import tpcds
from tests.airflow_deployment import AirflowDeployment

DAGS = Path(__file__).resolve().parents[2] / "dags"
MOUNT = "onprem_union"
DAYS = [datetime.date(2002, 11, 1) + datetime.timedelta(days=i) for i in range(3)]
SHIPPED_DAGS = ("hybrid_tpcds_prepare", "hybrid_cache_warming", "hybrid_query", "hybrid_query_daily",
                "hybrid_migrate_store_sales_to_s3")

#: What the daily report must hold for one day, written independently of the DAG's own SQL.
DAILY_REFERENCE_SQL = """
SELECT d_date, i_category, count(*), sum(ss_quantity), sum(ss_ext_sales_price)
FROM store_sales, date_dim, item
WHERE ss_sold_date_sk = d_date_sk AND ss_item_sk = i_item_sk AND d_date = DATE '{day}'
GROUP BY d_date, i_category
ORDER BY d_date, i_category
"""


def _airflow_cli(deployment: AirflowDeployment, *args: str, timeout: float = 300.0) -> str:
    """``airflow <args>`` with the deployment's environment; its output (a non-zero exit fails the test)."""
    result = subprocess.run(  # noqa: S603 - a fixed airflow command
        [sys.executable, "-m", "airflow", *args], env=deployment.env, capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=timeout, check=False,
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}"
    return result.stdout


def _dags_parsed(deployment: AirflowDeployment) -> bool | None:
    errors = deployment.api("GET", "/importErrors")["import_errors"]
    assert not errors, "the shipped DAGs do not import: " + "; ".join(
        f"{e['filename']}: {e['stack_trace'][-1500:]}" for e in errors)
    dag_ids = {d["dag_id"] for d in deployment.api("GET", "/dags", params={"limit": 100})["dags"]}
    return True if set(SHIPPED_DAGS) <= dag_ids else None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    home = tmp_path_factory.mktemp("fresh_airflow_home")
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),  # as `make airflow` sets it (the policies file is there)
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "300",  # not 30 s: a loaded 2-core CI machine imports boto3 slowly
    }
    with AirflowDeployment(home, {"dags-folder": DAGS}, env) as airflow:
        airflow.wait_for("the shipped DAGs parsed by the dag processor", lambda: _dags_parsed(airflow), 300)
        yield airflow


def _state_dir(deployment: AirflowDeployment) -> Path:
    return deployment.home / "hybrid" / "devstack"  # the default one: $AIRFLOW_HOME/hybrid/devstack


@pytest.fixture(scope="module")
def devstack(deployment):
    """``airflow hybrid devstack up`` against the deployment (its state under the deployment's AIRFLOW_HOME)."""
    state_dir = _state_dir(deployment)
    try:
        output = _airflow_cli(deployment, "hybrid", "devstack", "up", "--state-dir", str(state_dir))
        assert "connections written: webhdfs_default, aws_default, onprem_union" in output, output
        yield DevStackClient.from_state_dir(state_dir)
    finally:
        devstack_down(state_dir)


def _run(deployment: AirflowDeployment, dag_id: str, conf: dict | None = None) -> str:
    """Trigger ``dag_id`` with ``conf``; its run id once it succeeded (a failed run fails the test)."""
    run_id = deployment.api("POST", f"/dags/{dag_id}/dagRuns",
                            json={"logical_date": None, "conf": conf or {}})["dag_run_id"]
    _wait_success(deployment, dag_id, run_id)
    return run_id


def _wait_success(deployment: AirflowDeployment, dag_id: str, run_id: str, timeout: float = 600.0) -> None:
    def ended() -> str | None:
        state = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        return state if state in ("success", "failed") else None

    state = deployment.wait_for(f"end of {dag_id} run {run_id}", ended, timeout)
    if state != "success":
        tis = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        failed = [ti for ti in tis if ti["state"] != "success"]
        logs = {ti["task_id"]: _task_log(deployment, dag_id, run_id, ti) for ti in failed}
        pytest.fail(f"{dag_id} run {run_id} ended {state}; failed tasks' logs:\n"
                    + "\n".join(f"--- {task}\n{log[-3000:]}" for task, log in logs.items()))


def _task_log(deployment: AirflowDeployment, dag_id: str, run_id: str, ti: dict) -> str:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{max(ti['try_number'], 1)}"
    content = deployment.api("GET", path, params={"full_content": "true"},
                             headers={"Accept": "application/json"})["content"]
    return content if isinstance(content, str) else "\n".join(json.dumps(part) for part in content)


def _xcom(deployment: AirflowDeployment, dag_id: str, run_id: str, task_id: str):
    value = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
                                  "return_value")["value"]
    return json.loads(value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def lake(deployment, devstack) -> Path:
    """The sample lake, written by the shipped prepare DAG into the devstack's HDFS; its local directory."""
    _run(deployment, "hybrid_tpcds_prepare",
         {"scale_factor": 0.05, "files_per_table": 3, "mtime_spread_days": 0})  # nothing old: no migration
    root = devstack.hdfs_dir / "tmp" / "tpcds"
    assert sorted(p.name for p in (root / "store_sales").iterdir()) == [f"part-{i:05d}.parquet" for i in range(3)]
    return root


def test_devstack_up_writes_a_mount_with_a_cache(deployment, devstack):
    from airflow_hybrid.cache.config import CacheConfig

    # the CLI, not the REST API, which masks every secret's text (the test database's password is "hybrid")
    conn = json.loads(_airflow_cli(deployment, "connections", "get", MOUNT, "--output", "json"))
    [conn] = conn
    assert conn["conn_type"] == "hybrid_mount"
    extra = conn["extra_dejson"]
    assert set(extra["members"]) == {"hdfs", "s3"}
    cache_dir = devstack.data_dir / "cache"
    config = CacheConfig.from_options(extra, MOUNT)
    assert [(t.alias, t.uri, t.quota) for t in config.tiers] == [
        ("MEM", (cache_dir / "mem").as_uri(), 64 * 2**20), ("SSD", (cache_dir / "ssd").as_uri(), 2**30)]
    assert config.tier().alias == "SSD"  # prefetches without a tier go to the SSD tier
    assert config.resolved_catalog_url == f"sqlite:///{cache_dir / 'catalog.db'}"

    # up again (the stack runs): the member connections are rewritten, the mount with its cache is kept
    again = _airflow_cli(deployment, "hybrid", "devstack", "up", "--state-dir", str(_state_dir(deployment)))
    assert "connections written: webhdfs_default, aws_default\n" in again, again
    assert "kept the existing mount connection onprem_union\n" in again, again


def test_the_shipped_prepare_warming_and_query_dags_run_on_its_mount(deployment, devstack, lake):
    warm = _run(deployment, "hybrid_cache_warming")
    prefetch = _xcom(deployment, "hybrid_cache_warming", warm, "prefetch")
    assert (prefetch["tier"], prefetch["failed"]) == ("SSD", 0)
    assert prefetch["files"] == 9 and prefetch["loaded"] + prefetch["fresh"] == 9  # 3 tables x 3 files
    cached = [p for p in (devstack.data_dir / "cache" / "ssd").rglob("*.parquet")]
    assert len(cached) == 9
    report = _xcom(deployment, "hybrid_cache_warming", warm, "report")
    assert report, "the cache report task returned nothing"

    # the warming's outlets are hybrid_query's schedule: the scheduler starts it on the Asset events
    def asset_run() -> str | None:
        runs = deployment.api("GET", "/dags/hybrid_query/dagRuns")["dag_runs"]
        return next((r["dag_run_id"] for r in runs if r["run_type"] == "asset_triggered"), None)

    run_id = deployment.wait_for("a hybrid_query run triggered by the warmed tables", asset_run, 120)
    _wait_success(deployment, "hybrid_query", run_id)
    q3 = _xcom(deployment, "hybrid_query", run_id, "tpcds_q3")
    assert q3["rows"] > 0


def _backfill_runs(deployment: AirflowDeployment) -> list[dict] | None:
    runs = deployment.api("GET", "/dags/hybrid_query_daily/dagRuns", params={"limit": 100})["dag_runs"]
    backfill = sorted((r for r in runs if r["run_type"] == "backfill"), key=lambda r: r["logical_date"])
    if len(backfill) == len(DAYS) and all(r["state"] in ("success", "failed") for r in backfill):
        return backfill
    return None


def test_a_backfill_of_the_daily_report_writes_each_days_rows(deployment, devstack, lake):
    _airflow_cli(deployment, "backfill", "create", "--dag-id", "hybrid_query_daily",
                 "--from-date", DAYS[0].isoformat(), "--to-date", DAYS[-1].isoformat())
    runs = deployment.wait_for("the three backfill runs of hybrid_query_daily ended",
                               lambda: _backfill_runs(deployment), 600)
    for run in runs:
        if run["state"] != "success":
            _wait_success(deployment, "hybrid_query_daily", run["dag_run_id"])  # fails with the task's log
    starts = [datetime.datetime.fromisoformat(r["data_interval_start"]) for r in runs]
    ends = [datetime.datetime.fromisoformat(r["data_interval_end"]) for r in runs]
    assert [s.date() for s in starts] == DAYS
    assert [e - s for s, e in zip(starts, ends, strict=True)] == [datetime.timedelta(days=1)] * len(DAYS)

    con = duckdb.connect()
    for table in tpcds.TPCDS_TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{lake}/{table}/*.parquet')")
    s3 = boto3.client("s3", endpoint_url=devstack.s3_endpoint, aws_access_key_id=S3_KEY,
                      aws_secret_access_key=S3_KEY, region_name="us-east-1")
    answers = []
    for day in DAYS:
        expected = con.execute(DAILY_REFERENCE_SQL.format(day=day.isoformat())).fetchall()
        assert expected, f"the lake has no sales on {day}"
        body = s3.get_object(Bucket=DEFAULT_BUCKET, Key=f"tpcds/results/daily_sales/{day.isoformat()}.parquet")
        written = [tuple(row.values()) for row in pq.read_table(io.BytesIO(body["Body"].read())).to_pylist()]
        assert written == expected, f"the report of {day} differs from DuckDB's answer on the lake"
        answers.append(written)
    assert len({tuple(a) for a in answers}) == len(DAYS)  # three different days, not one answer thrice


DEPRECATION_MARKS = ("DeprecationWarning", "RemovedInAirflow4Warning", "is deprecated")


def test_the_shipped_dags_task_logs_carry_no_deprecation_warning(deployment, devstack, lake):
    """Every task log of the runs above, and a migration policy's plan task (which loads the policies file
    through the ``hybrid_policies_file`` Variable lookup on the worker), has no deprecation warning."""
    dag_id = "hybrid_migrate_store_sales_to_s3"
    triggered = []

    def a_deferred_plan() -> bool | None:
        """A run whose plan task defers (nothing is 30 days old); one is triggered when none is active (the
        scheduler's own '@daily' run may have failed before the devstack was up; one run at a time)."""
        runs = deployment.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]
        for run in runs:
            ti = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances/plan")
            if ti["state"] == "deferred":
                return True
        if triggered:
            run = deployment.api("GET", f"/dags/{dag_id}/dagRuns/{triggered[0]}")
            assert run["state"] not in ("failed", "success"), f"{dag_id} run {triggered[0]} ended {run['state']}"
        elif not any(run["state"] in ("queued", "running") for run in runs):
            triggered.append(deployment.api("POST", f"/dags/{dag_id}/dagRuns",
                                            json={"logical_date": None})["dag_run_id"])
        return None

    deployment.wait_for(f"a plan task of {dag_id} deferred", a_deferred_plan, 400)

    found = {}
    for dag in ("hybrid_tpcds_prepare", "hybrid_cache_warming", "hybrid_query", "hybrid_query_daily", dag_id):
        for run in deployment.api("GET", f"/dags/{dag}/dagRuns", params={"limit": 100})["dag_runs"]:
            tis = deployment.api("GET", f"/dags/{dag}/dagRuns/{run['dag_run_id']}/taskInstances")["task_instances"]
            for ti in tis:
                if ti["try_number"] < 1:
                    continue  # never ran (e.g. the scheduled daily run's own interval, not ours)
                log = _task_log(deployment, dag, run["dag_run_id"], ti)
                lines = [line for line in log.splitlines() if any(mark in line for mark in DEPRECATION_MARKS)]
                if lines:
                    found[f"{dag}/{run['dag_run_id']}/{ti['task_id']}"] = lines[:3]
    assert found == {}, json.dumps(found, indent=1)[:6000]
