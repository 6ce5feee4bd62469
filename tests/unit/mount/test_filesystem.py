"""``hybrid://`` over a cached union of two local members: the status memo (per fsspec call, and per
``metadata_sync_interval`` across calls), version pinning of read files, and files moving between members.

Members are real local directories; a CountingStore (tests/doubles.py) records what the filesystem asks of them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.filesystem import HybridFileSystem
from airflow_hybrid.mount.union import FileChangedError
from airflow_hybrid.stores.base import FileInfo
from tests.doubles import CountingStore
from tests.mounts import local_mount_extra


def put(root: Path, path: str, data: bytes, mtime: float) -> None:
    local = root / path
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    os.utime(local, (mtime, mtime))


@pytest.fixture
def make_lake(tmp_path):
    """``make(interval)`` -> (filesystem, mount, {member: store}); members ``s3`` (read first) and ``hdfs``."""
    made = []

    def make(interval: float, **cache):
        stores = {name: CountingStore(str(tmp_path / name)) for name in ("s3", "hdfs")}
        for name in stores:
            (tmp_path / name).mkdir(exist_ok=True)
        options = local_mount_extra(tmp_path, "s3,hdfs", "hdfs", {"SSD": "64MB"}, metadata_sync_interval=interval,
                                    **cache)
        mount = HybridMount.from_options("lake", options, stores=stores)
        made.append(mount)
        return HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True), mount, stores

    yield make
    for mount in made:
        if mount.cache is not None:
            mount.cache.close()


def reset(stores) -> None:
    for store in stores.values():
        store.calls.clear()


def read_all(fs: HybridFileSystem, path: str) -> bytes:
    with fs.open(f"hybrid://lake/{path}", "rb") as f:
        return f.read()


@pytest.mark.parametrize("interval", [0, 60])
def test_glob_lists_each_directory_once_and_states_nothing(make_lake, tmp_path, interval):
    fs, _, stores = make_lake(interval)
    for i in range(3):
        put(tmp_path / "hdfs", f"t/part-{i}.parquet", b"x" * (10 + i), 1_700_000_000.0)
    reset(stores)
    assert fs.glob("hybrid://lake/t/*.parquet") == [f"lake/t/part-{i}.parquet" for i in range(3)]
    # a merged listing asks hdfs (the lower read priority) before and after s3: a file moving is never missed
    assert stores["s3"].calls == {"list": 1} and stores["hdfs"].calls == {"list": 2}


def test_statuses_seen_are_remembered_for_the_sync_interval(make_lake, tmp_path):
    fs, _, stores = make_lake(60)
    put(tmp_path / "hdfs", "t/a.parquet", b"a" * 100, 1_700_000_000.0)
    fs.glob("hybrid://lake/t/*.parquet")
    reset(stores)
    assert [fs.size("hybrid://lake/t/a.parquet") for _ in range(5)] == [100] * 5  # DuckDB asks on every read
    assert fs.modified("hybrid://lake/t/a.parquet").timestamp() == 1_700_000_000.0
    assert stores["s3"].calls == {} and stores["hdfs"].calls == {}


def test_with_interval_zero_every_call_sees_the_members(make_lake, tmp_path):
    fs, _, stores = make_lake(0)
    put(tmp_path / "hdfs", "t/a.parquet", b"a" * 100, 1_700_000_000.0)
    assert fs.size("hybrid://lake/t/a.parquet") == 100
    put(tmp_path / "hdfs", "t/a.parquet", b"a" * 150, 1_700_000_100.0)  # changed behind the filesystem's back
    assert fs.size("hybrid://lake/t/a.parquet") == 150
    assert fs.ls("hybrid://lake/t", detail=True)[0]["size"] == 150


def test_a_change_through_the_filesystem_is_seen_at_once(make_lake, tmp_path):
    fs, _, _ = make_lake(60)
    put(tmp_path / "hdfs", "t/a.parquet", b"a" * 100, 1_700_000_000.0)
    assert fs.size("hybrid://lake/t/a.parquet") == 100
    with fs.open("hybrid://lake/t/a.parquet", "wb") as f:
        f.write(b"b" * 250)
    assert fs.size("hybrid://lake/t/a.parquet") == 250
    assert read_all(fs, "t/a.parquet") == b"b" * 250
    fs.rm("hybrid://lake/t/a.parquet")
    assert not fs.exists("hybrid://lake/t/a.parquet")


def test_warm_file_is_opened_once_in_the_tier_with_one_hit_and_no_source_access(make_lake, tmp_path):
    fs, mount, stores = make_lake(60)
    data = os.urandom(300_000)
    put(tmp_path / "hdfs", "t/a.parquet", data, 1_700_000_000.0)
    assert read_all(fs, "t/a.parquet") == data  # cold: fills the tier
    reset(stores)
    with fs.open("hybrid://lake/t/a.parquet", "rb", block_size=4096, cache_type="none") as f:
        assert f.size == len(data)
        for start in (len(data) - 8, 0, 150_000, 10):  # footer first, then column chunks, as Parquet readers do
            f.seek(start)
            assert f.read(1000) == data[start : start + 1000]
    assert stores["s3"].calls == {} and stores["hdfs"].calls == {}
    tier = mount.cache.report().tier("SSD")
    assert (tier.hits, tier.misses) == (1, 1)


def test_a_file_migrated_to_another_member_is_served_from_its_new_member(make_lake, tmp_path):
    """A listing newer than the cached copy's fingerprint (the file moved, with a new mtime) makes the copy be
    checked at open, before the interval is up; what the file serves and what ``size`` says agree."""
    fs, mount, stores = make_lake(3600)
    data = os.urandom(50_000)
    put(tmp_path / "hdfs", "t/a.parquet", data, 1_700_000_000.0)
    assert read_all(fs, "t/a.parquet") == data
    assert mount.cache.catalog.get("lake", "t/a.parquet").source_member == "hdfs"

    moved = data[:20_000] + b"!" * 10 + data[20_010:]  # same size; only a check can tell
    put(tmp_path / "s3", "t/a.parquet", moved, 1_700_000_500.0)
    (tmp_path / "hdfs" / "t/a.parquet").unlink()
    fs2, _, _ = make_lake(3600)  # another task: lists, then reads
    listed = fs2.ls("hybrid://lake/t", detail=True)
    assert listed[0]["mtime"] == 1_700_000_500.0
    with fs2.open("hybrid://lake/t/a.parquet", "rb") as f:
        assert f.read() == moved
    assert fs2.size("hybrid://lake/t/a.parquet") == len(moved)


def test_a_cold_read_follows_a_file_that_moves_while_it_is_open(make_lake, tmp_path):
    fs, _, stores = make_lake(60)
    data = os.urandom(200_000)
    put(tmp_path / "hdfs", "t/a.parquet", data, 1_700_000_000.0)
    with fs.open("hybrid://lake/t/a.parquet", "rb", block_size=4096, cache_type="none") as f:
        f.seek(len(data) - 100)
        assert f.read(100) == data[-100:]  # a ranged miss on hdfs
        put(tmp_path / "s3", "t/a.parquet", data, 1_700_000_500.0)  # migrated: copied, then removed
        (tmp_path / "hdfs" / "t/a.parquet").unlink()
        f.seek(0)
        assert f.read(5000) == data[:5000]
    assert stores["s3"].calls.get("open", 0) >= 1


def test_listings_are_shared_through_the_catalog_within_listing_sync_interval(make_lake, tmp_path):
    for i in range(2):
        put(tmp_path / "hdfs", f"t/part-{i}.parquet", b"x" * 10, 1_700_000_000.0)
    fs, _, stores = make_lake(60, listing_sync_interval=3600)
    assert len(fs.glob("hybrid://lake/t/*.parquet")) == 2
    assert stores["hdfs"].calls == {"list": 2}

    fs, _, stores = make_lake(60, listing_sync_interval=3600)  # another task: answered from the catalog
    assert [e["size"] for e in fs.ls("hybrid://lake/t")] == [10, 10]
    assert fs.glob("hybrid://lake/t/*.parquet") == ["lake/t/part-0.parquet", "lake/t/part-1.parquet"]
    assert stores["s3"].calls == {} and stores["hdfs"].calls == {}

    put(tmp_path / "hdfs", "t/part-2.parquet", b"x" * 10, 1_700_000_000.0)  # behind the mount's back
    fs, _, _ = make_lake(60, listing_sync_interval=3600)
    assert len(fs.glob("hybrid://lake/t/*.parquet")) == 2  # not seen before the interval is up (documented)

    with fs.open("hybrid://lake/t/part-3.parquet", "wb") as f:  # a change through the mount: seen at once
        f.write(b"y" * 5)
    fs, _, stores = make_lake(60, listing_sync_interval=3600)
    assert len(fs.glob("hybrid://lake/t/*.parquet")) == 4
    assert stores["hdfs"].calls == {"list": 2}


def test_listings_are_not_stored_by_default(make_lake, tmp_path):
    put(tmp_path / "hdfs", "t/a.parquet", b"x", 1_700_000_000.0)
    for _ in range(2):
        fs, mount, stores = make_lake(60)
        assert fs.glob("hybrid://lake/t/*.parquet") == ["lake/t/a.parquet"]
        assert stores["hdfs"].calls == {"list": 2}
    assert mount.cache.catalog.listing("lake", "t", None) is None


def test_a_stored_listing_is_used_until_listing_sync_interval_passes(tmp_path):
    now = [1_800_000_000.0]
    config = CacheConfig.from_options(
        {"cache": {"tiers": [{"alias": "SSD", "uri": f"file://{tmp_path}/tier", "quota": "1MB"}],
                   "catalog_url": f"sqlite:///{tmp_path}/catalog.db", "listing_sync_interval": 30}}, "lake")
    manager = CacheManager("lake", config, clock=lambda: now[0])
    listed = []

    def members(*names):
        def list_members():
            listed.append(names)
            return [FileInfo(path=f"d/{n}", size=len(n), mtime=1.0) for n in names]
        return list_members

    try:
        assert [e.path for e in manager.listing("d", members("a", "b"))] == ["d/a", "d/b"]
        now[0] += 29
        assert [e.path for e in manager.listing("d", members("a", "b", "c"))] == ["d/a", "d/b"]
        now[0] += 1
        assert [e.path for e in manager.listing("d", members("a", "b", "c"))] == ["d/a", "d/b", "d/c"]
        assert len(listed) == 2
        manager.invalidate("d/c")  # a change through the mount forgets the parent's listing
        assert [e.path for e in manager.listing("d", members("a"))] == ["d/a"]
    finally:
        manager.close()


def test_a_reader_holding_an_old_version_leaves_a_newer_cached_copy_alone(make_lake, tmp_path):
    fs, mount, _ = make_lake(0)  # every open checks the source
    put(tmp_path / "hdfs", "t/a.parquet", b"1" * 50_000, 1_700_000_000.0)
    with fs.open("hybrid://lake/t/a.parquet", "rb", block_size=4096, cache_type="none") as old_reader:
        old_reader.seek(40_000)
        assert old_reader.read(10) == b"1" * 10  # opened on version 1: a ranged miss, loaded alongside
        mount.cache.wait_for_background_loads()
        assert mount.cache.catalog.get("lake", "t/a.parquet").state == "ready"
        put(tmp_path / "hdfs", "t/a.parquet", b"2" * 50_000, 1_700_000_100.0)  # rewritten at the source
        other, _, _ = make_lake(0)
        assert read_all(other, "t/a.parquet") == b"2" * 50_000  # checks, drops version 1, caches version 2
        old_reader.seek(0)
        old_reader.read(10)
    entry = mount.cache.catalog.get("lake", "t/a.parquet")
    assert entry is not None and entry.state == "ready" and entry.source.mtime == 1_700_000_100.0


def test_a_ranged_miss_joins_the_running_load_of_its_file_instead_of_reading_it_twice(make_lake, tmp_path):
    fs, mount, stores = make_lake(60, join_running_load_up_to="1MB")  # opt-in (off by default)
    data = os.urandom(100_000)
    put(tmp_path / "hdfs", "t/a.parquet", data, 1_700_000_000.0)
    hdfs = stores["hdfs"]
    load_started, release = threading.Event(), threading.Event()
    open_read = hdfs.open_read

    def gated_open_read(path, offset=0, length=None):
        if offset == 0 and length is None:  # the whole-file load: hold it until the second range waits
            load_started.set()
            release.wait()
        return open_read(path, offset, length)

    hdfs.open_read = gated_open_read
    with fs.open("hybrid://lake/t/a.parquet", "rb", block_size=4096, cache_type="none") as f:
        f.seek(90_000)
        assert f.read(100) == data[90_000:90_100]  # a ranged miss: read from hdfs, load started alongside
        assert load_started.wait(timeout=60)
        second: list[bytes] = []
        reader = threading.Thread(target=lambda: (f.seek(1000), second.append(f.read(100))))
        catalog, get = mount.cache.catalog, mount.cache.catalog.get

        def get_then_release(*args, **kwargs):  # the reader has seen the copy still loading: let the load go
            entry = get(*args, **kwargs)
            if threading.current_thread() is reader:
                release.set()
            return entry

        catalog.get = get_then_release
        reader.start()
        reader.join(timeout=60)
    assert second == [data[1000:1100]]
    assert hdfs.calls["open"] == 2  # the first range and the load; the second range came from the copy
    assert mount.cache.report().tier("SSD").hits == 1


def test_a_cold_open_after_a_glob_reads_where_the_listing_saw_the_file_without_stating_it(make_lake, tmp_path):
    fs, mount, stores = make_lake(60)
    data = os.urandom(200_000)
    put(tmp_path / "hdfs", "t/a.parquet", data, 1_700_000_000.0)
    fs.glob("hybrid://lake/t/*.parquet")
    reset(stores)
    with fs.open("hybrid://lake/t/a.parquet", "rb") as f:
        assert f.read() == data
    assert stores["s3"].calls == {} and stores["hdfs"].calls == {"open": 1}  # no info at either member


def test_without_a_cache_the_listing_is_not_trusted_across_calls(tmp_path):
    stores = {name: CountingStore(str(tmp_path / name)) for name in ("s3", "hdfs")}
    mount = HybridMount.from_options("lake", local_mount_extra(tmp_path, "s3,hdfs", "hdfs"), stores=stores)
    fs = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)
    put(tmp_path / "hdfs", "t/a.parquet", b"old", 1_700_000_000.0)
    fs.glob("hybrid://lake/t/*.parquet")
    put(tmp_path / "hdfs", "t/a.parquet", b"newer", 1_700_000_100.0)
    reset(stores)
    with fs.open("hybrid://lake/t/a.parquet", "rb") as f:
        assert f.read() == b"newer"  # the open stated the file again
    assert stores["hdfs"].calls["info"] == 1


def test_a_file_moved_after_the_listing_is_read_from_its_new_member_with_its_bytes(make_lake, tmp_path):
    fs, mount, stores = make_lake(60)
    data = os.urandom(150_000)
    put(tmp_path / "hdfs", "t/a.parquet", data, 1_700_000_000.0)
    fs.glob("hybrid://lake/t/*.parquet")  # seen at hdfs
    put(tmp_path / "s3", "t/a.parquet", data, 1_700_000_050.0)  # migrated: copied to s3, removed from hdfs
    os.remove(tmp_path / "hdfs" / "t/a.parquet")
    with fs.open("hybrid://lake/t/a.parquet", "rb") as f:
        assert f.read() == data


def test_a_file_replaced_after_the_listing_by_another_of_another_size_is_refused(make_lake, tmp_path):
    fs, mount, stores = make_lake(60)
    put(tmp_path / "hdfs", "t/a.parquet", b"1" * 50_000, 1_700_000_000.0)
    fs.glob("hybrid://lake/t/*.parquet")
    put(tmp_path / "s3", "t/a.parquet", b"2" * 60_000, 1_700_000_050.0)
    os.remove(tmp_path / "hdfs" / "t/a.parquet")
    with pytest.raises(FileChangedError, match="another file"), fs.open("hybrid://lake/t/a.parquet", "rb") as f:
        f.read()


def test_a_footer_read_costs_one_request_and_ranges_are_fetched_once(make_lake, tmp_path):
    fs, mount, stores = make_lake(60, join_running_load_up_to="10MB", scan_read_ahead=0)  # a footer read's own load
    data = os.urandom(1_000_000)
    put(tmp_path / "hdfs", "t/a.parquet", data, 1_700_000_000.0)
    fs.glob("hybrid://lake/t/*.parquet")
    reset(stores)
    with fs.open("hybrid://lake/t/a.parquet", "rb", cache_type="none") as f:
        f.seek(len(data) - 8)
        assert f.read(8) == data[-8:]  # Parquet: the footer's length ...
        f.seek(len(data) - 5008)
        assert f.read(5000) == data[-5008:-8]  # ... then the footer, from the same request
        f.seek(1000)
        assert f.read(300_000) == data[1000:301_000]  # a column chunk: from the load, not a third request
    mount.cache.wait_for_background_loads()
    assert stores["hdfs"].calls["open"] == 2  # the tail, and the whole-file load its read started
    assert mount.cache.catalog.get("lake", "t/a.parquet").state == "ready"


def test_a_warm_file_is_read_directly_from_the_tier_with_the_right_bytes(make_lake, tmp_path):
    fs, mount, stores = make_lake(60)
    data = os.urandom(300_000)
    put(tmp_path / "hdfs", "t/a.parquet", data, 1_700_000_000.0)
    assert read_all(fs, "t/a.parquet") == data  # cold: fills the cache
    reset(stores)
    with fs.open("hybrid://lake/t/a.parquet", "rb") as f:
        assert f._direct is not None
        assert f.read(10) == data[:10]
        f.seek(-100, 2)
        assert f.read(1000) == data[-100:] and f.read(5) == b""
        f.seek(123_456)
        buffer = bytearray(1000)
        assert f.readinto(buffer) == 1000 and bytes(buffer) == data[123_456:124_456]
        assert f.tell() == 124_456
    assert stores["hdfs"].calls == {} and stores["s3"].calls == {}


def test_a_copy_opened_again_needs_no_catalog_lookup_within_the_interval_and_is_checked_after(make_lake, tmp_path):
    fs, mount, stores = make_lake(60)
    now = [1_800_000_000.0]
    mount.cache.clock = lambda: now[0]
    put(tmp_path / "hdfs", "t/a.parquet", b"a" * 1000, 1_700_000_000.0)
    assert read_all(fs, "t/a.parquet") == b"a" * 1000  # cold: fills the cache
    fs = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)
    assert read_all(fs, "t/a.parquet") == b"a" * 1000  # warm: looked up in the catalog once
    catalog, get, looked_up = mount.cache.catalog, mount.cache.catalog.get, []
    catalog.get = lambda *args, **kwargs: looked_up.append(args) or get(*args, **kwargs)
    try:
        assert read_all(fs, "t/a.parquet") == b"a" * 1000
        assert looked_up == []
        put(tmp_path / "hdfs", "t/a.parquet", b"b" * 1000, 1_700_000_100.0)  # changed at the source directly
        now[0] += 61  # the copy's freshness check is due: it is looked up and checked again
        fresh = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)
        assert read_all(fresh, "t/a.parquet") == b"b" * 1000
        assert looked_up
    finally:
        catalog.get = get


def _scan_lake(make_lake, tmp_path, files: int, **cache):
    fs, mount, stores = make_lake(60, **cache)
    data = {f"t/part-{i}.parquet": os.urandom(20_000 + i) for i in range(files)}
    for path, body in data.items():
        put(tmp_path / "hdfs", path, body, 1_700_000_000.0)
    assert len(fs.glob("hybrid://lake/t/*.parquet")) == files
    reset(stores)
    return fs, mount, stores, data


def _ready(mount, data) -> list[str]:
    mount.cache.wait_for_background_loads()
    return [path for path in data if (e := mount.cache.catalog.get("lake", path)) is not None and e.state == "ready"]


def test_a_globbed_scan_loads_its_next_files_ahead_of_the_reader_each_once(make_lake, tmp_path):
    fs, mount, stores, data = _scan_lake(make_lake, tmp_path, 7, join_running_load_up_to="1MB", scan_read_ahead=3)
    paths = list(data)
    reader = fs.open(f"hybrid://lake/{paths[0]}", "rb", cache_type="none")  # cold, first of its scan
    assert _ready(mount, data) == paths[:4]  # itself and the 3 after it, before a byte was asked for
    with reader:
        reader.seek(-8, 2)
        assert reader.read(8) == data[paths[0]][-8:]  # the footer: from the copy, no request of its own
        reader.seek(0)
        assert reader.read() == data[paths[0]]
    for path in paths[1:4]:  # warm: read from the copies, nothing more is loaded
        assert read_all(fs, path) == data[path]
    assert _ready(mount, data) == paths[:4]
    assert read_all(fs, paths[4]) == data[paths[4]]  # cold, in sequence: loads itself and what is left
    assert _ready(mount, data) == paths
    assert stores["hdfs"].calls["open"] == 7 and stores["s3"].calls == {}  # each file crossed once, whole


def test_a_scan_skipping_files_reads_ahead_only_once_its_opens_follow_each_other(make_lake, tmp_path):
    fs, mount, stores, data = _scan_lake(make_lake, tmp_path, 8, join_running_load_up_to="1MB", scan_read_ahead=2)
    paths = list(data)
    with fs.open(f"hybrid://lake/{paths[3]}", "rb"):  # a jump (partitions pruned): no read-ahead
        assert _ready(mount, data) == []
    with fs.open(f"hybrid://lake/{paths[4]}", "rb"):  # the next one: read ahead from here
        assert _ready(mount, data) == paths[4:7]


@pytest.mark.parametrize("cache", [{}, {"join_running_load_up_to": "1MB", "scan_read_ahead": 0},
                                   {"join_running_load_up_to": "10KB"}])
def test_no_read_ahead_where_readers_would_not_wait_for_the_loads(make_lake, tmp_path, cache):
    """Off by default (no joining), when set to 0, and for files larger than ``join_running_load_up_to``."""
    fs, mount, stores, data = _scan_lake(make_lake, tmp_path, 4, **cache)
    with fs.open(f"hybrid://lake/{next(iter(data))}", "rb"):
        assert _ready(mount, data) == []
    assert stores["hdfs"].calls == {}


def test_a_glob_checks_its_files_copies_at_once_so_their_opens_look_up_nothing(make_lake, tmp_path):
    fs, mount, stores, data = _scan_lake(make_lake, tmp_path, 5)
    for path in data:
        assert read_all(fs, path) == data[path]  # cold: fills the cache
    mount.cache.wait_for_background_loads()
    put(tmp_path / "hdfs", "t/part-4.parquet", b"rewritten", 1_700_000_100.0)  # its copy is now stale
    catalog = mount.cache.catalog
    gets, get = [], catalog.get
    catalog.get = lambda *args, **kwargs: gets.append(args) or get(*args, **kwargs)
    fresh_fs = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)  # nothing remembered yet
    assert len(fresh_fs.glob("hybrid://lake/t/*.parquet")) == 5
    reset(stores)
    for path in list(data)[:4]:
        with fresh_fs.open(f"hybrid://lake/{path}", "rb") as f:
            assert f._entry is not None and f.read() == data[path]  # from the copy
    assert gets == [] and stores["hdfs"].calls == {}
    assert read_all(fresh_fs, "t/part-4.parquet") == b"rewritten"  # the stale copy was never served
    assert stores["hdfs"].calls["open"] == 1


def test_a_glob_from_the_catalogs_listing_finds_its_files_copies_in_one_scan(make_lake, tmp_path):
    fs, mount, stores, data = _scan_lake(make_lake, tmp_path, 5, listing_sync_interval=60)
    for path in data:
        assert read_all(fs, path) == data[path]  # cold: fills the cache
    mount.cache.wait_for_background_loads()
    mount.cache.free(["t/part-4.parquet"])  # this one is read from its source again
    reset(stores)
    catalog = mount.cache.catalog
    gets, get = [], catalog.get
    catalog.get = lambda *args, **kwargs: gets.append(args[1]) or get(*args, **kwargs)
    fresh_fs = HybridFileSystem(mounts={"lake": mount}, skip_instance_cache=True)  # nothing remembered yet
    assert len(fresh_fs.glob("hybrid://lake/t/*.parquet")) == 5  # the catalog's listing: no source request
    for path in list(data)[:4]:
        with fresh_fs.open(f"hybrid://lake/{path}", "rb") as f:
            assert f._entry is not None and f.read() == data[path]  # from the copy
    assert gets == [] and stores["hdfs"].calls == {} and stores["s3"].calls == {}
    assert read_all(fresh_fs, "t/part-4.parquet") == data["t/part-4.parquet"]
    assert set(gets) == {"t/part-4.parquet"} and stores["hdfs"].calls["open"] == 1  # looked up, read at its source
