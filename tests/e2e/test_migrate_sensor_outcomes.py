"""The migration DAG's deferred sensor ends, in a real DAG run (``dag.test()``, which runs triggers in line and
never times them out itself), when nothing is left to migrate (a skip: the run succeeds, every task skipped)
and when its timeout passes while deferred (the trigger's deadline: the plan fails as a sensor timeout)."""

from __future__ import annotations

import importlib

import pytest

from airflow_hybrid.triggers.migrate import UfsMigrateTrigger
from tests.integration.migrate_support import MOUNT, POLICY, make_dataset


def _dag(monkeypatch, tmp_path, name: str, root: str, timeout: float):
    policies = tmp_path / "hybrid_policies.yaml"
    policies.write_text(
        "policies:\n"
        f"  - name: {name}\n    mount: {MOUNT}\n    path: {root}\n    policy: '{POLICY}'\n"
        "    schedule: null\n    min_files: 1\n    deferrable: true\n"
        f"    poke_interval: 3600\n    timeout: {timeout}\n"
    )
    monkeypatch.setenv("AIRFLOW_VAR_HYBRID_POLICIES_FILE", str(policies))
    module = importlib.reload(importlib.import_module("tests.e2e.dags.hybrid_migrate_e2e"))
    return getattr(module, f"hybrid_migrate_{name}")


@pytest.mark.timeout(300)
def test_a_deferred_sensor_skips_the_run_when_nothing_is_left_to_migrate(airflow_db, union_lake, tmp_path, monkeypatch):
    dataset = make_dataset(union_lake, seed=71, small=0, new=2)  # recent files only: the sensor defers
    checks = []
    count = UfsMigrateTrigger.count

    def count_then_the_source_empties(self):
        result = count(self)
        checks.append(result.files)
        for path in dataset.new:  # e.g. another run moved or deleted them while this one waited
            dataset.hdfs.delete(path)
        return result

    monkeypatch.setattr(UfsMigrateTrigger, "count", count_then_the_source_empties)
    dag = _dag(monkeypatch, tmp_path, "e2e_nothing", dataset.root, timeout=7200)
    run = dag.test()
    assert checks == [0]  # one check on the triggerer, then the empty-source event (no hour-long wait)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"plan": "skipped", "batches": "skipped", "migrate": "skipped", "report": "skipped"}
    assert run.state == "success"


@pytest.mark.timeout(300)
def test_a_deferred_sensor_times_out_at_its_deadline(airflow_db, union_lake, tmp_path, monkeypatch):
    dataset = make_dataset(union_lake, seed=72, small=0, new=2)
    dag = _dag(monkeypatch, tmp_path, "e2e_timeout", dataset.root, timeout=0.001)
    run = dag.test()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["plan"] == "failed" and states["report"] == "failed", states
    assert run.state == "failed"
    assert dataset.hdfs_paths() == sorted(dataset.new)  # nothing moved
