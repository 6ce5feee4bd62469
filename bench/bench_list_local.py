"""Benchmark: ``LocalStore.list_sorted`` pages over a directory of 1,000,000 empty files vs one of 1,000.

One run prints the figures and ratios (nothing is asserted about speed)::

    .venv/bin/python bench/bench_list_local.py [--big 1000000] [--small 1000] [--limit 1000] [--keep DIR]

Each directory is made with ``os.open`` (empty files, names ``f0000000``...), left alone for longer than the
racy window (``LocalStore.listing_racy_seconds``) so it may be snapshotted, then measured in a fresh process:

1. the base default (``Store.list_sorted``: ``list()`` stats every entry), first page (also warms the
   directory in the kernel's caches, so every later figure is warm);
2. the scan alone (snapshots off): names and ``d_type``, only the kept page ``lstat``-ed;
3. the first page with snapshots on: the scan that also writes the sorted snapshot (external sort);
4. the first page again and a page in the middle, both from the snapshot (and the middle page by the default);
5. the gateway's ``list_page`` (ListObjectsV2's page, no HTTP) first and middle, over a mount of that member;

with the process's peak RSS growth after each step (a high-water mark, so the steps run in the order of the
memory they are expected to need). This is what the gateway's part 4 of ``bench_gateway.py`` pays per member
and directory page, without the devstack and the gateway around it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_PATHS = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
sys.path[:0] = _PATHS

from _common import peak_rss_mib  # noqa: E402


def make_dir(path: Path, count: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i in range(count):
            os.close(os.open(f"f{i:07d}", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
    finally:
        os.close(fd)


def measure(root: str, limit: int) -> dict:
    """In a fresh process: the steps of the module doc on ``root/d``."""
    from airflow_hybrid.stores.base import Store
    from airflow_hybrid.stores.local import LocalStore

    store = LocalStore(root)
    count = sum(1 for _ in os.scandir(os.path.join(root, "d")))
    middle = f"f{count // 2:07d}"
    base = peak_rss_mib()
    out: dict = {"entries": count}

    def step(name: str, fn) -> None:
        started = time.perf_counter()
        page = fn()
        out[name] = {"s": time.perf_counter() - started, "rss_mib": peak_rss_mib() - base, "keys": len(page)}

    step("default", lambda: Store.list_sorted(store, "d", None, limit))
    store.listing_snapshot_threshold = 10**15
    step("scan", lambda: store.list_sorted("d", None, limit))
    store.listing_snapshot_threshold = LocalStore.listing_snapshot_threshold
    step("build", lambda: store.list_sorted("d", None, limit))
    out["snapshotted"] = "d" in store._lister.cache
    step("first", lambda: store.list_sorted("d", None, limit))
    step("middle", lambda: store.list_sorted("d", middle, limit))
    step("middle_default", lambda: Store.list_sorted(store, "d", middle, limit))
    from airflow_hybrid.gateway.listing import list_page
    from airflow_hybrid.mount import HybridMount

    mount = HybridMount.from_options("bench", {"members": {"local": {"uri": f"file://{root}"}},
                                               "priority.read": "local", "collection.create": "local"},
                                     stores={"local": store})
    step("gateway_first", lambda: list_page(mount, "d/", None, limit).items)
    step("gateway_middle", lambda: list_page(mount, "d/", f"d/{middle}", limit).items)
    store.close()
    return out


def run_child(root: Path, limit: int) -> dict:
    code = f"import json, sys; sys.path[:0] = {_PATHS!r}; import bench_list_local as b; " \
           f"print(json.dumps(b.measure({str(root)!r}, {limit})))"
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--keep", help="make (or reuse) the directories here instead of a temporary one")
    args = parser.parse_args()
    from airflow_hybrid.stores.local import LocalStore

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-list-local-"))
    try:
        results = {}
        for count in (args.small, args.big):
            root = work / f"n{count}"
            if not (root / "d").is_dir() or sum(1 for _ in os.scandir(root / "d")) != count:
                shutil.rmtree(root, ignore_errors=True)
                started = time.perf_counter()
                make_dir(root / "d", count)
                print(f"made {count:,} empty files in {time.perf_counter() - started:.1f} s", flush=True)
        time.sleep(LocalStore.listing_racy_seconds + 0.5)  # past the racy window: the directories are settled
        for count in (args.small, args.big):
            results[count] = run_child(work / f"n{count}", args.limit)
        load = os.getloadavg()
        print(f"\n{os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
              f"pages of {args.limit} keys; snapshot threshold {LocalStore.listing_snapshot_threshold:,} entries")
        small, big = results[args.small], results[args.big]
        print(f"{'step':<16}{args.small:>12,} files{args.big:>14,} files{'ratio':>9}{'peak RSS +MiB':>16}")
        for name in ("default", "scan", "build", "first", "middle", "middle_default", "gateway_first",
                     "gateway_middle"):
            s, b = small[name], big[name]
            print(f"{name:<16}{s['s'] * 1000:>15.2f} ms{b['s'] * 1000:>15.2f} ms{b['s'] / s['s']:>8.1f}x"
                  f"{s['rss_mib']:>8.1f} / {b['rss_mib']:.1f}")
        print(f"snapshotted: {args.small:,} {small['snapshotted']}, {args.big:,} {big['snapshotted']}; "
              f"{args.big:,}: middle page from the snapshot {big['middle_default']['s'] / big['middle']['s']:.0f}x "
              f"faster than the default, first page {big['default']['s'] / big['first']['s']:.0f}x")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
