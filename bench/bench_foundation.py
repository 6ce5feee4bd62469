"""Read throughput (HdfsStore vs the plain ``hdfs`` client) and listing 100,000 files, on each HDFS server.

Side by side in one run, on the devstack's WebHDFS server and on Apache Hadoop 3.5.0's NameNode + DataNode
(``devstack up --hdfs hadoop``: real JVMs, loopback, 4 MiB blocks, so a 512 MiB file spans 128 blocks). Both
contenders talk to the same server. Each listing runs in a fresh child process so its peak RSS is its own.
Prints figures, and the ratios; asserts nothing about speed.

    .venv/bin/python bench/bench_foundation.py [--size-mib 512] [--files 100000] [--servers devstack,hadoop]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import ROOT, RepeatedBlock, devstack, mib_s, peak_rss_mib

HDFS_ROOT = "/tmp/bench"


def _read_all(stream, chunk: int = 4 * 2**20) -> int:
    total = 0
    while data := stream.read(chunk):
        total += len(data)
    return total


def bench_reads(stack, size_mib: int, repeats: int) -> dict[str, float]:
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

    from airflow_hybrid.stores.hdfs.store import HdfsStore

    nbytes = size_mib * 2**20
    store = HdfsStore(f"hdfs://{HDFS_ROOT}", webhdfs_conn_id="webhdfs_default")
    store.write("big.bin", RepeatedBlock(nbytes))
    client = WebHDFSHook("webhdfs_default").get_conn()

    def ours() -> int:
        with store.open_read("big.bin") as stream:
            return _read_all(stream)

    def plain() -> int:
        with client.read(f"{HDFS_ROOT}/big.bin", chunk_size=4 * 2**20) as reader:
            return sum(len(c) for c in reader)

    contenders = (("HdfsStore.open_read", ours), ("hdfs client read", plain))
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(repeats):  # interleaved, so both see the same machine state
        for name, fn in contenders:
            start = time.perf_counter()
            assert fn() == nbytes
            times[name].append(time.perf_counter() - start)
    medians = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    print(f"\n-- [{stack.state['hdfs']}] read {size_mib} MiB over WebHDFS (median of {repeats}) --")
    for name, seconds in medians.items():
        print(f"{name:24s} {seconds:7.3f} s  {mib_s(nbytes, seconds)}")
    ratio = medians["hdfs client read"] / medians["HdfsStore.open_read"]
    print(f"ratio ours/plain throughput: {ratio:.2f}x")
    store.delete("big.bin")
    store.close()
    return {"read_mib_s": nbytes / 2**20 / medians["HdfsStore.open_read"], "read_ratio": ratio}


def _list_child(mode: str, root: str) -> None:
    """Runs in a child process: list ``root`` and print count, seconds and peak RSS as JSON."""
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

    from airflow_hybrid.stores.hdfs.store import HdfsStore

    if mode == "store":
        store = HdfsStore(f"hdfs://{root}", webhdfs_conn_id="webhdfs_default")
        store.info("")
        base_rss = peak_rss_mib()
        start = time.perf_counter()
        count = sum(1 for _ in store.list(""))
    else:
        client = WebHDFSHook("webhdfs_default").get_conn()
        client.status(root)
        base_rss = peak_rss_mib()
        start = time.perf_counter()
        count = len(client.list(root, status=True))
    seconds = time.perf_counter() - start
    print(json.dumps({"count": count, "seconds": seconds, "peak_rss": peak_rss_mib(), "base_rss": base_rss}))


def _make_files(stack, directory: str, files: int) -> None:
    if stack.state["hdfs"] == "hadoop":
        from airflow_hybrid.devstack.hadoop import HadoopHdfs

        HadoopHdfs.from_state(stack.state["hadoop"]).make_files(directory, files)
        return
    local = stack.hdfs_dir / directory.lstrip("/")
    local.mkdir(parents=True, exist_ok=True)
    for i in range(sum(1 for _ in os.scandir(local)), files):
        (local / f"part-{i:07d}").touch()


def bench_listing(stack, files: int) -> dict[str, float]:
    directory = f"{HDFS_ROOT}/many"
    start = time.perf_counter()
    _make_files(stack, directory, files)
    print(f"\n-- [{stack.state['hdfs']}] list {files:,} files in one directory (made in {time.perf_counter() - start:.0f} s) --")
    results = {}
    for mode, label in (("store", "HdfsStore.list (paged)"), ("plain", "hdfs client list(status)")):
        out = subprocess.run(
            [sys.executable, __file__, "--list-child", mode, "--list-root", directory],
            check=True, capture_output=True, text=True, env=os.environ, cwd=ROOT,
        ).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        assert r["count"] == files, r
        results[mode] = r
        print(
            f"{label:26s} {r['seconds']:7.2f} s  {files / r['seconds']:10,.0f} entries/s  "
            f"peak RSS {r['peak_rss']:6.0f} MiB (+{r['peak_rss'] - r['base_rss']:.0f} MiB for the listing)"
        )
    growth = {mode: max(1.0, r["peak_rss"] - r["base_rss"]) for mode, r in results.items()}
    print(
        f"ratio plain/ours time: {results['plain']['seconds'] / results['store']['seconds']:.2f}x, "
        f"memory for the listing plain/ours: {growth['plain'] / growth['store']:.1f}x"
    )
    return {"list_s": results["store"]["seconds"], "list_rss_mib": growth["store"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--servers", default="devstack,hadoop")
    parser.add_argument("--list-child", choices=["store", "plain"])
    parser.add_argument("--list-root")
    args = parser.parse_args()
    if args.list_child:
        _list_child(args.list_child, args.list_root)
        return
    figures = {}
    for server in args.servers.split(","):
        with devstack(hdfs=server) as stack:
            figures[server] = {**bench_reads(stack, args.size_mib, args.repeats), **bench_listing(stack, args.files)}
    if len(figures) == 2:
        dev, real = figures["devstack"], figures["hadoop"]
        print("\n-- side by side: Apache Hadoop vs the devstack server --")
        print(f"store read throughput hadoop/devstack: {real['read_mib_s'] / dev['read_mib_s']:.2f}x "
              f"({real['read_mib_s']:.0f} vs {dev['read_mib_s']:.0f} MiB/s); ours/plain on hadoop "
              f"{real['read_ratio']:.2f}x, on devstack {dev['read_ratio']:.2f}x")
        print(f"listing time hadoop/devstack: {real['list_s'] / dev['list_s']:.2f}x "
              f"({real['list_s']:.2f} vs {dev['list_s']:.2f} s), memory +{real['list_rss_mib']:.0f} vs "
              f"+{dev['list_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
