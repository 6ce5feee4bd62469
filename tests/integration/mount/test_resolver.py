"""Resolving tables to engine URIs on a real union mount: HDFS on the devstack's WebHDFS server and on Apache
Hadoop's (each test runs on both), S3 on moto's server. Tables are split and duplicated as a migration leaves
them: all on HDFS, older files on S3 and newer on HDFS, a file copied to S3 and not yet removed from HDFS."""

from __future__ import annotations

import copy
import io
import uuid
from urllib.parse import urlparse

import pytest

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.resolver import Location, SplitLocationError, resolve_locations, resolve_physical

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]


@pytest.fixture
def table():
    """A table directory of this test's own under the mount's roots."""
    return f"resolver-{uuid.uuid4().hex[:8]}/store_sales"


def _put(mount: HybridMount, member: str, path: str, size: int) -> None:
    mount.members[member].write(path, io.BytesIO(b"x" * size))


def _hdfs(hdfs_server, table: str, path: str = "") -> str:
    """The engine URI of ``table/path`` on HDFS: the WebHDFS host with the namenode RPC port 8020."""
    return f"hdfs://{hdfs_server.webhdfs_host}:8020/tmp/tpcds/{table}" + (f"/{path}" if path else "")


def _s3(table: str, path: str = "", scheme: str = "s3") -> str:
    return f"{scheme}://hybrid-lake/tpcds/{table}" + (f"/{path}" if path else "")


def test_a_table_all_on_hdfs_is_one_namenode_qualified_directory(union_lake, hdfs_server, table):
    for index in range(3):
        _put(union_lake, "hdfs", f"{table}/part-{index}.parquet", 10 + index)
    _put(union_lake, "hdfs", f"{table}/_SUCCESS", 0)
    assert resolve_locations(union_lake, table) == [Location("hdfs", _hdfs(hdfs_server, table), files=3, bytes=33)]
    assert resolve_physical(union_lake, f"/{table}/") == _hdfs(hdfs_server, table)
    assert resolve_physical(union_lake, f"{table}/part-1.parquet") == _hdfs(hdfs_server, table, "part-1.parquet")


def test_a_table_split_across_members_is_one_directory_each(union_lake, hdfs_server, table):
    _put(union_lake, "s3", f"{table}/part-0.parquet", 5)  # older files, migrated
    _put(union_lake, "s3", f"{table}/year=2001/part-1.parquet", 6)
    _put(union_lake, "hdfs", f"{table}/part-2.parquet", 7)  # newer, still on HDFS
    _put(union_lake, "hdfs", f"{table}/year=2002/part-3.parquet", 8)
    assert resolve_locations(union_lake, table) == [
        Location("s3", _s3(table), files=2, bytes=11),
        Location("hdfs", _hdfs(hdfs_server, table), files=2, bytes=15),
    ]
    assert resolve_locations(union_lake, table, s3_scheme="s3a")[0].uri == _s3(table, scheme="s3a")
    with pytest.raises(SplitLocationError, match="is split across members"):
        resolve_physical(union_lake, table)


def test_a_file_in_both_members_mid_migration_gives_exact_file_lists(union_lake, hdfs_server, table):
    """Copied to S3, not yet removed from HDFS: read once, from S3; HDFS's directory by its own files."""
    _put(union_lake, "s3", f"{table}/part-0.parquet", 5)
    _put(union_lake, "s3", f"{table}/part-1.parquet", 6)
    _put(union_lake, "hdfs", f"{table}/part-1.parquet", 6)  # the copy's original, removal pending
    _put(union_lake, "hdfs", f"{table}/part-2.parquet", 7)
    _put(union_lake, "hdfs", f"{table}/sub/part-3.parquet", 8)
    found = resolve_locations(union_lake, table)
    assert found == [
        Location("s3", _s3(table), files=2, bytes=11),
        Location(
            "hdfs",
            _hdfs(hdfs_server, table),
            files=2,
            bytes=15,
            file_uris=(_hdfs(hdfs_server, table, "part-2.parquet"), _hdfs(hdfs_server, table, "sub/part-3.parquet")),
        ),
    ]
    # Each logical file once, from the member serving it.
    assert sum(loc.files for loc in found) == sum(1 for _ in union_lake.walk_files(table))
    assert sum(loc.bytes for loc in found) == sum(f.size for f in union_lake.walk_files(table))

    # The migration removes the original: HDFS's directory is whole again.
    union_lake.members["hdfs"].delete(f"{table}/part-1.parquet")
    assert resolve_locations(union_lake, table)[1] == Location("hdfs", _hdfs(hdfs_server, table), 2, 15)


@pytest.mark.hdfs_servers("hadoop")  # the devstack's WebHDFS server has no namenode RPC
def test_the_namenode_option_qualifies_uris_hadoop_opens(airflow_connections, hdfs_server, table):
    """With the namenode RPC address as the member's ``namenode`` option, Hadoop's own client (FsShell, RPC)
    reads the resolved files: the URIs EMR's Spark would open."""
    extra = copy.deepcopy(airflow_connections["onprem_union"]["extra"])
    namenode = urlparse(hdfs_server.hadoop.fs_uri).netloc
    extra["members"]["hdfs"]["options"] = {"namenode": namenode}
    with HybridMount.from_options("onprem_union", extra) as mount:
        mount.members["s3"].write(f"{table}/part-0.parquet", io.BytesIO(b"copied"))
        mount.members["hdfs"].write(f"{table}/part-0.parquet", io.BytesIO(b"copied"))
        mount.members["hdfs"].write(f"{table}/part-1.parquet", io.BytesIO(b"on-prem"))
        hdfs = resolve_locations(mount, table)[1]
    assert hdfs.file_uris == (f"hdfs://{namenode}/tmp/tpcds/{table}/part-1.parquet",)
    shown = hdfs_server.hadoop.fs_shell("-cat", *hdfs.file_uris).stdout
    assert shown == "on-prem"
    listed = hdfs_server.hadoop.fs_shell("-ls", hdfs.uri).stdout
    assert f"{hdfs.uri}/part-0.parquet" in listed and f"{hdfs.uri}/part-1.parquet" in listed
