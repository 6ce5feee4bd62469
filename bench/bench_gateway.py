"""Benchmark: the S3 gateway (``airflow hybrid gateway``) against the servers and files behind it.

One run prints the figures and ratios (nothing is asserted about speed)::

    .venv/bin/python bench/bench_gateway.py [--size-mb 64] [--small 1000] [--list-keys 1000000] [--clients 8]

What it measures, each side by side with the same bytes read without the gateway:

1. cold GET of a file on the HDFS member (not cached: read through the cache, which fills it; after one GET of
   another file, so the process's first use of the HDFS client and the catalog is not in it) vs the raw
   WebHDFS read of the same file (``HdfsStore.open_read`` on the devstack's WebHDFS server), and vs that read
   copied into a file beside the cache tier (what a read that fills the tier cannot beat);
2. warm GET of it (served from the local cache tier) vs reading the tier's copy with ``open()``;
3. ``--small`` GETs of 4 KiB objects on the S3 member (moto), one client, vs the same GETs to moto directly
   and to SeaweedFS (when its ``weed`` binary is available): cold (each fills the cache), then again (warm,
   from the tier);
4. one ListObjectsV2 page (1,000 keys) at the start and in the middle of a directory of ``--list-keys``
   empty files vs a directory of 1,000, on a bucket whose mount has one local-directory member and on one
   whose member is HDFS (the devstack's WebHDFS; files made cheaply with ``os.open`` in the directory it
   serves), timed with the gateway's peak RSS growth;
5. ``--clients`` concurrent clients GETting the warm file: aggregate throughput vs one client.

The devstack runs in its own process; the gateway runs in this one (a uvicorn thread, as
``BackgroundGateway`` does), so clients and server share this process's GIL: the figures are a floor.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import devstack, mib_s, peak_rss_mib  # noqa: E402

MOUNT = "benchgw"
LOCAL_MOUNT = "benchgwlocal"
HDFS_MOUNT = "benchgwhdfs"
KEYS = "bench_gateway_keys"
KEY = ("AKIDBENCHGATEWAY", "bench-gateway-secret-0123")


def client(endpoint: str, key: tuple[str, str] = KEY, pool: int = 10):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id=key[0],
                        aws_secret_access_key=key[1],
                        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                                      max_pool_connections=pool))


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def get_all(s3, bucket: str, key: str) -> int:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    total = 0
    for chunk in iter(lambda: body.read(1024 * 1024), b""):
        total += len(chunk)
    return total


def read_stream(stream) -> int:
    total = 0
    with stream:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            total += len(chunk)
    return total


def copy_stream(stream, target: Path) -> int:
    """The floor of a read-through that fills a local tier: the source read into a file on its disk."""
    total = 0
    with stream, target.open("wb") as out:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            total += out.write(chunk)
    target.unlink()
    return total


def make_files(directory: Path, count: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        os.close(os.open(directory / f"k{i:07d}", os.O_CREAT | os.O_WRONLY, 0o644))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=64)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--list-keys", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    size = args.size_mb * 2**20
    work = Path(tempfile.mkdtemp(prefix="hybrid-bench-gateway-"))
    print(f"cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; work dir {work}")
    try:
        with devstack() as stack:
            run(stack, args, size, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(stack, args, size: int, work: Path) -> None:
    from airflow_hybrid.devstack.stack import airflow_env
    from airflow_hybrid.gateway.config import GatewayConfig
    from airflow_hybrid.gateway.server import BackgroundGateway
    from airflow_hybrid.mount import HybridMount

    unique = f"bench-gw-{uuid.uuid4().hex[:8]}"
    conns = stack.connections(mount_conn_id=MOUNT, hdfs_root=f"/tmp/{unique}", s3_prefix=unique,
                              cache_dir=work / "cache")
    conns[LOCAL_MOUNT] = {"conn_type": "hybrid_mount",
                          "extra": {"members": {"local": {"uri": f"file://{work / 'listing'}"}},
                                    "priority.read": "local", "collection.create": "local"}}
    conns[HDFS_MOUNT] = {"conn_type": "hybrid_mount",
                         "extra": {"members": {"hdfs": {"uri": f"hdfs:///tmp/{unique}-listing",
                                                        "conn_id": "webhdfs_default"}},
                                   "priority.read": "hdfs", "collection.create": "hdfs"}}
    conns[KEYS] = {"conn_type": "aws", "login": KEY[0], "password": KEY[1], "extra": {"read_only": False}}
    os.environ.update(airflow_env(conns))

    lake = HybridMount.from_conn_id(MOUNT)
    data = os.urandom(size)
    lake.members["hdfs"].write("big.bin", io.BytesIO(data), size_hint=size)
    small = os.urandom(4096)
    lake.members["hdfs"].write("warmup.bin", io.BytesIO(small), size_hint=len(small))
    for i in range(args.small):
        lake.members["s3"].write(f"small/{i:05d}", io.BytesIO(small), size_hint=len(small))
    (work / "listing").mkdir()
    made, _ = timed(lambda: make_files(work / "listing" / "big", args.list_keys))
    make_files(work / "listing" / "thousand", 1000)
    hdfs_listing = stack.hdfs_dir / "tmp" / f"{unique}-listing"  # the devstack's WebHDFS serves this directory
    make_files(hdfs_listing / "big", args.list_keys)
    make_files(hdfs_listing / "thousand", 1000)
    print(f"made {args.list_keys:,} empty files in {made:.1f} s")

    config = GatewayConfig.from_connection([MOUNT, LOCAL_MOUNT, HDFS_MOUNT], KEYS, port=0, spool_dir=work / "spool")
    with BackgroundGateway(config) as gateway:
        s3 = client(gateway.endpoint, pool=args.clients + 2)

        # 1. cold GET vs the raw WebHDFS read (after one GET of another HDFS file, so that neither side pays
        # this process's first use of the HDFS client, the catalog's SQL or the cache fill)
        assert get_all(s3, MOUNT, "warmup.bin") == 4096
        raw, n = timed(lambda: read_stream(lake.members["hdfs"].open_read("big.bin")))
        assert n == size
        cold, n = timed(lambda: get_all(s3, MOUNT, "big.bin"))
        assert n == size
        filled, n = timed(lambda: copy_stream(lake.members["hdfs"].open_read("big.bin"), work / "copy.bin"))
        assert n == size
        print(f"cold GET    {mib_s(size, cold)}  raw WebHDFS {mib_s(size, raw)}  gateway/raw time {cold / raw:.2f}x; "
              f"raw read into a file beside the tier {mib_s(size, filled)} (gateway/that {cold / filled:.2f}x)")

        # 2. warm GET vs the tier's file
        served = gateway.app.state.gateway.mounts[MOUNT]
        deadline = time.monotonic() + 60
        while served.cache.lookup("big.bin", lambda: served.resolve("big.bin")[1]) is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the whole-file read filled the tier; its catalog entry lands when the load ends
        warm, _ = timed(lambda: get_all(s3, MOUNT, "big.bin"))
        tier_file = max((p for p in (work / "cache").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
        direct, n = timed(lambda: read_stream(tier_file.open("rb")))
        assert n == size, f"largest file in the tier is {n} bytes, not the cached copy"
        print(f"warm GET    {mib_s(size, warm)}  tier file   {mib_s(size, direct)}  gateway/direct time "
              f"{warm / direct:.2f}x")

        # 3. small-object GETs per second
        moto = client(stack.s3_endpoint, key=(conns["aws_default"]["login"], conns["aws_default"]["password"]))
        keys = [f"small/{i:05d}" for i in range(args.small)]
        via, _ = timed(lambda: [get_all(s3, MOUNT, k) for k in keys])
        bucket, prefix = lake.members["s3"].bucket, lake.members["s3"]._dir_prefix("")
        direct_moto, _ = timed(lambda: [get_all(moto, bucket, prefix + k) for k in keys])
        line = (f"{args.small} x 4 KiB GETs: gateway {args.small / via:7.0f}/s  moto {args.small / direct_moto:7.0f}/s"
                f" (gateway/moto rate {direct_moto / via:.2f}x)")
        again, _ = timed(lambda: [get_all(s3, MOUNT, k) for k in keys])
        line += f"; again from the tier {args.small / again:7.0f}/s (gateway/moto rate {direct_moto / again:.2f}x)"
        line += seaweed_line(work, small, args.small, via)
        print(line)

        # 4. a ListObjectsV2 page over 1,000,000 keys vs 1,000, on a local member and on an HDFS member
        for bucket, member in ((LOCAL_MOUNT, "local directory"), (HDFS_MOUNT, "HDFS (devstack WebHDFS)")):
            for name, count in (("thousand", 1000), ("big", args.list_keys)):
                before = peak_rss_mib()
                first, page = timed(lambda name=name, bucket=bucket: s3.list_objects_v2(
                    Bucket=bucket, Prefix=f"{name}/", MaxKeys=1000))
                marker = f"{name}/k{count // 2:07d}"
                middle, page2 = timed(lambda name=name, marker=marker, bucket=bucket: s3.list_objects_v2(
                    Bucket=bucket, Prefix=f"{name}/", MaxKeys=1000, StartAfter=marker))
                assert page["KeyCount"] == 1000 and page2["KeyCount"] == min(1000, count - count // 2 - 1)
                print(f"list page in {count:>9,} keys on a {member}: first {first:7.3f} s, middle {middle:7.3f} s,"
                      f" peak RSS +{peak_rss_mib() - before:.0f} MiB")

        # 5. concurrent clients on the warm file
        def one(_):
            return get_all(s3, MOUNT, "big.bin")

        single, _ = timed(lambda: one(0))
        with ThreadPoolExecutor(args.clients) as pool:
            together, total = timed(lambda: sum(pool.map(one, range(args.clients))))
        print(f"{args.clients} clients: aggregate {mib_s(total, together)} vs one {mib_s(size, single)} "
              f"({(total / together) / (size / single):.2f}x)")
    lake.close()


def seaweed_line(work: Path, small: bytes, count: int, via: float) -> str:
    """The same GETs against SeaweedFS's S3 directly, when its binary is installed."""
    from airflow_hybrid.devstack.seaweedfs import SeaweedS3

    seaweed = SeaweedS3(work / "seaweed", buckets=("bench",))
    try:
        seaweed.start()
    except Exception as err:  # noqa: BLE001 - a figure left out, said so
        return f"  SeaweedFS not run ({type(err).__name__}: {err})"
    try:
        weed = seaweed.client()
        for i in range(count):
            weed.put_object(Bucket="bench", Key=f"small/{i:05d}", Body=small)
        took, _ = timed(lambda: [get_all(weed, "bench", f"small/{i:05d}") for i in range(count)])
        return f"  SeaweedFS {count / took:7.0f}/s (gateway/SeaweedFS rate {took / via:.2f}x)"
    finally:
        seaweed.stop()


if __name__ == "__main__":
    main()
