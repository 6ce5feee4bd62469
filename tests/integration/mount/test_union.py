"""Union semantics of HybridMount over real servers on loopback, reached through Airflow connections: HDFS on
the devstack's WebHDFS server and on Apache Hadoop's (every test that reaches a server runs on both), S3 on moto's S3 server."""

from __future__ import annotations

import io
import json
import uuid

import pytest

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.options import MountConfigError
from airflow_hybrid.stores.base import PathEscapeError
from tests.client_requests import RequestLog, hdfs_requests

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]


@pytest.fixture
def mount(hdfs_server, monkeypatch):
    """A mount with its own roots (hdfs:///tmp/union-<id>, s3://hybrid-lake/union-<id>), read s3 then hdfs."""
    from airflow_hybrid.devstack.stack import airflow_env

    unique = f"union-{uuid.uuid4().hex[:8]}"
    conns = hdfs_server.connections(mount_conn_id="union_it", hdfs_root=f"/tmp/{unique}", s3_prefix=unique)
    for name, value in airflow_env(conns).items():
        monkeypatch.setenv(name, value)
    mount = HybridMount.from_conn_id("union_it")
    yield mount
    mount.close()


def _put(mount: HybridMount, member: str, path: str, data: bytes) -> None:
    mount.members[member].write(path, io.BytesIO(data))


def test_members_are_the_real_servers(mount, hdfs_server):
    assert mount.read_order == ["s3", "hdfs"] and mount.create_members == ["s3"]
    assert mount.members["hdfs"].uri("x").startswith("hdfs:///tmp/union-")
    assert mount.members["s3"].uri("x").startswith("s3://hybrid-lake/union-")


def test_read_follows_priority_with_the_same_name_in_both(mount, hdfs_server):
    _put(mount, "hdfs", "t/a.bin", b"hdfs-version")
    _put(mount, "s3", "t/a.bin", b"s3-version")
    _put(mount, "hdfs", "t/only-hdfs.bin", b"on-prem")
    with hdfs_requests(hdfs_server) as webhdfs:
        opens_before = webhdfs().get("OPEN", 0)
        with mount.open_read("t/a.bin") as stream:
            assert stream.read() == b"s3-version"
        assert webhdfs().get("OPEN", 0) == opens_before  # the HDFS copy was not read
        with mount.open_read("t/only-hdfs.bin") as stream:
            assert stream.read() == b"on-prem"
        assert webhdfs().get("OPEN", 0) == opens_before + 1  # ... where this one was
    assert mount.member_of("t/a.bin") == "s3" and mount.member_of("t/only-hdfs.bin") == "hdfs"
    with mount.open_read("t/only-hdfs.bin", offset=3, length=2) as stream:  # ranged, through the datanode
        assert stream.read() == b"pr"


def test_merged_listing_has_each_name_once_the_higher_priority_entry_winning(mount):
    _put(mount, "hdfs", "d/a", b"12345")
    _put(mount, "s3", "d/a", b"1")
    _put(mount, "hdfs", "d/b", b"22")
    _put(mount, "s3", "d/c", b"333")
    _put(mount, "hdfs", "d/sub/e", b"4444")
    entries = {e.name: e for e in mount.ls("d")}
    assert sorted(entries) == ["a", "b", "c", "sub"]
    assert entries["a"].size == 1 and entries["sub"].is_dir
    assert sorted(f.path for f in mount.walk_files("d")) == ["d/a", "d/b", "d/c", "d/sub/e"]


def test_create_goes_to_the_create_member(mount):
    mount.write("new/x.bin", io.BytesIO(b"payload"))
    assert mount.members["s3"].exists("new/x.bin")
    assert not mount.members["hdfs"].exists("new/x.bin")


def test_delete_removes_from_every_member(mount):
    _put(mount, "hdfs", "t/del.bin", b"1")
    _put(mount, "s3", "t/del.bin", b"2")
    assert sorted(mount.delete("t/del.bin")) == ["hdfs", "s3"]
    assert not mount.members["hdfs"].exists("t/del.bin") and not mount.members["s3"].exists("t/del.bin")
    with pytest.raises(FileNotFoundError, match="not found in any member"):
        mount.delete("t/del.bin")


def test_rename_applies_to_every_member_that_has_the_path(mount):
    _put(mount, "hdfs", "r/a", b"1")
    assert mount.rename("r/a", "r/b") == ["hdfs"]
    assert mount.members["hdfs"].exists("r/b") and not mount.members["hdfs"].exists("r/a")


@pytest.mark.parametrize("path", ["../outside", "t/../../outside", "/../etc/passwd"])
def test_traversal_is_rejected_before_any_request(mount, path):
    with RequestLog() as sent:
        with pytest.raises(PathEscapeError, match="escapes"):
            mount.open_read(path)
        with pytest.raises(PathEscapeError):
            mount.write(path, io.BytesIO(b"x"))
    assert sent.counts() == {}  # neither WebHDFS nor S3 was asked anything


def test_hybrid_filesystem_reads_and_lists_the_union(mount):
    from airflow_hybrid.mount.filesystem import HybridFileSystem

    _put(mount, "hdfs", "fs/a.txt", b"from hdfs")
    _put(mount, "s3", "fs/b.txt", b"from s3")
    fs = HybridFileSystem(mounts={"union_it": mount})
    assert fs.ls("hybrid://union_it/fs", detail=False) == ["union_it/fs/a.txt", "union_it/fs/b.txt"]
    assert fs.cat_file("hybrid://union_it/fs/a.txt") == b"from hdfs"
    with fs.open("hybrid://union_it/fs/c.txt", "wb") as out:
        out.write(b"written through fsspec")
    assert mount.member_of("fs/c.txt") == "s3"
    assert fs.cat_file("hybrid://union_it/fs/c.txt") == b"written through fsspec"


def test_member_connection_not_found_names_the_option(devstack, monkeypatch):
    extra = {"members": {"hdfs": {"uri": "hdfs:///x", "conn_id": "no_such_webhdfs"}}}
    monkeypatch.setenv("AIRFLOW_CONN_BAD_UNION", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    with pytest.raises(MountConfigError, match=r"members\.hdfs\.conn_id: connection 'no_such_webhdfs' not found"):
        HybridMount.from_conn_id("bad_union")
