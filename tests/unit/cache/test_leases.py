"""Shared tiers' mirrored layout, ``warm_uri`` and leases against local directories and a SQLite catalog: a
"shared" tier here is an ``s3://`` URI whose store the factory makes a local directory, so the layout and the
freshness rules are checked without a server (tests/integration/cache/test_shared_tier.py runs them on moto).
Time is an injected clock; nothing sleeps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.cache.catalog import Catalog, create_catalog_engine
from airflow_hybrid.cache.config import TierConfig
from airflow_hybrid.cache.exceptions import CacheConfigError, CacheError
from airflow_hybrid.cache.lease import covers
from airflow_hybrid.cache.schema import LATEST_VERSION, current_version, upgrade
from airflow_hybrid.cache.tier import Tier, copy_location, mirrored_location
from airflow_hybrid.stores.base import FileInfo
from airflow_hybrid.stores.factory import store_from_uri
from airflow_hybrid.stores.local import LocalStore
from tests.doubles import MemberSource


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def put(root: Path, path: str, data: bytes, mtime: float = 1_700_000_000.0) -> None:
    local = root / path
    local.parent.mkdir(parents=True, exist_ok=True)
    local.write_bytes(data)
    os.utime(local, (mtime, mtime))


def files_in(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def lake(tmp_path):
    """``(manager, clock, source root, shared tier root, local tier root)``: tiers ``SHARED`` (``s3://``,
    default; a local directory underneath) and ``MEM`` (``file://``), quota 1000 bytes each."""
    clock = Clock()
    (tmp_path / "src").mkdir()
    shared_root = tmp_path / "shared"

    def factory(uri, conn_id=None, options=None):
        if uri.startswith("s3://"):
            shared_root.mkdir(exist_ok=True)
            store = LocalStore(str(shared_root))
            store.root_uri = uri  # what engines would read
            return store
        return store_from_uri(uri, conn_id, options)

    config = CacheConfig.from_options({"cache": {
        "tiers": [
            {"alias": "SHARED", "uri": "s3://bucket/cache", "quota": 1000, "low_watermark": 0.05},
            {"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": 1000},
        ],
        "default_tier": "SHARED",
        "catalog_url": f"sqlite:///{tmp_path}/catalog.db",
        "metadata_sync_interval": 60,
    }}, "lake")
    source = LocalStore(str(tmp_path / "src"))
    manager = CacheManager("lake", config, factory, catalog=Catalog(config.catalog_url), clock=clock,
                           source=MemberSource(source))
    yield manager, clock, tmp_path / "src", shared_root, tmp_path / "mem"
    manager.close()


def load(manager: CacheManager, src: Path, path: str, tier: str | None = None):
    store = LocalStore(str(src))
    info = store.info(path)
    return manager.load(path, "hdfs", info, lambda: store.open_read(path), tier=tier)


def info_of(src: Path, path: str) -> FileInfo:
    return LocalStore(str(src)).info(path)


# -- layout -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("uri", "shared"), [
    ("s3://b/cache", True), ("s3a://b/cache", True), ("hdfs://nn:8020/cache", True),
    ("file:///mnt/ssd/cache", False), ("/dev/shm/cache", False),
])
def test_tiers_on_object_stores_and_hdfs_are_shared(uri, shared):
    assert Tier(TierConfig("T", uri, 1000), store_from_uri).shared is shared


def test_mirrored_locations_keep_the_logical_tree_and_a_visible_name():
    location = mirrored_location("my lake", "sales/region=eu/part-0.parquet", "ab" * 16)
    assert location == f"my_lake/sales/region=eu/{'ab' * 16}-part-0.parquet"
    long = mirrored_location("lake", "t/" + "x" * 300 + ".parquet", "cd" * 16)
    assert long.endswith(".parquet") and len(long.rsplit("/", 1)[1].encode()) <= 32 + 1 + 180
    assert mirrored_location("lake", "top.csv", "ef" * 16) == f"lake/{'ef' * 16}-top.csv"
    # Files engines skip at the source stay skipped in the copy.
    assert mirrored_location("lake", "t/_SUCCESS", "ab" * 16) == f"lake/t/_{'ab' * 16}-_SUCCESS"
    assert mirrored_location("lake", "t/.a.crc", "ab" * 16) == f"lake/t/.{'ab' * 16}-.a.crc"


def test_deleting_a_mirrored_copy_spares_its_neighbours(tmp_path):
    tier = Tier(TierConfig("T", "s3://b/cache", 1000), lambda *a: LocalStore(str(tmp_path)))
    mine, newer = mirrored_location("lake", "t/a.bin", "1" * 32), mirrored_location("lake", "t/a.bin", "2" * 32)
    for location in (mine, newer):
        put(tmp_path, location, b"x")
    tier.delete_copy(mine)
    tier.delete_copy(mine)  # idempotent
    assert files_in(tmp_path) == [newer]
    hashed = copy_location("lake", "t/a.bin", "3" * 32)
    put(tmp_path, hashed, b"y")
    tier.delete_copy(hashed)  # an entry loaded before keeps its hashed location: its directory goes
    assert files_in(tmp_path) == [newer] and not (tmp_path / hashed).parent.exists()


def test_loads_use_the_layout_of_their_tier(lake):
    manager, _, src, shared, mem = lake
    put(src, "t/a.bin", b"a" * 10)
    put(src, "t/b.bin", b"b" * 10)
    assert load(manager, src, "t/a.bin").entry.location.startswith("lake/t/")
    hashed = load(manager, src, "t/b.bin", tier="MEM").entry.location
    assert hashed.count("/") == 3 and hashed.endswith("/b.bin")
    assert [p.rsplit("-", 1)[1] for p in files_in(shared)] == ["a.bin"]
    assert files_in(mem) == [hashed]


# -- warm_uri -----------------------------------------------------------------------------------------
def test_warm_uri_of_a_file_and_a_directory(lake):
    manager, _, src, _, _ = lake
    for name in ("a", "b"):
        put(src, f"t/{name}.bin", name.encode() * 10)
        load(manager, src, f"t/{name}.bin")
    entry = manager.catalog.get("lake", "t/a.bin")
    assert manager.warm_uri("t/a.bin") == f"s3://bucket/cache/{entry.location}"
    listing = [info_of(src, "t/a.bin"), info_of(src, "t/b.bin")]
    assert manager.warm_uri("t", listing) == "s3://bucket/cache/lake/t"
    assert set(manager.warm_uris(listing)) == {"t/a.bin", "t/b.bin"}


def test_a_directory_is_cold_when_a_copy_is_elsewhere_or_in_the_old_layout(lake):
    manager, _, src, shared, _ = lake
    put(src, "t/a.bin", b"a" * 10)
    put(src, "t/b.bin", b"b" * 10)
    load(manager, src, "t/a.bin")
    load(manager, src, "t/b.bin", tier="MEM")
    listing = [info_of(src, "t/a.bin"), info_of(src, "t/b.bin")]
    assert manager.warm_uri("t", listing) is None  # one copy in a local tier
    assert manager.warm_uri("t/b.bin") is None
    manager.free(["t/b.bin"])

    # An entry in the hashed layout (cached before shared tiers mirrored) serves files, not directories.
    store = LocalStore(str(shared))
    location = copy_location("lake", "t/b.bin", "9" * 32)
    put(shared, location, b"b" * 10)
    with manager.catalog.write() as conn:
        entries = manager.catalog.t.entries
        row = conn.execute(sa.select(entries).where(entries.c.path == "t/a.bin")).one()._mapping
        conn.execute(entries.insert().values({**{k: v for k, v in row.items() if k != "id"},
                                              "path": "t/b.bin", "location": location}))
    assert store.exists(location)
    assert manager.warm_uri("t/b.bin", [info_of(src, "t/b.bin")]) == f"s3://bucket/cache/{location}"
    assert manager.warm_uri("t", listing) is None


def test_warm_uris_drops_what_the_listing_shows_changed_and_leaves_the_rest(lake):
    manager, _, src, _, _ = lake
    for path in ("t/a.bin", "t/b.bin", "t/sub/c.bin", "u/d.bin"):
        put(src, path, b"x" * 10)
        load(manager, src, path)
    load(manager, src, "t/a.bin")
    a, c = info_of(src, "t/a.bin"), info_of(src, "t/sub/c.bin")
    changed = FileInfo(path=c.path, size=c.size + 1, mtime=c.mtime)
    uris = manager.warm_uris([a, changed])
    assert uris == {"t/a.bin": f"s3://bucket/cache/{manager.catalog.get('lake', 't/a.bin').location}"}
    assert {e.path for e in manager.entries()} == {"t/a.bin", "t/b.bin", "u/d.bin"}  # b unlisted: kept
    assert manager.warm_uris([]) == {}


def test_warm_uri_never_hands_out_a_stale_copy(lake):
    manager, clock, src, shared, _ = lake
    put(src, "t/a.bin", b"a" * 10)
    load(manager, src, "t/a.bin")
    put(src, "t/a.bin", b"A" * 12)  # changed at the source; no check due yet
    assert manager.warm_uri("t/a.bin") is not None  # within metadata_sync_interval, as lookup serves it
    clock.now += 61
    assert manager.warm_uri("t/a.bin") is None  # the check is due: the source changed
    assert manager.catalog.get("lake", "t/a.bin") is None and files_in(shared) == []


def test_a_fresh_listing_marks_copies_synced(lake):
    manager, clock, src, _, _ = lake
    put(src, "t/a.bin", b"a" * 10)
    load(manager, src, "t/a.bin")
    put(src, "t/b.bin", b"b" * 10)
    load(manager, src, "t/b.bin")
    clock.now += 1000
    listing = [info_of(src, "t/a.bin"), info_of(src, "t/b.bin")]
    assert manager.warm_uri("t", listing) is not None
    assert {e.last_synced_at for e in manager.entries("t")} == {clock.now}


def test_a_directory_without_a_listing_is_walked_when_the_source_can(lake):
    manager, _, src, _, _ = lake
    put(src, "t/a.bin", b"a" * 10)
    load(manager, src, "t/a.bin")
    assert manager.warm_uri("t") is None  # MemberSource offers no walk_files
    manager.source.walk_files = LocalStore(str(src)).walk_files
    assert manager.warm_uri("t") == "s3://bucket/cache/lake/t"
    assert manager.warm_uri("t", []) is None  # nothing listed: nothing to read


# -- leases -------------------------------------------------------------------------------------------
def test_lease_prefixes_cover_whole_names():
    assert covers("t", "t") and covers("t", "t/a") and covers("", "anything")
    assert not covers("t", "tt/a") and not covers("t/a", "t")


def test_a_lease_keeps_freed_copies_until_released(lake):
    manager, _, src, shared, _ = lake
    for name in ("a", "b"):
        put(src, f"t/{name}.bin", b"x" * 10)
        load(manager, src, f"t/{name}.bin")
    put(src, "tt/c.bin", b"c" * 10)
    load(manager, src, "tt/c.bin")
    lease = manager.lease("t", 300, "step")
    assert manager.free(["t", "tt"]).files == 3
    assert list(manager.entries()) == []
    kept = files_in(shared)
    assert len(kept) == 2 and all(k.startswith("lake/t/") for k in kept)  # "tt" is not under "t"
    assert manager.recover() == 0 and files_in(shared) == kept
    assert manager.release(lease) == 2
    assert files_in(shared) == [] and manager.catalog.trash_items("lake") == []
    assert manager.release(lease) == 0


def test_eviction_skips_leased_copies_and_stops_after_the_lease(lake):
    manager, clock, src, shared, _ = lake
    for name in ("a", "b", "c"):
        put(src, f"{name}/f.bin", b"x" * 100)
        load(manager, src, f"{name}/f.bin")
        clock.now += 1
    with manager.lease("a/f.bin", 300, "query"):
        manager.evict("SHARED", force=True)
        assert [e.path for e in manager.entries()] == ["a/f.bin"]
    clock.now += 1
    with manager.lease("", 300, "everything"):
        put(src, "d/f.bin", b"x" * 100)
        load(manager, src, "d/f.bin")
        assert manager.evict("SHARED", force=True).files == 0
    assert manager.evict("SHARED", force=True).files == 2
    assert files_in(shared) == []


def test_expired_leases_are_ignored_and_forgotten(lake):
    manager, clock, src, shared, _ = lake
    put(src, "t/a.bin", b"x" * 10)
    load(manager, src, "t/a.bin")
    lease = manager.lease("t", 30, "crashed")
    clock.now += 31
    assert manager.leases() == []
    manager.free(["t"])
    assert files_in(shared) == []
    manager.recover()
    with pytest.raises(CacheError, match="is gone"):
        manager.renew(lease, 60)


def test_the_report_lists_active_leases(lake):
    manager, clock, _, _, _ = lake
    assert manager.report().to_dict()["leases"] == []
    manager.lease("sales", 60, "emr-step-7")
    manager.lease("gone", 1, "old")
    clock.now += 30
    report = manager.report()
    assert [(lease.path, lease.holder) for lease in report.leases] == [("sales", "emr-step-7")]
    assert report.to_dict()["leases"][0]["holder"] == "emr-step-7"
    assert "sales held by emr-step-7 until" in report.to_text()


def test_renewing_a_lease_moves_its_end(lake):
    manager, clock, src, shared, _ = lake
    put(src, "t/a.bin", b"x" * 10)
    load(manager, src, "t/a.bin")
    lease = manager.renew(manager.lease("t", 30, "long step"), 600)
    assert lease.expires_at == clock.now + 600
    clock.now += 300
    manager.invalidate("t")
    assert len(files_in(shared)) == 1
    lease.release()
    assert files_in(shared) == []
    with pytest.raises(CacheConfigError, match="must be positive"):
        manager.lease("t", 0, "nobody")


def test_a_lease_taken_in_another_worker_holds(lake, tmp_path):
    manager, clock, src, shared, _ = lake
    put(src, "t/a.bin", b"x" * 10)
    load(manager, src, "t/a.bin")
    other = CacheManager("lake", manager.config, catalog=Catalog(manager.config.catalog_url), clock=clock,
                         store_factory=lambda *a: LocalStore(str(shared)))
    try:
        lease = other.lease("t", 300, "worker-2")
        assert [(held.holder, held.path) for held in manager.leases()] == [("worker-2", "t")]
        manager.free(["t"])
        assert len(files_in(shared)) == 1
        other.release(lease)
        manager.recover()
        assert files_in(shared) == []
    finally:
        other.close()


# -- schema -------------------------------------------------------------------------------------------
def test_a_version_3_catalog_upgrades_keeping_its_trash(tmp_path):
    url = f"sqlite:///{tmp_path}/catalog.db"
    engine = create_catalog_engine(url)
    with engine.connect() as conn:
        conn.execution_options(hybrid_begin="IMMEDIATE")
        with conn.begin():
            assert upgrade(conn, target=3) == [1, 2, 3]
            conn.execute(sa.text("INSERT INTO hybrid_cache_trash (mount, tier, location, created_at)"
                                 " VALUES ('lake', 'SSD', 'lake/ab/old/x', 1.0)"))
    engine.dispose()
    with Catalog(url) as catalog:
        with catalog.read() as conn:
            assert current_version(conn) == LATEST_VERSION >= 4
            assert sa.inspect(conn).has_table("hybrid_cache_leases")
        (item,) = catalog.trash_items("lake")
        assert (item.location, item.path) == ("lake/ab/old/x", None)
