"""The migration DAG scaled out: a CeleryExecutor deployment with Redis and two workers running its batches.

A deployment (:class:`tests.airflow_deployment.AirflowDeployment` with ``executor="CeleryExecutor"``: PostgreSQL
metadata database and Celery result backend, Redis broker; ``api-server``, ``scheduler``, ``dag-processor``,
``triggerer`` and two ``airflow celery worker`` processes, ``w1`` and ``w2``, one task slot each) runs the
project's ``hybrid_migrate_<policy>`` DAG (``dags/hybrid_ufs_migrate.py``), unpaused and triggered through the
REST API. The policy plans one file per batch, so six old ``store_sales`` files on HDFS (the devstack's) are six
mapped ``migrate`` task instances; the test reads each one's ``hostname`` from the REST API (a worker's task
instances report its name) and finds both workers.

Why both workers must take batches, not just may: the worker answered a ping on the broker before the run is
triggered; the scheduler queues the mapped batches together (one executor heartbeat, up to ``parallelism``
= 4); and a worker with one slot cannot reserve a second message while it runs one (Airflow's Celery settings:
``task_acks_late`` with ``worker_prefetch_multiplier`` 1, so the message being run stays unacknowledged and fills
the worker's prefetch window of one). The batches queued while ``w1`` runs its first can only go to ``w2``.
"""

from __future__ import annotations

import io
import json
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.cli.demo import MOUNT, mount_connections
from airflow_hybrid.devstack.stack import airflow_env
from tests.airflow_deployment import AirflowDeployment, postgres_database
from tests.e2e.dag_files import DAGS

pytestmark = pytest.mark.timeout(900)

DAY = 86400
POLICY = "celery_sales"
MIGRATE = f"hybrid_migrate_{POLICY}"
WORKERS = ("w1", "w2")
FILES = 6


@pytest.fixture
def deployment(hdfs_server, tmp_path, monkeypatch):
    """The Celery deployment with the mount (its connections also in this process, to write and check files)."""
    unique = f"celery-{uuid.uuid4().hex[:8]}"
    with postgres_database("hybrid_catalog") as catalog_url:
        conns = mount_connections(hdfs_server, tmp_path / "cache", hdfs_root=f"/tmp/{unique}", s3_prefix=unique)
        conns[MOUNT]["extra"]["cache"]["catalog_url"] = catalog_url
        policies = tmp_path / "policies.yaml"
        policies.write_text(json.dumps({"policies": [{
            "name": POLICY, "mount": MOUNT, "path": "/store_sales", "schedule": None,
            "policy": "ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
            "min_files": FILES, "batch_max_files": 1, "deferrable": True, "poke_interval": 2, "timeout": 600,
        }]}))
        env = {**airflow_env(conns), "AIRFLOW_VAR_HYBRID_POLICIES_FILE": str(policies),
               "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True"}
        for name, value in airflow_env(conns).items():
            monkeypatch.setenv(name, value)
        with AirflowDeployment(tmp_path / "airflow-home", {"dags-folder": DAGS}, env, executor="CeleryExecutor",
                               celery_workers=WORKERS, worker_concurrency=1) as airflow:
            airflow.wait_for(f"DAG {MIGRATE} parsed", lambda: _dag_parsed(airflow), 300)
            yield airflow


def _dag_parsed(airflow: AirflowDeployment) -> bool | None:
    errors = airflow.api("GET", "/importErrors")["import_errors"]
    assert not errors, "; ".join(f"{e['filename']}: {e['stack_trace'][-1500:]}" for e in errors)
    return True if airflow.client.get(f"/dags/{MIGRATE}").status_code == 200 else None


def _old_sales_files(hdfs) -> dict[str, int]:
    """``FILES`` Parquet files (1 MiB each) below ``store_sales``, 40 days old: sizes."""
    now = time.time()
    sizes = {}
    for i in range(FILES):
        buffer = io.BytesIO()
        pq.write_table(pa.table({"blob": [bytes(uuid.uuid4().bytes) * 65536]}), buffer, compression="none")
        path = f"store_sales/part-{i:05d}.parquet"
        buffer.seek(0)
        sizes[path] = hdfs.write(path, buffer).size
        hdfs.set_times(path, mtime=now - 40 * DAY)
    return sizes


def test_two_celery_workers_share_the_migration_batches(deployment):
    from airflow_hybrid.mount import HybridMount

    airflow = deployment
    with HybridMount.from_conn_id(MOUNT) as mount:
        hdfs, s3 = mount.members["hdfs"], mount.members["s3"]
        sizes = _old_sales_files(hdfs)

        assert airflow.api("GET", f"/dags/{MIGRATE}")["is_paused"] is True
        assert airflow.unpause(MIGRATE)["is_paused"] is False
        run_id = airflow.trigger(MIGRATE)
        run = airflow.wait_run(MIGRATE, run_id)
        assert run["state"] == "success", airflow.failed_tasks_logs(MIGRATE, run_id)

        tis = airflow.task_instances(MIGRATE, run_id)
        batches = sorted((ti for ti in tis if ti["task_id"] == "migrate"), key=lambda ti: ti["map_index"])
        assert [ti["map_index"] for ti in batches] == list(range(FILES))
        assert {ti["state"] for ti in batches} == {"success"}
        by_worker = {worker: [ti["map_index"] for ti in batches if ti["hostname"] == worker] for worker in WORKERS}
        assert all(by_worker.values()), f"batches per worker: {by_worker}"
        assert sum(map(len, by_worker.values())) == FILES, [ti["hostname"] for ti in batches]
        assert {ti["hostname"] for ti in tis} <= set(WORKERS)  # every task ran on a Celery worker

        report = airflow.xcom(MIGRATE, run_id, "report")
        assert (report["moved"], report["failed"], report["batches_done"]) == (FILES, 0, FILES), report
        assert {f.path: f.size for f in s3.walk_files("store_sales")} == sizes
        assert not list(hdfs.walk_files("store_sales"))
