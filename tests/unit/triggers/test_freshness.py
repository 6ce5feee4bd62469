"""HybridChangeTrigger over a union of two local directories (members ``s3`` and ``hdfs``).

The trigger's sleep is replaced by :class:`Polls`: each sleep is the gap between two polls, where the test makes
its next change (or none); time moves only there. The watched Asset's state store is :class:`FakeStateStore`,
with the ``aget``/``aset`` of Airflow's ``AssetStateStoreAccessors`` that the triggerer injects.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from airflow.sdk import Asset, AssetWatcher

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.stores.base import StoreError, TreeFingerprint
from airflow_hybrid.stores.local import LocalStore
from airflow_hybrid.triggers.freshness import HybridChangeTrigger, WatchState
from tests.mounts import local_mount_extra

MOUNT = "watched_lake"


class NoMorePolls(Exception):
    """Ends a test's run of the trigger, raised by the sleep after the last planned poll."""


class Polls:
    """The trigger's sleep: before each poll after the first, the next change (a callable, or ``None``)."""

    def __init__(self, changes: list[Callable[[], object] | None], clock: list[float] | None = None,
                 on_sleep: Callable[[], None] | None = None) -> None:
        self.changes = list(changes)
        self.clock = clock
        self.on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        if self.on_sleep:
            self.on_sleep()
        if not self.changes:
            raise NoMorePolls
        change = self.changes.pop(0)
        if self.clock is not None:
            self.clock[0] += seconds
        if change is not None:
            change()


class FakeStateStore:
    """The watched Asset's state store (JSON values, as the metadata database keeps them)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    async def aget(self, key: str, default: object = None) -> object:
        return self.values.get(key, default)

    async def aset(self, key: str, value: object) -> None:
        self.values[key] = json.loads(json.dumps(value))


@pytest.fixture
def lake(tmp_path, monkeypatch) -> Path:
    """The mount's root: members ``root/s3`` and ``root/hdfs``; table ``sales`` with two parts in ``hdfs`` (one
    in a partition directory) and one in ``s3``."""
    for member in ("s3", "hdfs"):
        (tmp_path / member).mkdir()
    write(tmp_path / "hdfs/sales/part-0.parquet", b"a" * 100)
    write(tmp_path / "hdfs/sales/day=1/part-1.parquet", b"b" * 200)
    write(tmp_path / "s3/sales/part-2.parquet", b"c" * 300)
    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3")
    monkeypatch.setenv(f"AIRFLOW_CONN_{MOUNT.upper()}", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    return tmp_path


def write(path: Path, data: bytes, mtime: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def run_trigger(trigger: HybridChangeTrigger, changes: list, store: FakeStateStore | None = None,
                **polls) -> list[dict]:
    """The events of ``trigger`` over ``len(changes) + 1`` polls."""
    trigger.sleep = Polls(changes, **polls)
    trigger.asset_state_store = store

    async def run() -> list[dict]:
        events = []
        with pytest.raises(NoMorePolls):
            async for event in trigger.run():
                events.append(event.payload)
        return events

    return asyncio.run(run())


def logged(capsys) -> str:
    """What the trigger logged (Airflow's structlog writes the trigger's log lines to stdout)."""
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_adding_removing_resizing_and_rewriting_a_file_each_fire_one_event(lake):
    part = lake / "hdfs/sales/day=1/part-1.parquet"
    mtime = part.stat().st_mtime
    changes = [
        None,
        lambda: write(lake / "hdfs/sales/day=2/part-3.parquet", b"d" * 50),  # added
        None,
        lambda: (lake / "s3/sales/part-2.parquet").unlink(),  # removed
        lambda: write(part, b"b" * 201),  # resized
        None,
        lambda: write(part, b"B" * 201, mtime=mtime + 60),  # rewritten, same length
        None,
    ]
    events = run_trigger(HybridChangeTrigger(MOUNT, "/sales", poll_interval=30), changes, FakeStateStore())
    assert [(e["files"], e["bytes"], e["previous_files"], e["previous_bytes"]) for e in events] == [
        (4, 650, 3, 600), (3, 350, 4, 650), (3, 351, 3, 350), (3, 351, 3, 351)]
    assert {(e["mount"], e["path"], e["uri"]) for e in events} == {(MOUNT, "/sales", f"hybrid://{MOUNT}/sales")}
    assert events[-1]["digest"] != events[-1]["previous_digest"]
    assert all(e["detected_at"].endswith("+00:00") for e in events)


def test_an_unchanged_tree_costs_the_same_store_calls_at_every_poll(lake, monkeypatch):
    """Each unchanged poll makes exactly the calls of one fingerprint per member; the matched files are never
    listed again and nothing is read or looked up, whatever the number of polls."""
    calls: Counter[str] = Counter()
    for name in ("tree_fingerprint", "walk_files", "list", "info", "exists", "open_read"):
        original = getattr(LocalStore, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            calls[_name] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(LocalStore, name, counted)
    monkeypatch.setattr(HybridMount, "ls", lambda *a, **k: pytest.fail("the merged listing is not used"))
    per_poll: list[Counter[str]] = []

    def snapshot() -> None:
        per_poll.append(Counter(calls))
        calls.clear()

    events = run_trigger(HybridChangeTrigger(MOUNT, "/sales"), [None] * 5, FakeStateStore(), on_sleep=snapshot)
    assert events == []
    baseline, *unchanged = per_poll
    assert len(unchanged) == 5 and all(poll == unchanged[0] for poll in unchanged), per_poll

    calls.clear()
    with HybridMount.from_conn_id(MOUNT) as mount:
        for member in ("s3", "hdfs"):
            mount.members[member].tree_fingerprint("sales")
    assert unchanged[0] == calls  # 2 fingerprints: 2 walks, one list per directory ({"list": 3} here)
    assert unchanged[0] == {"tree_fingerprint": 2, "walk_files": 2, "list": 3}
    assert baseline["walk_files"] == 4  # the baseline also listed the matched files, once


def test_a_change_outside_the_glob_fires_nothing(lake):
    changes = [
        lambda: write(lake / "hdfs/sales/_SUCCESS", b""),
        lambda: write(lake / "hdfs/sales/part-4.crc", b"x"),
        lambda: write(lake / "hdfs/sales/part-4.parquet", b"e" * 10),
    ]
    events = run_trigger(HybridChangeTrigger(MOUNT, "/sales/*.parquet"), changes, FakeStateStore())
    assert [(e["files"], e["bytes"]) for e in events] == [(3, 410)]  # part-0, part-2, part-4 (not day=1/)


def test_members_restricts_the_watch(lake):
    changes = [lambda: write(lake / "s3/sales/part-9.parquet", b"s3"),
               lambda: write(lake / "hdfs/sales/part-9.parquet", b"hdfs")]
    events = run_trigger(HybridChangeTrigger(MOUNT, "/sales", members=["hdfs"]), changes, FakeStateStore())
    assert [(e["files"], e["bytes"]) for e in events] == [(3, 304)]


def test_a_change_while_no_trigger_runs_fires_at_the_first_poll_of_the_recreated_trigger(lake):
    store = FakeStateStore()
    first = HybridChangeTrigger(MOUNT, "/sales", poll_interval=5)
    assert run_trigger(first, [], store) == []  # the baseline, stored
    assert WatchState.from_json(store.values[first.state_key]).files == 3

    write(lake / "hdfs/sales/part-5.parquet", b"f" * 5)  # the triggerer is down
    classpath, kwargs = first.serialize()
    assert classpath == "airflow_hybrid.triggers.freshness.HybridChangeTrigger"
    again = HybridChangeTrigger(**json.loads(json.dumps(kwargs)))
    assert again.state_key == first.state_key
    events = run_trigger(again, [], store)
    assert [(e["files"], e["previous_files"]) for e in events] == [(4, 3)]


def test_the_state_store_key_names_what_is_watched_not_how_often(lake):
    a = HybridChangeTrigger(MOUNT, "/sales", poll_interval=5, rescan_interval=None)
    assert a.state_key == HybridChangeTrigger(MOUNT, "sales/", poll_interval=60).state_key
    assert a.state_key != HybridChangeTrigger(MOUNT, "/sales/*.parquet").state_key
    assert a.state_key != HybridChangeTrigger(MOUNT, "/sales", members=["hdfs"]).state_key


def test_after_an_event_the_new_state_is_stored_one_poll_later_so_a_crash_refires_it(lake):
    store = FakeStateStore()
    trigger = HybridChangeTrigger(MOUNT, "/sales")
    events = run_trigger(trigger, [lambda: write(lake / "hdfs/sales/part-6.parquet", b"g")], store)
    assert len(events) == 1
    assert WatchState.from_json(store.values[trigger.state_key]).files == 3  # killed right after the event

    refired = run_trigger(HybridChangeTrigger(**trigger.serialize()[1]), [None], store)
    assert [e["digest"] for e in refired] == [events[0]["digest"]]  # at least once: the same change again
    assert WatchState.from_json(store.values[trigger.state_key]).files == 4  # stored one poll later
    assert run_trigger(HybridChangeTrigger(**trigger.serialize()[1]), [], store) == []


def test_without_a_state_store_the_first_poll_is_the_baseline_and_the_log_says_what_is_lost(lake, capsys):
    trigger = HybridChangeTrigger(MOUNT, "/sales")
    events = run_trigger(trigger, [lambda: write(lake / "hdfs/sales/part-7.parquet", b"h")], store=None)
    assert [e["files"] for e in events] == [4]
    assert "a change made while this trigger is not running is missed" in logged(capsys)


def test_an_inexact_summary_is_backed_by_a_rescan(lake, monkeypatch):
    """A store whose summary misses a same-length rewrite (HDFS, below a subdirectory): only the rescan, every
    ``rescan_interval`` seconds, sees it."""
    monkeypatch.setattr(LocalStore, "tree_fingerprint", lambda self, path="": TreeFingerprint("same", exact=False))
    part = lake / "hdfs/sales/day=1/part-1.parquet"
    rewrite = lambda: write(part, b"X" * 200, mtime=part.stat().st_mtime + 60)  # noqa: E731
    clock = [1_000.0]
    trigger = HybridChangeTrigger(MOUNT, "/sales", poll_interval=60, rescan_interval=300)
    trigger.clock = lambda: clock[0]
    events = run_trigger(trigger, [rewrite, None, None, None, None, None], FakeStateStore(), clock=clock)
    assert [e["detected_at"] for e in events] == ["1970-01-01T00:21:40+00:00"]  # t=1300: the rescan after 300s


def test_a_failing_poll_is_logged_and_the_watch_goes_on(lake, monkeypatch, capsys):
    fingerprint = HybridMount.tree_fingerprint
    failures = [StoreError("member 'hdfs' unreachable")]

    def flaky(self, *args, **kwargs):
        if failures:
            raise failures.pop()
        return fingerprint(self, *args, **kwargs)

    trigger = HybridChangeTrigger(MOUNT, "/sales")
    monkeypatch.setattr(HybridMount, "tree_fingerprint", flaky)
    events = run_trigger(trigger, [None, lambda: write(lake / "s3/sales/part-8.parquet", b"i")], FakeStateStore())
    assert "Watching hybrid://watched_lake/sales failed (StoreError: member 'hdfs' unreachable)" in logged(capsys)
    assert [e["files"] for e in events] == [4]


def test_an_unknown_member_is_named_in_the_log(lake, capsys):
    assert run_trigger(HybridChangeTrigger(MOUNT, "/sales", members=["tape"]), [], FakeStateStore()) == []
    assert "no member 'tape' in mount 'watched_lake' (members: s3, hdfs)" in logged(capsys)


def test_it_is_an_event_trigger_for_an_asset_watcher():
    trigger = HybridChangeTrigger(MOUNT, "/sales/*.parquet", poll_interval=10, members=["hdfs"])
    asset = Asset("sales_source", uri=f"hybrid-source://{MOUNT}/sales",
                  watchers=[AssetWatcher(name="sales_changes", trigger=trigger)])
    assert asset.watchers[0].trigger is trigger
    assert trigger.serialize()[1] == {"mount_conn_id": MOUNT, "path": "/sales/*.parquet", "poll_interval": 10.0,
                                      "members": ["hdfs"], "rescan_interval": 3600.0}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"poll_interval": 0}, "poll_interval=0 must be positive"),
    ({"rescan_interval": -1}, "rescan_interval=-1 must be positive, or None for never"),
    ({"members": "hdfs"}, "members='hdfs': expected a list of member names"),
    ({"path": "/sales/[9-0]"}, "invalid character class"),
    ({"path": "../etc"}, "escapes its root"),
])
def test_bad_arguments_are_refused_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(HybridConfigError, match=message.replace("[", r"\[")):
        HybridChangeTrigger(**{"mount_conn_id": MOUNT, "path": "/sales", **kwargs})
