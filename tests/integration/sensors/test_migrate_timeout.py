"""UfsMigrateSensor's two finite outcomes besides success: its timeout holds while deferred (the trigger carries
the deadline), and "nothing left to migrate" (no candidate and no file left in the REMOVE member) is a skip
at once, in poke and deferrable mode. On the devstack; times come from a fake clock or a deadline already
passed, never from sleeping."""

from __future__ import annotations

import asyncio
import time

import pytest
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_hybrid.sensors.migrate import UfsMigrateSensor
from airflow_hybrid.triggers.migrate import UfsMigrateTrigger, source_is_empty
from tests.integration.migrate_support import MOUNT, POLICY, FakeTaskInstance, make_dataset

pytestmark = pytest.mark.integration


def events_of(trigger: UfsMigrateTrigger) -> list[dict]:
    async def run():
        return [event.payload async for event in trigger.run()]

    return asyncio.run(run())


class FakeClock:
    """``trigger.clock`` and ``trigger.sleep``: time moves only when the trigger sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def waiting_dataset(union_lake):
    """Files below the root, none selected yet (all recent): a sensor must wait, not skip."""
    return make_dataset(union_lake, seed=61, small=0, new=2)


def test_trigger_fires_a_timeout_event_at_its_deadline(union_lake):
    dataset = waiting_dataset(union_lake)
    trigger = UfsMigrateTrigger(MOUNT, dataset.root, POLICY, poke_interval=60, deadline=1_000.0)
    clock = FakeClock(900.0)
    trigger.clock, trigger.sleep = clock, clock.sleep
    events = events_of(trigger)
    assert clock.sleeps == [60, 40]  # never past the deadline; one last check at it
    assert [e["status"] for e in events] == ["timeout"]
    assert "timed out" in events[0]["message"] and "selects 0 files" in events[0]["message"]


def test_a_deadline_already_passed_checks_once_then_times_out(union_lake):
    dataset = waiting_dataset(union_lake)
    trigger = UfsMigrateTrigger(MOUNT, dataset.root, POLICY, poke_interval=3600, deadline=time.time())
    checks = []
    count = trigger.count
    trigger.count = lambda: checks.append(1) or count()
    assert [e["status"] for e in events_of(trigger)] == ["timeout"] and checks == [1]


def test_a_deadline_does_not_hide_a_success(union_lake):
    dataset = make_dataset(union_lake, seed=62, small=2, new=0)
    trigger = UfsMigrateTrigger(MOUNT, dataset.root, POLICY, min_files=2, deadline=0.0)
    assert events_of(trigger)[0]["status"] == "success"


def test_trigger_round_trips_its_deadline():
    trigger = UfsMigrateTrigger(MOUNT, "x", POLICY, deadline=1234.5)
    classpath, kwargs = trigger.serialize()
    assert kwargs["deadline"] == 1234.5
    assert UfsMigrateTrigger(**kwargs).serialize() == (classpath, kwargs)
    assert UfsMigrateTrigger(MOUNT, "x", POLICY).deadline is None  # older serialized triggers: no deadline


def test_an_empty_source_is_nothing_to_migrate(union_lake):
    dataset = make_dataset(union_lake, seed=63, small=2, new=0)
    assert not source_is_empty(union_lake, dataset.root, POLICY)
    for path in list(dataset.old):  # as a migration leaves it: in S3 only
        dataset.hdfs.delete(path)
    assert source_is_empty(union_lake, dataset.root, POLICY)
    assert source_is_empty(union_lake, "no/such/path", POLICY)
    events = events_of(UfsMigrateTrigger(MOUNT, dataset.root, POLICY, poke_interval=3600))
    assert [e["status"] for e in events] == ["nothing_to_migrate"]
    assert events[0]["message"].startswith(f"Nothing left to migrate: no file below hybrid://{MOUNT}/{dataset.root}")


def test_poke_skips_when_nothing_is_left_and_waits_for_files_not_yet_selected(union_lake):
    dataset = waiting_dataset(union_lake)
    sensor = UfsMigrateSensor(task_id="plan", mount_conn_id=MOUNT, path=dataset.root, policy=POLICY)
    assert sensor.poke({"ti": FakeTaskInstance()}) is False  # recent files may become candidates
    for path in list(dataset.new):
        dataset.hdfs.delete(path)
    with pytest.raises(AirflowSkipException, match="Nothing left to migrate"):
        sensor.poke({"ti": FakeTaskInstance()})
    # the whole poke loop (poke mode) ends at once too, never waiting for its timeout
    looping = UfsMigrateSensor(task_id="plan", mount_conn_id=MOUNT, path=dataset.root, policy=POLICY,
                               mode="poke", poke_interval=3600, timeout=7200)
    with pytest.raises(AirflowSkipException, match="Nothing left to migrate"):
        looping.execute({"ti": FakeTaskInstance()})


def test_deferrable_sensor_skips_without_deferring_when_nothing_is_left(union_lake):
    sensor = UfsMigrateSensor(task_id="plan", mount_conn_id=MOUNT, path="migrate-nothing-here", policy=POLICY,
                              deferrable=True)
    with pytest.raises(AirflowSkipException, match="Nothing left to migrate"):
        sensor.execute({"ti": FakeTaskInstance()})


@pytest.mark.parametrize("soft_fail", [False, True])
def test_deferred_sensor_times_out_through_its_trigger(union_lake, soft_fail):
    dataset = waiting_dataset(union_lake)
    sensor = UfsMigrateSensor(task_id="plan", mount_conn_id=MOUNT, path=dataset.root, policy=POLICY,
                              deferrable=True, poke_interval=3600, timeout=0, soft_fail=soft_fail)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": FakeTaskInstance()})
    trigger = deferred.value.trigger
    assert before <= trigger.deadline <= time.time()
    event = events_of(trigger)[0]
    assert event["status"] == "timeout"
    expected = AirflowSkipException if soft_fail else AirflowSensorTimeout
    with pytest.raises(expected, match="timed out"):
        sensor.execute_complete({"ti": FakeTaskInstance()}, event=event)


def test_deferred_sensor_skips_when_the_source_empties_while_it_waits(union_lake):
    dataset = waiting_dataset(union_lake)
    sensor = UfsMigrateSensor(task_id="plan", mount_conn_id=MOUNT, path=dataset.root, policy=POLICY,
                              deferrable=True, poke_interval=3600, timeout=7200)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({"ti": FakeTaskInstance()})
    for path in list(dataset.new):
        dataset.hdfs.delete(path)
    event = events_of(deferred.value.trigger)[0]
    assert event["status"] == "nothing_to_migrate"
    with pytest.raises(AirflowSkipException, match="Nothing left to migrate"):
        sensor.execute_complete({"ti": FakeTaskInstance()}, event=event)
