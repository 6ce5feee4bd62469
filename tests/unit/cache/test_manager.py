"""CacheManager on local directory tiers and a SQLite catalog: read-through fill, freshness, eviction,
pins, TTL, free and report. Time is an injected clock; nothing sleeps."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from airflow_hybrid.cache import CacheConfig, CacheManager, CacheQuotaError, LoadResult, UnknownTierError
from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.cache.tee import FillingReader
from airflow_hybrid.stores.base import FileInfo
from airflow_hybrid.stores.local import LocalStore
from tests.doubles import CountingStore, MemberSource


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds




@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def source_store(tmp_path) -> CountingStore:
    (tmp_path / "src").mkdir()
    return CountingStore(str(tmp_path / "src"))


def put(store: LocalStore, path: str, data: bytes, mtime: float = 1_700_000_000.0) -> FileInfo:
    local = Path(store.root, path)
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    os.utime(local, (mtime, mtime))
    return LocalStore.info(store, path)


def make_manager(tmp_path, clock, source_store=None, tiers=None, **cache) -> CacheManager:
    tiers = tiers or [{"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": 1000,
                       "high_watermark": 0.9, "low_watermark": 0.5}]
    config = CacheConfig.from_options(
        {"cache": {"tiers": tiers, "catalog_url": f"sqlite:///{tmp_path}/catalog.db", **cache}}, "lake"
    )
    catalog = Catalog(config.catalog_url)
    source = MemberSource(source_store) if source_store is not None else None
    return CacheManager("lake", config, catalog=catalog, clock=clock, source=source)


def files_in(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def read_all(stream, chunk: int = 7) -> bytes:
    out = bytearray()
    while data := stream.read(chunk):
        out += data
    return bytes(out)


def load(manager: CacheManager, store: LocalStore, path: str, **kwargs) -> LoadResult:
    info = LocalStore.info(store, path)
    return manager.load(path, "hdfs", info, lambda: LocalStore.open_read(store, path), **kwargs)


# -- read-through fill --------------------------------------------------------------------------------
def test_fill_while_reading_tees_bytes_and_is_ready_only_after_eof(tmp_path, clock, source_store):
    data = os.urandom(300)
    info = put(source_store, "d/a.bin", data)
    manager = make_manager(tmp_path, clock)

    stream = manager.fill_while_reading("d/a.bin", "hdfs", info, LocalStore.open_read(source_store, "d/a.bin"))
    assert isinstance(stream, FillingReader)
    first = stream.read(100)
    assert first == data[:100]  # the reader gets bytes before any copy is complete
    entry = manager.catalog.get("lake", "d/a.bin")
    assert entry.state == "loading"
    assert manager.lookup("d/a.bin", info) is None  # a loading copy is never served
    rest = read_all(stream, 33)
    stream.close()

    assert first + rest == data
    entry = manager.lookup("d/a.bin", info)
    assert entry is not None and entry.state == "ready" and entry.size == 300
    with manager.open_cached(entry) as cached:
        assert cached.read() == data
    copies = files_in(tmp_path / "mem")
    assert len(copies) == 1 and copies[0].name == "a.bin" and copies[0].read_bytes() == data
    assert manager.report().tier("MEM").used == 300


def test_partial_read_abandons_the_fill(tmp_path, clock, source_store):
    data = os.urandom(5000)
    info = put(source_store, "a.bin", data)
    manager = make_manager(tmp_path, clock, tiers=[{"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": 10000}])

    stream = manager.fill_while_reading("a.bin", "hdfs", info, LocalStore.open_read(source_store, "a.bin"))
    assert stream.read(1000) == data[:1000]
    stream.close()

    assert manager.catalog.get("lake", "a.bin") is None
    assert manager.lookup("a.bin", info) is None
    assert files_in(tmp_path / "mem") == []  # no partial copy left behind
    assert manager.report().tier("MEM").used == 0


def test_reading_exactly_the_size_then_closing_completes_the_fill(tmp_path, clock, source_store):
    data = os.urandom(256)
    info = put(source_store, "a.bin", data)
    manager = make_manager(tmp_path, clock)
    stream = manager.fill_while_reading("a.bin", "hdfs", info, LocalStore.open_read(source_store, "a.bin"))
    assert stream.read(256) == data  # never reads the empty chunk at EOF
    stream.close()
    assert manager.lookup("a.bin", info).state == "ready"


def test_source_longer_than_announced_is_not_cached(tmp_path, clock, source_store):
    put(source_store, "a.bin", b"x" * 200)
    stale = FileInfo("a.bin", size=150, mtime=1.0)
    manager = make_manager(tmp_path, clock)
    stream = manager.fill_while_reading("a.bin", "hdfs", stale, LocalStore.open_read(source_store, "a.bin"))
    assert read_all(stream, 64) == b"x" * 200  # the reader still gets every byte
    stream.close()
    assert manager.catalog.get("lake", "a.bin") is None
    assert files_in(tmp_path / "mem") == []


def test_tier_failure_does_not_disturb_the_reader(tmp_path, clock, source_store):
    data = os.urandom(400)
    info = put(source_store, "a.bin", data)
    manager = make_manager(tmp_path, clock)

    def broken_write(location, stream, size_hint=None):
        stream.read(10)
        raise OSError("disk full")

    manager.tier("MEM").write = broken_write
    stream = manager.fill_while_reading("a.bin", "hdfs", info, LocalStore.open_read(source_store, "a.bin"))
    assert read_all(stream, 50) == data
    stream.close()
    assert manager.catalog.get("lake", "a.bin") is None
    assert manager.report().tier("MEM").used == 0


def test_second_reader_during_a_fill_reads_the_source_without_caching(tmp_path, clock, source_store):
    data = os.urandom(300)
    info = put(source_store, "a.bin", data)
    manager = make_manager(tmp_path, clock)
    filling = manager.fill_while_reading("a.bin", "hdfs", info, LocalStore.open_read(source_store, "a.bin"))
    filling.read(10)

    raw = LocalStore.open_read(source_store, "a.bin")
    second = manager.fill_while_reading("a.bin", "hdfs", info, raw)
    assert second is raw  # busy: the source stream itself, no second load
    assert second.read() == data
    second.close()
    assert read_all(filling, 100) == data[10:]
    filling.close()
    assert manager.report().tier("MEM").used == 300  # counted once


# -- warm reads and freshness -------------------------------------------------------------------------
def test_warm_read_is_served_from_the_tier_without_touching_the_source(tmp_path, clock, source_store):
    data = os.urandom(700)
    put(source_store, "t/part-0.parquet", data)
    manager = make_manager(tmp_path, clock, source_store, metadata_sync_interval=-1)

    with manager.open("t/part-0.parquet") as cold:
        assert read_all(cold, 100) == data
    assert source_store.calls["open"] == 1

    before = (source_store.calls["open"], source_store.calls["info"])
    for _ in range(3):
        with manager.open("t/part-0.parquet") as warm:
            assert warm.read() == data
    assert (source_store.calls["open"], source_store.calls["info"]) == before  # neither opened nor stat'ed
    with manager.open("t/part-0.parquet", offset=100, length=50) as ranged:
        assert ranged.read() == data[100:150]
    assert manager.info("t/part-0.parquet").size == 700
    assert (source_store.calls["open"], source_store.calls["info"]) == before
    report = manager.report().tier("MEM")
    assert (report.hits, report.misses, report.files) == (4, 1, 1)


def test_metadata_sync_interval_zero_checks_every_open(tmp_path, clock, source_store):
    info = put(source_store, "a.bin", b"v1" * 50)
    manager = make_manager(tmp_path, clock, metadata_sync_interval=0)
    load(manager, source_store, "a.bin")
    calls = []

    def stat():
        calls.append(1)
        return LocalStore.info(source_store, "a.bin")

    assert manager.lookup("a.bin", stat) is not None
    assert manager.lookup("a.bin", stat) is not None
    assert len(calls) == 2
    put(source_store, "a.bin", b"v2" * 60, mtime=info.mtime + 10)
    assert manager.lookup("a.bin", stat) is None  # changed source detected at once
    assert manager.catalog.get("lake", "a.bin") is None  # and the copy invalidated


def test_metadata_sync_interval_minus_one_never_checks(tmp_path, clock, source_store):
    info = put(source_store, "a.bin", b"v1" * 50)
    manager = make_manager(tmp_path, clock, metadata_sync_interval=-1)
    load(manager, source_store, "a.bin")
    put(source_store, "a.bin", b"v2" * 60, mtime=info.mtime + 10)

    def stat():
        raise AssertionError("the source must not be checked")

    clock.advance(10**6)
    entry = manager.lookup("a.bin", stat)
    assert entry is not None and entry.size == 100  # the old copy is still served (Alluxio's -1)


def test_metadata_sync_interval_n_checks_at_most_every_n_seconds(tmp_path, clock, source_store):
    info = put(source_store, "a.bin", b"v1" * 50)
    manager = make_manager(tmp_path, clock, source_store, metadata_sync_interval=60)
    with manager.open("a.bin") as cold:
        assert cold.read() == b"v1" * 50
    calls = []

    def stat():
        calls.append(clock.now)
        return LocalStore.info(source_store, "a.bin")

    clock.advance(30)
    assert manager.lookup("a.bin", stat) is not None
    assert calls == []  # synced 30 s ago: not due
    put(source_store, "a.bin", b"v2" * 60, mtime=info.mtime + 10)
    clock.advance(29)
    assert manager.lookup("a.bin", stat) is not None  # still within the interval: the old copy is served
    assert calls == []
    clock.advance(1)
    assert manager.lookup("a.bin", stat) is None  # 60 s: checked, changed, invalidated
    assert len(calls) == 1

    opens = source_store.calls["open"]
    with manager.open("a.bin") as reloaded:
        assert reloaded.read() == b"v2" * 60
    assert source_store.calls["open"] == opens + 1
    with manager.open("a.bin") as warm:
        assert warm.read() == b"v2" * 60  # the new version is cached
    assert source_store.calls["open"] == opens + 1


def test_unchanged_source_check_restarts_the_interval(tmp_path, clock, source_store):
    put(source_store, "a.bin", b"x" * 10)
    manager = make_manager(tmp_path, clock, metadata_sync_interval=60)
    load(manager, source_store, "a.bin")
    calls = []

    def stat():
        calls.append(1)
        return LocalStore.info(source_store, "a.bin")

    clock.advance(60)
    assert manager.lookup("a.bin", stat) is not None
    clock.advance(59)
    assert manager.lookup("a.bin", stat) is not None
    assert len(calls) == 1


def test_vanished_source_drops_the_copy(tmp_path, clock, source_store):
    put(source_store, "a.bin", b"x" * 10)
    manager = make_manager(tmp_path, clock, source_store, metadata_sync_interval=0)
    load(manager, source_store, "a.bin")
    os.remove(Path(source_store.root, "a.bin"))
    with pytest.raises(FileNotFoundError):
        manager.open("a.bin")
    assert manager.catalog.get("lake", "a.bin") is None
    assert files_in(tmp_path / "mem") == []


def test_ranged_miss_reads_the_source_and_loads_the_whole_file_alongside(tmp_path, clock, source_store):
    data = os.urandom(500)
    put(source_store, "a.parquet", data)
    manager = make_manager(tmp_path, clock, source_store)
    with manager.open("a.parquet", offset=492, length=8) as footer:
        assert footer.read() == data[492:]
    manager.wait_for_background_loads()
    entry = manager.lookup("a.parquet", LocalStore.info(source_store, "a.parquet"))
    assert entry is not None and entry.size == 500
    manager.close()


def test_cache_on_read_off_never_fills(tmp_path, clock, source_store):
    put(source_store, "a.bin", b"abc")
    manager = make_manager(tmp_path, clock, source_store, cache_on_read=False)
    with manager.open("a.bin") as stream:
        assert stream.read() == b"abc"
    assert manager.catalog.get("lake", "a.bin") is None
    assert manager.report().tier("MEM").misses == 1


# -- prefetch -----------------------------------------------------------------------------------------
def test_load_skips_fresh_copies_and_replaces_stale_ones(tmp_path, clock, source_store):
    info = put(source_store, "a.bin", b"1" * 100)
    manager = make_manager(tmp_path, clock)
    first = load(manager, source_store, "a.bin")
    assert (first.status, first.bytes) == ("loaded", 100)
    opens = source_store.calls["open"]
    assert load(manager, source_store, "a.bin").status == "fresh"
    assert source_store.calls["open"] == opens
    put(source_store, "a.bin", b"2" * 120, mtime=info.mtime + 1)
    again = load(manager, source_store, "a.bin")
    assert (again.status, again.bytes) == ("loaded", 120)
    with manager.open_cached(again.entry) as cached:
        assert cached.read() == b"2" * 120
    assert len(files_in(tmp_path / "mem")) == 1
    assert manager.report().tier("MEM").used == 120


def test_load_into_a_named_tier_and_unknown_tier(tmp_path, clock, source_store):
    put(source_store, "a.bin", b"a" * 10)
    tiers = [
        {"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": 100},
        {"alias": "SSD", "uri": f"file://{tmp_path}/ssd", "quota": 1000},
    ]
    manager = make_manager(tmp_path, clock, tiers=tiers)
    assert load(manager, source_store, "a.bin", tier="ssd").entry.tier == "SSD"
    assert len(files_in(tmp_path / "ssd")) == 1 and files_in(tmp_path / "mem") == []
    with pytest.raises(UnknownTierError, match="unknown cache tier 'NVME' for mount 'lake'; configured tiers: MEM, SSD"):
        load(manager, source_store, "a.bin", tier="NVME")
    with pytest.raises(UnknownTierError):
        manager.evict("NVME")


def test_failed_source_read_leaves_nothing(tmp_path, clock, source_store):
    info = put(source_store, "a.bin", b"a" * 100)
    manager = make_manager(tmp_path, clock)

    class Failing(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, b):
            raise OSError("connection reset")

    with pytest.raises(OSError, match="connection reset"):
        manager.load("a.bin", "hdfs", info, Failing)
    assert manager.catalog.get("lake", "a.bin") is None
    assert files_in(tmp_path / "mem") == []
    assert manager.report().tier("MEM").used == 0


# -- eviction, pins, TTL ------------------------------------------------------------------------------
def _fill_four(manager, store, clock, ttl_for_d=None):
    for name in "abcd":
        put(store, name, name.encode() * 200)
        load(manager, store, name, ttl=ttl_for_d if name == "d" else None)
        clock.advance(10)


def test_eviction_takes_ttl_expired_first_then_lru(tmp_path, clock, source_store):
    # quota 1000, high 0.9, low 0.6: 800 used + 200 more passes 900, so evict until used + 200 <= 600.
    tiers = [{"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": 1000, "high_watermark": 0.9,
              "low_watermark": 0.6}]
    manager = make_manager(tmp_path, clock, tiers=tiers)
    _fill_four(manager, source_store, clock, ttl_for_d=5)  # d: newest, but its TTL has passed
    with manager.open_cached(manager.lookup("a")):  # a becomes the most recently used
        pass
    put(source_store, "e", b"e" * 200)
    load(manager, source_store, "e")

    cached = sorted(e.path for e in manager.entries())
    assert cached == ["a", "c", "e"]  # d (expired) then b (least recently used) were evicted
    assert manager.report().tier("MEM").used == 600
    assert len(files_in(tmp_path / "mem")) == 3


def test_no_eviction_below_the_high_watermark(tmp_path, clock, source_store):
    manager = make_manager(tmp_path, clock)  # quota 1000, high 0.9
    for name in "abcd":
        put(source_store, name, b"x" * 225)
        load(manager, source_store, name)
    assert manager.report().tier("MEM").used == 900
    assert manager.evict().files == 0
    assert manager.evict(force=True).files == 2  # down to the low watermark (500)
    assert manager.report().tier("MEM").used == 450


def test_pins_survive_pressure(tmp_path, clock, source_store):
    manager = make_manager(tmp_path, clock)  # quota 1000, high 0.9, low 0.5
    _fill_four(manager, source_store, clock)
    assert manager.pin(["a", "b"]).files == 2
    for name in "efghij":
        put(source_store, name, name.encode() * 200)
        load(manager, source_store, name)
        clock.advance(10)
    paths = {e.path for e in manager.entries()}
    assert {"a", "b"} <= paths
    report = manager.report().tier("MEM")
    assert report.pinned_bytes == 400 and report.used <= 1000

    # Once only pinned data is left there is no room, and the load is refused without changes.
    assert manager.pin([e.path for e in manager.entries() if not e.pinned]).files == 2
    put(source_store, "k", b"k" * 250)
    with pytest.raises(CacheQuotaError, match="tier 'MEM' is full"):
        load(manager, source_store, "k")
    assert manager.catalog.get("lake", "k") is None
    assert manager.unpin(["a"]) == 1
    assert load(manager, source_store, "k").status == "loaded"
    assert "a" not in {e.path for e in manager.entries()}


def test_over_quota_pin_is_refused_and_changes_nothing(tmp_path, clock, source_store):
    manager = make_manager(tmp_path, clock)  # quota 1000
    put(source_store, "cached", b"c" * 300)
    load(manager, source_store, "cached")
    manager.pin(["cached"])
    uncached = [FileInfo("big/1", 400, 1.0), FileInfo("big/2", 400, 1.0)]
    before = manager.report().to_dict()

    with pytest.raises(CacheQuotaError) as err:
        manager.pin(uncached)
    assert "tier 'MEM'" in str(err.value) and "quota of 1000 bytes" in str(err.value)
    assert manager.report().to_dict() == before
    with manager.catalog.read() as conn:
        pins = conn.execute(manager.catalog.t.pins.select()).all()
    assert [p.path for p in pins] == ["cached"]

    # Pinning within the quota before loading reserves the bytes; the load then comes in pinned.
    assert manager.pin(uncached[:1]).bytes == 400
    put(source_store, "big/1", b"b" * 400)
    assert load(manager, source_store, "big/1").entry.pinned


def test_load_with_pin_over_quota_changes_nothing(tmp_path, clock, source_store):
    manager = make_manager(tmp_path, clock)
    put(source_store, "a", b"a" * 700)
    put(source_store, "b", b"b" * 400)
    assert load(manager, source_store, "a", pin=True).entry.pinned
    with pytest.raises(CacheQuotaError):
        load(manager, source_store, "b", pin=True)
    assert manager.catalog.get("lake", "b") is None
    assert manager.report().tier("MEM").pinned_bytes == 700
    assert manager.unpin([""]) == 1


def test_ttl_expiry(tmp_path, clock, source_store):
    manager = make_manager(tmp_path, clock, default_ttl="1h", metadata_sync_interval=-1)
    put(source_store, "a", b"a" * 10)
    put(source_store, "b", b"b" * 10)
    put(source_store, "c", b"c" * 10)
    load(manager, source_store, "a", ttl=100, pin=True)
    load(manager, source_store, "b")  # default_ttl: 3600
    manager.load("c", "hdfs", LocalStore.info(source_store, "c"), lambda: LocalStore.open_read(source_store, "c"),
                  ttl=10**9)
    clock.advance(99)
    assert manager.lookup("a") is not None
    clock.advance(1)
    assert manager.lookup("a") is None  # expired at 100 s, pinned or not
    assert manager.catalog.get("lake", "a") is None

    clock.advance(3500)
    result = manager.expire()
    assert (result.files, result.bytes) == (1, 10)  # b
    assert [e.path for e in manager.entries()] == ["c"]
    assert len(files_in(tmp_path / "mem")) == 1


def test_free_drops_copies_never_sources(tmp_path, clock, source_store):
    manager = make_manager(tmp_path, clock)
    for path in ("dir/x", "dir/y", "dir2/z", "other"):
        put(source_store, path, b"1" * 50)
        load(manager, source_store, path)
    manager.pin(["dir/y"])

    result = manager.free(["dir"])
    assert (result.files, result.bytes, result.skipped_pinned) == (1, 50, 1)
    assert sorted(e.path for e in manager.entries()) == ["dir/y", "dir2/z", "other"]  # dir2 is not under dir
    assert manager.free(["dir/y"], force=True).files == 1
    assert manager.report().tier("MEM").pinned_bytes == 0
    assert all(Path(source_store.root, p).exists() for p in ("dir/x", "dir/y", "dir2/z", "other"))


def test_invalidate_drops_loading_and_ready_copies(tmp_path, clock, source_store):
    manager = make_manager(tmp_path, clock)
    info = put(source_store, "d/a", b"a" * 100)
    put(source_store, "d/b", b"b" * 100)
    load(manager, source_store, "d/b")
    stream = manager.fill_while_reading("d/a", "hdfs", info, LocalStore.open_read(source_store, "d/a"))
    stream.read(10)
    assert manager.invalidate("d").files == 2
    assert read_all(stream, 30) == b"a" * 90  # the reader is unaffected
    stream.close()
    assert list(manager.entries()) == []
    assert files_in(tmp_path / "mem") == []
    assert manager.report().tier("MEM").used == 0


# -- report -------------------------------------------------------------------------------------------
def test_report_text_and_dict(tmp_path, clock, source_store):
    tiers = [
        {"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": "1KB"},
        {"alias": "SSD", "uri": f"file://{tmp_path}/ssd", "quota": "2MB"},
    ]
    manager = make_manager(tmp_path, clock, source_store, tiers=tiers)
    put(source_store, "old", b"o" * 100)
    put(source_store, "new", b"n" * 300)
    load(manager, source_store, "old", pin=True)
    clock.advance(60)
    with manager.open("new") as s:
        s.read()
    with manager.open("new") as s:
        s.read()
    load(manager, source_store, "old", tier="SSD")  # already fresh in MEM: skipped

    report = manager.report()
    mem = report.to_dict()["tiers"][0]
    assert mem == {
        "alias": "MEM", "uri": f"file://{tmp_path}/mem", "capacity_bytes": 1024, "used_bytes": 400,
        "free_bytes": 624, "pinned_bytes": 100, "files": 2, "loading": 0, "hits": 1, "misses": 1,
        "hit_ratio": 0.5, "high_watermark": 0.95, "low_watermark": 0.7,
        "oldest_entry": {"path": "old", "created_at": "2027-01-15T08:00:00+00:00"},
    }
    assert report.to_dict()["capacity_bytes"] == 1024 + 2 * 1024**2
    text = report.to_text()
    assert "Total Capacity: 2.00MB" in text
    assert "Tier: MEM    Size: 1.00KB" in text
    assert "Used Capacity: 400B" in text
    assert "Hit Ratio: 50.0% (1 hits, 1 misses)" in text
    assert "Oldest Entry: old (cached 2027-01-15T08:00:00+00:00)" in text
    assert "Hit Ratio: - (0 hits, 0 misses)" in text  # SSD never read


def test_recover_is_idempotent_and_counts_nothing_on_a_clean_catalog(tmp_path, clock, source_store):
    manager = make_manager(tmp_path, clock)
    put(source_store, "a", b"a")
    load(manager, source_store, "a")
    assert manager.recover() == 0
    assert hashlib.sha256(manager.open_cached(manager.lookup("a")).read()).hexdigest() == hashlib.sha256(b"a").hexdigest()


# -- wiring with HybridMount --------------------------------------------------------------------------
def test_hybrid_mount_reads_through_its_cache(tmp_path, clock):
    from airflow_hybrid.mount import HybridMount

    (tmp_path / "src").mkdir()
    data = os.urandom(1000)
    (tmp_path / "src" / "a.bin").write_bytes(data)
    mount = HybridMount.from_options(
        "lake_mount",
        {
            "members": {"local": {"uri": f"file://{tmp_path}/src"}},
            "cache": {
                "tiers": [{"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": "1MB"}],
                "catalog_url": f"sqlite:///{tmp_path}/catalog.db",
            },
        },
    )
    cache = mount.cache
    assert isinstance(cache, CacheManager) and cache.mount_name == "lake_mount"
    with mount.open_read("a.bin") as cold:
        assert read_all(cold, 300) == data
    assert cache.lookup("a.bin", mount.info("a.bin")) is not None
    assert cache.info("a.bin").size == 1000
    with mount.open_read("a.bin") as warm:
        assert warm.read() == data
    assert cache.report().tier("MEM").hits == 1

    mount.write("a.bin", io.BytesIO(b"new content"))  # writes through the mount invalidate the copy
    assert cache.catalog.get("lake_mount", "a.bin") is None
    with mount.open_read("a.bin") as fresh:
        assert fresh.read() == b"new content"


def test_warm_uri_is_none_for_local_tiers_even_when_cached(tmp_path, clock, source_store):
    """The resolver asks ``warm_uri``: a local tier's copy is never handed to an engine outside the process."""
    put(source_store, "t/a.bin", b"x" * 10)
    manager = make_manager(tmp_path, clock)
    assert load(manager, source_store, "t/a.bin").status == LoadResult.LOADED
    assert manager.lookup("t/a.bin") is not None
    assert manager.warm_uri("t/a.bin") is None
    assert manager.warm_uri("t") is None
