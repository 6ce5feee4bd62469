"""``HybridMountHook`` over local directories: the extras as Airflow's connection form writes them
(:func:`mount_extras`), and ``test_connection`` checking the whole mount (members, cache tiers, catalog)."""

from __future__ import annotations

import json

import pytest

from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.cache.schema import LATEST_VERSION
from airflow_hybrid.hooks.hybrid_mount import HybridMountHook, mount_extras
from airflow_hybrid.mount.options import MountConfigError
from tests.mounts import local_mount_extra


def _connection(monkeypatch, conn_id: str, extra: dict, conn_type: str = "hybrid_mount") -> HybridMountHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": conn_type, "extra": extra}))
    return HybridMountHook(conn_id)


@pytest.fixture
def lake(tmp_path):
    """Extras of a mount over ``tmp_path/{s3,hdfs}`` with an SSD tier and a SQLite catalog, directories made."""
    for name in ("s3", "hdfs", "tier-ssd"):
        (tmp_path / name).mkdir()
    return local_mount_extra(tmp_path, "s3,hdfs", "s3", {"SSD": "1MB"})


# -- the extras the connection form writes ------------------------------------------------------------------
def test_the_form_fields_are_read_under_their_plain_names_and_empty_ones_dropped(tmp_path, monkeypatch):
    # what Airflow 3's form writes: every conn-field under its own name, null when left empty
    extra = {
        "members": {"hdfs": {"uri": f"file://{tmp_path}/hdfs"}, "s3": {"uri": f"file://{tmp_path}/s3"}},
        "priority.read": "s3,hdfs",
        "collection.create": "",
        "cache": {},  # the object editor left at {}
        "catalog_url": None,
        "mount_options": None,
    }
    spec = _connection(monkeypatch, "form_lake", extra).spec

    assert (spec.read_order, spec.create_members, spec.settings) == (["s3", "hdfs"], ["s3"], {})


def test_the_mount_options_text_area_alone_defines_a_mount(tmp_path, monkeypatch):
    text = (f"alluxio-union.hdfs.uri=file://{tmp_path}/hdfs\nalluxio-union.s3.uri=file://{tmp_path}/s3\n"
            "alluxio-union.priority.read=s3,hdfs\nalluxio-union.collection.create=s3\n")
    # the extras exactly as Airflow 3.3's form saved them (seen in Chromium): the other fields null
    extra = {"members": None, "priority.read": None, "collection.create": None, "cache": None, "catalog_url": None,
             "mount_options": text}
    spec = _connection(monkeypatch, "alluxio_lake", extra).spec

    assert sorted(spec.members) == ["hdfs", "s3"]
    assert (spec.read_order, spec.create_members) == (["s3", "hdfs"], ["s3"])


def test_airflow_2_prefixed_fields_and_json_text_objects_are_read():
    extras = mount_extras({
        "extra__hybrid_mount__members": '{"a": {"uri": "file:///tmp/a"}}',
        "extra__hybrid_mount__priority.read": "a",
        "cache": '{"tiers": [{"alias": "SSD", "uri": "file:///tmp/ssd", "quota": "1GB"}]}',
    })

    assert extras == {
        "members": {"a": {"uri": "file:///tmp/a"}},
        "priority.read": "a",
        "cache": {"tiers": [{"alias": "SSD", "uri": "file:///tmp/ssd", "quota": "1GB"}]},
    }


def test_a_plain_key_wins_over_its_prefixed_spelling():
    assert mount_extras({"priority.read": "s3,hdfs", "extra__hybrid_mount__priority.read": "hdfs,s3"}) == {
        "priority.read": "s3,hdfs"
    }


def test_members_that_are_not_json_are_refused_by_name():
    with pytest.raises(MountConfigError, match=r"^members: not valid JSON \(Expecting"):
        mount_extras({"members": "{hdfs: hdfs:///x}"})


# -- test_connection -------------------------------------------------------------------------------------
def test_a_sound_mount_reports_members_tiers_and_catalog(lake, tmp_path, monkeypatch):
    Catalog(f"sqlite:///{tmp_path}/catalog.db").dispose()  # an existing catalog, at this code's schema

    ok, message = _connection(monkeypatch, "sound", lake).test_connection()

    assert ok, message
    assert message == (
        "members s3, hdfs reachable (create in s3); cache tiers SSD 1.0 MiB (evicts from 95% to "
        f"70%) writable; catalog sqlite:///{tmp_path}/catalog.db at schema {LATEST_VERSION}"
    )
    assert sorted(p.name for p in (tmp_path / "tier-ssd").iterdir()) == []  # the probe file is removed


def test_a_catalog_not_created_yet_is_fine_where_it_can_be_created(lake, tmp_path, monkeypatch):
    ok, message = _connection(monkeypatch, "new_catalog", lake).test_connection()

    assert ok, message
    assert message.endswith(f"catalog sqlite:///{tmp_path}/catalog.db (created on first use)")
    assert not (tmp_path / "catalog.db").exists()  # the test creates nothing


def test_a_quota_that_is_not_a_size_fails_naming_the_tier(lake, monkeypatch):
    lake["cache"]["tiers"][0]["quota"] = "2 gigs"

    ok, message = _connection(monkeypatch, "bad_quota", lake).test_connection()

    assert not ok
    assert message.startswith("1 problem: cache.tiers[0].quota: "), message
    assert "'2 gigs'" in message


def test_watermarks_out_of_order_fail_naming_the_tier(lake, monkeypatch):
    lake["cache"]["tiers"][0].update(high_watermark=0.5, low_watermark=0.8)

    ok, message = _connection(monkeypatch, "bad_marks", lake).test_connection()

    assert not ok
    assert "cache.tiers[0]: watermarks out of order" in message, message


def test_a_tier_location_that_cannot_be_written_fails_naming_it(lake, tmp_path, monkeypatch):
    (tmp_path / "a-file").write_bytes(b"not a directory")
    lake["cache"]["tiers"][0]["uri"] = f"file://{tmp_path}/a-file/ssd"

    ok, message = _connection(monkeypatch, "bad_tier", lake).test_connection()

    assert not ok
    assert message.startswith(f"1 problem: cache.tiers[0] (SSD, file://{tmp_path}/a-file/ssd): "), message


def test_a_catalog_that_is_not_a_database_fails(lake, tmp_path, monkeypatch):
    (tmp_path / "catalog.db").write_bytes(b"this is not SQLite" * 100)

    ok, message = _connection(monkeypatch, "bad_catalog", lake).test_connection()

    assert not ok
    assert message.startswith(
        f"1 problem: catalog_url (sqlite:///{tmp_path}/catalog.db): cannot open the catalog: "
        "DatabaseError: (sqlite3.DatabaseError) file is not a database"
    ), message


def test_a_catalog_of_a_newer_schema_fails(lake, tmp_path, monkeypatch):
    import sqlalchemy as sa

    Catalog(f"sqlite:///{tmp_path}/catalog.db").dispose()
    engine = sa.create_engine(f"sqlite:///{tmp_path}/catalog.db")
    with engine.begin() as conn:
        table = next(t for t in sa.inspect(conn).get_table_names() if t.endswith("schema_version"))
        conn.execute(sa.text(f"INSERT INTO {table} (version) VALUES (:v)"), {"v": LATEST_VERSION + 1})
    engine.dispose()

    ok, message = _connection(monkeypatch, "newer_catalog", lake).test_connection()

    assert not ok
    assert f"schema version {LATEST_VERSION + 1} is newer than this airflow-hybrid supports" in message, message


def test_every_problem_is_listed_not_only_the_first(lake, tmp_path, monkeypatch):
    lake["members"]["hdfs"]["uri"] = f"file://{tmp_path}/no-such-dir"
    lake["members"]["s3"] = {"uri": "s3://bucket/lake", "conn_id": "aws_missing"}
    lake["cache"]["tiers"][0]["quota"] = "2 gigs"

    ok, message = _connection(monkeypatch, "many", lake).test_connection()

    assert not ok
    assert message.startswith("3 problems: (1) members.s3.conn_id: connection 'aws_missing' not "
                              "found (AirflowNotFoundException); (2) members.hdfs "), message
    assert f"(2) members.hdfs (file://{tmp_path}/no-such-dir): not reachable: FileNotFoundError" in message
    assert "(3) cache.tiers[0].quota: " in message


def test_options_that_do_not_parse_fail_and_the_cache_is_still_checked(lake, monkeypatch):
    lake["priority.read"] = "s3,gcs"
    lake["cache"]["tiers"][0]["quota"] = -5

    ok, message = _connection(monkeypatch, "bad_options", lake).test_connection()

    assert not ok
    assert message.startswith("2 problems: (1) priority.read: unknown member 'gcs'"), message
    assert "(2) cache.tiers[0].quota" in message


def test_a_connection_of_another_type_fails(lake, monkeypatch):
    ok, message = _connection(monkeypatch, "not_a_mount", lake, conn_type="aws").test_connection()

    assert (ok, message) == (
        False,
        "1 problem: MountConfigError: connection 'not_a_mount' has type 'aws', expected "
        "'hybrid_mount'",
    )
