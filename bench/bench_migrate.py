"""Migrating a dataset from HDFS to the S3 server, side by side with the straightforward alternatives, on each
HDFS server (the devstack's WebHDFS server, then Apache Hadoop 3.5.0), then planning over 1,000,000 listed files.

All contenders move the same files between the same servers (their own processes, loopback):

* ``UfsMigrateOperator``: plan + per file: streamed copy (S3 multipart, parallel parts), CRC32C verified
  against S3's stored checksum, source re-checked, source removed -- 8 files in parallel;
* ``hdfs download + boto3 upload_file``: the ``hdfs`` client downloads the directory to local disk
  (``n_threads=8``), then boto3's ``upload_file`` uploads each file (a loop, and on 8 threads): no end-to-end
  verification, no removal, twice the disk I/O;
* ``UfsMigrateOperator(engine="distcp")`` on Apache Hadoop only: DistCp (local MapReduce) copies the batch over
  RPC to ``s3a://``, then the same verification and removal (on a second, identical dataset);
* ``FileTransferOperator`` (common-io), one file after another as one task would. Its S3 side normally
  needs ``s3fs`` (the amazon provider's ``s3`` filesystem), which cannot be installed here (it pins
  botocore below the version this environment runs), so both of its ends are ``hybrid://`` paths of
  one-member mounts (the only fsspec filesystem here that reaches the S3 server): the same servers,
  ``ObjectStoragePath.copy`` streaming through fsspec, no verification, no removal.

The alternatives run first (they leave the sources in place); ours runs last and moves them. Planning is
measured in a child process (so its peak RSS is its own) over a synthetic, lazily generated listing of
1,000,000 files. Prints figures, with the requests each contender made per file and per server
operation (from the devstack's counters); asserts nothing about speed.

    .venv/bin/python bench/bench_migrate.py [--small 2000] [--medium 60] [--large 3] [--listed 1000000]
    BENCH_SCALE=0.2 .venv/bin/python bench/bench_migrate.py     # a fifth of every count
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT, devstack, mib_s, peak_rss_mib

MiB = 2**20
DAY = 86_400
POLICY = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
BUCKET = "hybrid-lake"


class RssSampler:
    """Peak RSS of this process while a block runs, and by how much it exceeded the RSS at the start
    (sampled every 20 ms; ``ru_maxrss`` only ever grows over the whole process)."""

    def __enter__(self) -> RssSampler:
        import psutil

        self._process = psutil.Process()
        self.start = self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _dataset_sizes(small: int, medium: int, large: int, seed: int = 5) -> tuple[list[int], bytes]:
    rng = random.Random(seed)
    sizes = [rng.randrange(1, 64 * 1024) for _ in range(small)]
    sizes += [rng.randrange(MiB, 4 * MiB) for _ in range(medium)]
    sizes += [24 * MiB + i for i in range(large)]
    return sizes, rng.randbytes(4 * MiB)


def _content(index: int, size: int, block: bytes) -> bytes:
    body = index.to_bytes(8, "big")  # every file distinct
    while len(body) < size:
        body += block[: size - len(body)]
    return body


def make_dataset(stack, root: str, small: int, medium: int, large: int) -> tuple[int, int]:
    """Old files (mtime 10 days ago) under ``/tmp/tpcds/<root>``: written straight into the devstack server's
    data directory, or through WebHDFS (8 threads, then SETTIMES) on Apache Hadoop."""
    sizes, block = _dataset_sizes(small, medium, large)
    old = time.time() - 10 * DAY
    rels = [f"{root}/part-{index // 500:03d}/file-{index:06d}.bin" for index in range(len(sizes))]
    if stack.state["hdfs"] == "devstack":
        for index, (rel, size) in enumerate(zip(rels, sizes, strict=True)):
            path = stack.hdfs_dir / "tmp" / "tpcds" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_content(index, size, block))
            os.utime(path, (old, old))
    else:
        import io

        from airflow_hybrid.stores.hdfs.store import HdfsStore

        store = HdfsStore("hdfs:///tmp/tpcds")

        def put(index: int) -> None:
            store.write(rels[index], io.BytesIO(_content(index, sizes[index], block)))
            store.set_times(rels[index], mtime=old)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put, range(len(sizes))))
        store.close()
    return len(sizes), sum(max(size, 8) for size in sizes)


def hdfs_then_boto3(stack, root: str, prefix: str, upload_threads: int) -> None:
    import boto3
    from hdfs import InsecureClient

    local = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        client = InsecureClient(stack.webhdfs_url, user=stack.user)
        client.download(f"/tmp/tpcds/{root}", str(local / "data"), n_threads=8)
        s3 = boto3.client("s3", endpoint_url=stack.s3_endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        files = [p for p in (local / "data").rglob("*") if p.is_file()]

        def upload(path: Path) -> None:
            s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(local / 'data')}")

        if upload_threads == 1:
            for path in files:
                upload(path)
        else:
            with ThreadPoolExecutor(upload_threads) as pool:
                list(pool.map(upload, files))
    finally:
        shutil.rmtree(local, ignore_errors=True)


def file_transfer_operator(stack, root: str, prefix: str) -> None:
    from airflow.providers.common.io.operators.file_transfer import FileTransferOperator

    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.mount import HybridMount

    # Airflow caches ObjectStoragePath filesystems by connection id: one pair of ids per HDFS server.
    kind = stack.state["hdfs"]
    os.environ.update(airflow_env({
        f"bench_hdfs_{kind}": {"conn_type": "hybrid_mount", "extra": {"members": {
            "hdfs": {"uri": "hdfs:///tmp/tpcds", "conn_id": "webhdfs_default"}}}},
        f"bench_s3_{kind}": {"conn_type": "hybrid_mount", "extra": {"members": {
            "s3": {"uri": f"s3://{BUCKET}/{prefix}", "conn_id": "aws_default"}}}},
    }))
    source = HybridMount.from_conn_id(f"bench_hdfs_{kind}")
    paths = [info.path for info in source.members["hdfs"].walk_files(root)]
    for path in paths:
        FileTransferOperator(task_id="copy", src=f"hybrid://bench_hdfs_{kind}/{path}", dst=f"hybrid://bench_s3_{kind}/{path}",
                             overwrite=True).execute({})


def ufs_migrate(root: str) -> dict:
    from airflow_hybrid.operators.migrate import UfsMigrateOperator

    return UfsMigrateOperator(task_id="migrate", mount_conn_id="onprem_union", path=root, policy=POLICY,
                              concurrency=8, progress_interval=10.0).execute({})


def ufs_migrate_distcp(stack, root: str) -> dict:
    """The same migration with ``engine="distcp"``: Apache Hadoop DistCp (local MapReduce, our Maven classpath)
    copies hdfs://<namenode>/... to s3a://, then our verification and removal. Apache Hadoop only."""
    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.migration.distcp import DEVSTACK_S3A_PROPERTIES, local_distcp_command
    from airflow_hybrid.operators.migrate import UfsMigrateOperator

    extra = {"members": {"hdfs": {"uri": f"{stack.state['fs_uri']}/tmp/tpcds", "conn_id": "webhdfs_default"},
                         "s3": {"uri": f"s3://{BUCKET}/tpcds", "conn_id": "aws_default"}},
             "priority.read": "s3,hdfs", "collection.create": "s3"}
    os.environ.update(airflow_env({"bench_distcp": {"conn_type": "hybrid_mount", "extra": extra}}))
    work = tempfile.mkdtemp(prefix="bench-distcp-")
    try:
        return UfsMigrateOperator(
            task_id="migrate", mount_conn_id="bench_distcp", path=root, policy=POLICY, concurrency=8,
            engine="distcp", distcp_command=local_distcp_command(work), distcp_properties=DEVSTACK_S3A_PROPERTIES,
            distcp_env={"HADOOP_USER_NAME": stack.user}, progress_interval=10.0,
        ).execute({})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _requests(stack) -> tuple[int, dict[str, int]]:
    """Requests the servers served: in total, and per ``server operation``."""
    stats = stack.stats()
    per_op = {f"{server} {op}": count for server in ("webhdfs", "s3") for op, count in stats[server].items()}
    return sum(link.get("requests", 0) for link in stats["shaping"].values()), per_op


def run(stack, name: str, fn, files: int, nbytes: int, rows: list) -> object:
    requests, ops_before = _requests(stack)
    with RssSampler() as rss:
        start = time.perf_counter()
        result = fn()
        elapsed = time.perf_counter() - start
    total, ops_after = _requests(stack)
    requests = total - requests
    per_op = {op: count - ops_before.get(op, 0) for op, count in ops_after.items() if count > ops_before.get(op, 0)}
    rows.append((name, elapsed, files / elapsed, mib_s(nbytes, elapsed), (rss.peak - rss.start) / MiB,
                 requests / files))
    breakdown = ", ".join(f"{op} {count / files:.2f}" for op, count in sorted(per_op.items(), key=lambda i: -i[1]))
    print(f"   {name}: {elapsed:.1f}s; requests per file: {breakdown}", flush=True)
    return result


def check_copies(stack, prefix: str, files: int, nbytes: int) -> None:
    import boto3

    s3 = boto3.client("s3", endpoint_url=stack.s3_endpoint, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    count = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", ()):
            count += 1
            size += obj["Size"]
    assert (count, size) == (files, nbytes), f"{prefix}: {count} objects, {size} bytes; expected {files}, {nbytes}"


# -- planning over a synthetic listing ---------------------------------------------------------------
PLANNING_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
from bench_migrate import plan_synthetic
print(json.dumps(plan_synthetic(int(sys.argv[1]))))
"""


def _high_water_mib() -> float:
    """Peak RSS of this process image (``VmHWM``; unlike ``ru_maxrss`` it starts afresh at exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mib()


def plan_synthetic(listed: int) -> dict:
    """Plan over ``listed`` synthetic files (half of them old enough); runs in a child process."""
    from airflow_hybrid.migration.planner import plan_migration
    from airflow_hybrid.stores.base import FileInfo, Store

    now = time.time()

    class SyntheticStore(Store):
        """A listing of ``listed`` files generated lazily, 1,000 per directory."""

        scheme = "hdfs"

        def info(self, path):
            return FileInfo(path=path, size=0, mtime=0.0, is_dir=True)

        def walk_files(self, path=""):
            for i in range(listed):
                yield FileInfo(path=f"{path}/d{i // 1000:05d}/part-{i:07d}.parquet", size=1000 + i % 5000,
                               mtime=now - (10 * DAY if i % 2 else 3600))

        def list(self, path):
            raise NotImplementedError

        def open_read(self, path, offset=0, length=None):
            raise NotImplementedError

        def write(self, path, stream, size_hint=None):
            raise NotImplementedError

        def delete(self, path, recursive=False):
            raise NotImplementedError

        def mkdir(self, path):
            pass

    class Mount:
        name = "synthetic"
        members = {"hdfs": SyntheticStore("hdfs:///warehouse"), "s3": SyntheticStore("s3://bucket/warehouse")}

    plans = tempfile.mkdtemp(prefix="bench-plans-")
    baseline = _high_water_mib()
    start = time.perf_counter()
    summary = plan_migration(Mount(), "tpcds", POLICY, plan_store=plans)
    elapsed = time.perf_counter() - start
    peak = _high_water_mib()
    shutil.rmtree(plans, ignore_errors=True)
    return {"listed": listed, "selected": summary.files, "batches": summary.batches, "seconds": elapsed,
            "baseline_mib": baseline, "peak_mib": peak}


def bench_planning(listed: int) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    output = subprocess.run([sys.executable, "-c", PLANNING_CHILD, str(listed), str(Path(__file__).parent)],
                            capture_output=True, text=True, env=env, check=True).stdout
    result = json.loads(output.strip().splitlines()[-1])
    print(f"\n-- planning over {result['listed']:,} listed files (synthetic lazy listing, child process) --")
    print(f"   selected {result['selected']:,} files in {result['batches']:,} batches in {result['seconds']:.1f}s "
          f"({result['listed'] / result['seconds']:,.0f} files/s listed)")
    print(f"   peak RSS {result['peak_mib']:.0f} MiB (after imports {result['baseline_mib']:.0f} MiB: "
          f"+{result['peak_mib'] - result['baseline_mib']:.0f} MiB for the whole listing)")


def bench_server(stack, server: str, args) -> dict[str, float]:
    """Every contender on one HDFS server; the ratios of ours to each."""
    files, nbytes = make_dataset(stack, "bench", args.small, args.medium, args.large)
    print(f"\n-- [{server}] migrate {files:,} files, {nbytes / MiB:.0f} MiB ({args.small} small, {args.medium} "
          f"medium, {args.large} large) from HDFS to S3 (loopback) --", flush=True)
    rows: list = []
    if not args.skip_alternatives:
        run(stack, "hdfs download (8 threads) + boto3 upload_file loop",
            lambda: hdfs_then_boto3(stack, "bench", "alt-loop", 1), files, nbytes, rows)
        check_copies(stack, "alt-loop", files, nbytes)
        run(stack, "hdfs download (8 threads) + boto3 upload_file x8 threads",
            lambda: hdfs_then_boto3(stack, "bench", "alt-threads", 8), files, nbytes, rows)
        check_copies(stack, "alt-threads", files, nbytes)
        run(stack, "FileTransferOperator per file (hybrid:// ends)",
            lambda: file_transfer_operator(stack, "bench", "alt-fto"), files, nbytes, rows)
        check_copies(stack, "alt-fto", files, nbytes)
    summary = run(stack, "UfsMigrateOperator (plan, copy, verify, remove)", lambda: ufs_migrate("bench"),
                  files, nbytes, rows)
    assert summary["moved"] == files and summary["failed"] == 0, summary
    check_copies(stack, "tpcds/bench", files, nbytes)
    if server == "hadoop":
        make_dataset(stack, "bench-distcp", args.small, args.medium, args.large)
        result = run(stack, "UfsMigrateOperator engine=distcp (DistCp, verify, remove)",
                     lambda: ufs_migrate_distcp(stack, "bench-distcp"), files, nbytes, rows)
        assert result["moved"] == files and result["failed"] == 0, result
        check_copies(stack, "tpcds/bench-distcp", files, nbytes)

    print(f"\n   {'contender':58} {'wall':>7} {'files/s':>8} {'throughput':>14} {'+RSS':>8} {'req/file':>8}")
    for name, elapsed, rate, throughput, rss, per_file in rows:
        print(f"   {name:58} {elapsed:6.1f}s {rate:8.0f} {throughput:>14} {rss:5.0f}MiB {per_file:8.1f}")
    print("   (+RSS: peak resident memory above the process's at the start; req/file: HTTP requests the devstack's "
          "servers served per file: WebHDFS and S3 on the devstack, S3 only on Apache Hadoop)")
    print(f"   (UfsMigrateOperator's own copy phase: {summary['throughput'] / MiB:.1f} MiB/s over "
          f"{summary['elapsed']:.1f}s; it also verified every copy and removed every source)")
    rates = {name: rate for name, _, rate, *_ in rows}
    ours = rates["UfsMigrateOperator (plan, copy, verify, remove)"]
    ratios = {}
    if not args.skip_alternatives:
        ratios["raw"] = ours / rates["hdfs download (8 threads) + boto3 upload_file x8 threads"]
        ratios["fto"] = ours / rates["FileTransferOperator per file (hybrid:// ends)"]
    if server == "hadoop":
        ratios["distcp"] = ours / rates["UfsMigrateOperator engine=distcp (DistCp, verify, remove)"]
    return ratios


def main() -> None:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=int(2000 * scale), help="files of 1-64 KiB")
    parser.add_argument("--medium", type=int, default=int(60 * scale), help="files of 1-4 MiB")
    parser.add_argument("--large", type=int, default=max(1, int(3 * scale)), help="files of 24 MiB")
    parser.add_argument("--listed", type=int, default=int(1_000_000 * scale), help="files listed for planning")
    parser.add_argument("--skip-alternatives", action="store_true", help="only time UfsMigrateOperator")
    parser.add_argument("--servers", default="devstack,hadoop", help="HDFS servers, one after the other")
    args = parser.parse_args()

    # Imports happen here, outside every timed region.
    import boto3  # noqa: F401
    import hdfs  # noqa: F401
    from airflow.providers.common.io.operators.file_transfer import FileTransferOperator  # noqa: F401

    from airflow_hybrid.operators.migrate import UfsMigrateOperator  # noqa: F401

    figures: dict[str, dict[str, float]] = {}
    for server in args.servers.split(","):
        with devstack(hdfs=server) as stack:
            figures[server] = bench_server(stack, server, args)
    if {"devstack", "hadoop"} <= figures.keys():
        print("\n-- side by side (files/s ratios, higher is better for the first) --")
        for key, label in (("raw", "UfsMigrateOperator / hdfs download + boto3 x8"),
                           ("fto", "UfsMigrateOperator / FileTransferOperator"),
                           ("distcp", "UfsMigrateOperator / engine=distcp")):
            cells = [f"{server} {values[key]:.2f}x" for server, values in figures.items() if key in values]
            print(f"   {label:48} {'   '.join(cells)}")
    bench_planning(args.listed)
    print(f"\n   bench process peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
