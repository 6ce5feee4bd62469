"""Union semantics of HybridMount over two local-directory members (the same rules run against
WebHDFS + S3 in tests/integration/mount/test_union.py)."""

from __future__ import annotations

import io

import pytest

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.options import MountConfigError, parse_mount_options
from airflow_hybrid.stores.base import PathEscapeError


@pytest.fixture
def mount(options):
    return HybridMount.from_options("union", options)


def _put(directory, rel, data: bytes):
    target = directory / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_read_follows_priority_when_both_members_have_the_name(mount, dirs):
    hdfs, s3 = dirs
    _put(hdfs, "t/a.parquet", b"from-hdfs")
    _put(s3, "t/a.parquet", b"from-s3")
    _put(hdfs, "t/b.parquet", b"only-hdfs")
    assert mount.open_read("t/a.parquet").read() == b"from-s3"
    assert mount.member_of("t/a.parquet") == "s3"
    assert mount.open_read("t/b.parquet").read() == b"only-hdfs"
    assert mount.member_of("t/b.parquet") == "hdfs"


def test_listing_is_merged_and_each_name_appears_once(mount, dirs):
    hdfs, s3 = dirs
    _put(hdfs, "t/a", b"12345")
    _put(s3, "t/a", b"1")
    _put(hdfs, "t/b", b"22")
    _put(s3, "t/c", b"333")
    entries = {e.name: e for e in mount.ls("t")}
    assert sorted(entries) == ["a", "b", "c"]
    assert entries["a"].size == 1  # the s3 (higher-priority) entry wins
    assert sorted(f.path for f in mount.walk_files("")) == ["t/a", "t/b", "t/c"]


def test_create_goes_to_the_create_member_only(mount, dirs):
    hdfs, s3 = dirs
    mount.write("new/x.bin", io.BytesIO(b"payload"))
    assert (s3 / "new/x.bin").read_bytes() == b"payload"
    assert not (hdfs / "new/x.bin").exists()


def test_create_to_several_members_writes_all(dirs, tmp_path):
    hdfs, s3 = dirs
    mount = HybridMount.from_options(
        "u", {"members": {"hdfs": {"uri": str(hdfs)}, "s3": {"uri": str(s3)}}, "collection.create": "s3,hdfs"}
    )
    mount.write("x", io.BytesIO(b"both"))
    assert (s3 / "x").read_bytes() == (hdfs / "x").read_bytes() == b"both"


def test_delete_removes_from_every_member(mount, dirs):
    hdfs, s3 = dirs
    _put(hdfs, "t/a", b"1")
    _put(s3, "t/a", b"2")
    assert sorted(mount.delete("t/a")) == ["hdfs", "s3"]
    assert not (hdfs / "t/a").exists() and not (s3 / "t/a").exists()
    with pytest.raises(FileNotFoundError, match="not found in any member"):
        mount.delete("t/a")


def test_rename_applies_to_every_member_that_has_the_path(mount, dirs):
    hdfs, s3 = dirs
    _put(hdfs, "a", b"1")
    assert mount.rename("a", "b") == ["hdfs"]
    assert (hdfs / "b").read_bytes() == b"1" and not (s3 / "b").exists()


@pytest.mark.parametrize("path", ["../etc/passwd", "t/../../x", "a/../../../b"])
def test_paths_never_escape_the_mount(mount, path):
    with pytest.raises(PathEscapeError, match="escapes"):
        mount.open_read(path)
    with pytest.raises(PathEscapeError):
        mount.write(path, io.BytesIO(b"x"))


def test_absolute_path_means_the_mount_root(mount, dirs):
    hdfs, _ = dirs
    _put(hdfs, "etc/passwd", b"mine")
    assert mount.open_read("/etc/passwd").read() == b"mine"


def test_missing_path_error_names_mount_and_members(mount):
    with pytest.raises(FileNotFoundError, match=r"hybrid://union/nope not found in any member \(s3, hdfs\)"):
        mount.info("nope")


@pytest.mark.parametrize(
    ("extras", "message"),
    [
        ({}, "no members"),
        ({"members": {"a": {}}}, "members.a.uri: missing"),
        ({"members": {"a": {"uri": "gs://b/x"}}}, "members.a.uri: unsupported scheme 'gs'"),
        ({"members": {"a": {"uri": "/x"}}, "priority.read": "a,b"}, "priority.read: unknown member 'b'"),
        ({"members": {"a": {"uri": "/x"}, "b": {"uri": "/y"}}, "priority.read": "a"}, "must list every member once"),
        ({"members": {"a": {"uri": "/x"}}, "priority.read": "a,a"}, "listed twice"),
        ({"members": {"a": {"uri": "/x"}}, "collection.create": "z"}, "collection.create: unknown member 'z'"),
        ({"members": {"a": {"uri": "/x", "bogus": 1}}}, "members.a: unknown keys"),
        ({"alluxio-union.a.url": "/x"}, "unknown member attribute 'url'"),
        ({"mount_options": "alluxio-union.a.uri"}, "mount_options: expected key=value"),
        ({"members": {"a": {"uri": "/x"}}, "priority_read": "a"}, r"unknown options \['priority_read'\]"),
    ],
)
def test_invalid_options_name_the_option(extras, message):
    with pytest.raises(MountConfigError, match=message):
        parse_mount_options("m", extras)


def test_alluxio_mount_options_are_accepted_unchanged():
    spec = parse_mount_options(
        "m",
        {
            "mount_options": "--option alluxio-union.hdfs.uri=hdfs://namenode:8020/tmp/tpcds "
            "--option alluxio-union.s3.uri=s3://bucket/tpcds\n"
            "alluxio-union.priority.read=s3,hdfs\nalluxio-union.collection.create=s3\n"
            "alluxio-union.hdfs.option.alluxio.underfs.version=3.3\n"
            "alluxio-union.s3.option.conn_id=aws_lake",
        },
    )
    assert spec.read_order == ["s3", "hdfs"]
    assert spec.create_members == ["s3"]
    assert spec.members["hdfs"].uri == "hdfs://namenode:8020/tmp/tpcds"
    assert spec.members["hdfs"].conn_id == "webhdfs_default"
    assert spec.members["hdfs"].options == {"alluxio.underfs.version": "3.3"}
    assert spec.members["s3"].conn_id == "aws_lake"


def test_a_file_moved_between_resolve_and_open_is_read_from_its_new_member(mount, dirs, monkeypatch):
    """A migration may copy a file to S3 and remove it from HDFS between a reader's stat and its open."""
    hdfs, s3 = dirs
    _put(hdfs, "t/a", b"same-bytes")
    resolve = mount.resolve
    calls = []

    def resolve_then_migrate(path):
        found = resolve(path)
        if not calls:  # the migration lands right after the first resolution
            _put(s3, "t/a", b"same-bytes")
            (hdfs / "t" / "a").unlink()
        calls.append(found[0])
        return found

    monkeypatch.setattr(mount, "resolve", resolve_then_migrate)
    assert mount.open_read("t/a").read() == b"same-bytes"
    assert calls == ["hdfs", "s3"]


def test_each_hybrid_filesystem_sees_the_connection_as_it_is_now(tmp_path, monkeypatch):
    """fsspec caches instances process-wide by default; a mount built for an older definition of a
    connection must not be served to a later reader."""
    import json

    from airflow_hybrid.mount.filesystem import HybridFileSystem

    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text(name)
        extra = {"members": {"only": {"uri": f"file://{tmp_path / name}"}}}
        monkeypatch.setenv("AIRFLOW_CONN_REDEFINED", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
        assert HybridFileSystem().cat_file("hybrid://redefined/f") == name.encode()


def test_a_discarded_hybrid_write_creates_nothing(mount, dirs):
    from airflow_hybrid.mount.filesystem import HybridFileSystem

    _, s3 = dirs
    fs = HybridFileSystem(mounts={"union": mount})
    handle = fs.open("hybrid://union/new/partial.bin", "wb", block_size=5 * 2**20)
    handle.write(b"x" * (6 * 2**20))  # one block already piped to the store
    handle.discard()
    assert not (s3 / "new" / "partial.bin").exists()
    with fs.open("hybrid://union/new/whole.bin", "wb", block_size=5 * 2**20) as out:
        out.write(b"y" * (6 * 2**20))
    assert (s3 / "new" / "whole.bin").stat().st_size == 6 * 2**20
