"""Resolving logical paths to physical URIs for external engines, and the ``hybrid`` template macros."""

from __future__ import annotations

import json

import jinja2
import pytest

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount import HybridMount, resolver
from airflow_hybrid.mount.resolver import Location, SplitLocationError, resolve_locations, resolve_physical
from airflow_hybrid.stores.base import PathEscapeError


@pytest.fixture
def mount(options):
    return HybridMount.from_options("lake", options)


def _put(directory, rel, data=b"x"):
    target = directory / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def test_file_resolves_to_the_member_serving_it(mount, dirs):
    hdfs, s3 = dirs
    _put(hdfs, "t/a.parquet")
    _put(hdfs, "t/b.parquet")
    _put(s3, "t/b.parquet")
    assert resolve_physical(mount, "/t/a.parquet") == f"file://{hdfs}/t/a.parquet"
    assert resolve_physical(mount, "t/b.parquet") == f"file://{s3}/t/b.parquet"  # s3 first in priority.read


def test_directory_in_one_member_resolves_to_its_directory(mount, dirs):
    hdfs, _ = dirs
    for i in range(3):
        _put(hdfs, f"tpcds/store_sales/part-{i}.parquet", b"12345")
    assert resolve_physical(mount, "/tpcds/store_sales") == f"file://{hdfs}/tpcds/store_sales"
    assert resolve_locations(mount, "tpcds/store_sales") == [
        Location("hdfs", f"file://{hdfs}/tpcds/store_sales", files=3, bytes=15)
    ]


def test_fully_migrated_directory_resolves_to_s3_even_with_originals_left(mount, dirs):
    hdfs, s3 = dirs
    for i in range(3):
        _put(s3, f"t/part-{i}.parquet")
        _put(hdfs, f"t/part-{i}.parquet")  # shadowed copies not yet removed: the S3 directory is complete
    assert resolve_physical(mount, "t") == f"file://{s3}/t"


def test_split_directory_has_one_location_per_member_and_no_single_uri(mount, dirs):
    hdfs, s3 = dirs
    _put(s3, "t/part-0.parquet", b"old")
    _put(s3, "t/part-1.parquet", b"old")
    _put(hdfs, "t/part-2.parquet", b"new!")
    assert resolve_locations(mount, "t") == [
        Location("s3", f"file://{s3}/t", files=2, bytes=6),
        Location("hdfs", f"file://{hdfs}/t", files=1, bytes=4),
    ]
    with pytest.raises(SplitLocationError) as err:
        resolve_physical(mount, "/t")
    message = str(err.value)
    assert "hybrid://lake/t is split across members" in message
    assert f"s3 (2 files at file://{s3}/t), hdfs (1 files at file://{hdfs}/t)" in message
    assert "resolve_locations()" in message


def test_a_file_in_two_members_mid_migration_resolves_to_exact_file_lists(mount, dirs):
    """Between a migration's copy and its removal, a file is in both members: each file is read once, from the
    member serving it; the member whose directory also holds the shadowed copy gets its exact file list."""
    hdfs, s3 = dirs
    _put(s3, "t/part-0.parquet", b"copied")
    _put(hdfs, "t/part-0.parquet", b"copied")  # copied to S3, not yet removed from HDFS
    _put(hdfs, "t/part-1.parquet", b"new")
    _put(hdfs, "t/sub/part-2.parquet", b"newer")
    assert resolve_locations(mount, "t") == [
        Location("s3", f"file://{s3}/t", files=1, bytes=6),
        Location(
            "hdfs",
            f"file://{hdfs}/t",
            files=2,
            bytes=8,
            file_uris=(f"file://{hdfs}/t/part-1.parquet", f"file://{hdfs}/t/sub/part-2.parquet"),
        ),
    ]


def test_the_higher_priority_member_lists_its_files_when_it_holds_a_shadowed_one_too(options, dirs):
    """Read priority hdfs,s3: S3 holds a file HDFS serves too, so S3's directory is read by its file list."""
    hdfs, s3 = dirs
    mount = HybridMount.from_options("lake", {**options, "priority.read": "hdfs,s3"})
    _put(hdfs, "t/a.parquet", b"1")
    _put(s3, "t/a.parquet", b"1")
    _put(s3, "t/b.parquet", b"22")
    assert resolve_locations(mount, "t") == [
        Location("hdfs", f"file://{hdfs}/t", files=1, bytes=1),
        Location("s3", f"file://{s3}/t", files=1, bytes=2, file_uris=(f"file://{s3}/t/b.parquet",)),
    ]


def test_one_serving_member_with_a_file_list_has_no_single_uri(options, dirs):
    """Every file served by HDFS, but S3 (first in priority) serves a file HDFS also has: two locations."""
    hdfs, s3 = dirs
    _put(s3, "t/a.parquet")
    _put(hdfs, "t/a.parquet")
    _put(hdfs, "t/b.parquet")
    mount = HybridMount.from_options("lake", options)
    with pytest.raises(SplitLocationError, match=r"split across members: s3 \(1 files at .*hdfs \(1 listed files"):
        resolve_physical(mount, "t")


def test_files_engines_skip_are_neither_listed_nor_counted_nor_mixing(mount, dirs):
    """``_SUCCESS`` and ``.crc`` files: engines skip them in a directory, so a shadowed marker leaves the
    directory whole, and a file list never names one."""
    hdfs, s3 = dirs
    for member in (s3, hdfs):
        _put(member, "t/_SUCCESS", b"")
        _put(member, "t/.part-0.parquet.crc", b"crc")
    _put(s3, "t/part-0.parquet", b"1")
    _put(hdfs, "t/part-1.parquet", b"22")
    _put(hdfs, "t/_k=v/part-2.parquet", b"333")  # a partition directory, read
    assert resolve_locations(mount, "t") == [
        Location("s3", f"file://{s3}/t", files=1, bytes=1),
        Location("hdfs", f"file://{hdfs}/t", files=2, bytes=5),
    ]
    _put(hdfs, "t/part-0.parquet", b"1")  # now a shadowed data file too: hdfs lists its data files only
    assert resolve_locations(mount, "t")[1] == Location(
        "hdfs", f"file://{hdfs}/t", 2, 5, (f"file://{hdfs}/t/_k=v/part-2.parquet", f"file://{hdfs}/t/part-1.parquet")
    )
    assert [resolver.skipped_by_engines(p) for p in ("_SUCCESS", "a/.x.crc", "_k=v/a", "_tmp/a", "a/b")] == [
        True, True, False, True, False
    ]


def test_an_unknown_s3_scheme_is_refused(mount, dirs):
    hdfs, _ = dirs
    _put(hdfs, "t/a.parquet")
    with pytest.raises(HybridConfigError, match="s3_scheme must be one of s3, s3a, got 'gs'"):
        resolve_locations(mount, "t", s3_scheme="gs")


def test_nested_directories_count_their_files(mount, dirs):
    hdfs, s3 = dirs
    _put(hdfs, "t/year=2001/a.parquet")
    _put(hdfs, "t/year=2002/b.parquet")
    _put(s3, "t/year=2001/c.parquet")
    locations = resolve_locations(mount, "t")
    assert [(loc.member, loc.files) for loc in locations] == [("s3", 1), ("hdfs", 2)]


def test_empty_directory_and_missing_path(mount, dirs):
    hdfs, _ = dirs
    (hdfs / "empty").mkdir()
    assert resolve_physical(mount, "empty") == f"file://{hdfs}/empty"
    with pytest.raises(FileNotFoundError, match="hybrid://lake/nope not found in any member"):
        resolve_physical(mount, "nope")
    with pytest.raises(PathEscapeError):
        resolve_physical(mount, "t/../../etc")


def test_warm_data_in_the_cache_s3_tier_wins(options, dirs, monkeypatch):
    """The hook for the cache: ``warm_uri(path)`` of the mount's cache manager, when it has one."""
    hdfs, _ = dirs
    _put(hdfs, "t/part-0.parquet")
    _put(hdfs, "u/part-0.parquet")

    listings = {}

    class WarmCache:
        def warm_uri(self, path, listing=None):
            listings[path] = sorted((f.path, f.size) for f in listing)
            return "s3://cache-bucket/tier/t" if path == "t" else None

    monkeypatch.setattr(HybridMount, "cache", property(lambda self: WarmCache()))
    mount = HybridMount.from_options("lake", {**options, "cache": {"tiers": []}})
    assert resolve_locations(mount, "t") == [Location(resolver.CACHE_MEMBER, "s3://cache-bucket/tier/t", 1, 1)]
    assert resolve_locations(mount, "t", s3_scheme="s3a")[0].uri == "s3a://cache-bucket/tier/t"
    assert resolve_physical(mount, "u") == f"file://{hdfs}/u"  # cold: the member
    assert listings == {"t": [("t/part-0.parquet", 1)], "u": [("u/part-0.parquet", 1)]}  # the served files


def test_macros_resolve_through_the_airflow_connection(options, dirs, monkeypatch):
    hdfs, s3 = dirs
    _put(hdfs, "tpcds/store_sales/part-0.parquet")
    _put(s3, "tpcds/store_sales/part-1.parquet")
    _put(hdfs, "tpcds/item/part-0.parquet")
    monkeypatch.setenv(
        "AIRFLOW_CONN_ONPREM_UNION", json.dumps({"conn_type": "hybrid_mount", "extra": options})
    )
    assert resolver.uri("onprem_union", "/tpcds/item") == f"file://{hdfs}/tpcds/item"
    assert resolver.locations("onprem_union", "/tpcds/store_sales") == [
        f"file://{s3}/tpcds/store_sales",
        f"file://{hdfs}/tpcds/store_sales",
    ]
    # As the plugin exposes them (macros.hybrid.<name>) and as user_defined_macros.
    assert [macro.__name__ for macro in resolver.MACROS] == ["uri", "locations"]
    rendered = jinja2.Template("{{ hybrid.uri('onprem_union', '/tpcds/item') }}").render(
        hybrid=resolver.template_macros()
    )
    assert rendered == f"file://{hdfs}/tpcds/item"
