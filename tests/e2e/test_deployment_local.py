"""The whole scenario on a real deployment, driven as a user drives one: through the REST API v2 only.

A deployment (:class:`tests.airflow_deployment.AirflowDeployment`: PostgreSQL metadata database; ``api-server``,
``scheduler`` with the LocalExecutor, ``dag-processor`` and ``triggerer`` as separate processes; DAGs paused at
creation, as Airflow's default) parses the project's ``dags/``. The mount is Apache Hadoop's HDFS and the devstack's
S3 server, its cache catalog a PostgreSQL database that every task process shares. Then, each DAG unpaused
(``PATCH /dags``) and triggered (``POST /dagRuns``), its run and task instances polled (``GET``) and its
results read from XCom entries:

    hybrid_tpcds_prepare -> hybrid_cache_warming -> hybrid_query (DuckDB) -> hybrid_migrate_<policy> -> hybrid_query

The migration's sensor finds two ``store_sales`` files older than 30 days where its policy wants three, so it
defers; only once the triggerer holds its trigger does the test age a third file (as time would), and the
trigger, polling on the triggerer, fires. The three files move to S3 in three mapped batches, and the TPC-DS
answers (the whole result files) are the same before and after.
"""

from __future__ import annotations

import json
import time
import uuid

import pyarrow.parquet as pq
import pytest

from airflow_hybrid.cli.demo import MOUNT, QUERY_TASKS, mount_connections
from airflow_hybrid.devstack.stack import airflow_env
from tests.airflow_deployment import AirflowDeployment, postgres_database
from tests.e2e.dag_files import DAGS

pytestmark = [pytest.mark.hdfs_servers("hadoop"), pytest.mark.timeout(900)]

DAY = 86400
POLICY = "deployment_sales"
MIGRATE = f"hybrid_migrate_{POLICY}"
DAG_IDS = ("hybrid_tpcds_prepare", "hybrid_cache_warming", "hybrid_query", MIGRATE)


@pytest.fixture
def deployment(hdfs_server, tmp_path, monkeypatch):
    """The deployment with the mount (its connections also in this process, to check where files are)."""
    unique = f"deployment-{uuid.uuid4().hex[:8]}"
    with postgres_database("hybrid_catalog") as catalog_url:
        conns = mount_connections(hdfs_server, tmp_path / "cache", hdfs_root=f"/tmp/{unique}", s3_prefix=unique)
        conns[MOUNT]["extra"]["cache"]["catalog_url"] = catalog_url  # one catalog for every task process
        policies = tmp_path / "policies.yaml"
        policies.write_text(json.dumps({"policies": [{
            "name": POLICY, "mount": MOUNT, "path": "/store_sales", "schedule": None,
            "policy": "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
            "min_files": 3, "deferrable": True, "poke_interval": 2, "timeout": 600, "batch_max_files": 1,
        }]}))
        env = {**airflow_env(conns), "AIRFLOW_VAR_HYBRID_POLICIES_FILE": str(policies),
               "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
        for name, value in airflow_env(conns).items():
            monkeypatch.setenv(name, value)
        with AirflowDeployment(tmp_path / "airflow-home", {"dags-folder": DAGS}, env) as airflow:
            airflow.wait_for("the project's DAGs parsed", lambda: _dags_parsed(airflow), 300)
            yield airflow


def _dags_parsed(airflow: AirflowDeployment) -> bool | None:
    errors = airflow.api("GET", "/importErrors")["import_errors"]
    assert not errors, "; ".join(f"{e['filename']}: {e['stack_trace'][-1500:]}" for e in errors)
    dags = {d["dag_id"]: d for d in airflow.api("GET", "/dags", params={"limit": 100})["dags"]}
    return True if set(DAG_IDS) <= set(dags) else None


def _run(airflow: AirflowDeployment, dag_id: str, conf: dict | None = None) -> str:
    """Unpause ``dag_id``, trigger it with ``conf``: the run's id once it succeeded."""
    assert airflow.unpause(dag_id)["is_paused"] is False
    run_id = airflow.trigger(dag_id, conf)
    _succeeded(airflow, dag_id, run_id)
    return run_id


def _succeeded(airflow: AirflowDeployment, dag_id: str, run_id: str) -> None:
    run = airflow.wait_run(dag_id, run_id)
    if run["state"] != "success":
        pytest.fail(f"{dag_id} run {run_id} ended {run['state']}:\n{airflow.failed_tasks_logs(dag_id, run_id)}")


def _answers(airflow: AirflowDeployment, run_id: str) -> dict[str, list[dict]]:
    """Each query task's whole result file (through hybrid://, not its XCom preview)."""
    from airflow_hybrid.mount.filesystem import HybridFileSystem

    answers = {}
    for task in QUERY_TASKS:
        summary = airflow.xcom("hybrid_query", run_id, task)
        with HybridFileSystem().open(summary["output_path"], "rb") as result:
            answers[task] = pq.read_table(result).to_pylist()
        assert len(answers[task]) == summary["rows"] > 0, (task, summary)
    return answers


def _deferred_plan(airflow: AirflowDeployment, run_id: str) -> dict:
    """The ``plan`` sensor's task instance once deferred, its trigger held by the triggerer process."""
    def deferred() -> dict | None:
        ti = airflow.api("GET", f"/dags/{MIGRATE}/dagRuns/{run_id}/taskInstances/plan")
        assert ti["state"] not in ("success", "failed", "skipped", "upstream_failed"), (
            f"plan ended {ti['state']} before deferring:\n{airflow.failed_tasks_logs(MIGRATE, run_id)}")
        job = ti.get("triggerer_job") or {}
        return ti if ti["state"] == "deferred" and ti.get("trigger") and job.get("id") else None

    return airflow.wait_for("the plan sensor deferred on the triggerer", deferred, 300)


def test_scenario_through_the_rest_api(deployment):
    from airflow_hybrid.mount import HybridMount

    airflow = deployment
    dags = {d["dag_id"]: d for d in airflow.api("GET", "/dags", params={"limit": 100})["dags"]}
    assert all(dags[dag_id]["is_paused"] for dag_id in DAG_IDS)  # nothing runs before the user says so

    _run(airflow, "hybrid_tpcds_prepare", {"scale_factor": 0.02, "files_per_table": 4, "mtime_spread_days": 60})
    with HybridMount.from_conn_id(MOUNT) as mount:
        hdfs, s3 = mount.members["hdfs"], mount.members["s3"]
        sales = {f.path: f for f in hdfs.walk_files("store_sales")}
        now = time.time()
        old = {path for path, f in sales.items() if now - f.mtime > 30 * DAY}
        assert len(sales) == 4 and len(old) == 2, {p: (now - f.mtime) / DAY for p, f in sales.items()}

        warm = _run(airflow, "hybrid_cache_warming", {"pin": True})
        prefetch = airflow.xcom("hybrid_cache_warming", warm, "prefetch")
        assert (prefetch["files"], prefetch["failed"], prefetch["pinned"]) == (12, 0, 12), prefetch

        before = _answers(airflow, _run(airflow, "hybrid_query", {"engine": "duckdb"}))

        assert airflow.unpause(MIGRATE)["is_paused"] is False
        migrate = airflow.trigger(MIGRATE)
        plan = _deferred_plan(airflow, migrate)  # two old files, the policy wants three: it waits
        assert plan["trigger"]["classpath"] == "airflow_hybrid.triggers.migrate.UfsMigrateTrigger"
        assert plan["trigger"]["triggerer_id"] == plan["triggerer_job"]["id"]
        assert plan["triggerer_job"]["job_type"] == "TriggererJob"
        third = max(set(sales) - old)  # a third file ages past 30 days while the trigger waits
        hdfs.set_times(third, mtime=now - 45 * DAY)
        _succeeded(airflow, MIGRATE, migrate)

        logs = airflow.trigger_logs(MIGRATE, migrate, "plan", plan["try_number"])
        assert list(logs) == [plan["triggerer_job"]["id"]], sorted(logs)
        assert "Trigger fired event" in logs[plan["triggerer_job"]["id"]]
        report = airflow.xcom(MIGRATE, migrate, "report")
        assert (report["moved"], report["failed"], report["batches"], report["batches_done"]) == (3, 0, 3, 3), report
        batches = [ti for ti in airflow.task_instances(MIGRATE, migrate) if ti["task_id"] == "migrate"]
        assert sorted(ti["map_index"] for ti in batches) == [0, 1, 2]
        assert {ti["state"] for ti in batches} == {"success"}

        moved = old | {third}
        assert {f.path for f in s3.walk_files("store_sales")} == moved
        assert {f.path for f in hdfs.walk_files("store_sales")} == set(sales) - moved
        for path in moved:
            assert s3.info(path).size == sales[path].size

    after = _answers(airflow, _run(airflow, "hybrid_query", {"engine": "duckdb"}))
    assert after == before
