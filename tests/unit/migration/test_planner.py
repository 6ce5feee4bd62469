"""The migration planner over LocalStore-backed members (and a synthetic store for scale)."""

from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from airflow_hybrid.migration.planner import (
    PlanEntry,
    PlanNotFoundError,
    count_candidates,
    delete_plan,
    iter_candidates,
    list_plans,
    load_plan,
    plan_migration,
)
from airflow_hybrid.policy import PolicyValidationError, parse_policy
from airflow_hybrid.stores.base import Checksum, FileInfo, Store
from airflow_hybrid.stores.local import LocalStore
from tests.doubles import CountingStore
from tests.integration.moto_s3 import AWS_CONN_ID

NOW = 1_700_000_000.0
DAY = 86_400
POLICY = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"


@dataclass
class FakeMount:
    """What the planner needs of a HybridMount: a name and named member stores."""

    members: dict[str, Store]
    name: str = "lake"


@dataclass
class LocalLake:
    """Local directories as the members ``hdfs`` and ``s3`` of a fake mount, and the plan store."""

    mount: FakeMount
    hdfs: LocalStore
    s3: LocalStore
    plans: LocalStore
    root: object = field(repr=False)

    def put(self, member: str, path: str, data: bytes, *, age: float) -> None:
        store: LocalStore = getattr(self, member)
        target = store.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        os.utime(target, (NOW - age, NOW - age))


@pytest.fixture
def local_lake(tmp_path) -> LocalLake:
    for name in ("hdfs", "s3", "plans"):
        (tmp_path / name).mkdir()
    hdfs, s3 = LocalStore(str(tmp_path / "hdfs")), LocalStore(str(tmp_path / "s3"))
    mount = FakeMount({"hdfs": hdfs, "s3": s3})
    return LocalLake(mount, hdfs, s3, LocalStore(str(tmp_path / "plans")), tmp_path)


def test_old_files_are_selected_and_new_ones_are_not(local_lake):
    local_lake.put("hdfs", "sales/2023/part-0.parquet", b"a" * 10, age=3 * DAY)
    local_lake.put("hdfs", "sales/2023/part-1.parquet", b"b" * 20, age=2 * DAY)
    local_lake.put("hdfs", "sales/2024/part-0.parquet", b"c" * 30, age=3600)  # an hour old: stays
    local_lake.put("hdfs", "other/old.csv", b"d", age=9 * DAY)  # outside the planned path
    local_lake.put("s3", "sales/already-moved.parquet", b"e", age=9 * DAY)  # on the STORE member only

    summary = plan_migration(local_lake.mount, "/sales", POLICY, plan_store=local_lake.plans, now=NOW)

    assert (summary.files, summary.bytes, summary.batches) == (2, 30, 1)
    plan = load_plan(local_lake.plans, summary.plan_id)
    entries = sorted(plan.iter_entries(), key=lambda e: e.path)
    assert [(e.path, e.size, e.mtime, e.source) for e in entries] == [
        ("sales/2023/part-0.parquet", 10, NOW - 3 * DAY, "hdfs"),
        ("sales/2023/part-1.parquet", 20, NOW - 2 * DAY, "hdfs"),
    ]
    assert plan.summary == summary
    assert plan.policy == parse_policy(POLICY)
    assert (plan.mount, plan.path) == ("lake", "sales")
    assert plan.manifest["store_members"] == ["s3"]
    assert plan.manifest["source_members"] == ["hdfs"]
    assert plan.manifest["evaluated_at"] == NOW


def test_planning_leaves_the_data_untouched(local_lake):
    local_lake.put("hdfs", "t/a", b"x" * 5, age=5 * DAY)
    plan_migration(local_lake.mount, "t", POLICY, plan_store=local_lake.plans, now=NOW)
    assert (local_lake.hdfs.root / "t/a").read_bytes() == b"x" * 5
    assert not (local_lake.s3.root / "t").exists()


def test_short_form_and_compound_conditions(local_lake):
    local_lake.put("hdfs", "d/old-big", b"x" * 2048, age=5 * DAY)
    local_lake.put("hdfs", "d/old-small", b"x" * 10, age=5 * DAY)
    local_lake.put("hdfs", "d/new-big", b"x" * 2048, age=60)
    short = plan_migration(
        local_lake.mount, "d", "ufsMigrate(2d, UFS[hdfs]:REMOVE, UFS[s3]:STORE)", plan_store=local_lake.plans, now=NOW
    )
    assert short.files == 2
    policy = "ufsMigrate(and(2d, largerThan(1KB)), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
    compound = plan_migration(local_lake.mount, "d", policy, plan_store=local_lake.plans, now=NOW)
    assert [e.path for e in load_plan(local_lake.plans, compound.plan_id).iter_entries()] == ["d/old-big"]


def test_batches_are_bounded_by_file_count(local_lake):
    for i in range(25):
        local_lake.put("hdfs", f"many/f{i:02d}", b"x", age=2 * DAY)
    summary = plan_migration(local_lake.mount, "many", POLICY, plan_store=local_lake.plans, now=NOW, batch_max_files=10)
    plan = load_plan(local_lake.plans, summary.plan_id)
    sizes = [len(list(plan.iter_batch(i))) for i in range(summary.batches)]
    assert sizes == [10, 10, 5]
    assert [(b.files, b.bytes) for b in plan.batches] == [(10, 10), (10, 10), (5, 5)]
    assert sorted(e.path for e in plan.iter_entries()) == [f"many/f{i:02d}" for i in range(25)]


def test_batches_are_bounded_by_bytes_and_a_larger_file_gets_its_own(local_lake):
    sizes = [300, 300, 300, 1500, 100, 600, 50]
    for i, size in enumerate(sizes):
        local_lake.put("hdfs", f"b/{i}", b"x" * size, age=2 * DAY)
    summary = plan_migration(local_lake.mount, "b", POLICY, plan_store=local_lake.plans, now=NOW, batch_max_bytes=1000)
    plan = load_plan(local_lake.plans, summary.plan_id)
    batches = [[e.size for e in plan.iter_batch(i)] for i in range(summary.batches)]
    assert sorted(s for batch in batches for s in batch) == sorted(sizes)
    assert summary.bytes == sum(sizes)
    for batch in batches:
        assert sum(batch) <= 1000 or batch == [1500]
    assert [1500] in batches


def test_bad_batch_bounds_are_rejected(local_lake):
    with pytest.raises(ValueError, match="must be positive"):
        plan_migration(local_lake.mount, "", POLICY, plan_store=local_lake.plans, batch_max_files=0)


def test_fingerprints_are_recorded(local_lake):
    class ChecksummingStore(LocalStore):
        def walk_files(self, path: str = "") -> Iterator[FileInfo]:
            for info in super().walk_files(path):
                yield FileInfo(
                    info.path,
                    info.size,
                    info.mtime,
                    etag="abc",
                    extra={"checksum": Checksum("CRC32C", "AAAAAA==")},
                )

    local_lake.put("hdfs", "c/file", b"12345", age=2 * DAY)
    local_lake.mount.members["hdfs"] = ChecksummingStore(str(local_lake.hdfs.root))
    summary = plan_migration(local_lake.mount, "c", POLICY, plan_store=local_lake.plans, now=NOW)
    (entry,) = load_plan(local_lake.plans, summary.plan_id).iter_entries()
    assert entry == PlanEntry(
        "c/file", 5, NOW - 2 * DAY, "hdfs", etag="abc", checksum=Checksum("CRC32C", "AAAAAA==")
    )


def test_entry_fingerprint_detects_a_changed_source(local_lake):
    local_lake.put("hdfs", "e/file", b"12345", age=2 * DAY)
    summary = plan_migration(local_lake.mount, "e", POLICY, plan_store=local_lake.plans, now=NOW)
    (entry,) = load_plan(local_lake.plans, summary.plan_id).iter_entries()
    assert entry.unchanged(local_lake.hdfs.info("e/file"))
    local_lake.put("hdfs", "e/file", b"123456", age=2 * DAY)
    assert not entry.unchanged(local_lake.hdfs.info("e/file"))


def test_entries_round_trip_through_json():
    entry = PlanEntry(
        "a/b c/é.parquet", 7, 1.25, "hdfs", etag='"e"', checksum=Checksum("MD5", "x"), stored_in=("s3",)
    )
    assert PlanEntry.from_json(entry.to_json()) == entry
    assert "\n" not in entry.to_json()


def test_probe_stores_records_which_store_members_already_hold_the_file(local_lake):
    local_lake.put("hdfs", "p/copied", b"same", age=2 * DAY)
    local_lake.put("s3", "p/copied", b"same", age=0)
    local_lake.put("hdfs", "p/differs", b"long content", age=2 * DAY)
    local_lake.put("s3", "p/differs", b"short", age=0)
    local_lake.put("hdfs", "p/missing", b"abc", age=2 * DAY)
    summary = plan_migration(local_lake.mount, "p", POLICY, plan_store=local_lake.plans, now=NOW, probe_stores=True)
    held = {e.path: e.stored_in for e in load_plan(local_lake.plans, summary.plan_id).iter_entries()}
    assert held == {"p/copied": ("s3",), "p/differs": (), "p/missing": ()}


def test_a_path_missing_on_the_remove_member_plans_nothing(local_lake):
    summary = plan_migration(local_lake.mount, "nowhere", POLICY, plan_store=local_lake.plans, now=NOW)
    assert (summary.files, summary.bytes, summary.batches) == (0, 0, 0)
    assert list(load_plan(local_lake.plans, summary.plan_id).iter_entries()) == []


def test_several_remove_members_are_each_walked(local_lake, tmp_path):
    (tmp_path / "hdfs2").mkdir()
    local_lake.mount.members["hdfs2"] = LocalStore(str(tmp_path / "hdfs2"))
    local_lake.put("hdfs", "m/a", b"1", age=2 * DAY)
    (tmp_path / "hdfs2" / "m").mkdir()
    (tmp_path / "hdfs2" / "m" / "b").write_bytes(b"22")
    os.utime(tmp_path / "hdfs2" / "m" / "b", (NOW - 2 * DAY, NOW - 2 * DAY))
    policy = "ufsMigrate(1d, UFS[hdfs]:REMOVE, UFS[hdfs2]:REMOVE, UFS[s3]:STORE)"
    assert sorted((m, i.path) for m, i in iter_candidates(local_lake.mount, "m", policy, now=NOW)) == [
        ("hdfs", "m/a"),
        ("hdfs2", "m/b"),
    ]


def test_unknown_members_are_rejected_before_listing(local_lake):
    with pytest.raises(PolicyValidationError, match="names member 'gcs', which mount 'lake' does not have"):
        plan_migration(
            local_lake.mount, "", "ufsMigrate(1d, UFS[hdfs]:REMOVE, UFS[gcs]:STORE)", plan_store=local_lake.plans
        )
    assert list(local_lake.plans.list("")) == []


def test_load_plan_errors(local_lake):
    with pytest.raises(PlanNotFoundError, match="no plan 'nope' on file://"):
        load_plan(local_lake.plans, "nope")
    with pytest.raises(ValueError, match="invalid plan id '../x'"):
        load_plan(local_lake.plans, "../x")
    summary = plan_migration(local_lake.mount, "", POLICY, plan_store=local_lake.plans, now=NOW)
    with pytest.raises(IndexError, match="has 0 batches"):
        next(load_plan(local_lake.plans, summary.plan_id).iter_batch(0))


def test_an_unfinished_plan_cannot_be_loaded(local_lake):
    local_lake.put("hdfs", "u/a", b"1", age=2 * DAY)
    summary = plan_migration(local_lake.mount, "u", POLICY, plan_store=local_lake.plans, now=NOW)
    local_lake.plans.delete(f"{summary.plan_id}/manifest.json")  # as if planning had crashed before the manifest
    with pytest.raises(PlanNotFoundError, match="planning did not finish"):
        load_plan(local_lake.plans, summary.plan_id)
    assert summary.plan_id not in list(list_plans(local_lake.plans))


def test_plan_ids_carry_the_policy_name_and_are_unique(local_lake):
    named = "archive_sales:" + POLICY
    first = plan_migration(local_lake.mount, "", named, plan_store=local_lake.plans, now=NOW)
    second = plan_migration(local_lake.mount, "", named, plan_store=local_lake.plans, now=NOW)
    assert first.plan_id.startswith("archive_sales-")
    assert first.plan_id != second.plan_id
    assert sorted(list_plans(local_lake.plans)) == sorted([first.plan_id, second.plan_id])
    assert delete_plan(local_lake.plans, first.plan_id)
    assert list(list_plans(local_lake.plans)) == [second.plan_id]
    assert not delete_plan(local_lake.plans, first.plan_id)


def test_plan_store_given_as_a_uri(local_lake, tmp_path):
    local_lake.put("hdfs", "x/a", b"1", age=2 * DAY)
    uri = f"file://{tmp_path / 'shared-plans'}"
    summary = plan_migration(local_lake.mount, "x", POLICY, plan_store=uri, now=NOW)
    assert (tmp_path / "shared-plans" / summary.plan_id / "manifest.json").exists()
    assert [e.path for e in load_plan(uri, summary.plan_id).iter_entries()] == ["x/a"]


def test_default_plan_store_is_under_airflow_home(local_lake, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AIRFLOW__HYBRID__PLAN_STORE", raising=False)
    local_lake.put("hdfs", "y/a", b"1", age=2 * DAY)
    summary = plan_migration(local_lake.mount, "y", POLICY, now=NOW)
    manifest = tmp_path / "home" / "hybrid" / "plans" / summary.plan_id / "manifest.json"
    assert json.loads(manifest.read_text())["totals"] == {"files": 1, "bytes": 1, "batches": 1}
    assert load_plan(None, summary.plan_id).summary == summary


def test_default_plan_store_follows_the_airflow_option(local_lake, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__HYBRID__PLAN_STORE", str(tmp_path / "configured"))
    local_lake.put("hdfs", "z/a", b"1", age=2 * DAY)
    summary = plan_migration(local_lake.mount, "z", POLICY, now=NOW)
    assert (tmp_path / "configured" / summary.plan_id / "manifest.json").exists()


# -- counting (what a sensor pokes) -----------------------------------------------------------------


def test_count_candidates_stops_once_the_thresholds_are_met(local_lake):
    for i in range(50):
        local_lake.put("hdfs", f"k/{i:02d}", b"x" * 10, age=2 * DAY)
    counting = CountingStore(str(local_lake.hdfs.root))
    local_lake.mount.members["hdfs"] = counting

    found = count_candidates(local_lake.mount, "k", POLICY, now=NOW, min_files=3)
    assert (found.files, found.reached, found.complete) == (3, True, False)
    assert counting.yielded == 3

    counting.yielded = 0
    found = count_candidates(local_lake.mount, "k", POLICY, now=NOW, min_files=2, min_bytes=55)
    assert (found.files, found.bytes, found.reached) == (6, 60, True)
    assert counting.yielded == 6

    found = count_candidates(local_lake.mount, "k", POLICY, now=NOW, min_files=51)
    assert (found.files, found.bytes, found.reached, found.complete) == (50, 500, False, True)

    found = count_candidates(local_lake.mount, "k", POLICY, now=NOW)
    assert (found.files, found.bytes, found.reached, found.complete) == (50, 500, True, True)


def test_count_candidates_with_nothing_selected(local_lake):
    local_lake.put("hdfs", "n/new", b"x", age=10)
    found = count_candidates(local_lake.mount, "n", POLICY, now=NOW)
    assert (found.files, found.reached, found.complete) == (0, False, True)


# -- scale: constant memory -------------------------------------------------------------------------


class SyntheticStore(Store):
    """A member whose listing is generated lazily: ``count`` files, three in four of them old."""

    scheme = "synthetic"

    def __init__(self, count: int) -> None:
        super().__init__("synthetic://lake")
        self.count = count

    def file(self, i: int) -> FileInfo:
        age = 30 * DAY if i % 4 else 60
        return FileInfo(
            path=f"warehouse/store_sales/d={i % 365:03d}/part-{i:08d}.snappy.parquet",
            size=1_000_000 + i % 7919,
            mtime=NOW - age,
            etag=f"{i:032x}",
        )

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        return (self.file(i) for i in range(self.count))

    def info(self, path):
        raise NotImplementedError

    def list(self, path):
        raise NotImplementedError

    def open_read(self, path, offset=0, length=None):
        raise NotImplementedError

    def write(self, path, stream, size_hint=None):
        raise NotImplementedError

    def delete(self, path, recursive=False):
        raise NotImplementedError

    def mkdir(self, path):
        raise NotImplementedError


def test_planning_200k_files_runs_in_constant_memory(local_lake):
    files = 200_000
    source = SyntheticStore(files)
    mount = FakeMount({"hdfs": source, "s3": local_lake.s3})
    bound = 8 * 1024**2

    tracemalloc.start()
    try:
        summary = plan_migration(
            mount, "warehouse", POLICY, plan_store=local_lake.plans, now=NOW, batch_max_files=1000
        )
        _, planning_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        materialised = [source.file(i) for i in range(files)]
        _, listing_peak = tracemalloc.get_traced_memory()
        del materialised
    finally:
        tracemalloc.stop()

    selected = files * 3 // 4
    assert (summary.files, summary.batches) == (selected, selected // 1000)
    assert summary.bytes == sum(source.file(i).size for i in range(files) if i % 4)
    # the bound is meaningful: holding the listing would take far more than the planner ever does
    assert listing_peak > 4 * bound
    assert planning_peak < bound, f"planning peaked at {planning_peak / 2**20:.1f} MiB"
    plan = load_plan(local_lake.plans, summary.plan_id)
    last = list(plan.iter_batch(summary.batches - 1))
    assert len(last) == 1000
    assert last[-1] == PlanEntry(
        source.file(files - 1).path,
        source.file(files - 1).size,
        NOW - 30 * DAY,
        "hdfs",
        etag=f"{files - 1:032x}",
    )


def test_plans_over_a_real_hybrid_mount_with_a_datetime_now(tmp_path):
    from datetime import datetime, timezone

    from airflow_hybrid.mount import HybridMount

    (tmp_path / "hdfs" / "t").mkdir(parents=True)
    (tmp_path / "s3").mkdir()
    for name, age in (("old", 2 * DAY), ("new", 60)):
        (tmp_path / "hdfs" / "t" / name).write_bytes(b"data")
        os.utime(tmp_path / "hdfs" / "t" / name, (NOW - age, NOW - age))
    mount = HybridMount.from_options(
        "union",
        {
            "members": {
                "hdfs": {"uri": f"file://{tmp_path / 'hdfs'}"},
                "s3": {"uri": f"file://{tmp_path / 's3'}"},
            },
            "priority.read": "s3,hdfs",
            "collection.create": "s3",
        },
    )
    now = datetime.fromtimestamp(NOW, timezone.utc)
    summary = plan_migration(mount, "/t", POLICY, plan_store=str(tmp_path / "plans"), now=now)
    plan = load_plan(str(tmp_path / "plans"), summary.plan_id)
    assert [e.path for e in plan.iter_entries()] == ["t/old"]
    assert plan.mount == "union"
    assert count_candidates(mount, "t", POLICY, now=now, min_files=1).reached


@pytest.mark.integration
def test_plans_on_s3_are_read_back_by_another_store_instance(local_lake, bucket):
    """The plan store on S3 (moto's server on loopback), as workers on other hosts would share it."""
    from airflow_hybrid.stores.s3.store import S3Store

    for i in range(5):
        local_lake.put("hdfs", f"s/{i}", b"x" * (i + 1), age=2 * DAY)
    uri = f"s3://{bucket}/plans"
    summary = plan_migration(
        local_lake.mount, "s", POLICY, plan_store=uri, plan_store_conn_id=AWS_CONN_ID, now=NOW, batch_max_files=2
    )
    assert (summary.files, summary.bytes, summary.batches) == (5, 15, 3)

    elsewhere = S3Store(uri, aws_conn_id=AWS_CONN_ID)  # a fresh client, as on another worker
    plan = load_plan(elsewhere, summary.plan_id)
    assert sorted(e.path for e in plan.iter_entries()) == [f"s/{i}" for i in range(5)]
    assert [len(list(plan.iter_batch(i))) for i in range(3)] == [2, 2, 1]
    assert list(list_plans(elsewhere)) == [summary.plan_id]
    assert delete_plan(elsewhere, summary.plan_id)
    assert list(list_plans(elsewhere)) == []
