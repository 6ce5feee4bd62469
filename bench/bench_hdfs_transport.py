"""HDFS's two transports side by side on Apache Hadoop 3.5.0: WebHDFS (:class:`HdfsStore`, the default) and
HDFS's own RPC protocol (``transport: rpc``, :class:`HdfsRpcStore` on hdfs-native).

One real NameNode + DataNode (``devstack up --hdfs hadoop``: two JVMs on loopback, 4 MiB blocks) and moto's S3
server, each in its own process. Both stores reach the same cluster as the same user; every figure is the
median of ``--repeats`` runs, the transports interleaved so both see the same machine state:

* read: ``--read-files`` files totalling ``--read-mib`` MiB, each streamed whole by ``open_read`` (one after
  another, then ``--concurrency`` at a time);
* write: the same bytes written by ``write`` (temporary name + rename, as every write here), then
  ``--small-files`` files of 4 KiB written ``--concurrency`` at a time (per-file costs dominate);
* list: ``--list-files`` files in one directory (made by Hadoop's own client over RPC), listed by ``list`` in a
  fresh child process per transport (its peak RSS is its own);
* migrate: ``UfsMigrateOperator`` (plan + copy + CRC32C verification against S3 + removal) of ``--migrate-small``
  small and ``--migrate-medium`` 4-12 MiB old files from HDFS to S3, the mount's HDFS member on each transport.

Prints figures and the ratios RPC/WebHDFS (above 1: RPC is faster); asserts nothing about speed.

    .venv/bin/python bench/bench_hdfs_transport.py [--read-mib 256] [--read-files 8] [--small-files 400]
        [--list-files 10000] [--migrate-small 300] [--migrate-medium 8] [--concurrency 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from _common import ROOT, RepeatedBlock, devstack, peak_rss_mib

MiB = 2**20
DAY = 86_400
ROOT_DIR = "/tmp/bench-transport"
POLICY = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
BUCKET = "hybrid-lake"
TRANSPORTS = ("webhdfs", "rpc")


def make_store(transport: str, namenode: str, root: str = ROOT_DIR):
    from airflow_hybrid.stores.factory import store_from_uri

    return store_from_uri(f"hdfs://{root}", "webhdfs_default", {"transport": transport, "namenode": namenode})


def drain(stream, chunk: int = 4 * MiB) -> int:
    total = 0
    while data := stream.read(chunk):
        total += len(data)
    return total


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def report(title: str, unit: str, figures: dict[str, float], amount: float) -> float:
    """Print ``amount / seconds`` per transport and the ratio RPC/WebHDFS of those rates; return the ratio."""
    print(f"\n-- {title} --")
    for transport in TRANSPORTS:
        seconds = figures[transport]
        print(f"{transport:8s} {seconds:8.3f} s  {amount / seconds:12,.1f} {unit}")
    ratio = figures["webhdfs"] / figures["rpc"]
    print(f"ratio rpc/webhdfs: {ratio:.2f}x")
    return ratio


# -- read, write ---------------------------------------------------------------------------------------------
def bench_read_write(stores: dict, args) -> dict[str, float]:
    size = args.read_mib * MiB // args.read_files
    names = [f"data/file-{i:03d}.bin" for i in range(args.read_files)]
    total = size * len(names)
    for transport, store in stores.items():  # warm up: connections, server defaults, the data node's threads
        store.write(f"{transport}/warm-up", RepeatedBlock(MiB, seed=0))
        drain(store.open_read(f"{transport}/warm-up"))
    writes: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    for repeat in range(args.repeats):
        for transport, store in stores.items():
            def write_all(store=store, transport=transport, repeat=repeat) -> None:
                for i, name in enumerate(names):
                    store.write(f"{transport}/{name}", RepeatedBlock(size, seed=i + repeat))
            writes[transport].append(timed(write_all))
    ratios = {"write": report(f"write {len(names)} x {size // MiB} MiB, one after another (median of {args.repeats})",
                              "MiB/s", {t: median(v) for t, v in writes.items()}, total / MiB)}

    for mode, workers in (("one after another", 1), (f"{args.concurrency} at a time", args.concurrency)):
        reads: dict[str, list[float]] = {t: [] for t in TRANSPORTS}  # both read what WebHDFS wrote
        for _ in range(args.repeats):
            for transport, store in stores.items():
                def read_all(store=store, workers=workers) -> None:
                    with ThreadPoolExecutor(workers) as pool:
                        sizes = list(pool.map(lambda n: drain(store.open_read(f"webhdfs/{n}")), names))
                    assert sum(sizes) == total, sizes
                reads[transport].append(timed(read_all))
        key = "read" if workers == 1 else "read_concurrent"
        ratios[key] = report(f"read {len(names)} x {size // MiB} MiB, {mode} (median of {args.repeats})", "MiB/s",
                             {t: median(v) for t, v in reads.items()}, total / MiB)

    small: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    payload = os.urandom(4096)
    for repeat in range(args.repeats):
        for transport, store in stores.items():
            def write_small(store=store, transport=transport, repeat=repeat) -> None:
                with ThreadPoolExecutor(args.concurrency) as pool:
                    list(pool.map(lambda i: store.write(f"{transport}/small-{repeat}/f-{i:05d}", io.BytesIO(payload)),
                                  range(args.small_files)))
            small[transport].append(timed(write_small))
    ratios["write_small"] = report(
        f"write {args.small_files} files of 4 KiB, {args.concurrency} at a time (median of {args.repeats})",
        "files/s", {t: median(v) for t, v in small.items()}, args.small_files)
    for transport, store in stores.items():
        store.delete(transport, recursive=True)
    return ratios


# -- list ----------------------------------------------------------------------------------------------------
def list_child(transport: str, namenode: str, directory: str) -> None:
    """In a child process: list ``directory`` and print count, seconds and peak RSS as JSON."""
    store = make_store(transport, namenode, directory)
    store.info("")
    base = peak_rss_mib()
    start = time.perf_counter()
    count = sum(1 for _ in store.list(""))
    seconds = time.perf_counter() - start
    print(json.dumps({"count": count, "seconds": seconds, "rss": peak_rss_mib() - base}))


def bench_list(stack, namenode: str, args) -> dict[str, float]:
    from airflow_hybrid.devstack.hadoop import HadoopHdfs

    directory = f"{ROOT_DIR}/many"
    HadoopHdfs.from_state(stack.state["hadoop"]).make_files(directory, args.list_files)
    runs: dict[str, list[dict]] = {t: [] for t in TRANSPORTS}
    for _ in range(args.repeats):
        for transport in TRANSPORTS:
            out = subprocess.run(
                [sys.executable, __file__, "--list-child", transport, "--namenode", namenode, "--list-root", directory],
                check=True, capture_output=True, text=True, env=os.environ, cwd=ROOT,
            ).stdout.strip().splitlines()[-1]
            result = json.loads(out)
            assert result["count"] == args.list_files, result
            runs[transport].append(result)
    ratio = report(f"list {args.list_files:,} files in one directory, a fresh process each (median of {args.repeats})",
                   "entries/s", {t: median([r["seconds"] for r in v]) for t, v in runs.items()}, args.list_files)
    for transport in TRANSPORTS:
        print(f"{transport:8s} peak RSS +{median([r['rss'] for r in runs[transport]]):.0f} MiB for the listing")
    return {"list": ratio}


# -- migrate -------------------------------------------------------------------------------------------------
def bench_migrate(stack, namenode: str, args) -> dict[str, float]:
    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.operators.migrate import UfsMigrateOperator

    rng = random.Random(11)
    sizes = [rng.randrange(1, 64 * 1024) for _ in range(args.migrate_small)]
    sizes += [rng.randrange(4 * MiB, 12 * MiB) for _ in range(args.migrate_medium)]
    total = sum(sizes)
    block = rng.randbytes(12 * MiB)
    old = time.time() - 10 * DAY
    seconds, counts = {}, {}
    for transport in TRANSPORTS:
        conn_id = f"bench_transport_{transport}"
        os.environ.update(airflow_env({conn_id: {"conn_type": "hybrid_mount", "extra": {
            "members": {
                "hdfs": {"uri": f"hdfs://{namenode}{ROOT_DIR}/migrate-{transport}", "conn_id": "webhdfs_default",
                         "options": {"transport": transport}},
                "s3": {"uri": f"s3://{BUCKET}/bench-transport/{transport}-{int(time.time())}", "conn_id": "aws_default"},
            },
            "priority.read": "s3,hdfs", "collection.create": "s3"}}}))
        writer = make_store("rpc", namenode, f"{ROOT_DIR}/migrate-{transport}")

        def put(index: int, writer=writer) -> None:
            rel = f"d-{index // 100:02d}/file-{index:05d}.bin"
            writer.write(rel, io.BytesIO(index.to_bytes(8, "big") + block[: max(0, sizes[index] - 8)]))
            writer.set_times(rel, mtime=old)

        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(put, range(len(sizes))))
        start = time.perf_counter()
        summary = UfsMigrateOperator(task_id="migrate", mount_conn_id=conn_id, path="", policy=POLICY,
                                     concurrency=args.concurrency, progress_interval=60.0).execute({})
        seconds[transport] = time.perf_counter() - start
        counts[transport] = summary["moved"]
        assert (summary["moved"], summary["failed"]) == (len(sizes), 0), summary
        writer.delete("", recursive=True)
    files_ratio = report(f"migrate {len(sizes)} files ({total / MiB:.0f} MiB) HDFS -> S3 with UfsMigrateOperator, "
                         f"concurrency {args.concurrency}", "files/s", seconds, len(sizes))
    print(f"{'':8s} ({total / MiB / seconds['webhdfs']:.1f} vs {total / MiB / seconds['rpc']:.1f} MiB/s "
          f"webhdfs vs rpc)")
    return {"migrate": files_ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--read-mib", type=int, default=256)
    parser.add_argument("--read-files", type=int, default=8)
    parser.add_argument("--small-files", type=int, default=400)
    parser.add_argument("--list-files", type=int, default=10_000)
    parser.add_argument("--migrate-small", type=int, default=300)
    parser.add_argument("--migrate-medium", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--list-child", choices=TRANSPORTS)
    parser.add_argument("--list-root")
    parser.add_argument("--namenode")
    args = parser.parse_args()
    if args.list_child:
        list_child(args.list_child, args.namenode, args.list_root)
        return
    print(f"{os.cpu_count()} cores; Apache Hadoop 3.5.0 (NameNode + DataNode JVMs) and moto's S3 server on loopback")
    with devstack(hdfs="hadoop") as stack:
        namenode = stack.state["hadoop"]["fs_uri"].removeprefix("hdfs://")
        stores = {transport: make_store(transport, namenode) for transport in TRANSPORTS}
        stores["rpc"].mkdir("")
        ratios = bench_read_write(stores, args)
        ratios.update(bench_list(stack, namenode, args))
        ratios.update(bench_migrate(stack, namenode, args))
        stores["rpc"].delete("", recursive=True)
    print("\n-- summary: rpc/webhdfs (above 1: RPC is faster) --")
    print("  ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))


if __name__ == "__main__":
    main()
