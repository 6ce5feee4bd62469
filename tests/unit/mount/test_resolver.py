"""Resolving logical paths to physical URIs for external engines, and the ``hybrid`` template macros."""

from __future__ import annotations

import json

import jinja2
import pytest

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


def test_split_directory_with_a_file_in_both_members_is_refused(mount, dirs):
    hdfs, s3 = dirs
    _put(s3, "t/part-0.parquet")
    _put(hdfs, "t/part-0.parquet")  # copied to S3, not yet removed from HDFS
    _put(hdfs, "t/part-1.parquet")
    with pytest.raises(
        SplitLocationError, match=r"member 'hdfs' also holds 1 file\(s\) .*\(e.g. t/part-0.parquet\)"
    ):
        resolve_locations(mount, "t")


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

    class WarmCache:
        def warm_uri(self, path):
            return "s3://cache-bucket/tier/t" if path == "t" else None

    monkeypatch.setattr(HybridMount, "cache", property(lambda self: WarmCache()))
    mount = HybridMount.from_options("lake", {**options, "cache": {"tiers": []}})
    assert resolve_locations(mount, "t") == [Location(resolver.CACHE_MEMBER, "s3://cache-bucket/tier/t")]
    assert resolve_physical(mount, "u") == f"file://{hdfs}/u"  # cold: the member


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
