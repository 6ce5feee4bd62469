"""An S3 cache tier that engines outside the process read (moto's S3 server): the mirrored layout a prefetch
writes, ``warm_uri`` of files and directories (never a stale or incomplete one), and leases that keep copies
an engine reads from being deleted, on SQLite and PostgreSQL catalogs."""

from __future__ import annotations

import os
import re

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.cache import ops
from airflow_hybrid.cache.manager import CacheManager
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.stores.base import FileInfo
from tests.integration.moto_s3 import AWS_CONN_ID
from tests.mounts import local_mount_extra

pytestmark = pytest.mark.integration

LOAD_ID = r"[0-9a-f]{32}"




@pytest.fixture
def make_mount(tmp_path, bucket):
    """``make(**cache)`` -> a mount of local members ``hdfs`` (read first) and ``s3`` with tiers ``SSD``
    (local) and ``S3`` (``s3://<bucket>/cache`` on moto, the default; ``s3_tier``: more of its settings)."""
    made: list[HybridMount] = []

    def make(catalog_url: str | None = None, s3_tier: dict | None = None, **cache) -> HybridMount:
        for member in ("hdfs", "s3"):
            (tmp_path / member).mkdir(exist_ok=True)
        extra = local_mount_extra(tmp_path, "hdfs,s3", "hdfs", {"SSD": "64MB"}, **cache)
        extra["cache"]["tiers"].append(
            {"alias": "S3", "uri": f"s3://{bucket}/cache", "conn_id": AWS_CONN_ID, "quota": "1GB", **(s3_tier or {})}
        )
        extra["cache"]["default_tier"] = "S3"
        if catalog_url:
            extra["cache"]["catalog_url"] = catalog_url
        made.append(HybridMount.from_options("lake", extra))
        return made[-1]

    yield make
    for mount in made:
        if mount.cache is not None:
            mount.cache.close()


def _table(tmp_path, rel: str, rows: range) -> None:
    target = tmp_path / "hdfs" / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": list(rows)}), target)


def _objects(s3_client, bucket, prefix: str = "cache/") -> dict[str, int]:
    keys: dict[str, int] = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.update({o["Key"]: o["Size"] for o in page.get("Contents", ())})
    return keys


@pytest.fixture
def sales(tmp_path):
    """``sales/`` with two Parquet files, a partition directory (30 rows in all) and a ``_SUCCESS`` marker
    (engines skip it); returns the paths of the Parquet files."""
    (tmp_path / "hdfs" / "sales").mkdir(parents=True)
    (tmp_path / "hdfs" / "sales" / "_SUCCESS").write_bytes(b"")
    _table(tmp_path, "sales/a.parquet", range(0, 10))
    _table(tmp_path, "sales/b.parquet", range(10, 20))
    _table(tmp_path, "sales/region=eu/c.parquet", range(20, 30))
    return ["sales/a.parquet", "sales/b.parquet", "sales/region=eu/c.parquet"]


def test_prefetch_into_s3_writes_the_mirrored_layout_an_engine_reads(
    make_mount, sales, s3_client, bucket, moto_endpoint
):
    mount = make_mount(metadata_sync_interval=60)
    summary = ops.prefetch(mount, ["sales"], tier="S3")
    assert (summary.files, summary.loaded) == (4, 4)

    keys = _objects(s3_client, bucket)
    assert len(keys) == 4
    assert [k for k in keys if re.fullmatch(rf"cache/lake/sales/_{LOAD_ID}-_SUCCESS", k)]  # still skipped
    for path in sales:
        directory, name = path.rsplit("/", 1)
        (key,) = [k for k in keys if re.fullmatch(rf"cache/lake/{directory}/{LOAD_ID}-{re.escape(name)}", k)]
        assert not key.rsplit("/", 1)[1].startswith(("_", "."))

    cache = mount.cache
    assert cache.tiers["S3"].shared and not cache.tiers["SSD"].shared
    uri = cache.warm_uri("sales")
    assert uri == f"s3://{bucket}/cache/lake/sales"
    entry = cache.catalog.get("lake", "sales/a.parquet")
    assert cache.warm_uri("sales/a.parquet") == f"s3://{bucket}/cache/{entry.location}"
    assert cache.warm_uri("sales/region=eu") == f"s3://{bucket}/cache/lake/sales/region=eu"
    assert set(cache.warm_uris(mount.walk_files("sales"))) == {*sales, "sales/_SUCCESS"}

    # An engine outside the process reads the warm directory in place: every row once, the partition too.
    from pyarrow import fs

    s3 = fs.S3FileSystem(access_key="testing", secret_key="testing", endpoint_override=moto_endpoint,
                         region="us-east-1", scheme="http")
    table = ds.dataset(uri.removeprefix("s3://"), filesystem=s3, format="parquet", partitioning="hive").to_table()
    assert sorted(table.column("id").to_pylist()) == list(range(30))
    regions = dict(zip(table.column("id").to_pylist(), table.column("region").to_pylist(), strict=True))
    assert regions == {i: "eu" if i >= 20 else None for i in range(30)}


def test_the_resolver_hands_engines_the_warm_directory(make_mount, sales, bucket):
    from airflow_hybrid.mount.resolver import CACHE_MEMBER, resolve_locations

    mount = make_mount(metadata_sync_interval=60)
    cold = resolve_locations(mount, "sales")
    assert [loc.member for loc in cold] == ["hdfs"]
    ops.prefetch(mount, ["sales"], tier="S3")
    (warm,) = resolve_locations(mount, "sales", s3_scheme="s3a")
    assert (warm.member, warm.uri, warm.files) == (CACHE_MEMBER, f"s3a://{bucket}/cache/lake/sales", 3)  # _SUCCESS not counted
    (one,) = resolve_locations(mount, "sales/a.parquet")
    assert one.member == CACHE_MEMBER and one.uri.startswith(f"s3://{bucket}/cache/lake/sales/")


def test_a_pinned_prefetch_into_s3_stays_warm_through_eviction(make_mount, sales, bucket):
    mount = make_mount(None, SMALL, metadata_sync_interval=60)
    summary = ops.prefetch(mount, ["sales"], tier="S3", pin=True)
    assert (summary.loaded, summary.pinned) == (4, 4)
    assert mount.cache.evict("S3", force=True).files == 0
    assert mount.cache.warm_uri("sales") == f"s3://{bucket}/cache/lake/sales"


def test_a_cold_file_leaves_the_directory_cold(make_mount, sales):
    mount = make_mount(metadata_sync_interval=60)
    ops.prefetch(mount, ["sales/a.parquet", "sales/region=eu/c.parquet"], tier="S3")
    cache = mount.cache
    assert cache.warm_uri("sales") is None
    assert cache.warm_uri("sales/b.parquet") is None
    assert cache.warm_uri("sales/a.parquet") is not None
    assert cache.warm_uri("sales/region=eu") is not None
    assert set(cache.warm_uris(mount.walk_files("sales"))) == {"sales/a.parquet", "sales/region=eu/c.parquet"}
    ops.prefetch(mount, ["sales/b.parquet"], tier="S3")
    assert cache.warm_uri("sales") is None  # the marker is a file of the directory too
    ops.prefetch(mount, ["sales/_SUCCESS"], tier="S3")
    assert cache.warm_uri("sales") is not None


def test_a_changed_source_is_never_handed_out_with_sync_on_every_use(make_mount, sales, tmp_path, s3_client, bucket):
    mount = make_mount(metadata_sync_interval=0)
    ops.prefetch(mount, ["sales"], tier="S3")
    cache = mount.cache
    assert cache.warm_uri("sales") is not None

    _table(tmp_path, "sales/b.parquet", range(10, 25))  # rewritten: another size
    assert cache.warm_uri("sales/b.parquet") is None
    assert cache.catalog.get("lake", "sales/b.parquet") is None  # the stale copy is dropped
    assert cache.warm_uri("sales") is None
    assert len(_objects(s3_client, bucket)) == 3

    ops.prefetch(mount, ["sales"], tier="S3")
    assert cache.warm_uri("sales") is not None


def test_a_listing_with_a_newer_version_drops_the_copy(make_mount, sales):
    mount = make_mount(metadata_sync_interval=-1)  # never checked by itself: only the listing tells
    ops.prefetch(mount, ["sales"], tier="S3")
    cache = mount.cache
    listing = list(mount.walk_files("sales"))
    assert cache.warm_uri("sales", listing) is not None

    newer = [FileInfo(path=f.path, size=f.size, mtime=f.mtime + 5, etag=f.etag) if f.name == "a.parquet" else f
             for f in listing]
    assert cache.warm_uri("sales", newer) is None
    assert cache.catalog.get("lake", "sales/a.parquet") is None
    grown = FileInfo(path="sales/b.parquet", size=listing[0].size + 1, mtime=0.0)
    assert cache.warm_uri("sales/b.parquet", [grown]) is None
    assert cache.catalog.get("lake", "sales/b.parquet") is None


def test_the_copy_of_a_file_deleted_at_the_source_is_dropped(make_mount, sales, tmp_path, s3_client, bucket):
    mount = make_mount(metadata_sync_interval=60)
    ops.prefetch(mount, ["sales"], tier="S3")
    (tmp_path / "hdfs" / "sales" / "b.parquet").unlink()
    cache = mount.cache
    assert cache.warm_uri("sales") == f"s3://{bucket}/cache/lake/sales"  # the source's listing has 2 files
    assert cache.catalog.get("lake", "sales/b.parquet") is None
    assert not [k for k in _objects(s3_client, bucket) if k.endswith("-b.parquet")]


def test_an_extra_object_under_the_tier_prefix_leaves_it_cold(make_mount, sales, s3_client, bucket):
    mount = make_mount(metadata_sync_interval=60)
    ops.prefetch(mount, ["sales"], tier="S3")
    cache = mount.cache
    s3_client.put_object(Bucket=bucket, Key="cache/lake/sales/region=us/stray.parquet", Body=b"x")
    assert cache.warm_uri("sales") is None
    assert cache.warm_uri("sales/region=eu") is not None  # a sibling directory is not concerned
    s3_client.delete_object(Bucket=bucket, Key="cache/lake/sales/region=us/stray.parquet")
    assert cache.warm_uri("sales") is not None


def test_local_tiers_are_never_warm_and_keep_the_hashed_layout(make_mount, sales, tmp_path, s3_client, bucket):
    mount = make_mount(metadata_sync_interval=60)
    ops.prefetch(mount, ["sales"], tier="SSD")
    cache = mount.cache
    assert cache.warm_uri("sales") is None
    assert cache.warm_uri("sales/a.parquet") is None
    assert cache.warm_uris(mount.walk_files("sales")) == {}
    entry = cache.catalog.get("lake", "sales/a.parquet")
    assert re.fullmatch(rf"lake/[0-9a-f]{{2}}/[0-9a-f]{{64}}\.{LOAD_ID}/a\.parquet", entry.location)
    assert (tmp_path / "tier-ssd" / entry.location).is_file()
    assert _objects(s3_client, bucket) == {}


def test_a_lease_keeps_copies_that_free_and_invalidate_drop(make_mount, catalog_url, sales, s3_client, bucket):
    mount = make_mount(catalog_url, metadata_sync_interval=60)
    ops.prefetch(mount, ["sales"], tier="S3")
    cache = mount.cache
    before = _objects(s3_client, bucket)
    with cache.lease("sales", 600, "emr-step-1") as lease:
        assert [(held.path, held.holder) for held in cache.leases()] == [("sales", "emr-step-1")]
        assert cache.free(["sales/a.parquet"]).files == 1
        assert cache.invalidate("sales/region=eu").files == 1
        assert cache.catalog.get("lake", "sales/a.parquet") is None  # never handed out again
        assert cache.warm_uri("sales") is None
        assert _objects(s3_client, bucket) == before  # an engine reading them still finds them
        assert cache.recover() == 0  # while leased, recovery keeps them too
        assert _objects(s3_client, bucket) == before
    assert cache.leases() == []
    cache.recover()
    left = _objects(s3_client, bucket)
    assert sorted(key.rsplit("-", 1)[1] for key in left) == ["_SUCCESS", "b.parquet"]
    assert cache.catalog.trash_items("lake") == []
    assert lease.expires_at > 0


#: An S3 tier whose forced eviction frees everything it may (low watermark below one file).
SMALL = {"quota": 4000, "low_watermark": 0.05}


def test_eviction_in_another_worker_skips_leased_copies(make_mount, catalog_url, sales, s3_client, bucket):
    mount = make_mount(catalog_url, SMALL, metadata_sync_interval=60)
    ops.prefetch(mount, ["sales"], tier="S3")
    lease = mount.cache.lease("sales/region=eu", 600, "trino-query")
    other = CacheManager.for_mount(mount)  # another worker on the same catalog
    try:
        other.evict("S3", force=True)
        assert {e.path for e in other.entries("sales")} == {"sales/region=eu/c.parquet"}
        kept = other.catalog.get("lake", "sales/region=eu/c.parquet")
        assert list(_objects(s3_client, bucket)) == [f"cache/{kept.location}"]
        mount.cache.release(lease)
        other.evict("S3", force=True)
        assert list(other.entries("sales")) == []
        assert _objects(s3_client, bucket) == {}
    finally:
        other.close()


def test_expired_leases_do_not_block(make_mount, catalog_url, sales, s3_client, bucket):
    mount = make_mount(catalog_url, SMALL, metadata_sync_interval=60)
    ops.prefetch(mount, ["sales"], tier="S3")
    mount.cache.lease("sales", 60, "crashed-step")  # never released
    later = CacheManager.for_mount(mount, clock=lambda: mount.cache.clock() + 3600)
    try:
        assert later.leases() == []
        later.evict("S3", force=True)  # stops below the low watermark: the empty _SUCCESS may stay
        assert {e.path for e in later.entries()} <= {"sales/_SUCCESS"}
        later.free(["sales"])
        assert _objects(s3_client, bucket) == {}
        later.recover()  # forgets the expired lease
        assert mount.cache.leases() == []
    finally:
        later.close()


def test_a_failed_upload_into_the_mirrored_layout_leaves_nothing(make_mount, tmp_path, s3_client, bucket):
    mount = make_mount(metadata_sync_interval=60)
    (tmp_path / "hdfs" / "big").mkdir(parents=True)
    (tmp_path / "hdfs" / "big" / "x.bin").write_bytes(os.urandom(11 * 1024 * 1024))
    cache = mount.cache
    member, info = mount.resolve("big/x.bin")
    stream = cache.fill_while_reading("big/x.bin", member, info, mount.members[member].open_read("big/x.bin"))
    assert len(stream.read(9 * 1024 * 1024)) == 9 * 1024 * 1024
    stream.close()  # abandoned mid-way
    assert cache.catalog.get("lake", "big/x.bin") is None
    assert _objects(s3_client, bucket) == {}
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
