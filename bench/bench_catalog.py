"""A cache catalog of 1,000,000 entries: lookup, directory freshness, report, UI figures, expiry and eviction.

The catalog (its own schema, created by :class:`~airflow_hybrid.cache.catalog.Catalog`) is filled cheaply with
bulk inserts (SQLite ``executemany``, PostgreSQL ``COPY``): ``--per-dir`` files per directory
(``t<nnn>/date=<nnnn>/part-<nnnnn>.parquet``), log-normal sizes (median 3 MiB), 2 % pinned (with their pins),
last accesses spread over 30 days, 5 % with a TTL (0.5 % expired), 0.1 % loading (half of them abandoned),
two tiers (SSD 90 %, MEM 10 %) at 96 % of their quota, three active leases. Then, in a fresh child process
per backend and size (its peak RSS its own), each operation through the code a worker runs:

* ``start``: a :class:`CacheManager` opened on the catalog (tier sync and recovery: reclaiming abandoned
  loads, forgetting expired leases, the trash), after a first start that reclaimed the abandoned loads;
* ``lookup``: :meth:`CacheManager.lookup` of one file (the read path's catalog read), mean of 400;
* ``fresh_listing``: :meth:`CacheManager.fresh_listing` over a 1,000-file directory (another each round);
* ``report``: :meth:`CacheManager.report` (tier usage, pinned bytes, files, hit ratio, oldest entry, leases);
* ``ui``: :func:`airflow_hybrid.plugins.figures.cache_figures` (a read-only catalog: the report plus the
  largest and the pinned entries), what the "Hybrid lake" page reads per mount;
* ``expire``: :meth:`CacheManager.expire` (the TTL-expired entries and their pins);
* ``evict``: :meth:`CacheManager.evict` of 1 % of the quota (LRU among unpinned, until under the low
  watermark), also per evicted entry (the number evicted grows with the catalog).

Cheap operations run five rounds: the median time is printed, with the largest peak RSS above the child's
RSS before the operation, for every size, and the ratio of the largest size to the smallest (flat or logarithmic is the aim, not linear); asserts nothing about speed.

    .venv/bin/python bench/bench_catalog.py [--sizes 10000,1000000] [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import ROOT

MOUNT = "lake"
DAY = 86_400.0
NOW = 1_800_000_000.0  # the catalog's "now" (a fixed clock: the figures do not depend on the date)
PG_ADMIN_URL = os.environ.get(
    "HYBRID_TEST_PG_URL", "postgresql+psycopg2://hybrid:hybrid@127.0.0.1:5432/hybrid_test"
)
TIERS = (("SSD", 0.9), ("MEM", 0.1))
USED = 0.96  # of the quota after the fill (0.955 after expiry)
HIGH, LOW = 0.95, 0.945  # eviction then frees 1 % of the quota
PIN_COLUMNS = ("mount", "path", "tier", "size", "created_at")
OPS = ("start", "lookup", "fresh_listing", "report", "ui", "expire", "evict")

COLUMNS = (
    "mount", "path", "tier", "location", "source_member", "source_uri", "source_size", "source_mtime",
    "source_etag", "size", "pinned", "ttl", "expires_at", "created_at", "last_access", "hits", "state",
    "loader_id", "lease_expires_at", "last_synced_at",
)  # fmt: skip


def entry_path(i: int, per_dir: int) -> str:
    d = i // per_dir
    return f"t{d // 50:03d}/date={d % 50:04d}/part-{i % per_dir:05d}.parquet"


def generate(n: int, per_dir: int, seed: int = 15):
    """``(entry row, pinned)`` for ``n`` entries; deterministic."""
    rng = random.Random(seed)
    for i in range(n):
        path = entry_path(i, per_dir)
        tier = "SSD" if rng.random() < TIERS[0][1] else "MEM"
        size = max(1, min(int(rng.lognormvariate(15, 1.5)), 2**31))
        last_access = NOW - rng.uniform(0, 30 * DAY)
        created_at = last_access - rng.uniform(0, 7 * DAY)
        u = rng.random()
        expires_at = ttl = None
        if u < 0.005:
            expires_at = NOW - rng.uniform(1, DAY)
        elif u < 0.05:
            expires_at = NOW + rng.uniform(1, 30 * DAY)
        if expires_at is not None:
            ttl = expires_at - created_at
        state, loader, lease = "ready", None, None
        if rng.random() < 0.001:
            state, loader = "loading", uuid.UUID(int=rng.getrandbits(128)).hex
            lease = NOW + (60 if rng.random() < 0.5 else -60)
        pinned = state == "ready" and rng.random() < 0.02
        digest = f"{rng.getrandbits(128):032x}"
        row = (
            MOUNT, path, tier, f"{MOUNT}/{digest[:2]}/{digest}.{i:x}/{path.rsplit('/', 1)[1]}", "hdfs",
            f"hdfs://nn:8020/lake/{path}", size, created_at - 10, None, size, pinned, ttl, expires_at,
            created_at, last_access, rng.randrange(100), state, loader, lease, last_access,
        )  # fmt: skip
        yield row, pinned


def fill(url: str, n: int, per_dir: int, tier_dir: Path) -> dict:
    """Create the catalog at ``url`` and fill it with ``n`` entries; returns what the child needs."""
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from airflow_hybrid.cache.catalog import Catalog
    from airflow_hybrid.cache.config import TierConfig
    from airflow_hybrid.cache.schema import TIER_COUNTERS

    catalog = Catalog(url)
    t = catalog.t
    counters = {alias: dict.fromkeys(("reserved_bytes", *TIER_COUNTERS), 0) for alias, _ in TIERS}
    pins: list[tuple] = []
    started = time.perf_counter()
    raw = catalog.engine.raw_connection()
    try:
        cursor = raw.cursor()
        chunk: list[tuple] = []

        def flush() -> None:
            if not chunk:
                return
            if catalog.engine.dialect.name == "postgresql":
                buf = io.StringIO()
                for row in chunk:
                    buf.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
                buf.seek(0)
                cursor.copy_expert(f"COPY {t.entries.name} ({', '.join(COLUMNS)}) FROM STDIN", buf)
            else:
                marks = ", ".join("?" for _ in COLUMNS)
                cursor.executemany(f"INSERT INTO {t.entries.name} ({', '.join(COLUMNS)}) VALUES ({marks})", chunk)
            chunk.clear()

        if catalog.engine.dialect.name == "sqlite":
            cursor.execute("BEGIN")
        for row, pinned in generate(n, per_dir):
            count, size = counters[row[2]], row[9]
            count["reserved_bytes"] += size
            if row[16] == "ready":
                count["ready_files"] += 1
                count["ready_bytes"] += size
            else:
                count["loading_files"] += 1
            if pinned:
                count["pinned_bytes"] += size
                count["pin_bytes"] += size
                pins.append((MOUNT, row[1], row[2], size, row[13]))
            chunk.append(row)
            if len(chunk) >= 20_000:
                flush()
        flush()
        raw.commit()
    finally:
        raw.close()
    with catalog.write() as conn:
        for start in range(0, len(pins), 10_000):
            conn.execute(
                t.pins.insert(),
                [dict(zip(PIN_COLUMNS, p, strict=True)) for p in pins[start : start + 10_000]],
            )
    tiers = [
        TierConfig(alias, (tier_dir / alias).as_uri(), int(counters[alias]["reserved_bytes"] / USED), HIGH, LOW) for alias, _ in TIERS
    ]
    catalog.sync_tiers(MOUNT, tiers, NOW)
    with catalog.write() as conn:
        for tier in tiers:
            conn.execute(
                t.tiers.update()
                .where(t.tiers.c.mount == MOUNT, t.tiers.c.alias == tier.alias)
                .values(**counters[tier.alias], hits=7 * n, misses=n)
            )
        for k, d in enumerate((0, (n // per_dir) // 2, n // per_dir - 1)):
            directory = entry_path(d * per_dir, per_dir).rsplit("/", 1)[0]
            conn.execute(
                t.leases.insert().values(
                    id=f"lease{k}", mount=MOUNT, path=directory, holder="bench", created_at=NOW, expires_at=NOW + DAY
                )
            )
    if catalog.engine.dialect.name == "postgresql":
        with catalog.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("VACUUM ANALYZE"))  # what autovacuum does after a bulk insert
    if catalog.engine.dialect.name == "sqlite":
        with catalog.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # as a settled catalog, not mid-fill
    catalog.dispose()
    return {
        "fill_s": time.perf_counter() - started,
        "tiers": [
            {"alias": t.alias, "uri": t.uri, "quota": t.quota, "high_watermark": HIGH, "low_watermark": LOW}
            for t in tiers
        ],
    }


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _measure(fn):
    """``(seconds, peak RSS MiB above the RSS before, result)`` of ``fn()`` (the peak is reset first)."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets VmHWM to the current RSS
    before = _rss_kib("VmRSS")
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    return seconds, (_rss_kib("VmHWM") - before) / 1024, result


def child(url: str, n: int, per_dir: int, tiers: list[dict]) -> None:
    """In a fresh process: each operation on the filled catalog; prints the figures as JSON."""
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from airflow_hybrid.cache.catalog import Catalog
    from airflow_hybrid.cache.config import CacheConfig
    from airflow_hybrid.cache.manager import CacheManager
    from airflow_hybrid.plugins.figures import cache_figures
    from airflow_hybrid.stores.base import FileInfo

    settings = {"cache": {"tiers": tiers, "catalog_url": url, "metadata_sync_interval": -1}}
    config = CacheConfig.from_options(settings, MOUNT)
    clock = lambda: NOW  # noqa: E731
    catalog = Catalog(url)
    CacheManager(MOUNT, config, catalog=catalog, clock=clock).close()  # reclaims the abandoned loads
    out: dict[str, dict] = {}

    def record(op: str, fn, repeat: int = 1, count=None, rounds: int = 1) -> None:
        """``fn(round)`` ``rounds`` times: the median time (over ``repeat`` calls in each) and the largest peak."""
        figures = [_measure(lambda i=i: fn(i)) for i in range(rounds)]
        out[op] = {
            "s": statistics.median(f[0] for f in figures) / repeat,
            "rss": max(f[1] for f in figures),
        }
        if count is not None:
            out[op]["count"] = count(figures[-1][2])

    managers: list[CacheManager] = []
    record("start", lambda _: managers.append(CacheManager(MOUNT, config, catalog=catalog, clock=clock)), rounds=5)
    cache = managers[0]
    rng = random.Random(1)
    paths = [[entry_path(rng.randrange(n), per_dir) for _ in range(400)] for _ in range(5)]
    record(
        "lookup", lambda i: sum(cache.lookup(p) is not None for p in paths[i]), 400, lambda hits: hits, rounds=5
    )

    dirs = [entry_path(rng.randrange(n // per_dir) * per_dir, per_dir).rsplit("/", 1)[0] for _ in range(5)]
    listings = []
    entries = catalog.t.entries
    with catalog.read() as conn:
        for d in dirs:
            rows = conn.execute(
                sa.select(entries.c.path, entries.c.source_size, entries.c.source_mtime).where(
                    entries.c.mount == MOUNT, entries.c.path.like(d + "/%")
                )
            ).all()
            listings.append((d, [FileInfo(path=p, size=s, mtime=m) for p, s, m in rows]))
    record(
        "fresh_listing", lambda i: len(cache.fresh_listing(*listings[i])[0]), count=lambda f: f, rounds=len(listings)
    )
    record("report", lambda _: cache.report(), rounds=5)
    record("ui", lambda _: cache_figures(MOUNT, settings, clock=clock), rounds=5)
    record("expire", lambda _: cache.expire(), count=lambda r: r.files)
    record("evict", lambda _: cache.evict(), count=lambda r: r.files)
    for manager in managers:
        manager.close()
    catalog.dispose()
    print(json.dumps(out))


def run_child(url: str, n: int, per_dir: int, tiers: list[dict]) -> dict:
    args = [sys.executable, __file__, "--child", url, str(n), str(per_dir), json.dumps(tiers)]
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"child failed for {url} ({n} entries):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def scratch_pg() -> tuple[str, object]:
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"hybrid_bench_catalog_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()

    return sa.engine.make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False), drop


def fmt_s(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:7.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:7.1f} ms"
    return f"{seconds:7.2f} s "


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--per-dir", type=int, default=1000)
    parser.add_argument("--child", nargs=4, metavar=("URL", "N", "PER_DIR", "TIERS"))
    args = parser.parse_args()
    if args.child:
        url, n, per_dir, tiers = args.child
        child(url, int(n), int(per_dir), json.loads(tiers))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"cache catalog bench: {os.cpu_count()} cores, sizes {sizes}, {args.per_dir} files per directory")
    results: dict[str, dict[int, dict]] = {}
    for backend in args.backends.split(","):
        for n in sizes:
            with tempfile.TemporaryDirectory(prefix="hybrid-bench-catalog-") as tmp:
                if backend == "sqlite":
                    url, drop = f"sqlite:///{tmp}/catalog.db", (lambda: None)
                else:
                    url, drop = scratch_pg()
                try:
                    filled = fill(url, n, args.per_dir, Path(tmp))
                    figures = run_child(url, n, args.per_dir, filled["tiers"])
                finally:
                    drop()
            figures["fill"] = {"s": filled["fill_s"], "rss": 0.0}
            results.setdefault(backend, {})[n] = figures
            print(f"  {backend} {n:>9,} entries filled in {filled['fill_s']:.1f} s", flush=True)
    small, large = sizes[0], sizes[-1]
    for backend, by_size in results.items():
        print(f"\n{backend}: time (peak RSS above the start of the operation); ratio {large:,} / {small:,}")
        print(f"  {'operation':<22}" + "".join(f"{n:>24,}" for n in sizes) + "   time ratio  RSS diff")
        for op in (*OPS, "expire per entry", "evict per entry"):
            per_entry = op.endswith(" per entry")
            base = op.split()[0]
            row = by_size[small][base]
            cells = []
            for n in sizes:
                fig = by_size[n][base]
                seconds = fig["s"] / max(fig.get("count", 1), 1) if per_entry else fig["s"]
                extra = f" n={fig['count']}" if "count" in fig and not per_entry else ""
                cells.append(f"{fmt_s(seconds)} ({fig['rss']:5.1f} MiB){extra}")
            last = by_size[large][base]
            if per_entry:
                a = row["s"] / max(row.get("count", 1), 1)
                b = last["s"] / max(last.get("count", 1), 1)
            else:
                a, b = row["s"], last["s"]
            ratio = b / a if a else float("nan")
            print(f"  {op:<22}" + "".join(f"{c:>24}" for c in cells) + f"   {ratio:8.2f}x  {last['rss'] - row['rss']:+6.1f} MiB")
    print("\n(machine shared with other work while measured; see os.getloadavg:", os.getloadavg(), ")")


if __name__ == "__main__":
    main()
