"""Event-driven freshness on a real deployment: a change to a table's files makes its ``AssetWatcher``'s
``HybridChangeTrigger``, run by the ``airflow triggerer`` process, emit an Asset event; the scheduler runs
``hybrid_cache_refresh`` on it, which re-warms that table and emits the table Assets, and ``hybrid_query`` follows.

A real deployment (:class:`tests.airflow_deployment.AirflowDeployment`: PostgreSQL metadata database,
``api-server``, ``scheduler`` with the LocalExecutor, ``dag-processor`` and ``triggerer`` as processes) parses
the shipped ``dags/hybrid_cache_warming.py`` and ``dags/hybrid_query.py`` (copied into its bundle, without the
other shipped DAGs). The mount ``onprem_union`` is two local directories (members ``hdfs`` and ``s3``) with a
cache tier; TPC-DS tables at scale 0.01 in member ``hdfs``. Everything is driven and observed through the REST
API v2, each wait with a deadline; the watchers poll every 2 s (``[hybrid] freshness_poll_interval``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from airflow_hybrid.devstack.processes import spawn, stop
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.query.tpcds import write_tpcds
from tests.airflow_deployment import AirflowDeployment
from tests.mounts import local_mount_extra

DAGS = Path(__file__).resolve().parents[2] / "dags"
MOUNT = "onprem_union"
TABLES = ("store_sales", "item", "date_dim")
REFRESH = "hybrid_cache_refresh"


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> tuple[Path, dict]:
    """The mount's root and its connection extras; two Parquet files per table in member ``hdfs``."""
    root = tmp_path_factory.mktemp("watched_lake")
    for member in ("hdfs", "s3"):
        (root / member).mkdir()
    extra = local_mount_extra(root, "s3,hdfs", "s3", tiers={"SSD": "256MB"})
    with HybridMount.from_options(MOUNT, extra) as mount:
        write_tpcds(mount, member="hdfs", base_path="", scale_factor=0.01, tables=TABLES, files_per_table=2,
                    ddl=False)
    return root, extra


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, lake):
    _, extra = lake
    bundle = tmp_path_factory.mktemp("watcher_dags")
    for name in ("hybrid_cache_warming.py", "hybrid_query.py"):
        shutil.copy(DAGS / name, bundle / name)
    env = {
        f"AIRFLOW_CONN_{MOUNT.upper()}": json.dumps({"conn_type": "hybrid_mount", "extra": extra}),
        "AIRFLOW__HYBRID__FRESHNESS_POLL_INTERVAL": "2",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",  # the watchers start soon after the unpause
    }
    with AirflowDeployment(tmp_path_factory.mktemp("airflow_home"), {"watcher-dags": bundle}, env) as airflow:
        airflow.wait_for("the DAGs parsed by the dag processor", lambda: _parsed(airflow), 300)
        yield airflow


def _parsed(airflow: AirflowDeployment) -> bool | None:
    errors = airflow.api("GET", "/importErrors")["import_errors"]
    assert not errors, "; ".join(f"{e['filename']}: {e['stack_trace'][-1500:]}" for e in errors)
    dag_ids = {d["dag_id"] for d in airflow.api("GET", "/dags", params={"limit": 100})["dags"]}
    return True if {REFRESH, "hybrid_cache_warming", "hybrid_query"} <= dag_ids else None


def _runs(airflow: AirflowDeployment, dag_id: str) -> list[dict]:
    return airflow.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"]


def _ended(airflow: AirflowDeployment, dag_id: str, run_id: str) -> str:
    def state() -> str | None:
        value = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
        return value if value in ("success", "failed") else None

    return airflow.wait_for(f"end of {dag_id} run {run_id}", state, 300)


def _xcom(airflow: AirflowDeployment, dag_id: str, run_id: str, task_id: str):
    value = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/"
                               "return_value")["value"]
    return json.loads(value) if isinstance(value, str) else value


def _source_asset(airflow: AirflowDeployment, table: str) -> dict:
    name = f"{MOUNT}_{table}_source"
    (asset,) = [a for a in airflow.api("GET", "/assets", params={"name_pattern": name})["assets"]
                if a["name"] == name]
    return asset


def _baseline(airflow: AirflowDeployment, asset: dict) -> dict | None:
    """The watcher's last state in the Asset's state store (written by the trigger on the triggerer)."""
    entries = airflow.api("GET", f"/assets/{asset['id']}/state-store")["asset_state_store"]
    return next((e["value"] for e in entries if e["key"].startswith("hybrid_change_trigger:")), None)


def _events(airflow: AirflowDeployment, asset: dict) -> list[dict]:
    return airflow.api("GET", "/assets/events", params={"asset_id": asset["id"]})["asset_events"]


def test_a_change_to_a_tables_files_runs_the_refresh_dag_and_then_the_query(deployment, lake):
    root, _ = lake
    assert deployment.api("GET", f"/dags/{REFRESH}")["is_paused"] is True  # opt-in: created paused
    deployment.api("PATCH", f"/dags/{REFRESH}", json={"is_paused": False})
    asset = _source_asset(deployment, "store_sales")
    assert asset["uri"] == f"hybrid-source://{MOUNT}/store_sales"

    state = deployment.wait_for("the watcher's baseline in the asset state store",
                                lambda: _baseline(deployment, asset), 240)
    assert state["files"] == 2
    assert [w["name"] for w in _source_asset(deployment, "store_sales")["watchers"]] == [
        f"{MOUNT}_store_sales_changes"]
    assert _runs(deployment, REFRESH) == []  # nothing changed yet: no event, no run

    table = root / "hdfs" / "store_sales"
    shutil.copy(table / "part-00001.parquet", table / "part-00002.parquet")  # a new file lands on-prem

    change = deployment.wait_for("an Asset event of hybrid-source://onprem_union/store_sales",
                                 lambda: next(iter(_events(deployment, asset)), None), 120)
    payload = change["extra"]["payload"]
    assert change["extra"]["from_trigger"] is True
    assert (payload["path"], payload["files"], payload["previous_files"]) == ("/store_sales/*.parquet", 3, 2)

    def refresh_run() -> dict | None:
        return next((r for r in _runs(deployment, REFRESH) if r["run_type"] == "asset_triggered"), None)

    run = deployment.wait_for(f"a {REFRESH} run triggered by the change", refresh_run, 120)
    assert _ended(deployment, REFRESH, run["dag_run_id"]) == "success"
    assert _xcom(deployment, REFRESH, run["dag_run_id"], "changed_tables") == ["/store_sales/*.parquet"]
    prefetch = _xcom(deployment, REFRESH, run["dag_run_id"], "prefetch")
    # the changed table only; its new file loaded (the others may be warm already: a read caches them)
    assert (prefetch["files"], prefetch["loaded"] + prefetch["fresh"], prefetch["failed"]) == (3, 3, 0)
    assert prefetch["loaded"] >= 1

    def query_run() -> dict | None:
        return next((r for r in _runs(deployment, "hybrid_query") if r["run_type"] == "asset_triggered"), None)

    query = deployment.wait_for("a hybrid_query run triggered by the refreshed tables", query_run, 120)
    assert _ended(deployment, "hybrid_query", query["dag_run_id"]) == "success"
    rows = {q: _xcom(deployment, "hybrid_query", query["dag_run_id"], f"tpcds_q{q}")["rows"] for q in (3, 42, 52, 55)}
    assert any(rows.values()), rows  # at scale 0.01 some of the four select nothing
    assert len([r for r in _runs(deployment, REFRESH)]) == 1  # one change, one refresh


def test_a_change_made_while_the_triggerer_is_down_fires_when_it_is_back(deployment, lake):
    """The triggerer is stopped (SIGTERM, as in a restart or a rolling deploy), a table changes, a new triggerer
    starts: the watcher, re-created from its kwargs, compares with the state stored before and fires."""
    root, _ = lake
    deployment.api("PATCH", f"/dags/{REFRESH}", json={"is_paused": False})
    asset = _source_asset(deployment, "item")
    before = deployment.wait_for("the item watcher's baseline", lambda: _baseline(deployment, asset), 240)
    assert _events(deployment, asset) == []
    refreshes = len(_runs(deployment, REFRESH))

    stop([deployment.processes.pop("triggerer")], timeout=60)
    (root / "hdfs" / "item" / "part-00001.parquet").unlink()  # while no triggerer runs
    deployment.processes["triggerer"] = spawn([sys.executable, "-m", "airflow", "triggerer"],
                                              deployment.logs / "triggerer-restarted.log", env=deployment.env)

    change = deployment.wait_for("an Asset event of the item source from the new triggerer",
                                 lambda: next(iter(_events(deployment, asset)), None), 180)
    payload = change["extra"]["payload"]
    assert (payload["files"], payload["previous_files"], payload["previous_digest"]) == (1, 2, before["digest"])

    def refresh_run() -> dict | None:
        runs = _runs(deployment, REFRESH)
        return runs[-1] if len(runs) > refreshes else None

    run = deployment.wait_for(f"a {REFRESH} run for the item change", refresh_run, 120)
    assert _ended(deployment, REFRESH, run["dag_run_id"]) == "success"
    assert _xcom(deployment, REFRESH, run["dag_run_id"], "changed_tables") == ["/item/*.parquet"]
