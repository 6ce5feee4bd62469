"""Issue 3 benchmark: read throughput (HdfsStore vs the plain ``hdfs`` client) and listing 100,000 files.

Both sides talk to the same devstack WebHDFS server (its own process, loopback). Each listing runs in a
fresh child process so its peak RSS is its own. Prints figures; asserts nothing about speed.

    .venv/bin/python bench/bench_foundation.py [--size-mib 512] [--files 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import ROOT, devstack, mib_s, peak_rss_mib


def _read_all(stream, chunk: int = 4 * 2**20) -> int:
    total = 0
    while data := stream.read(chunk):
        total += len(data)
    return total


def bench_reads(stack, size_mib: int, repeats: int) -> None:
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

    from airflow_hybrid.stores.hdfs import HdfsStore

    path = stack.hdfs_dir / "bench" / "big.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as out:
        block = os.urandom(2**20)
        for _ in range(size_mib):
            out.write(block)
    nbytes = size_mib * 2**20
    store = HdfsStore("hdfs:///bench", webhdfs_conn_id="webhdfs_default")
    client = WebHDFSHook("webhdfs_default").get_conn()
    store.info("big.bin")  # warm up: imports, connection

    def ours() -> int:
        with store.open_read("big.bin") as stream:
            return _read_all(stream)

    def plain() -> int:
        with client.read("/bench/big.bin", chunk_size=4 * 2**20) as reader:
            return sum(len(c) for c in reader)

    contenders = (("HdfsStore.open_read", ours), ("hdfs client read", plain))
    times: dict[str, list[float]] = {name: [] for name, _ in contenders}
    for _ in range(repeats):  # interleaved, so both see the same machine state
        for name, fn in contenders:
            start = time.perf_counter()
            assert fn() == nbytes
            times[name].append(time.perf_counter() - start)
    rows = [(name, sorted(t)[len(t) // 2]) for name, t in times.items()]
    print(f"\n-- read {size_mib} MiB from WebHDFS (median of {repeats}) --")
    for name, seconds in rows:
        print(f"{name:24s} {seconds:7.3f} s  {mib_s(nbytes, seconds)}")
    print(f"ratio ours/plain throughput: {rows[1][1] / rows[0][1]:.2f}x")


def _list_child(mode: str, root: str) -> None:
    """Runs in a child process: list ``root`` and print count, seconds and peak RSS as JSON."""
    from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

    from airflow_hybrid.stores.hdfs import HdfsStore

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


def bench_listing(stack, files: int) -> None:
    directory = stack.hdfs_dir / "many"
    directory.mkdir(parents=True, exist_ok=True)
    existing = sum(1 for _ in os.scandir(directory))
    for i in range(existing, files):
        (directory / f"part-{i:07d}.parquet").touch()
    print(f"\n-- list {files:,} files in one directory --")
    for mode, label in (("store", "HdfsStore.list (paged)"), ("plain", "hdfs client list(status)")):
        out = subprocess.run(
            [sys.executable, __file__, "--list-child", mode],
            check=True, capture_output=True, text=True, env=os.environ, cwd=ROOT,
        ).stdout.strip().splitlines()[-1]
        r = json.loads(out)
        assert r["count"] == files, r
        print(
            f"{label:26s} {r['seconds']:7.2f} s  {files / r['seconds']:10,.0f} entries/s  "
            f"peak RSS {r['peak_rss']:6.0f} MiB (+{r['peak_rss'] - r['base_rss']:.0f} MiB for the listing)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--list-child", choices=["store", "plain"])
    args = parser.parse_args()
    if args.list_child:
        _list_child(args.list_child, "/many")
        return
    with devstack() as stack:
        bench_reads(stack, args.size_mib, args.repeats)
        bench_listing(stack, args.files)


if __name__ == "__main__":
    main()
