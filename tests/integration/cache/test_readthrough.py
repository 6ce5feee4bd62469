"""Read-through cache on real servers: a union of HDFS (the devstack's WebHDFS server, and Apache Hadoop's: every
test runs on both) and S3 (moto) with local-dir tiers.

What is checked here and nowhere else: a cold read through ``hybrid://`` (HybridFileSystem, DuckDB) and
``HybridMount.open_read`` fills the tier; a warm read is served from the tier without one request reaching the
source servers (their per-operation counters do not move; on Hadoop, the WebHDFS requests this process sends);
a changed source is noticed per ``metadata_sync_interval``; prefetch from both members of a split lake. The freshness arithmetic, eviction and
pins are covered against local stores in tests/unit/cache/test_manager.py.
"""

from __future__ import annotations

import copy
import io
import json
import os
import uuid

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.filesystem import HybridFileSystem
from airflow_hybrid.operators.cache import HybridPrefetchOperator
from tests.client_requests import hdfs_requests

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]

MOUNT = "cached_union"
MiB = 1024 * 1024


@pytest.fixture
def cached_union(airflow_connections, tmp_path, monkeypatch):
    """Make the union mount of ``hdfs_server`` (``hdfs:///tmp/tpcds`` + ``s3://hybrid-lake/tpcds``, read ``s3,hdfs``)
    with two local tiers available as connection ``cached_union``; ``configure(**cache)`` sets it up."""

    def configure(**cache_options):
        extra = copy.deepcopy(airflow_connections["onprem_union"]["extra"])
        extra["cache"] = {
            "tiers": [
                {"alias": "MEM", "uri": f"file://{tmp_path}/tier-mem", "quota": "64MB"},
                {"alias": "SSD", "uri": f"file://{tmp_path}/tier-ssd", "quota": "256MB"},
            ],
            "catalog_url": f"sqlite:///{tmp_path}/catalog.db",
            **cache_options,
        }
        monkeypatch.setenv(f"AIRFLOW_CONN_{MOUNT.upper()}", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
        return HybridMount.from_conn_id(MOUNT)

    mounts: list[HybridMount] = []

    def make(**cache_options) -> HybridMount:
        mounts.append(configure(**cache_options))
        return mounts[-1]

    yield make
    for mount in mounts:
        mount.close()


@pytest.fixture
def root() -> str:
    """A fresh logical directory for the test's files."""
    return f"cache-it-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def source_requests(hdfs_server, devstack):
    """A function giving the requests per operation that reached the source servers so far (``webhdfs.OPEN``,
    ``webhdfs.datanode.OPEN``, ``webhdfs.GETFILESTATUS``, ``s3.HeadObject``...): WebHDFS as
    :func:`~tests.client_requests.hdfs_requests` counts them, S3 as the devstack's S3 server (both variants') does."""
    with hdfs_requests(hdfs_server) as webhdfs:

        def count() -> dict[str, int]:
            s3 = devstack.stats()["s3"]
            return {**{f"webhdfs.{op}": n for op, n in webhdfs().items()}, **{f"s3.{op}": n for op, n in s3.items()}}

        yield count


def moved(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {op: after.get(op, 0) - before.get(op, 0) for op in after if after.get(op, 0) != before.get(op, 0)}


def put(mount: HybridMount, member: str, path: str, data: bytes) -> None:
    mount.members[member].write(path, io.BytesIO(data))


def ready_entry(mount: HybridMount, path: str):
    entry = mount.cache.catalog.get(MOUNT, path)
    assert entry is not None and entry.state == "ready", entry
    return entry


def read_through_fs(path: str) -> bytes:
    fs = HybridFileSystem(skip_instance_cache=True)  # a new filesystem, as another task would have
    try:
        with fs.open(f"hybrid://{MOUNT}/{path}", "rb") as f:
            return f.read()
    finally:
        for mount in fs._mounts.values():
            mount.close()


def read_through_mount(path: str) -> bytes:
    mount = HybridMount.from_conn_id(MOUNT)
    try:
        with mount.open_read(path) as stream:
            return stream.read()
    finally:
        mount.close()


@pytest.mark.parametrize("read", [read_through_fs, read_through_mount], ids=["hybrid-fs", "mount-open-read"])
def test_cold_read_fills_and_warm_read_never_reaches_the_source(source_requests, cached_union, root, read):
    mount = cached_union(metadata_sync_interval=60)
    path = f"{root}/store_sales/part-00000.parquet"
    data = os.urandom(5 * MiB + 123)  # more than one 4 MiB block of HybridReadFile
    put(mount, "hdfs", path, data)

    before = source_requests()
    assert read(path) == data
    cold = moved(before, source_requests())
    assert cold.get("webhdfs.datanode.OPEN") == 1  # streamed once from HDFS while the tier filled
    entry = ready_entry(mount, path)
    assert (entry.tier, entry.size, entry.source_member) == ("MEM", len(data), "hdfs")
    assert entry.source_uri == mount.members["hdfs"].uri(path)

    before = source_requests()
    assert read(path) == data
    assert read(path) == data
    assert moved(before, source_requests()) == {}  # no OPEN, no GETFILESTATUS, no S3 HEAD
    report = mount.cache.report().tier("MEM")
    assert (report.hits, report.misses, report.files, report.used) == (2, 1, 1, len(data))


def test_sync_interval_zero_checks_the_source_on_every_open_and_reloads_a_change(source_requests, cached_union, root):
    mount = cached_union(metadata_sync_interval=0)
    path = f"{root}/item/part-00000.parquet"
    put(mount, "hdfs", path, b"version 1" * 1000)
    assert read_through_mount(path) == b"version 1" * 1000

    before = source_requests()
    assert read_through_mount(path) == b"version 1" * 1000  # unchanged: checked (a stat), served from the tier
    checked = moved(before, source_requests())
    assert checked.get("webhdfs.GETFILESTATUS", 0) >= 1
    assert "webhdfs.OPEN" not in checked and "webhdfs.datanode.OPEN" not in checked

    put(mount, "hdfs", path, b"version 2, longer" * 1000)
    assert read_through_mount(path) == b"version 2, longer" * 1000  # the next read sees the new bytes
    entry = ready_entry(mount, path)  # ... and cached them in place of the old copy
    assert entry.size == entry.source.size == len(b"version 2, longer" * 1000)
    before = source_requests()
    assert read_through_mount(path) == b"version 2, longer" * 1000
    assert "webhdfs.datanode.OPEN" not in moved(before, source_requests())


def test_sync_interval_minus_one_keeps_serving_the_cached_copy(source_requests, cached_union, root):
    mount = cached_union(metadata_sync_interval=-1)
    path = f"{root}/date_dim/part-00000.parquet"
    put(mount, "hdfs", path, b"old bytes" * 100)
    assert read_through_fs(path) == b"old bytes" * 100

    put(mount, "hdfs", path, b"new bytes, other size" * 100)
    before = source_requests()
    assert read_through_fs(path) == b"old bytes" * 100  # never re-checked: the cached copy is served
    assert moved(before, source_requests()) == {}
    assert ready_entry(mount, path).source.size == len(b"old bytes" * 100)

    mount.cache.free([path])  # an explicit free makes the next read fetch the current version
    assert read_through_fs(path) == b"new bytes, other size" * 100


def test_a_reader_keeping_the_stream_open_still_completes_the_fill(source_requests, cached_union, root):
    """Engines reading through fsspec keep handles open until garbage collection; the fill must not wait."""
    mount = cached_union(metadata_sync_interval=60)
    path = f"{root}/open/part-0.parquet"
    data = os.urandom(2 * MiB)
    put(mount, "hdfs", path, data)
    stream = mount.open_read(path)
    try:
        assert stream.read(len(data)) == data  # exactly the size; no EOF read, no close
        assert ready_entry(mount, path).size == len(data)
        before = source_requests()
        with mount.open_read(path, offset=MiB, length=16) as ranged:
            assert ranged.read() == data[MiB : MiB + 16]
        assert moved(before, source_requests()) == {}
        assert stream.read(10) == b""
    finally:
        stream.close()
    assert ready_entry(mount, path).size == len(data)


def test_duckdb_over_hybrid_fs_is_served_from_the_tier_once_warm(source_requests, cached_union, root, tmp_path):
    """DuckDB reads Parquet in ranges (footer, then column chunks): ranged misses read the source and load the
    whole file alongside; once loaded, the same query touches no source server."""
    mount = cached_union(metadata_sync_interval=60)
    for i in range(3):
        table = pa.table({"k": list(range(i * 1000, (i + 1) * 1000)), "v": [float(i)] * 1000})
        local = tmp_path / f"part-{i}.parquet"
        pq.write_table(table, local)
        put(mount, "hdfs" if i < 2 else "s3", f"{root}/t/part-{i}.parquet", local.read_bytes())

    fs = HybridFileSystem(skip_instance_cache=True)
    con = duckdb.connect()
    con.register_filesystem(fs)
    query = f"SELECT count(*), sum(k), sum(v) FROM read_parquet('hybrid://{MOUNT}/{root}/t/*.parquet')"
    try:
        expected = (3000, sum(range(3000)), 1000.0 * (0 + 1 + 2))
        assert con.execute(query).fetchone() == expected
        fs.mount(MOUNT).cache.wait_for_background_loads()
        assert {e.path.rsplit("/", 1)[1]: e.source_member for e in mount.cache.entries(root)} == {
            "part-0.parquet": "hdfs", "part-1.parquet": "hdfs", "part-2.parquet": "s3"}

        before = source_requests()
        assert con.execute(query).fetchone() == expected
        warm = moved(before, source_requests())
        # the glob is still listed at the source (listings are not cached); no file is opened or stat'ed there
        assert set(warm) <= {"webhdfs.LISTSTATUS_BATCH", "s3.ListObjectsV2", "s3.HeadObject"}, warm
    finally:
        con.close()
        for m in fs._mounts.values():
            m.close()


def test_prefetch_from_both_members_then_reads_are_local(source_requests, cached_union, root):
    mount = cached_union(metadata_sync_interval=60)
    files = {f"{root}/sales/hdfs-{i}.parquet": os.urandom(300_000 + i) for i in range(4)}
    files |= {f"{root}/sales/s3-{i}.parquet": os.urandom(200_000 + i) for i in range(2)}
    for path, data in files.items():
        put(mount, "s3" if "/s3-" in path else "hdfs", path, data)

    op = HybridPrefetchOperator(task_id="warm", mount_conn_id=MOUNT, paths=f"/{root}/sales/*.parquet",
                                tier="SSD", concurrency=4)
    summary = op.execute({})
    assert {k: summary[k] for k in ("files", "bytes", "loaded", "loaded_bytes", "fresh", "failed")} == {
        "files": 6, "bytes": sum(map(len, files.values())), "loaded": 6,
        "loaded_bytes": sum(map(len, files.values())), "fresh": 0, "failed": 0}
    assert sorted(op._lineage[0]) == sorted([mount.members["hdfs"].uri(f"{root}/sales"),
                                             mount.members["s3"].uri(f"{root}/sales")])

    before = source_requests()
    for path, data in files.items():
        assert read_through_mount(path) == data
    assert moved(before, source_requests()) == {}

    again = HybridPrefetchOperator(task_id="warm", mount_conn_id=MOUNT, paths=f"{root}/sales").execute({})
    assert (again["loaded"], again["fresh"], again["fresh_bytes"]) == (0, 6, sum(map(len, files.values())))
