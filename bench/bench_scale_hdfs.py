"""A million files on a real HDFS: made cheaply, then listed and planned for migration over each transport.

Apache Hadoop 3.5.0 (NameNode + DataNode, loopback, the NameNode's heap ``--namenode-heap``) gets ``--files``
empty files, ``--per-dir`` per directory: created over RPC by hdfs-native's ``AsyncClient``, ``--inflight``
``create`` + ``complete`` pairs in flight on one connection (an empty file has no block, so no data node is
involved). Then, each in a fresh child process (its peak RSS its own), for WebHDFS and for ``transport: rpc``:

* list: ``walk_files`` over the whole tree (one paged listing per directory), counting entries;
* plan: ``plan_migration`` of ``ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)`` over the tree,
  evaluated two days ahead so every file is selected, the plan written to a local directory.

Prints time, entries/s and peak RSS above the child's RSS after imports, and the ratios RPC/WebHDFS; asserts
nothing about speed.

    .venv/bin/python bench/bench_scale_hdfs.py [--files 1000000] [--per-dir 1000] [--inflight 256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, peak_rss_mib

ROOT_DIR = "/tmp/scale"
POLICY = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
DAY = 86_400
TRANSPORTS = ("webhdfs", "rpc")


async def make_files(fs_uri: str, files: int, per_dir: int, inflight: int) -> None:
    """``files`` empty files ``/tmp/scale/d<nnnn>/part-<nnnnnnn>``, ``inflight`` creates at a time."""
    from hdfs_native import AsyncClient, WriteOptions

    client = AsyncClient(fs_uri)
    dirs = (files + per_dir - 1) // per_dir
    for d in range(dirs):
        await client.mkdirs(f"{ROOT_DIR}/d{d:04d}", 0o755, True)
    options = WriteOptions(overwrite=True)
    gate = asyncio.Semaphore(inflight)

    async def create(i: int) -> None:
        async with gate:
            writer = await client.create(f"{ROOT_DIR}/d{i // per_dir:04d}/part-{i:07d}", options)
            await writer.close()

    for start in range(0, files, 10 * inflight):  # bounded task lists, not a million tasks at once
        await asyncio.gather(*(create(i) for i in range(start, min(files, start + 10 * inflight))))


def child(mode: str, transport: str, fs_uri: str) -> None:
    """In a child process: walk or plan over the tree through ``transport``; print the figures as JSON."""
    from airflow_hybrid.migration.planner import plan_migration
    from airflow_hybrid.mount import HybridMount

    plans = tempfile.mkdtemp(prefix="bench-scale-plans-")
    options = {"transport": transport, "namenode": fs_uri.removeprefix("hdfs://")}
    mount = HybridMount.from_options("scale", {"members": {
        "hdfs": {"uri": f"hdfs://{ROOT_DIR}", "conn_id": "webhdfs_default", "options": options},
        "s3": {"uri": f"file://{plans}/store"}}})  # an empty STORE member: planning lists HDFS only
    mount.members["hdfs"].info("")
    base = peak_rss_mib()
    start = time.perf_counter()
    if mode == "list":
        count = sum(1 for _ in mount.members["hdfs"].walk_files(""))
    else:
        count = plan_migration(mount, "", POLICY, plan_store=f"file://{plans}/plans", now=time.time() + 2 * DAY).files
    seconds = time.perf_counter() - start
    shutil.rmtree(plans, ignore_errors=True)
    print(json.dumps({"count": count, "seconds": seconds, "rss": peak_rss_mib() - base, "base": base}))


def run_child(mode: str, transport: str, fs_uri: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--transport", transport, "--fs-uri", fs_uri],
                         check=True, capture_output=True, text=True, env=env, cwd=ROOT).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000)
    parser.add_argument("--per-dir", type=int, default=1000)
    parser.add_argument("--inflight", type=int, default=256)
    parser.add_argument("--namenode-heap", default="2g")
    parser.add_argument("--child", choices=("list", "plan"))
    parser.add_argument("--transport", choices=TRANSPORTS)
    parser.add_argument("--fs-uri")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.transport, args.fs_uri)
        return
    from airflow_hybrid.devstack.hadoop import HadoopHdfs
    from airflow_hybrid.devstack.stack import airflow_env

    print(f"{os.cpu_count()} cores; Apache Hadoop 3.5.0 on loopback, NameNode heap {args.namenode_heap}")
    base = Path(tempfile.mkdtemp(prefix="bench-scale-hadoop-"))
    hdfs = HadoopHdfs(base, heap=args.namenode_heap).start()
    try:
        home = base / "airflow-home"
        home.mkdir()
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               **airflow_env({"webhdfs_default": hdfs.webhdfs_connection()})}
        start = time.perf_counter()
        asyncio.run(make_files(hdfs.fs_uri, args.files, args.per_dir, args.inflight))
        made = time.perf_counter() - start
        dirs = (args.files + args.per_dir - 1) // args.per_dir
        print(f"\n-- made {args.files:,} empty files in {dirs:,} directories over RPC: {made:.0f} s, "
              f"{args.files / made:,.0f} files/s ({args.inflight} in flight) --")
        results: dict[str, dict[str, dict]] = {}
        for mode, title in (("list", "walk_files over the tree"), ("plan", "plan_migration over the tree")):
            print(f"\n-- {title}: {args.files:,} files, a fresh process per transport --")
            results[mode] = {}
            for transport in TRANSPORTS:
                result = run_child(mode, transport, hdfs.fs_uri, env)
                assert result["count"] == args.files, result
                results[mode][transport] = result
                print(f"{transport:8s} {result['seconds']:8.1f} s  {args.files / result['seconds']:10,.0f} files/s  "
                      f"peak RSS +{result['rss']:.0f} MiB (after imports {result['base']:.0f} MiB)")
            ratio = results[mode]["webhdfs"]["seconds"] / results[mode]["rpc"]["seconds"]
            print(f"ratio rpc/webhdfs: {ratio:.2f}x")
    finally:
        hdfs.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
