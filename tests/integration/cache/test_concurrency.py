"""Several worker processes sharing one cache catalog: concurrent fills and a worker killed mid-load.

Runs on the PostgreSQL server that ``scripts/bootstrap.sh --test`` starts (a fresh database per test, dropped
afterwards; a failure under CI when it cannot be reached, a skip elsewhere) and on a SQLite file. Workers are real processes
(``spawn``); a crash is a real ``SIGKILL``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import signal
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.cache.tee import FillingReader
from airflow_hybrid.stores.local import LocalStore

pytestmark = pytest.mark.integration

MOUNT = "lake"




def _config(catalog_url: str, tier_dir: str, quota: int, lease: float = 60) -> CacheConfig:
    return CacheConfig.from_options(
        {
            "cache": {
                "tiers": [{"alias": "SSD", "uri": f"file://{tier_dir}", "quota": quota,
                           "high_watermark": 0.9, "low_watermark": 0.6}],
                "catalog_url": catalog_url,
                "metadata_sync_interval": -1,
                "load_lease": lease,
            }
        },
        MOUNT,
    )


def _usage_sample(catalog: Catalog) -> tuple[int, int]:
    """Reserved bytes and the sum of entry sizes, read in one statement (one snapshot)."""
    tiers, entries = catalog.t.tiers, catalog.t.entries
    summed = (
        sa.select(sa.func.coalesce(sa.func.sum(entries.c.size), 0))
        .where(entries.c.mount == tiers.c.mount, entries.c.tier == tiers.c.alias)
        .scalar_subquery()
    )
    with catalog.read() as conn:
        reserved, total = conn.execute(
            sa.select(tiers.c.reserved_bytes, summed).where(tiers.c.mount == MOUNT, tiers.c.alias == "SSD")
        ).one()
    return int(reserved), int(total)


class _Recorded:
    """A source stream that records when a worker was loading it: from its claim to the source's end."""

    def __init__(self, raw, path: str, intervals: list) -> None:
        self.raw, self.path, self.intervals = raw, path, intervals
        self.start: int | None = None

    def read(self, n=-1):
        data = self.raw.read(n)
        if not data and self.start is not None:
            self.intervals.append((self.path, self.start, time.monotonic_ns()))
            self.start = None
        return data

    def close(self):
        if self.start is not None:
            self.intervals.append((self.path, self.start, time.monotonic_ns()))
            self.start = None
        self.raw.close()


def _fill_worker(catalog_url, tier_dir, src_dir, quota, seed, rounds, barrier, out_path):
    """One worker: reads (through the cache) and prefetches every file, in its own random order."""
    manager = CacheManager(MOUNT, _config(catalog_url, tier_dir, quota), catalog=Catalog(catalog_url))
    store = LocalStore(src_dir)
    digests = {name: hashlib.sha256(Path(src_dir, name).read_bytes()).hexdigest() for name in os.listdir(src_dir)}
    rng = random.Random(seed)
    intervals: list = []
    samples: list = []
    stats: Counter = Counter()
    bad_bytes = 0
    barrier.wait(timeout=300)  # a partner that died before it breaks the barrier instead of hanging here
    for _ in range(rounds):
        names = sorted(digests)
        rng.shuffle(names)
        for name in names:
            info = store.info(name)
            if rng.random() < 0.5:
                def open_source(name=name):
                    stream = _Recorded(store.open_read(name), name, intervals)
                    stream.start = time.monotonic_ns()  # called only once this worker owns the claim
                    return stream

                result = manager.load(name, "src", info, open_source)
                stats[f"load_{result.status}"] += 1
            else:
                entry = manager.lookup(name, info)
                data = None
                if entry is not None:
                    try:
                        with manager.open_cached(entry) as cached:
                            data = cached.read()
                        stats["hit"] += 1
                    except FileNotFoundError:
                        stats["evicted_under_reader"] += 1
                if data is None:
                    raw = _Recorded(store.open_read(name), name, intervals)
                    stream = manager.fill_while_reading(name, "src", info, raw)
                    if isinstance(stream, FillingReader):
                        raw.start = time.monotonic_ns()
                        stats["fill"] += 1
                    else:
                        stats["passthrough"] += 1
                    chunks = []
                    while chunk := stream.read(rng.choice([4096, 65536, 100000])):
                        chunks.append(chunk)
                    stream.close()
                    data = b"".join(chunks)
                if hashlib.sha256(data).hexdigest() != digests[name]:
                    bad_bytes += 1
            samples.append(_usage_sample(manager.catalog))
    Path(out_path).write_text(json.dumps({"intervals": intervals, "samples": samples, "stats": stats,
                                          "bad_bytes": bad_bytes}))


def test_concurrent_fill_from_two_processes(catalog_url, tmp_path):
    src, tier = tmp_path / "src", tmp_path / "tier"
    src.mkdir()
    rng = random.Random(7)
    sizes = {f"part-{i:02d}.bin": rng.randint(20_000, 120_000) for i in range(20)}
    for name, size in sizes.items():
        (src / name).write_bytes(rng.randbytes(size))
    quota = int(sum(sizes.values()) * 0.4)  # forces eviction and reloads
    largest = max(sizes.values())
    Catalog(catalog_url).dispose()  # create the schema up front, as a deployment would

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    outs = [tmp_path / f"worker-{i}.json" for i in range(2)]
    workers = [
        ctx.Process(target=_fill_worker, args=(catalog_url, str(tier), str(src), quota, seed, 3, barrier, str(out)))
        for seed, out in zip((1, 2), outs, strict=True)
    ]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join(timeout=600)
    finally:  # a worker left running would hold the test run open at exit
        for w in workers:
            if w.is_alive():
                w.kill()
                w.join()
    assert [w.exitcode for w in workers] == [0, 0]
    results = [json.loads(out.read_text()) for out in outs]

    # Every byte served, from the cache or the source, is the source's.
    assert sum(r["bad_bytes"] for r in results) == 0
    # Both workers filled the tier, and eviction made them reload files.
    loads = [r["stats"].get("load_loaded", 0) + r["stats"].get("fill", 0) for r in results]
    assert all(n > 0 for n in loads), results[0]["stats"]
    assert sum(loads) > len(sizes)

    # Never counted twice: reserved bytes always equal the sum of the entries (one-snapshot samples).
    samples = [tuple(s) for r in results for s in r["samples"]]
    assert all(reserved == total for reserved, total in samples), [s for s in samples if s[0] != s[1]][:5]
    # Never over quota by more than one file (by construction, not even by one).
    assert max(reserved for reserved, _ in samples) <= quota + largest
    assert max(reserved for reserved, _ in samples) <= quota

    # Never the same file loaded by two workers at the same time.
    by_path = defaultdict(list)
    for r in results:
        for path, start, end in r["intervals"]:
            by_path[path].append((start, end))
    overlaps = []
    for path, spans in by_path.items():
        spans.sort()
        overlaps += [(path, a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]
    assert overlaps == []
    assert sum(len(s) for s in by_path.values()) == sum(loads)

    # At rest: catalog and disk agree.
    manager = CacheManager(MOUNT, _config(catalog_url, str(tier), quota), catalog=Catalog(catalog_url))
    entries = list(manager.entries())
    assert all(e.state == "ready" for e in entries)
    assert manager.catalog.trash_items(MOUNT) == []
    on_disk = {str(p.relative_to(tier)): p.stat().st_size for p in tier.rglob("*") if p.is_file()}
    assert on_disk == {e.location: e.size for e in entries}
    assert {e.size for e in entries} <= set(sizes.values())
    assert len({e.path for e in entries}) == len(entries)
    reserved, total = _usage_sample(manager.catalog)
    assert reserved == total == sum(on_disk.values()) <= quota
    manager.catalog.dispose()


class _SignalOnRead:
    """Handed to the tier store's write: signals once the store started reading (its temp file exists)."""

    def __init__(self, stream, event) -> None:
        self.stream, self.event = stream, event

    def read(self, n=-1):
        self.event.set()
        return self.stream.read(n)


class _SignallingStore(LocalStore):
    def __init__(self, uri, event) -> None:
        super().__init__(uri)
        self.event = event

    def write(self, path, stream, size_hint=None):
        return super().write(path, _SignalOnRead(stream, self.event), size_hint)


class _Stalling:
    """A source that hangs forever after ``limit`` bytes (a worker stuck mid-load until it is killed)."""

    def __init__(self, raw, limit: int) -> None:
        self.raw, self.limit, self.sent = raw, limit, 0

    def read(self, n=-1):
        if self.sent >= self.limit:
            threading.Event().wait()
        data = self.raw.read(min(n, self.limit - self.sent) if n and n > 0 else self.limit - self.sent)
        self.sent += len(data)
        return data

    def close(self):
        self.raw.close()


def _crash_worker(catalog_url, tier_dir, src_dir, writing):
    manager = CacheManager(
        MOUNT,
        _config(catalog_url, tier_dir, 10_000_000, lease=30),
        store_factory=lambda uri, conn_id, options: _SignallingStore(uri, writing),
        catalog=Catalog(catalog_url),
    )
    store = LocalStore(src_dir)
    info = store.info("big.bin")
    stream = manager.fill_while_reading("big.bin", "src", info, _Stalling(store.open_read("big.bin"), 300_000))
    while stream.read(65536):
        pass


@pytest.mark.parametrize("recovery", ["recover_on_start", "next_claim"])
def test_worker_killed_mid_load(catalog_url, tmp_path, recovery):
    src, tier = tmp_path / "src", tmp_path / "tier"
    src.mkdir()
    data = random.Random(3).randbytes(1_000_000)
    (src / "big.bin").write_bytes(data)
    store = LocalStore(str(src))
    info = store.info("big.bin")
    Catalog(catalog_url).dispose()

    ctx = multiprocessing.get_context("spawn")
    writing = ctx.Event()
    child = ctx.Process(target=_crash_worker, args=(catalog_url, str(tier), str(src), writing))
    child.start()
    try:
        assert writing.wait(timeout=120), "the worker never started writing its copy"
    finally:  # killed mid-copy, or so that a worker that never wrote cannot hold the test run open
        os.kill(child.pid, signal.SIGKILL)
        child.join()
    assert child.exitcode == -signal.SIGKILL
    partial = [p for p in tier.rglob("*") if p.is_file()]
    assert partial and all(p.name.startswith(".hybrid-tmp-") for p in partial)  # the copy it was writing

    # While the dead worker's lease runs, its entry is never served and nobody else loads the file.
    catalog = Catalog(catalog_url)
    config = _config(catalog_url, str(tier), 10_000_000, lease=30)
    now = time.time()
    manager = CacheManager(MOUNT, config, catalog=catalog, clock=lambda: now)
    assert manager.catalog.get(MOUNT, "big.bin").state == "loading"
    assert manager.lookup("big.bin", info) is None
    raw = store.open_read("big.bin")
    assert manager.fill_while_reading("big.bin", "src", info, raw) is raw
    raw.close()
    assert manager.report().tier("SSD").loading == 1

    # After the lease: the next run reclaims it (partial copy and row removed) and can cache the file.
    later = now + 31
    if recovery == "recover_on_start":
        manager = CacheManager(MOUNT, config, catalog=catalog, clock=lambda: later)  # recover() on start
        assert manager.catalog.get(MOUNT, "big.bin") is None
        assert [p for p in tier.rglob("*") if p.is_file()] == []
        assert manager.report().tier("SSD").used == 0
        result = manager.load("big.bin", "src", info, lambda: store.open_read("big.bin"))
    else:
        manager = CacheManager(MOUNT, config, catalog=catalog, clock=lambda: later, recover=False)
        assert manager.lookup("big.bin", info) is None
        stream = manager.fill_while_reading("big.bin", "src", info, store.open_read("big.bin"))
        assert isinstance(stream, FillingReader)  # the claim reclaimed the dead worker's entry
        assert stream.read() == data
        stream.close()
        result = None
    entry = manager.lookup("big.bin", info)
    assert entry is not None and entry.state == "ready"
    if result is not None:
        assert result.status == "loaded"
    with manager.open_cached(entry) as cached:
        assert cached.read() == data
    assert [p.name for p in tier.rglob("*") if p.is_file()] == ["big.bin"]
    assert manager.report().tier("SSD").used == len(data)
    assert manager.catalog.trash_items(MOUNT) == []
    catalog.dispose()


def test_postgresql_catalog_upgrades_from_version_1(pg_url):
    from airflow_hybrid.cache.schema import LATEST_VERSION, current_version, upgrade

    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        assert upgrade(conn, target=1) == [1]
        conn.execute(
            sa.text(
                "INSERT INTO hybrid_cache_entries (mount, path, tier, location, source_member, source_size,"
                " source_mtime, size, pinned, created_at, last_access, hits, state)"
                " VALUES ('lake', 'a', 'SSD', 'loc', 'hdfs', 10, 5.0, 10, false, 42.0, 43.0, 0, 'ready')"
            )
        )
    engine.dispose()
    catalog = Catalog(pg_url)
    with catalog.read() as conn:
        assert current_version(conn) == LATEST_VERSION
    assert catalog.get("lake", "a").last_synced_at == 42.0
    catalog.dispose()


def test_read_only_catalog_reports_and_refuses_writes(catalog_url, tmp_path):
    """The report the UI page reads: on both databases the read-only catalog sees what a worker wrote, and
    the database itself refuses a write (SQLite ``mode=ro``, a PostgreSQL ``READ ONLY`` transaction)."""
    from airflow_hybrid.cache.exceptions import CacheCatalogError
    from airflow_hybrid.cache.report import read_report

    (tmp_path / "src").mkdir()
    source = LocalStore(str(tmp_path / "src"))
    (tmp_path / "src" / "a.bin").write_bytes(b"x" * 100)
    config = _config(catalog_url, str(tmp_path / "tier"), 10_000)
    with Catalog(catalog_url) as catalog:
        manager = CacheManager(MOUNT, config, catalog=catalog)
        manager.load("a.bin", "hdfs", source.info("a.bin"), lambda: source.open_read("a.bin"))
        manager.close()

    (tier,) = read_report(MOUNT, config).tiers
    assert (tier.files, tier.used) == (1, 100)
    with Catalog(catalog_url, read_only=True) as catalog:
        with pytest.raises(CacheCatalogError, match="open read-only"):
            catalog.sync_tiers(MOUNT, config.tiers, 0.0)
        conn = catalog.engine.connect()
        with pytest.raises(sa.exc.DBAPIError, match="read-only|readonly"), conn, conn.begin():
            conn.execute(sa.text("DELETE FROM hybrid_cache_entries"))
    with Catalog(catalog_url) as catalog:
        assert catalog.get(MOUNT, "a.bin").size == 100


def test_workers_starting_at_once_on_a_new_catalog_both_start(pg_url, tmp_path):
    """Two workers creating the tier rows of a new catalog at the same moment: on PostgreSQL ``FOR UPDATE``
    locks no row that does not exist yet, so both insert; the loser of the race syncs again and starts."""
    config = _config(pg_url, str(tmp_path / "tier"), 10_000)
    first, second = Catalog(pg_url), Catalog(pg_url)
    lock_tiers = first._lock_tiers
    raced = []

    def lock_then_lose_the_race(conn, mount):
        existing = lock_tiers(conn, mount)
        if not raced:  # the other worker inserts and commits between our look and our insert
            raced.append(True)
            second.sync_tiers(mount, config.tiers, 1.0)
        return existing

    first._lock_tiers = lock_then_lose_the_race
    try:
        first.sync_tiers(MOUNT, config.tiers, 2.0)
        assert raced
        with first.engine.connect() as conn:
            rows = conn.execute(sa.select(first.t.tiers.c.alias, first.t.tiers.c.quota_bytes)
                                .where(first.t.tiers.c.mount == MOUNT)).all()
        assert [tuple(r) for r in rows] == [("SSD", 10_000)]
    finally:
        first.dispose()
        second.dispose()
