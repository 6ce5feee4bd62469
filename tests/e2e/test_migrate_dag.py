"""A migration DAG built from a policies file, in a real DAG run (dag.test() on a metadata database),
against the devstack's WebHDFS and S3 servers: plan (deferred sensor) -> migrate, mapped over the plan's
batches -> report.

DAGs: tests/e2e/dags/hybrid_migrate_e2e.py (the provider's DAG factory over the policies file that the
``hybrid_policies_file`` Variable names). ``dag.test()`` runs the deferred sensor's trigger in line.
"""

from __future__ import annotations

import pytest

from airflow_hybrid.migration.state import MigrationState
from airflow_hybrid.triggers.migrate import UfsMigrateTrigger
from tests.integration.migrate_support import MOUNT, make_dataset, policy_dag


def _xcoms(run) -> dict[tuple[str, int], object]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.scalars(XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, key="return_value")).all()
        return {(row.task_id, row.map_index): XComModel.deserialize_value(row) for row in rows}


@pytest.mark.timeout(600)
def test_policy_dag_waits_plans_migrates_batches_in_parallel_tasks_and_reports(
    airflow_db, union_lake, tmp_path, monkeypatch
):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    dataset = make_dataset(union_lake, seed=51, small=7, medium=1, new=2)
    dag, _ = policy_dag(tmp_path, monkeypatch, "e2e_orders", mount=MOUNT, root=dataset.root,
                        min_files=9, batch_max_files=3, timeout=300)
    assert dag.dag_id == "hybrid_migrate_e2e_orders"

    # Eight old files; the sensor wants nine: it defers, and the ninth arrives while the trigger waits
    # (right after the trigger's first check, which only the deferred sensor's trigger can make).
    checks = []
    count = UfsMigrateTrigger.count

    def count_then_a_file_arrives(self):
        result = count(self)
        checks.append(result.files)
        if len(checks) == 1:
            dataset.add("small/late.bin", b"arrived while the sensor was deferred", old=True)
        return result

    monkeypatch.setattr(UfsMigrateTrigger, "count", count_then_a_file_arrives)
    run = dag.test()
    assert checks == [8, 9], checks
    assert run.state == "success"

    states = {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}
    assert states == {("plan", -1): "success", ("batches", -1): "success", ("migrate", 0): "success",
                      ("migrate", 1): "success", ("migrate", 2): "success", ("report", -1): "success"}
    values = _xcoms(run)
    plan = values[("plan", -1)]
    assert (plan["files"], plan["batches"]) == (9, 3)
    assert [values[("migrate", i)]["batch"] for i in range(3)] == [0, 1, 2]
    assert [values[("migrate", i)]["moved"] for i in range(3)] == [3, 3, 3]
    report = values[("report", -1)]
    total = sum(len(d) for d in dataset.old.values())
    assert {k: report[k] for k in ("files", "moved", "failed", "bytes", "batches", "batches_done")} == {
        "files": 9, "moved": 9, "failed": 0, "bytes": total, "batches": 3, "batches_done": 3}

    dataset.assert_migrated()  # old files in S3 only, identical; new ones still in HDFS
    state = MigrationState.for_mount(union_lake)
    assert state.totals("e2e_orders", MOUNT)["moved_files"] == 9

    with create_session() as session:
        uris = session.scalars(
            select(AssetModel.uri).join(AssetEvent, AssetEvent.asset_id == AssetModel.id)
            .where(AssetEvent.source_run_id == run.run_id)
        ).all()
    assert uris == [f"hybrid://{MOUNT}/{dataset.root}"] * 3  # one event per migrated batch
