"""UfsMigrateSensor and UfsMigrateTrigger on the devstack: thresholds, the plan they write, deferral.

The sensor runs outside a DAG run here, so its ``context["ti"]`` is a small recorder of ``xcom_push``
calls; the end-to-end test (tests/e2e/test_migrate_dag.py) runs it in a real DAG run.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from airflow.exceptions import AirflowException
from airflow.sdk.exceptions import TaskDeferred

from airflow_hybrid.migration.planner import load_plan
from airflow_hybrid.operators.lineage import openlineage_name
from airflow_hybrid.operators.migrate import UfsMigrateOperator
from airflow_hybrid.sensors.migrate import UfsMigrateSensor
from airflow_hybrid.triggers.migrate import UfsMigrateTrigger
from tests.integration.migrate_support import MOUNT, POLICY, FakeTaskInstance, make_dataset

pytestmark = pytest.mark.integration


def _sensor(dataset, **kwargs) -> UfsMigrateSensor:
    return UfsMigrateSensor(task_id="plan", mount_conn_id=MOUNT, path=dataset.root, policy=POLICY, **kwargs)


def test_poke_waits_for_min_files_then_writes_the_plan(union_lake):
    dataset = make_dataset(union_lake, seed=31, small=3, new=2)
    sensor = _sensor(dataset, min_files=4, batch_max_files=2)
    ti = FakeTaskInstance()
    assert not sensor.poke({"ti": ti})
    assert ti.xcom == {}  # no plan while waiting

    dataset.add("small/late.bin", b"x" * 10, old=True)
    result = sensor.poke({"ti": ti})
    assert result.is_done
    summary = result.xcom_value
    assert summary == {"plan_id": summary["plan_id"], "files": 4,
                       "bytes": sum(len(d) for d in dataset.old.values()), "batches": 2}
    assert ti.xcom == {"plan_id": summary["plan_id"]}
    plan = load_plan(None, summary["plan_id"])
    assert sorted(entry.path for entry in plan.iter_entries()) == sorted(dataset.old)
    assert (plan.mount, plan.path, plan.policy.to_text()) == (MOUNT, dataset.root, POLICY)


def test_min_bytes_counts_too(union_lake):
    dataset = make_dataset(union_lake, seed=32, small=3, new=0)
    total = sum(len(d) for d in dataset.old.values())
    assert not _sensor(dataset, min_files=1, min_bytes=total + 1).poke({"ti": FakeTaskInstance()})
    assert _sensor(dataset, min_files=1, min_bytes=total).poke({"ti": FakeTaskInstance()}).is_done


def test_a_bad_policy_fails_at_parse_time_with_its_position():
    with pytest.raises(ValueError, match=r"expected ',' and an action such as UFS\[s3\]:STORE but found '\)' at column 25"):
        UfsMigrateSensor(task_id="plan", mount_conn_id=MOUNT, path="x", policy="ufsMigrate(olderThan(1d))")
    with pytest.raises(ValueError, match="must not be negative"):
        UfsMigrateSensor(task_id="plan", mount_conn_id=MOUNT, path="x", policy=POLICY, min_files=-1)


def test_deferrable_sensor_defers_to_the_trigger_and_plans_when_it_fires(union_lake):
    dataset = make_dataset(union_lake, seed=33, small=2, new=1)
    sensor = _sensor(dataset, min_files=3, deferrable=True, poke_interval=5, timeout=600)
    ti = FakeTaskInstance()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": ti})
    trigger = deferred.value.trigger
    assert isinstance(trigger, UfsMigrateTrigger)
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout.total_seconds() == 600
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_hybrid.triggers.migrate.UfsMigrateTrigger"
    assert kwargs == {"mount_conn_id": MOUNT, "path": dataset.root, "policy": POLICY, "min_files": 3,
                      "min_bytes": 0, "poke_interval": 5.0, "deadline": kwargs["deadline"]}
    assert kwargs["deadline"] is not None
    assert UfsMigrateTrigger(**kwargs).serialize() == (classpath, kwargs)  # round trip

    dataset.add("small/late.bin", b"y" * 5, old=True)
    summary = sensor.execute_complete({"ti": ti}, event={"status": "success", "files": 3, "bytes": 0})
    assert (summary["files"], summary["batches"]) == (3, 1)
    assert ti.xcom["plan_id"] == summary["plan_id"]
    with pytest.raises(AirflowException, match="failed: ConnectionError: boom"):
        sensor.execute_complete({"ti": ti}, event={"status": "error", "message": "ConnectionError: boom"})


def test_deferrable_sensor_does_not_defer_when_enough_is_selected(union_lake):
    dataset = make_dataset(union_lake, seed=34, small=2, new=0)
    ti = FakeTaskInstance()
    summary = _sensor(dataset, min_files=2, deferrable=True).execute({"ti": ti})
    assert summary["files"] == 2 and ti.xcom["plan_id"] == summary["plan_id"]


def test_trigger_lists_in_a_thread_and_fires_once_enough_is_selected(union_lake):
    dataset = make_dataset(union_lake, seed=35, small=3, new=1)
    trigger = UfsMigrateTrigger(MOUNT, dataset.root, POLICY, min_files=4, poke_interval=0.01)
    count = trigger.count
    checks: list[int] = []
    loop_ticked = threading.Event()

    def count_while_the_loop_runs():
        checks.append(threading.get_ident())
        loop_ticked.clear()
        # The event loop must keep running while a listing is in progress: this thread waits for it.
        assert loop_ticked.wait(timeout=30), "the event loop was blocked during the listing"
        result = count()
        if len(checks) == 1:
            assert not result.reached
            dataset.add("small/late.bin", b"z" * 7, old=True)  # the next check sees four files
        return result

    trigger.count = count_while_the_loop_runs

    async def run():
        stop = asyncio.Event()

        async def ticker():
            while not stop.is_set():
                loop_ticked.set()
                await asyncio.sleep(0.001)

        ticking = asyncio.create_task(ticker())
        events = [event async for event in trigger.run()]
        stop.set()
        await ticking
        return threading.get_ident(), events

    loop_thread, events = asyncio.run(run())
    assert len(checks) == 2 and loop_thread not in checks
    assert [event.payload for event in events] == [
        {"status": "success", "files": 4, "bytes": sum(len(d) for d in dataset.old.values())}
    ]


def test_trigger_reports_an_unusable_mount_as_an_error_event(airflow_connections):
    trigger = UfsMigrateTrigger("no_such_mount", "x", POLICY, poke_interval=0.01)

    async def first_event():
        async for event in trigger.run():
            return event

    payload = asyncio.run(first_event()).payload
    assert payload["status"] == "error"
    assert "no_such_mount" in payload["message"]


def test_operator_declares_the_asset_and_reports_openlineage_datasets(union_lake):
    dataset = make_dataset(union_lake, seed=36, small=2, new=0)
    operator = UfsMigrateOperator(task_id="migrate", mount_conn_id=MOUNT, path=dataset.root, policy=POLICY)
    assert [asset.uri for asset in operator.outlets] == [f"hybrid://{MOUNT}/{dataset.root}"]
    operator.execute({})
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("hdfs", f"/tmp/tpcds/{dataset.root}")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("s3://hybrid-lake", f"tpcds/{dataset.root}")]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://bucket/a/b.parquet", ("s3://bucket", "a/b.parquet")),
        ("s3a://bucket/a", ("s3://bucket", "a")),
        ("hdfs://nn:8020/warehouse/t", ("hdfs://nn:8020", "/warehouse/t")),
        ("file:///data/x", ("file", "/data/x")),
    ],
)
def test_openlineage_names_follow_the_naming_conventions(uri, expected):
    assert openlineage_name(uri) == expected


def test_operator_needs_a_plan_or_a_path_and_policy():
    with pytest.raises(ValueError, match="needs plan_id, or path and policy"):
        UfsMigrateOperator(task_id="m", mount_conn_id=MOUNT, path="x")
    with pytest.raises(ValueError, match="engine='spark' must be one of local, emr"):
        UfsMigrateOperator(task_id="m", mount_conn_id=MOUNT, plan_id="p", engine="spark")
    with pytest.raises(ValueError, match="needs emr_job_flow_id"):
        UfsMigrateOperator(task_id="m", mount_conn_id=MOUNT, plan_id="p", engine="emr")
