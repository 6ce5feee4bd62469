"""Migrating datasets from HDFS to S3, side by side with the straightforward alternatives, on each pair of
servers (the devstack's WebHDFS server with moto, the same with SeaweedFS's S3 gateway, Apache Hadoop 3.5.0's
HDFS with moto, and with SeaweedFS: the one pair of servers here neither of which is Python), for a mixed set whose bytes sit mostly in big files and a set of small files, then planning
over 1,000,000 listed files.

All contenders move the same files between the same servers (their own processes, loopback), each in a
process of its own (so its peak RSS is its own), with the same concurrency ``C`` (``--concurrency``, 8):

* ``ours``: ``UfsMigrateOperator``: plan + per file: streamed copy (one ``PutObject`` below a part, else a
  multipart upload with parallel, bounded parts), CRC32C verified against S3's stored checksum, source
  re-checked, source removed -- ``C`` files in parallel;
* ``raw``: the raw client pipeline: the ``hdfs`` client downloads the directory to local disk
  (``n_threads=C``), then boto3's ``upload_file`` uploads each file on ``C`` threads (one client, a pool of
  ``max_pool_connections=64`` as ours): no end-to-end verification, no removal, twice the disk I/O;
* ``fto``: ``FileTransferOperator`` (common-io), one file after another as one task would. Its S3 side
  normally needs ``s3fs`` (the amazon provider's ``s3`` filesystem), which cannot be installed here (it pins
  botocore below the version this environment runs), so both of its ends are ``hybrid://`` paths of
  one-member mounts (the only fsspec filesystem here that reaches the S3 server): the same servers,
  ``ObjectStoragePath.copy`` streaming through fsspec, no verification, no removal. On the small set it
  copies the first ``--fto-small`` files only (all of one size: files/s compare);
* ``rpc`` (Apache Hadoop only): ``ours`` with the HDFS member's option ``transport: rpc`` (HDFS's own RPC
  protocol through hdfs-native, instead of WebHDFS), on a copy of the dataset of its own;
* ``crt`` and ``rpc-crt``: ``ours`` and ``rpc`` with the S3 member's option ``put_client: crt`` (single puts
  through the AWS Common Runtime's S3 client instead of botocore), each on a copy of the dataset of its own;
* ``distcp`` (``--distcp``, Apache Hadoop only): ``UfsMigrateOperator(engine="distcp")``: DistCp (local
  MapReduce) copies the batch over RPC to ``s3a://``, then the same verification and removal.

The alternatives run first (they leave the sources in place); ours runs last and moves them. Peak RSS is the
child's high-water mark above its RSS once everything is imported. Prints figures and ratios (files/s of
ours to each; +RSS of ours to raw; the bound: the most ours could reach over raw if its own process took no
CPU, every core running the servers' work for its files but the devstack's Python servers, which share one
interpreter, on one core at most), with the requests per file and server operation
where the devstack counts them (its WebHDFS and moto servers), the CPU time per file of the contender's
process (while timed, not its imports) and of the servers' processes (the devstack's, with Hadoop's JVMs, and
SeaweedFS's), and the cores they kept busy together (files/s times both): near the core count a contender is
bound by CPU, and these show whose. Asserts nothing about speed.

    .venv/bin/python bench/bench_migrate.py [--setups moto,seaweedfs,hadoop,hadoop-seaweedfs] [--sets mixed,small]
        [--contenders raw,fto,ours,rpc,crt,rpc-crt] [--small 2000 --medium 60 --large 3] [--small-files 10000]
        [--concurrency 8] [--listed 1000000] [--profile DIR]   # DIR: py-spy raw stacks of each child
                                                             # (GIL holders; BENCH_PROFILE_GIL=0: wall clock)
    BENCH_SCALE=0.2 .venv/bin/python bench/bench_migrate.py     # a fifth of every count
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import ROOT, devstack, peak_rss_mib

MiB = 2**20
KiB = 2**10
DAY = 86_400
POLICY = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
BUCKET = "hybrid-lake"
#: Setups: (HDFS server, S3 server).
SETUPS = {"moto": ("devstack", "moto"), "seaweedfs": ("devstack", "seaweedfs"), "hadoop": ("hadoop", "moto"),
          "hadoop-seaweedfs": ("hadoop", "seaweedfs")}
LABELS = {"raw": "hdfs download + boto3 upload_file", "fto": "FileTransferOperator per file",
          "ours": "UfsMigrateOperator", "rpc": "UfsMigrateOperator, HDFS transport rpc",
          "distcp": "UfsMigrateOperator engine=distcp", "crt": "UfsMigrateOperator, S3 put_client crt",
          "rpc-crt": "UfsMigrateOperator, rpc + put_client crt"}
#: Contenders that run ``UfsMigrateOperator`` (their summaries are checked), each but ``ours`` on its own copy.
OPERATORS = ("ours", "rpc", "distcp", "crt", "rpc-crt")


# -- datasets ------------------------------------------------------------------------------------------
def dataset_sizes(args, name: str, seed: int = 5) -> tuple[list[int], bytes]:
    rng = random.Random(seed)
    if name == "small":
        sizes = [args.small_size] * args.small_files
    else:
        sizes = [rng.randrange(1, 64 * KiB) for _ in range(args.small)]
        sizes += [rng.randrange(MiB, 4 * MiB) for _ in range(args.medium)]
        sizes += [24 * MiB + i for i in range(args.large)]
    return sizes, rng.randbytes(4 * MiB)


def _content(index: int, size: int, block: bytes) -> bytes:
    head = index.to_bytes(8, "big")  # every file distinct
    body = head + block[: max(0, size - 8)]
    while len(body) < size:
        body += block[: size - len(body)]
    return body


def make_dataset(stack, root: str, sizes: list[int], block: bytes) -> tuple[int, int]:
    """Old files (mtime 10 days ago) under ``/tmp/tpcds/<root>``: written straight into the devstack server's
    data directory, or through WebHDFS (8 threads, then SETTIMES) on Apache Hadoop."""
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


# -- the contenders (each runs in a child process) ---------------------------------------------------
def _s3_client(spec: dict):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=spec["s3_endpoint"], region_name="us-east-1",
                        aws_access_key_id=spec["s3_key"], aws_secret_access_key=spec["s3_secret"],
                        config=Config(max_pool_connections=64))


def run_raw(spec: dict) -> dict:
    """hdfs download (``n_threads=C``) to local disk, then boto3 ``upload_file`` on ``C`` threads."""
    from hdfs import InsecureClient

    concurrency = spec["concurrency"]
    local = Path(tempfile.mkdtemp(prefix="bench-download-"))
    try:
        client = InsecureClient(spec["webhdfs_url"], user=spec["user"])
        client.download(f"/tmp/tpcds/{spec['root']}", str(local / "data"), n_threads=concurrency)
        s3 = _s3_client(spec)
        files = [p for p in (local / "data").rglob("*") if p.is_file()]

        def upload(path: Path) -> None:
            s3.upload_file(str(path), BUCKET, f"{spec['prefix']}/{path.relative_to(local / 'data')}")

        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(upload, files))
    finally:
        shutil.rmtree(local, ignore_errors=True)
    return {}


def run_fto(spec: dict) -> dict:
    from airflow.providers.common.io.operators.file_transfer import FileTransferOperator

    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.mount import HybridMount

    os.environ.update(airflow_env({
        "bench_hdfs": {"conn_type": "hybrid_mount", "extra": {"members": {
            "hdfs": {"uri": "hdfs:///tmp/tpcds", "conn_id": "webhdfs_default"}}}},
        "bench_s3": {"conn_type": "hybrid_mount", "extra": {"members": {
            "s3": {"uri": f"s3://{BUCKET}/{spec['prefix']}", "conn_id": "aws_default"}}}},
    }))
    source = HybridMount.from_conn_id("bench_hdfs")
    paths = sorted(info.path for info in source.members["hdfs"].walk_files(spec["root"]))[: spec["files"]]
    for path in paths:
        FileTransferOperator(task_id="copy", src=f"hybrid://bench_hdfs/{path}", dst=f"hybrid://bench_s3/{path}",
                             overwrite=True).execute({})
    return {}


def _s3_put_client(extra: dict, spec: dict) -> dict:
    """``extra`` of a mount with its S3 member's ``put_client`` option set as the contender asks."""
    if spec.get("put_client"):
        member = extra["members"]["s3"]
        member["options"] = {**member.get("options", {}), "put_client": spec["put_client"]}
    return extra


def run_ours(spec: dict) -> dict:
    from airflow_hybrid.operators.migrate import UfsMigrateOperator

    variable = "AIRFLOW_CONN_ONPREM_UNION"
    if spec.get("put_client"):
        conn = json.loads(os.environ[variable])
        conn["extra"] = _s3_put_client(conn["extra"], spec)
        os.environ[variable] = json.dumps(conn)
    return UfsMigrateOperator(task_id="migrate", mount_conn_id="onprem_union", path=spec["root"], policy=POLICY,
                              concurrency=spec["concurrency"], progress_interval=60.0).execute({})


def run_rpc(spec: dict) -> dict:
    """``ours`` with the HDFS member on HDFS's own RPC protocol (member option ``transport: rpc``, hdfs-native)
    instead of WebHDFS. Apache Hadoop only."""
    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.operators.migrate import UfsMigrateOperator

    extra = {"members": {"hdfs": {"uri": f"{spec['fs_uri']}/tmp/tpcds", "conn_id": "webhdfs_default",
                                  "options": {"transport": "rpc"}},
                         "s3": {"uri": f"s3://{BUCKET}/tpcds", "conn_id": "aws_default"}},
             "priority.read": "s3,hdfs", "collection.create": "s3"}
    extra = _s3_put_client(extra, spec)
    os.environ.update(airflow_env({"bench_rpc": {"conn_type": "hybrid_mount", "extra": extra}}))
    return UfsMigrateOperator(task_id="migrate", mount_conn_id="bench_rpc", path=spec["root"], policy=POLICY,
                              concurrency=spec["concurrency"], progress_interval=60.0).execute({})


def run_distcp(spec: dict) -> dict:
    """``engine="distcp"``: Apache Hadoop DistCp (local MapReduce, our Maven classpath) copies
    hdfs://<namenode>/... to s3a://, then our verification and removal. Apache Hadoop only."""
    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.migration.distcp import DEVSTACK_S3A_PROPERTIES, local_distcp_command
    from airflow_hybrid.operators.migrate import UfsMigrateOperator

    extra = {"members": {"hdfs": {"uri": f"{spec['fs_uri']}/tmp/tpcds", "conn_id": "webhdfs_default"},
                         "s3": {"uri": f"s3://{BUCKET}/tpcds", "conn_id": "aws_default"}},
             "priority.read": "s3,hdfs", "collection.create": "s3"}
    os.environ.update(airflow_env({"bench_distcp": {"conn_type": "hybrid_mount", "extra": extra}}))
    work = tempfile.mkdtemp(prefix="bench-distcp-")
    try:
        return UfsMigrateOperator(
            task_id="migrate", mount_conn_id="bench_distcp", path=spec["root"], policy=POLICY,
            concurrency=spec["concurrency"], engine="distcp", distcp_command=local_distcp_command(work),
            distcp_properties=DEVSTACK_S3A_PROPERTIES, distcp_env={"HADOOP_USER_NAME": spec["user"]},
            progress_interval=60.0,
        ).execute({})
    finally:
        shutil.rmtree(work, ignore_errors=True)


CONTENDERS = {"raw": run_raw, "fto": run_fto, "ours": run_ours, "rpc": run_rpc, "distcp": run_distcp,
              "crt": lambda spec: run_ours({**spec, "put_client": "crt"}),
              "rpc-crt": lambda spec: run_rpc({**spec, "put_client": "crt"})}

CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench_migrate import child_main
child_main(json.loads(sys.argv[2]))
"""


def _proc_status(field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process, MiB (``VmHWM`` starts afresh at exec, unlike ``ru_maxrss``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return peak_rss_mib()


def child_main(spec: dict) -> None:
    # Imports happen here, outside the timed region.
    import boto3  # noqa: F401
    import hdfs  # noqa: F401
    from airflow.providers.common.io.operators.file_transfer import FileTransferOperator  # noqa: F401

    from airflow_hybrid.operators.migrate import UfsMigrateOperator  # noqa: F401

    baseline = _proc_status("VmRSS")
    cpu = _cpu_seconds()
    start = time.perf_counter()
    result = CONTENDERS[spec["kind"]](spec)
    elapsed = time.perf_counter() - start
    print("BENCH-RESULT " + json.dumps({"elapsed": elapsed, "cpu": _cpu_seconds() - cpu, "baseline_mib": baseline,
                                        "peak_mib": _proc_status("VmHWM"), "result": result}), flush=True)


def _cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its finished children (DistCp's JVM), so far."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def run_child(spec: dict, profile: Path | None) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-c", CHILD, str(Path(__file__).parent), json.dumps(spec)]
    if profile is not None and shutil.which("py-spy", path=str(Path(sys.executable).parent)):
        out = profile / f"{spec['setup']}-{spec['set']}-{spec['kind']}.txt"
        py_spy = str(Path(sys.executable).parent / "py-spy")
        gil = ["--gil"] if os.environ.get("BENCH_PROFILE_GIL", "1") == "1" else []  # 0: wall-clock samples
        command = [py_spy, "record", "-r", "100", *gil, "-f", "raw", "-o", str(out), "--", *command]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH-RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{spec['kind']} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return json.loads(lines[-1].removeprefix("BENCH-RESULT "))  # its CPU: the timed region's, not the imports'


# -- one setup -------------------------------------------------------------------------------------
def _requests(stack) -> dict[str, int]:
    """Requests the devstack's servers (WebHDFS, moto) served, per ``server operation``."""
    stats = stack.stats()
    return {f"{server} {op}": count for server in ("webhdfs", "s3") for op, count in stats[server].items()}


def server_cpu(pids: list[int]) -> tuple[float, float]:
    """CPU seconds the servers' processes (and their children: Hadoop's JVMs) used so far, and of those the
    devstack's own process's (``pids[0]``, without its children): Python servers (WebHDFS, moto) on threads of
    one interpreter, so at most one core whatever the machine has."""
    import psutil

    total = devstack = 0.0
    for index, pid in enumerate(pids):
        try:
            root = psutil.Process(pid)
            for process in (root, *root.children(recursive=True)):
                times = process.cpu_times()
                total += times.user + times.system
                if index == 0 and process is root:
                    devstack = times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total, devstack


def check_copies(s3, prefix: str, files: int, nbytes: int) -> None:
    count = size = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        for obj in page.get("Contents", ()):
            count += 1
            size += obj["Size"]
    assert (count, size) == (files, nbytes), f"{prefix}: {count} objects, {size} bytes; expected {files}, {nbytes}"


def delete_prefix(s3, prefix: str) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{prefix}/"):
        keys = [{"Key": obj["Key"]} for obj in page.get("Contents", ())]
        if keys:
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})


@contextlib.contextmanager
def s3_server(stack, kind: str):
    """The S3 server of a setup: the devstack's (moto), or a SeaweedFS started for it; sets ``aws_default``."""
    if kind == "moto":
        yield {"s3_endpoint": stack.s3_endpoint, "s3_key": "testing", "s3_secret": "testing", "pids": [stack.pid]}
        return
    from airflow_hybrid.devstack.seaweedfs import SeaweedS3
    from airflow_hybrid.devstack.stack import airflow_env

    base = Path(tempfile.mkdtemp(prefix="bench-seaweedfs-"))
    saved = os.environ.get("AIRFLOW_CONN_AWS_DEFAULT")
    try:
        with SeaweedS3(base, buckets=(BUCKET,), volume_size_mb=256) as seaweed:
            os.environ.update(airflow_env({"aws_default": seaweed.aws_connection()}))
            yield {"s3_endpoint": seaweed.endpoint, "s3_key": seaweed.access_key, "s3_secret": seaweed.secret_key,
                   "pids": [stack.pid, seaweed._process.pid]}
    finally:
        if saved is not None:
            os.environ["AIRFLOW_CONN_AWS_DEFAULT"] = saved
        shutil.rmtree(base, ignore_errors=True)


def bench_set(stack, setup: str, s3_spec: dict, set_name: str, args) -> dict:
    """Every contender on one dataset of one setup; rows of figures."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=s3_spec["s3_endpoint"], region_name="us-east-1",
                      aws_access_key_id=s3_spec["s3_key"], aws_secret_access_key=s3_spec["s3_secret"])
    root = f"bench-{set_name}"
    sizes, block = dataset_sizes(args, set_name)
    files, nbytes = make_dataset(stack, root, sizes, block)
    print(f"\n-- [{setup}: HDFS {stack.state['hdfs']}, S3 {SETUPS[setup][1]}] {set_name} set: {files:,} files, "
          f"{nbytes / MiB:.0f} MiB, concurrency {args.concurrency} --", flush=True)
    base = {"setup": setup, "set": set_name, "root": root, "concurrency": args.concurrency, "user": stack.user,
            "webhdfs_url": stack.webhdfs_url, "fs_uri": stack.state.get("fs_uri"),
            **{key: value for key, value in s3_spec.items() if key != "pids"}}
    kinds = [kind for kind in ("raw", "fto", "ours") if kind in args.contenders.split(",")]
    rows = {}

    def measure(kind: str, spec: dict, n_files: int, n_bytes: int) -> None:
        """Run one contender in its child process; its copies are checked and its row of figures kept."""
        before, (cpu, gil) = _requests(stack), server_cpu(s3_spec["pids"])
        figures = run_child(spec, args.profile)
        (cpu_after, gil_after), after = server_cpu(s3_spec["pids"]), _requests(stack)
        server, devstack = cpu_after - cpu, gil_after - gil
        per_op = {op: after[op] - before.get(op, 0) for op in after if after[op] > before.get(op, 0)}
        if kind in OPERATORS:
            summary = figures["result"]
            assert summary["moved"] == n_files and summary["failed"] == 0, summary
        check_copies(s3, spec["prefix"], n_files, n_bytes)
        rows[kind] = {"files": n_files, "bytes": n_bytes, "elapsed": figures["elapsed"],
                      "rate": n_files / figures["elapsed"], "mib_s": n_bytes / MiB / figures["elapsed"],
                      "rss": figures["peak_mib"] - figures["baseline_mib"], "peak": figures["peak_mib"],
                      "requests": sum(per_op.values()) / n_files, "cpu_ms": 1000 * figures["cpu"] / n_files,
                      "server_ms": 1000 * server / n_files, "devstack_ms": 1000 * devstack / n_files}
        breakdown = ", ".join(f"{op} {count / n_files:.2f}" for op, count in sorted(per_op.items(), key=lambda i: -i[1]))
        print(f"   {LABELS[kind]}: {figures['elapsed']:.1f}s for {n_files:,} files"
              + (f"; requests per file: {breakdown}" if breakdown else ""), flush=True)

    for kind in kinds:
        spec = {**base, "kind": kind, "prefix": f"alt-{kind}" if kind != "ours" else "tpcds/" + root}
        n_files, n_bytes = files, nbytes
        if kind == "fto" and set_name == "small" and args.fto_small < files:
            n_files, n_bytes = args.fto_small, args.fto_small * args.small_size
        measure(kind, {**spec, "files": n_files}, n_files, n_bytes)
    extra_kinds = []
    contenders = args.contenders.split(",")
    if stack.state["hdfs"] == "hadoop" and "rpc" in contenders:
        extra_kinds.append("rpc")
    if "crt" in contenders:
        extra_kinds.append("crt")
    if stack.state["hdfs"] == "hadoop" and "rpc-crt" in contenders:
        extra_kinds.append("rpc-crt")
    if args.distcp and stack.state["hdfs"] == "hadoop" and set_name == "mixed":
        extra_kinds.append("distcp")
    for kind in extra_kinds:  # each on a copy of the dataset of its own (ours moved the first one)
        make_dataset(stack, f"{root}-{kind}", sizes, block)
        measure(kind, {**base, "kind": kind, "root": f"{root}-{kind}", "prefix": f"tpcds/{root}-{kind}",
                       "files": files}, files, nbytes)
    print(f"\n   {'contender':40} {'files':>7} {'wall':>7} {'files/s':>8} {'MiB/s':>7} {'+RSS':>8} {'peak':>8} "
          f"{'req/file':>8} {'CPU ms/file: client':>19} {'servers':>7} {'(devstack)':>10} {'cores busy':>10}")
    for kind, row in rows.items():
        busy = row["rate"] * (row["cpu_ms"] + row["server_ms"]) / 1000  # of os.cpu_count(): near it, CPU-bound
        print(f"   {LABELS[kind]:40} {row['files']:7,} {row['elapsed']:6.1f}s {row['rate']:8.0f} {row['mib_s']:7.1f} "
              f"{row['rss']:5.0f}MiB {row['peak']:5.0f}MiB {row['requests']:8.1f} {row['cpu_ms']:19.2f} "
              f"{row['server_ms']:7.2f} {row['devstack_ms']:10.2f} {busy:10.2f}")
    for prefix in ("alt-raw", "alt-fto", f"tpcds/{root}", *(f"tpcds/{root}-{kind}" for kind in extra_kinds)):
        delete_prefix(s3, prefix)
    return rows


def server_bound(row: dict, raw: dict) -> float:
    """The most a contender could reach over the raw pipeline here if its own process took no CPU at all: every
    core busy with the servers' work for its files (``server_ms`` per file), but the devstack's Python servers
    on one core at most (``devstack_ms`` per file: one interpreter's lock), against the raw pipeline's rate."""
    cores = (os.cpu_count() or 1) * 1000 / max(row["server_ms"], 1e-6)
    one_interpreter = 1000 / max(row["devstack_ms"], 1e-6)
    return min(cores, one_interpreter) / raw["rate"]


def ratios(rows: dict) -> dict[str, float]:
    result = {}
    if (ours := rows.get("ours")) is not None:
        for kind in ("raw", "fto", "distcp"):
            if kind in rows:
                result[kind] = ours["rate"] / rows[kind]["rate"]
        if "raw" in rows:
            result["rss"] = ours["rss"] / max(rows["raw"]["rss"], 1.0)
            result["bound"] = server_bound(ours, rows["raw"])
    for other in ("raw", "fto"):  # ours over RPC (Apache Hadoop) against the same alternatives
        if "rpc" in rows and other in rows:
            result[f"rpc/{other}"] = rows["rpc"]["rate"] / rows[other]["rate"]
    if "rpc" in rows and "raw" in rows:
        result["rpc/rss"] = rows["rpc"]["rss"] / max(rows["raw"]["rss"], 1.0)
        result["rpc/bound"] = server_bound(rows["rpc"], rows["raw"])
    for kind in ("crt", "rpc-crt"):  # the same with the S3 member's put_client crt
        if kind in rows and "raw" in rows:
            result[f"{kind}/raw"] = rows[kind]["rate"] / rows["raw"]["rate"]
            result[f"{kind}/rss"] = rows[kind]["rss"] / max(rows["raw"]["rss"], 1.0)
            result[f"{kind}/bound"] = server_bound(rows[kind], rows["raw"])
            if "fto" in rows:
                result[f"{kind}/fto"] = rows[kind]["rate"] / rows["fto"]["rate"]
    return result


# -- planning over a synthetic listing ---------------------------------------------------------------
PLANNING_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[2])
from bench_migrate import plan_synthetic
print(json.dumps(plan_synthetic(int(sys.argv[1]))))
"""


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
    baseline = _proc_status("VmHWM")
    start = time.perf_counter()
    summary = plan_migration(Mount(), "tpcds", POLICY, plan_store=plans)
    elapsed = time.perf_counter() - start
    peak = _proc_status("VmHWM")
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


def main() -> None:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"of {', '.join(SETUPS)}")
    parser.add_argument("--sets", default="mixed,small", help="datasets: mixed (bytes in big files), small")
    parser.add_argument("--small", type=int, default=int(2000 * scale), help="mixed set: files of 1-64 KiB")
    parser.add_argument("--medium", type=int, default=int(60 * scale), help="mixed set: files of 1-4 MiB")
    parser.add_argument("--large", type=int, default=3,
                        help="mixed set: files of 24 MiB (not scaled: peak RSS is that of big files in flight at once)")
    parser.add_argument("--small-files", type=int, default=int(10_000 * scale), help="small set: how many")
    parser.add_argument("--small-size", type=int, default=64 * KiB, help="small set: bytes per file")
    parser.add_argument("--fto-small", type=int, default=int(2000 * scale),
                        help="small set: files FileTransferOperator copies (it is slow)")
    parser.add_argument("--concurrency", type=int, default=8, help="files in flight, for ours and raw")
    parser.add_argument("--listed", type=int, default=int(1_000_000 * scale), help="files listed for planning")
    parser.add_argument("--contenders", default="raw,fto,ours,rpc,crt,rpc-crt",
                        help="of raw, fto, ours, rpc (ours over HDFS RPC, Apache Hadoop only), crt and rpc-crt "
                             "(ours and rpc with the S3 member's put_client crt); each of ours moves its files")
    parser.add_argument("--distcp", action="store_true", help="also engine=distcp on Apache Hadoop (mixed set)")
    parser.add_argument("--profile", type=Path, help="py-spy every child into this directory (raw stacks)")
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)

    table: list[tuple[str, str, dict, dict]] = []
    for setup in args.setups.split(","):
        hdfs_kind, s3_kind = SETUPS[setup]
        with devstack(hdfs=hdfs_kind) as stack, s3_server(stack, s3_kind) as s3_spec:
            for set_name in args.sets.split(","):
                rows = bench_set(stack, setup, s3_spec, set_name, args)
                table.append((setup, set_name, rows, ratios(rows)))

    print(f"\n-- side by side ({os.cpu_count()} cores; files/s of ours / theirs, +RSS of ours / raw's) --")
    print(f"   {'setup':16} {'set':6} {'ours files/s':>12} {'/ raw':>7} {'/ FTO':>7} {'/ distcp':>8} "
          f"{'+RSS ours':>9} {'raw':>6} {'ratio':>6} {'bound':>7}   {'rpc / raw':>9} {'/ FTO':>7} {'+RSS ratio':>10} "
          f"{'bound':>7}")
    for setup, set_name, rows, ratio in table:
        def cell(key: str, ratio: dict = ratio) -> str:
            return f"{ratio[key]:6.2f}x" if key in ratio else f"{'-':>7}"

        raw_rss = f"{rows['raw']['rss']:4.0f}M" if "raw" in rows else "-"
        ours = rows.get("ours", {"rate": float("nan"), "rss": float("nan")})
        print(f"   {setup:16} {set_name:6} {ours['rate']:12.0f} {cell('raw')} {cell('fto')} {cell('distcp'):>8} "
              f"{ours['rss']:8.0f}M {raw_rss:>6} {cell('rss')} {cell('bound')}   {cell('rpc/raw'):>9} {cell('rpc/fto')} "
              f"{cell('rpc/rss'):>10} {cell('rpc/bound')}")
    if any("crt/raw" in ratio or "rpc-crt/raw" in ratio for *_, ratio in table):
        print(f"\n   with the S3 member's put_client crt:  {'setup':16} {'set':6} {'crt / raw':>9} {'/ FTO':>7} "
              f"{'+RSS ratio':>10} {'bound':>7}   {'rpc-crt / raw':>13} {'/ FTO':>7} {'+RSS ratio':>10} {'bound':>7}")
        for setup, set_name, _rows, ratio in table:
            def crt_cell(key: str, ratio: dict = ratio) -> str:
                return f"{ratio[key]:6.2f}x" if key in ratio else f"{'-':>7}"

            print(f"   {'':37}{setup:16} {set_name:6} {crt_cell('crt/raw'):>9} {crt_cell('crt/fto')} "
                  f"{crt_cell('crt/rss'):>10} {crt_cell('crt/bound')}   {crt_cell('rpc-crt/raw'):>13} "
                  f"{crt_cell('rpc-crt/fto')} {crt_cell('rpc-crt/rss'):>10} {crt_cell('rpc-crt/bound')}")
    print("   (goals: mixed >= 1.5x raw and >= 3x FTO; small >= 2x raw; +RSS ratio <= 2; rpc: ours with the HDFS "
          "member's transport rpc, Apache Hadoop only; bound: the most files/s / raw's with no client CPU at all, "
          "every core running the servers' work for our files, the devstack's Python servers on one core at most)")
    if args.listed:
        bench_planning(args.listed)


if __name__ == "__main__":
    main()
