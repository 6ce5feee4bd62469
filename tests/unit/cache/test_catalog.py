"""Catalog schema: versioned upgrades, and the claim state machine on SQLite."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from airflow_hybrid.cache.catalog import Catalog, Claim, create_catalog_engine
from airflow_hybrid.cache.config import TierConfig
from airflow_hybrid.cache.entry import SourceFingerprint
from airflow_hybrid.cache.exceptions import CacheCatalogError
from airflow_hybrid.cache.schema import LATEST_VERSION, UPGRADES, current_version, upgrade

TIER = TierConfig("MEM", "file:///tmp/unused", quota=1000, high_watermark=0.9, low_watermark=0.5)


def _url(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/catalog.db"


def _write(engine):
    conn = engine.connect()
    conn.execution_options(hybrid_begin="IMMEDIATE")
    return conn


def test_fresh_catalog_is_created_at_latest_version(tmp_path):
    catalog = Catalog(_url(tmp_path))
    with catalog.read() as conn:
        assert current_version(conn) == LATEST_VERSION == UPGRADES[-1].version
        names = set(sa.inspect(conn).get_table_names())
    assert {"hybrid_cache_schema_version", "hybrid_cache_tiers", "hybrid_cache_entries", "hybrid_cache_pins",
            "hybrid_cache_trash"} <= names
    with catalog.read() as conn:
        journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert journal == "wal"


def test_upgrades_a_version_1_catalog_keeping_its_rows(tmp_path):
    engine = create_catalog_engine(_url(tmp_path))
    with _write(engine) as conn, conn.begin():
        assert upgrade(conn, target=1) == [1]
        assert not sa.inspect(conn).has_table("hybrid_cache_pins")
        conn.execute(
            sa.text(
                "INSERT INTO hybrid_cache_entries (mount, path, tier, location, source_member, source_size,"
                " source_mtime, size, pinned, created_at, last_access, hits, state)"
                " VALUES ('lake', 'a/b.parquet', 'MEM', 'loc', 'hdfs', 10, 5.0, 10, 0, 123.0, 124.0, 3, 'ready')"
            )
        )
    engine.dispose()

    catalog = Catalog(_url(tmp_path))  # opening upgrades it
    with catalog.read() as conn:
        assert current_version(conn) == LATEST_VERSION
        assert sa.inspect(conn).has_table("hybrid_cache_pins")
    entry = catalog.get("lake", "a/b.parquet")
    assert entry is not None
    assert entry.hits == 3 and entry.size == 10 and entry.state == "ready"
    assert entry.last_synced_at == 123.0  # back-filled from created_at by step 2

    # Re-opening applies nothing.
    with catalog.write() as conn:
        assert upgrade(conn) == []


def test_refuses_a_catalog_from_newer_code(tmp_path):
    Catalog(_url(tmp_path)).dispose()
    engine = create_catalog_engine(_url(tmp_path))
    with _write(engine) as conn, conn.begin():
        conn.execute(sa.text("UPDATE hybrid_cache_schema_version SET version = 99"))
    engine.dispose()
    with pytest.raises(CacheCatalogError, match="version 99, newer than this code supports"):
        Catalog(_url(tmp_path))


def test_table_prefix_isolates_catalogs(tmp_path):
    a = Catalog(_url(tmp_path), table_prefix="a_")
    b = Catalog(_url(tmp_path), table_prefix="b_")
    a.sync_tiers("lake", [TIER], 0.0)
    with b.read() as conn:
        assert sa.inspect(conn).has_table("a_tiers") and sa.inspect(conn).has_table("b_tiers")
    assert [u.alias for u in a.usage("lake")] == ["MEM"]
    assert b.usage("lake") == []


def _claim(catalog, path, size, now, loader="L1", lease=60.0):
    return catalog.claim(
        "lake", path, tier=TIER, location=f"lake/{path}.{loader}", size=size, source_member="hdfs",
        source_uri=None, source=SourceFingerprint(size, 1.0), loader_id=loader, lease_until=now + lease, now=now,
    )


def test_claim_state_machine(tmp_path):
    catalog = Catalog(_url(tmp_path))
    catalog.sync_tiers("lake", [TIER], 0.0)

    first = _claim(catalog, "f", 100, now=10.0, loader="L1")
    assert first.status == Claim.CLAIMED and first.entry.state == "loading"
    assert catalog.usage("lake")[0].reserved == 100

    # A second claimer while the lease is live is told the file is busy; nothing is double counted.
    assert _claim(catalog, "f", 100, now=20.0, loader="L2").status == Claim.BUSY
    assert catalog.usage("lake")[0].reserved == 100

    # The lease expired: the next claimer reclaims it (the old copy goes to the trash) and owns it.
    third = _claim(catalog, "f", 100, now=100.0, loader="L3")
    assert third.status == Claim.CLAIMED and third.entry.loader_id == "L3"
    assert [t.location for t in third.trash] == ["lake/f.L1"]
    assert catalog.usage("lake")[0].reserved == 100

    # The original loader finishing late is refused: its claim was lost.
    assert catalog.complete(first.entry.id, "L1", 100, now=101.0) is None
    ready = catalog.complete(third.entry.id, "L3", 90, now=101.0)
    assert ready is not None and ready.state == "ready" and ready.size == 90
    assert catalog.usage("lake")[0].reserved == 90  # adjusted to the verified size
    assert _claim(catalog, "f", 100, now=102.0, loader="L4").status == Claim.EXISTS


def test_start_mount_syncs_tiers_reclaims_stuck_loads_forgets_expired_leases_and_returns_the_trash(tmp_path):
    catalog = Catalog(_url(tmp_path))
    assert catalog.start_mount("lake", [TIER], 0.0) == []  # creates the tier row
    assert [u.quota for u in catalog.usage("lake")] == [1000]
    _claim(catalog, "stuck", 100, now=1.0, lease=5.0)
    _claim(catalog, "live", 100, now=1.0, lease=500.0)
    catalog.add_lease("lake", "d", "query", "old", now=1.0, expires_at=5.0)
    catalog.add_lease("lake", "e", "query", "new", now=1.0, expires_at=500.0)
    bigger = TierConfig("MEM", "file:///tmp/unused", quota=2000, high_watermark=0.9, low_watermark=0.5)

    trash = catalog.start_mount("lake", [bigger], 10.0)

    assert [t.location for t in trash] == ["lake/stuck.L1"]  # reclaimed just now, to delete
    assert catalog.get("lake", "stuck") is None and catalog.get("lake", "live").state == "loading"
    assert [lease.id for lease in catalog.active_leases("lake", 0.0)] == ["new"]  # "old" forgotten
    assert [(u.quota, u.reserved) for u in catalog.usage("lake")] == [(2000, 100)]


def test_claim_refuses_a_file_larger_than_the_quota_and_changes_nothing(tmp_path):
    catalog = Catalog(_url(tmp_path))
    catalog.sync_tiers("lake", [TIER], 0.0)
    claim = _claim(catalog, "huge", 1001, now=1.0)
    assert claim.status == Claim.NO_SPACE and "quota 1000" in claim.reason
    assert catalog.get("lake", "huge") is None
    assert catalog.usage("lake")[0].reserved == 0


def _aggregates(catalog, mount="lake"):
    """The tier figures counted from the rows, to compare with the counters the catalog keeps."""
    e, p = catalog.t.entries, catalog.t.pins
    with catalog.read() as conn:
        ready = [r for r in conn.execute(sa.select(e).where(e.c.mount == mount)) if r.state == "ready"]
        loading = conn.execute(sa.select(sa.func.count()).where(e.c.mount == mount, e.c.state == "loading")).scalar()
        reserved = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(e.c.size), 0)).where(e.c.mount == mount))
        pins = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(p.c.size), 0)).where(p.c.mount == mount))
        return {"files": len(ready), "ready_bytes": sum(r.size for r in ready), "loading": loading,
                "pinned_bytes": sum(r.size for r in ready if r.pinned), "reserved": reserved.scalar(),
                "pin_intent_bytes": pins.scalar()}


def _counters(catalog):
    (u,) = catalog.usage("lake")
    return {"files": u.files, "ready_bytes": u.ready_bytes, "loading": u.loading, "pinned_bytes": u.pinned_bytes,
            "reserved": u.reserved, "pin_intent_bytes": u.pin_intent_bytes}


def test_tier_counters_follow_every_change_of_the_entries_and_pins(tmp_path):
    """The report reads the tier counters, not the entries: after each kind of change they equal the
    aggregates over the rows (claim, complete with another size, pin before and after loading, unpin by
    prefix and by path, expire, evict, drop, abandon, reclaim)."""
    from airflow_hybrid.cache.catalog import PinRequest

    catalog = Catalog(_url(tmp_path))
    catalog.sync_tiers("lake", [TIER], 0.0)
    tiers = {"MEM": TIER}
    steps = []

    def check(what):
        steps.append(what)
        assert _counters(catalog) == _aggregates(catalog), steps

    a, b, c = (_claim(catalog, path, 100, now=1.0) for path in ("d/a", "d/b", "e/c"))
    check("claimed")
    catalog.pin("lake", [PinRequest("d/a"), PinRequest("x/later", 50, "MEM")], tiers, "MEM", 2.0)
    check("pinned a loading entry and a file not cached")
    catalog.complete(a.entry.id, "L1", 90, now=3.0)
    catalog.complete(b.entry.id, "L1", 80, now=3.0)
    check("completed with other sizes")
    catalog.pin("lake", [PinRequest("d/b")], tiers, "MEM", 4.0)
    check("pinned a ready entry")
    catalog.unpin_paths("lake", ["d/b"])
    check("unpinned a path")
    catalog.unpin("lake", "d")
    check("unpinned a directory")
    catalog.pin("lake", [PinRequest("d/a")], tiers, "MEM", 5.0)
    assert catalog.abandon(c.entry.id, "L1", now=6.0) is not None
    check("abandoned a load")
    ttl = catalog.claim("lake", "t", tier=TIER, location="lake/t", size=10, source_member="hdfs", source_uri=None,
                        source=SourceFingerprint(10, 1.0), loader_id="T", lease_until=70.0, now=7.0, ttl=1.0)
    catalog.complete(ttl.entry.id, "T", 10, now=7.0)
    catalog.pin("lake", [PinRequest("t")], tiers, "MEM", 7.0)
    check("pinned an entry with a TTL")
    assert len(catalog.expire("lake", now=9.0)) == 1
    check("expired a pinned entry (and its pin)")
    _claim(catalog, "stuck", 20, now=10.0, lease=1.0)
    assert len(catalog.reclaim_expired("lake", now=20.0)) == 1
    check("reclaimed an abandoned load")
    for i in range(8):
        loaded = _claim(catalog, f"f/{i}", 100, now=30.0 + i, loader=f"F{i}")
        catalog.complete(loaded.entry.id, f"F{i}", 100, now=30.0 + i)
    assert catalog.get("lake", "d/b") is None and catalog.get("lake", "d/a") is not None  # LRU, unpinned
    check("filled past the high watermark (the claims evicted)")
    catalog.evict("lake", TIER, now=40.0, force=True)
    check("evicted")
    catalog.drop("lake", [e.id for e in catalog.iter_entries("lake")], now=50.0)
    check("dropped everything ready")
    assert _counters(catalog)["pinned_bytes"] == 0 and _counters(catalog)["pin_intent_bytes"] == 140


def test_upgrade_to_version_6_back_fills_the_tier_counters(tmp_path):
    engine = create_catalog_engine(_url(tmp_path))
    with _write(engine) as conn, conn.begin():
        assert upgrade(conn, target=5) == [1, 2, 3, 4, 5]
        conn.execute(sa.text(
            "INSERT INTO hybrid_cache_tiers (mount, alias, uri, quota_bytes, reserved_bytes, hits, misses, updated_at)"
            " VALUES ('lake', 'MEM', 'file:///tmp/unused', 1000, 60, 0, 0, 1.0)"))
        for path, size, state, pinned in (("a", 10, "ready", 1), ("b", 20, "ready", 0), ("c", 30, "loading", 0)):
            conn.execute(sa.text(
                "INSERT INTO hybrid_cache_entries (mount, path, tier, location, source_member, source_size,"
                " source_mtime, size, pinned, created_at, last_access, hits, state)"
                f" VALUES ('lake', '{path}', 'MEM', 'loc', 'hdfs', {size}, 5.0, {size}, {pinned}, 1.0, 1.0, 0,"
                f" '{state}')"))
        conn.execute(sa.text("INSERT INTO hybrid_cache_pins (mount, path, tier, size, created_at)"
                             " VALUES ('lake', 'a', 'MEM', 10, 1.0), ('lake', 'z', 'MEM', 7, 1.0)"))
    engine.dispose()
    catalog = Catalog(_url(tmp_path))
    assert _counters(catalog) == _aggregates(catalog) == {
        "files": 2, "ready_bytes": 30, "loading": 1, "pinned_bytes": 10, "reserved": 60, "pin_intent_bytes": 17}


def test_a_claim_evicts_a_bounded_page_beyond_what_the_file_needs(tmp_path, monkeypatch):
    """However full the tier, a claim's transaction evicts at most a page past what its file needs to fit the
    quota; the rest of the way to the low watermark is left to the next claims or to evict (in pages too)."""
    import airflow_hybrid.cache.catalog as catalog_module

    catalog = Catalog(_url(tmp_path))
    catalog.sync_tiers("lake", [TIER], 0.0)
    for i in range(9):  # 900 bytes: at the high watermark, not past it
        loaded = _claim(catalog, f"f/{i}", 100, now=1.0 + i, loader=f"F{i}")
        catalog.complete(loaded.entry.id, f"F{i}", 100, now=1.0 + i)
    monkeypatch.setattr(catalog_module, "_BATCH", 2)
    claim = _claim(catalog, "new", 100, now=20.0, loader="N")
    assert claim.status == Claim.CLAIMED
    assert sorted(t.location for t in claim.trash) == ["lake/f/0.F0", "lake/f/1.F1"]  # LRU first, one page
    assert catalog.usage("lake")[0].reserved == 800
    big = _claim(catalog, "big", 500, now=21.0, loader="B")  # needs one more than a page to fit the quota
    assert big.status == Claim.CLAIMED
    assert sorted(t.location for t in big.trash) == ["lake/f/2.F2", "lake/f/3.F3", "lake/f/4.F4"]
    assert catalog.usage("lake")[0].reserved == 1000
    # evict goes on in pages of 2 through every ready entry; the two loading ones stay (they are not evictable)
    assert len(catalog.evict("lake", TIER, now=22.0, force=True)) == 4
    assert catalog.usage("lake")[0].reserved == 600 and catalog.usage("lake")[0].files == 0


@pytest.mark.parametrize("start", ["sync_tiers", "start_mount"])
def test_a_worker_that_loses_the_race_to_create_the_tier_rows_syncs_again(tmp_path, monkeypatch, start):
    catalog = Catalog(_url(tmp_path))
    catalog.sync_tiers("lake", [TIER], 0.0)  # the other worker's row
    locked = Catalog._lock_tiers
    looks = []

    def row_not_seen_yet(self, conn, mount):  # as when both workers locked before either inserted
        looks.append(mount)
        return {} if len(looks) == 1 else locked(self, conn, mount)

    monkeypatch.setattr(Catalog, "_lock_tiers", row_not_seen_yet)
    bigger = TierConfig("MEM", "file:///tmp/unused", quota=2000, high_watermark=0.9, low_watermark=0.5)

    getattr(catalog, start)("lake", [bigger], 1.0)

    assert len(looks) == 2  # the insert failed on the row that exists, and the second sync updated it
    assert [u.quota for u in catalog.usage("lake")] == [2000]
