"""DuckDBQuery over a cached mount: warm files read natively from the local tier (leased for the query),
cold and stale ones through ``hybrid://``, and the freshness check batched into one listing per member.

Members are real local directories behind CountingStores (tests/doubles.py), which record what the query
asks of the sources; the answers are compared with DuckDB over the plain Parquet files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from airflow_hybrid.cache import ops as cache_ops
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.filesystem import HybridFileSystem
from airflow_hybrid.query.duckdb_engine import DuckDBQuery
from airflow_hybrid.query.native import list_once, split_table_path
from tests.doubles import CountingStore
from tests.mounts import local_mount_extra
from tests.parquet_parts import write_part

SQL = "SELECT k % 5 AS g, count(*) AS n, sum(v) AS total FROM sales GROUP BY g ORDER BY g"
FILES = 4


def reference(directory: Path, sql: str = SQL) -> list:
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW sales AS SELECT * FROM read_parquet('{directory}/*.parquet')")
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.fixture
def lake(tmp_path):
    """``make(**cache)`` -> (mount, {member: CountingStore}); ``sales`` on hdfs, read priority s3,hdfs."""
    made = []

    def make(**cache):
        stores = {}
        for name in ("s3", "hdfs"):
            (tmp_path / name).mkdir(exist_ok=True)
            stores[name] = CountingStore(str(tmp_path / name))
        if not (tmp_path / "hdfs" / "t" / "sales").exists():
            for i in range(FILES):
                write_part(tmp_path / "hdfs" / "t" / "sales" / f"part-{i}.parquet", i)
        options = local_mount_extra(tmp_path, "s3,hdfs", "hdfs", {"SSD": "64MB"}, **cache)
        mount = HybridMount.from_options("lake", options, stores=stores)
        made.append(mount)
        return mount, stores

    yield make
    for mount in made:
        mount.close()


def query(mount, **kwargs) -> DuckDBQuery:
    fs = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)
    return DuckDBQuery(SQL, mount_conn_id="lake", tables={"sales": "/t/sales"}, filesystem=fs, **kwargs)


def warm(mount) -> None:
    cache_ops.prefetch(mount, "t/sales/*.parquet", concurrency=2, progress_interval=3600)


def reset(stores) -> None:
    for store in stores.values():
        store.calls.clear()


def calls(stores) -> dict[str, dict[str, int]]:
    return {name: dict(store.calls) for name, store in stores.items() if store.calls}


def test_a_warm_table_is_read_from_the_local_tier_with_one_listing_per_member(lake, tmp_path):
    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    reset(stores)
    q = query(mount)

    result = q.run()

    assert result.preview == [list(row) for row in reference(tmp_path / "hdfs" / "t" / "sales")]
    plan = q.plans["sales"]
    assert (plan.local, plan.bridged) == (FILES, 0)
    assert result.details["reads"] == {"sales": {"files": FILES, "local": FILES, "httpfs": 0, "bridge": 0}}
    tier = str(tmp_path / "tier-ssd")
    assert all(source.startswith(tier + "/") for source in plan.sources)
    view = q.view_statements(q.plans)[0]
    assert "hybrid://" not in view and all(source in view for source in plan.sources)
    # the freshness check: each member's directory listed once, no stat, no read of the source
    assert calls(stores) == {"s3": {"list": 1}, "hdfs": {"list": 1}}


def test_with_listing_sync_interval_a_warm_query_sends_no_source_request(lake, tmp_path):
    mount, stores = lake(metadata_sync_interval=60, listing_sync_interval=60)
    warm(mount)
    query(mount).run()  # stores the listing in the catalog
    reset(stores)
    q = query(mount)

    result = q.run()

    assert calls(stores) == {}
    assert q.plans["sales"].local == FILES
    assert result.preview == [list(row) for row in reference(tmp_path / "hdfs" / "t" / "sales")]


def test_the_copies_are_leased_for_the_query_and_a_free_meanwhile_cannot_delete_them(lake, tmp_path):
    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    cache = mount.cache
    seen = {}

    class Observed(DuckDBQuery):
        def view_statements(self, plans=None):
            # resolved, not yet read: free every copy, as another worker's eviction or free might now
            seen["leases"] = [(lease.path, lease.holder) for lease in cache.leases()]
            seen["freed"] = cache.free(["t/sales"]).files
            seen["files"] = list(plans["sales"].sources)
            return super().view_statements(plans)

    fs = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)
    q = Observed(SQL, mount_conn_id="lake", tables={"sales": "/t/sales"}, filesystem=fs, holder="test/q1",
                 speculate=False)  # the check before the query: the plan it read is the one it was handed
    result = q.run()

    assert seen["leases"] == [("t/sales", "test/q1")]
    assert seen["freed"] == FILES
    # the query read the leased copies, which the free could only drop from the catalog
    assert result.preview == [list(row) for row in reference(tmp_path / "hdfs" / "t" / "sales")]
    assert len(seen["files"]) == FILES and all(path.startswith(str(tmp_path / "tier-ssd")) for path in seen["files"])
    # the lease ended with the query, and the copies it kept were deleted then
    assert cache.leases() == []
    assert not any(os.path.exists(path) for path in seen["files"])
    assert list(cache.entries("t/sales")) == []


def test_a_warm_table_is_planned_from_the_catalog_and_read_while_its_check_runs(lake, tmp_path):
    """The query does not wait for the members' listings: here they wait until the query has run (the check
    is confirmed after it), and the answer is still the local one, from the copies, each member listed once."""
    import threading

    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    reset(stores)
    queried = threading.Event()
    waited = []
    for store in stores.values():
        real = store.list

        def after_the_query(path, real=real):
            waited.append(queried.wait(60))  # a query that waited for its check would never set it
            return real(path)

        store.list = after_the_query

    class Observed(DuckDBQuery):
        def _checked(self, planner, plans):
            queried.set()
            return super()._checked(planner, plans)

    fs = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)
    q = Observed(SQL, mount_conn_id="lake", tables={"sales": "/t/sales"}, filesystem=fs)

    result = q.run()

    assert waited == [True, True]
    plan = q.plans["sales"]
    assert plan.speculative and (plan.local, plan.bridged) == (FILES, 0)
    assert result.preview == [list(row) for row in reference(tmp_path / "hdfs" / "t" / "sales")]
    assert calls(stores) == {"s3": {"list": 1}, "hdfs": {"list": 1}}


def _expected_dir(tmp_path) -> Path:
    expected = tmp_path / "expected"
    shutil.rmtree(expected, ignore_errors=True)
    expected.mkdir()
    for member in ("hdfs", "s3"):
        for path in (tmp_path / member / "t" / "sales").glob("*.parquet"):
            shutil.copy(path, expected / path.name)
    return expected


@pytest.mark.parametrize("change", ["rewritten", "added", "removed", "moved to s3"])
def test_a_speculative_plan_the_check_refutes_is_run_again_over_the_checked_plan(lake, tmp_path, change):
    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    sales = tmp_path / "hdfs" / "t" / "sales"
    if change == "rewritten":
        write_part(sales / "part-1.parquet", 1, rows=300, offset=13)
        os.utime(sales / "part-1.parquet", (1_000_000, 1_000_000))
    elif change == "added":
        write_part(sales / "part-9.parquet", 9)
    elif change == "removed":
        (sales / "part-2.parquet").unlink()
    else:
        moved = tmp_path / "s3" / "t" / "sales" / "part-3.parquet"
        moved.parent.mkdir(parents=True)
        shutil.move(sales / "part-3.parquet", moved)
        os.utime(moved, (2_000_000, 2_000_000))  # S3's mtime is the upload's: another fingerprint
    q = query(mount)

    result = q.run()

    plan = q.plans["sales"]
    assert not plan.speculative  # the checked plan answered
    assert result.preview == [list(row) for row in reference(_expected_dir(tmp_path))]
    assert len(plan.sources) == {"added": FILES + 1, "removed": FILES - 1}.get(change, FILES)


def test_an_error_over_copies_the_check_refutes_is_not_the_answer(lake, tmp_path):
    """Every file rewritten with a new column the query asks for: over the old copies the query fails; that
    failure is not reported, the query runs over the new versions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    for i in range(FILES):
        path = tmp_path / "hdfs" / "t" / "sales" / f"part-{i}.parquet"
        pq.write_table(pa.table({"k": [i], "v": [i], "w": [10 * i]}), path)
        os.utime(path, (3_000_000 + i, 3_000_000 + i))
    fs = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)
    q = DuckDBQuery("SELECT sum(w) AS w FROM sales", mount_conn_id="lake", tables={"sales": "/t/sales"},
                    filesystem=fs)

    result = q.run()

    assert result.preview == [[10 * sum(range(FILES))]]
    assert not q.plans["sales"].speculative


def test_a_stale_copy_is_not_read_and_the_changed_source_is(lake, tmp_path):
    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    changed = tmp_path / "hdfs" / "t" / "sales" / "part-1.parquet"
    write_part(changed, 1, rows=300, offset=13)  # another version: other size and mtime
    os.utime(changed, (1_000_000, 1_000_000))
    q = query(mount)

    result = q.run()

    plan = q.plans["sales"]
    assert (plan.local, plan.bridged) == (FILES - 1, 1)
    assert "hybrid://lake/t/sales/part-1.parquet" in plan.sources
    assert result.preview == [list(row) for row in reference(tmp_path / "hdfs" / "t" / "sales")]
    assert stores["hdfs"].calls["open"] >= 1  # the changed file came from its source


def test_a_table_split_between_warm_and_cold_files_and_members_answers_as_local(lake, tmp_path):
    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    mount.cache.free(["t/sales/part-0.parquet"])
    # a migration moved part-3 to S3: the copy (of the HDFS version) is stale, S3's version is read
    moved = tmp_path / "s3" / "t" / "sales" / "part-3.parquet"
    moved.parent.mkdir(parents=True)
    shutil.move(tmp_path / "hdfs" / "t" / "sales" / "part-3.parquet", moved)
    os.utime(moved, (2_000_000, 2_000_000))
    # a new file arrived on S3
    write_part(tmp_path / "s3" / "t" / "sales" / "part-4.parquet", 4)
    expected = tmp_path / "expected"
    expected.mkdir()
    for member in ("hdfs", "s3"):
        for path in (tmp_path / member / "t" / "sales").glob("*.parquet"):
            shutil.copy(path, expected / path.name)
    q = query(mount)

    result = q.run()

    plan = q.plans["sales"]
    assert (plan.local, plan.bridged) == (2, 3)
    assert result.preview == [list(row) for row in reference(expected)]


def test_a_copy_the_single_listing_misses_makes_the_table_listed_again(lake, tmp_path, monkeypatch):
    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    real_list = stores["s3"].list

    def list_missing_part_2(path):  # as if part-2 moved hdfs -> s3 while the members were listed
        return (e for e in real_list(path) if e.name != "part-2.parquet")

    hdfs_list = stores["hdfs"].list

    first = [True]

    def hdfs_without_part_2(path):
        if first[0]:
            first[0] = False
            return (e for e in hdfs_list(path) if e.name != "part-2.parquet")
        return hdfs_list(path)

    monkeypatch.setattr(stores["s3"], "list", list_missing_part_2)
    monkeypatch.setattr(stores["hdfs"], "list", hdfs_without_part_2)
    q = query(mount)

    result = q.run()

    assert q.plans["sales"].relisted
    assert q.plans["sales"].local == FILES
    assert result.preview == [list(row) for row in reference(tmp_path / "hdfs" / "t" / "sales")]


def test_cold_tables_and_native_off_read_through_the_bridge(lake, tmp_path):
    mount, stores = lake(metadata_sync_interval=60)
    q = query(mount)
    result = q.run()
    assert (q.plans["sales"].local, q.plans["sales"].bridged) == (0, FILES)
    assert result.preview == [list(row) for row in reference(tmp_path / "hdfs" / "t" / "sales")]
    assert mount.cache.leases() == []

    q = query(mount, native=False)
    result = q.run()
    assert q.plans == {} and "hybrid://lake/t/sales/*.parquet" in q.view_statements()[0]
    assert result.preview == [list(row) for row in reference(tmp_path / "hdfs" / "t" / "sales")]


def test_a_link_planted_in_the_tier_is_not_followed(lake, tmp_path):
    mount, stores = lake(metadata_sync_interval=60)
    warm(mount)
    entry = next(e for e in mount.cache.entries("t/sales") if e.path.endswith("part-0.parquet"))
    copy = tmp_path / "tier-ssd" / entry.location
    os.remove(copy)
    os.symlink(tmp_path / "hdfs" / "t" / "sales" / "part-1.parquet", copy)

    q = query(mount)
    with pytest.raises(duckdb.Error, match="symbolic link"):  # the bridge's tier store refuses it too
        q.run()

    # not handed to DuckDB as a local path: that would read the other file the link points to
    assert "hybrid://lake/t/sales/part-0.parquet" in q.plans["sales"].sources
    assert mount.cache.leases() == []


@pytest.mark.parametrize(
    ("rel", "expected"),
    [
        ("t/sales", ("t/sales", "*.parquet")),
        ("t/sales/*.parquet", ("t/sales", "*.parquet")),
        ("t/sales/part-[1].parquet", ("t/sales", "part-[1].parquet")),
        ("t/sales/p*.parquet", ("t/sales", "p*.parquet")),
        ("t/sales/part-0.parquet", ("t/sales", "part-0.parquet")),
        ("t/*/x.parquet", None),
        ("t/sales/**/*.parquet", None),
        ("t/sales/year=2020", None),
    ],
)
def test_split_table_path(rel, expected):
    assert split_table_path(rel) == expected


def test_list_once_merges_by_read_priority(lake, tmp_path):
    mount, stores = lake()
    write_part(tmp_path / "s3" / "t" / "sales" / "part-0.parquet", 0, rows=10)
    listed = {info.name: member for member, info in list_once(mount, "t/sales")}
    assert listed["part-0.parquet"] == "s3" and listed["part-1.parquet"] == "hdfs"
    assert list_once(mount, "t/nothing") is None
