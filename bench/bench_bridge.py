"""Benchmark: the ``hybrid://`` Python bridge itself, warm, against the same files through fsspec's LocalFileSystem.

No servers and no link: the mount's one member is a local directory and its cache tier another, so what is
measured is the bridge's own cost per query (listing, version pinning, catalog lookups, reads) over the fsspec
floor (DuckDB reading the files through a Python filesystem at all). Runs alternate between the two so a
loaded machine slows both alike; the best of ``--repeat`` is kept. Nothing is asserted about speed::

    .venv/bin/python bench/bench_bridge.py [--scale-factor 1] [--files 12] [--repeat 5] [--profile OUT.svg]

``--profile`` records the warm hybrid:// runs with py-spy (installed by hand, for profiling only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cache import QUERY, TABLE_PATH, _local_fsspec, run_query, setup_environment, write_dataset  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale-factor", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", help="record the hybrid:// runs with py-spy into this SVG")
    parser.add_argument("--work-dir", help="keep data here (default: a temporary directory, removed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.work_dir).resolve() if args.work_dir else Path(tempfile.mkdtemp(prefix="hybrid-bench-bridge-"))
    work.mkdir(parents=True, exist_ok=True)
    setup_environment(work)
    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.mount.filesystem import HybridFileSystem

    try:
        data = work / "data"
        if not (data / TABLE_PATH).is_dir():
            described, _ = write_dataset(data, args.scale_factor, args.files, work)
        else:
            described = "existing dataset"
        files = sorted((data / TABLE_PATH).glob("*.parquet"))

        def options(listing_sync_interval: float) -> dict:
            return {
                "members": {"hdfs": {"uri": f"file://{data}"}},
                "cache": {
                    "tiers": [{"alias": "SSD", "uri": f"file://{work}/tier", "quota": "4GB"}],
                    "catalog_url": f"sqlite:///{work}/catalog.db",
                    "metadata_sync_interval": 60,
                    "listing_sync_interval": listing_sync_interval,
                },
            }

        def hybrid_run(listing_sync_interval: float) -> tuple[float, list]:
            mount = HybridMount.from_options("bridge", options(listing_sync_interval))
            try:
                fs = HybridFileSystem(mounts={"bridge": mount}, skip_instance_cache=True)
                return run_query(f"hybrid://bridge/{TABLE_PATH}/*.parquet", fs)
            finally:
                mount.close()

        _, cold_rows = hybrid_run(0)  # fills the cache tier
        mount = HybridMount.from_options("bridge", options(0))
        mount.cache.wait_for_background_loads()
        cached = sum(1 for e in mount.cache.entries(TABLE_PATH) if e.state == "ready")
        mount.close()
        hybrid_run(60)  # stores the listing in the catalog

        if args.profile:
            return _profile(args, work)
        times: dict[str, list[float]] = {"hybrid": [], "listed": [], "floor": []}
        results = []
        for _ in range(args.repeat):
            for name, run in (
                ("floor", lambda: run_query(f"benchlocal://{data}/{TABLE_PATH}/*.parquet", _local_fsspec())),
                ("hybrid", lambda: hybrid_run(0)),
                ("listed", lambda: hybrid_run(60)),
            ):
                elapsed, rows = run()
                times[name].append(elapsed)
                results.append(rows)
        if any(rows != cold_rows for rows in results):
            print("ERROR: the runs returned different results", file=sys.stderr)
            return 1
        best = {name: min(values) for name, values in times.items()}
        print(f"{described}: {len(files)} files, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB; "
              f"{cached}/{len(files)} cached; {os.cpu_count()} CPUs; best of {args.repeat}, runs alternated")
        print("query: " + " ".join(QUERY.format(relation="read_parquet(...)").split()))
        print(f"fsspec LocalFileSystem (the floor)      {best['floor']:6.3f} s")
        print(f"hybrid://, member listed per query      {best['hybrid']:6.3f} s")
        print(f"hybrid://, listing from the catalog     {best['listed']:6.3f} s")
        print(f"bridge/fsspec floor ratio: {best['hybrid'] / best['floor']:.2f}x (catalog listings "
              f"{best['listed'] / best['floor']:.2f}x; target <= 1.3x)")
        return 0
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)


def _profile(args: argparse.Namespace, work: Path) -> int:
    """Warm hybrid:// runs in a child process under py-spy."""
    code = (
        "import sys; sys.argv = ['bench_bridge', '--work-dir', sys.argv[1], '--repeat', '5', '--files', sys.argv[2]];"
        "sys.path.insert(0, sys.argv[3]); import bench_bridge; bench_bridge.main()"
    )
    py_spy = Path(sys.executable).with_name("py-spy")
    started = time.perf_counter()
    subprocess.run([str(py_spy), "record", "-r", "200", "-o", args.profile, "--", sys.executable, "-c", code,
                    str(work), str(args.files), str(Path(__file__).resolve().parent)], check=True)
    print(f"profile written to {args.profile} ({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
