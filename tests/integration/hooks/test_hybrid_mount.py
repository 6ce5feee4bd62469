"""``HybridMountHook.test_connection`` (the connection form's Test button) and ``HybridMountMixin`` on real servers:
the devstack's S3 server and ``hdfs_server`` (our WebHDFS server and Apache Hadoop's), and a PostgreSQL cache
catalog."""

from __future__ import annotations

import io
import json
import socket

import pytest

from airflow_hybrid.devstack.stack import airflow_env
from airflow_hybrid.hooks.hybrid_mount import HybridMountHook, HybridMountMixin
from airflow_hybrid.mount.options import MountConfigError
from tests.devstack_fixtures import MOUNT

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _test_with_member(monkeypatch, connections: dict[str, dict], member: str, key: str, value: str,
                      **more: dict) -> tuple[bool, str]:
    """``test_connection`` of a copy of the mount whose ``member`` has ``key`` set to ``value`` (``more``: other
    connections it needs)."""
    mount = json.loads(json.dumps(connections[MOUNT]))
    mount["extra"]["members"][member][key] = value
    for name, conn in airflow_env({"changed_union": mount, **more}).items():
        monkeypatch.setenv(name, conn)
    return HybridMountHook("changed_union").test_connection()


@pytest.fixture
def hdfs_root(union_lake):
    """The HDFS member's root exists (a file below it)."""
    union_lake.members["hdfs"].write("hook-test/part-00000.bin", io.BytesIO(b"x"))


def test_every_member_reachable(hdfs_root):
    assert HybridMountHook(MOUNT).test_connection() == (
        True, "members s3, hdfs reachable (create in s3)"
    )


def test_a_member_root_that_does_not_exist_fails_the_test(airflow_connections, monkeypatch):
    ok, message = _test_with_member(monkeypatch, airflow_connections, "hdfs", "uri", "hdfs:///no/such/root")

    assert not ok
    assert message.startswith(
        "1 problem: members.hdfs (hdfs:///no/such/root): not reachable: FileNotFoundError: "
        "hdfs:///no/such/root: WebHDFS LISTSTATUS_BATCH /no/such/root:"
    ), message


def test_a_namenode_that_does_not_answer_fails_the_test(airflow_connections, monkeypatch):
    port = _closed_port()
    dead = {**airflow_connections["webhdfs_default"], "host": "127.0.0.1", "port": port}
    ok, message = _test_with_member(monkeypatch, airflow_connections, "hdfs", "conn_id", "webhdfs_dead",
                                    webhdfs_dead=dead)

    assert not ok
    assert f"members.hdfs (hdfs:///tmp/tpcds): not reachable: StoreError: hdfs:///tmp/tpcds: no WebHDFS namenode " \
        f"answered for connection 'webhdfs_dead' (tried 127.0.0.1:{port})" in message, message


def test_a_bucket_that_does_not_exist_fails_the_test(hdfs_root, airflow_connections, monkeypatch):
    ok, message = _test_with_member(monkeypatch, airflow_connections, "s3", "uri",
                                    "s3://no-such-bucket-for-the-hook-test/tpcds")

    assert not ok
    assert "no-such-bucket-for-the-hook-test" in message, message


def test_a_member_connection_that_does_not_exist_fails_the_test(hdfs_root, airflow_connections, monkeypatch):
    ok, message = _test_with_member(monkeypatch, airflow_connections, "s3", "conn_id", "aws_missing")

    assert (ok, message) == (
        False,
        "1 problem: members.s3.conn_id: connection 'aws_missing' not found "
        "(AirflowNotFoundException)",
    )


def test_an_s3_server_that_does_not_answer_fails_the_test_naming_the_member(hdfs_root, airflow_connections,
                                                                            monkeypatch):
    port = _closed_port()
    dead = json.loads(json.dumps(airflow_connections["aws_default"]))
    dead["extra"]["endpoint_url"] = f"http://127.0.0.1:{port}"
    ok, message = _test_with_member(monkeypatch, airflow_connections, "s3", "conn_id", "aws_dead", aws_dead=dead)

    assert not ok
    assert message.startswith("1 problem: members.s3 (s3://hybrid-lake/tpcds): not reachable: "), message
    assert f"127.0.0.1:{port}" in message, message


def _with_cache(monkeypatch, connections: dict[str, dict], tmp_path, catalog_url: str) -> HybridMountHook:
    mount = json.loads(json.dumps(connections[MOUNT]))
    mount["extra"]["cache"] = {"tiers": [{"alias": "SSD", "uri": (tmp_path / "ssd").as_uri(), "quota": "64MB"},
                                         {"alias": "S3", "uri": "s3://hybrid-lake/cache", "quota": "1GB"}],
                               "catalog_url": catalog_url}
    for name, conn in airflow_env({"cached_union": mount}).items():
        monkeypatch.setenv(name, conn)
    return HybridMountHook("cached_union")


def test_a_cache_on_disk_and_s3_with_a_postgresql_catalog_passes(hdfs_root, airflow_connections, monkeypatch,
                                                                  tmp_path):
    import sqlalchemy as sa

    from tests.services import postgres_url

    url = postgres_url()
    ok, message = _with_cache(monkeypatch, airflow_connections, tmp_path, url).test_connection()

    assert ok, message
    shown_url = sa.engine.make_url(url).render_as_string(hide_password=True)
    assert message.startswith(
        "members s3, hdfs reachable (create in s3); cache tiers SSD 64.0 MiB (evicts from "
        f"95% to 70%), S3 1.0 GiB (evicts from 95% to 70%) writable; catalog {shown_url} "
    ), message


def test_a_catalog_database_that_does_not_answer_fails_the_test(hdfs_root, airflow_connections, monkeypatch,
                                                                tmp_path):
    port = _closed_port()
    url = f"postgresql+psycopg2://hybrid:secret@127.0.0.1:{port}/hybrid"
    ok, message = _with_cache(monkeypatch, airflow_connections, tmp_path, url).test_connection()

    assert not ok
    assert message.startswith(
        f"1 problem: catalog_url (postgresql+psycopg2://hybrid:***@127.0.0.1:{port}/hybrid): "
        "cannot open the catalog: OperationalError: "
    ), message
    assert "secret" not in message


class _Task(HybridMountMixin):
    def __init__(self, mount_conn_id: str | None) -> None:
        self.mount_conn_id = mount_conn_id


def test_the_mixin_closes_the_mount_it_gives(hdfs_root, monkeypatch):
    closed: list[str] = []
    with _Task(MOUNT).mount() as mount:
        for name, store in mount.members.items():
            monkeypatch.setattr(store, "close", lambda name=name: closed.append(name))
        assert [info.path for info in mount.members["hdfs"].walk_files("hook-test")] == ["hook-test/part-00000.bin"]
        assert closed == []
    assert sorted(closed) == ["hdfs", "s3"]


def test_the_mixin_gives_each_mount_once_and_closes_them_all(airflow_connections, monkeypatch):
    closed: list[str] = []
    task = _Task(MOUNT)
    with task.mounts() as mount_of:
        first = mount_of(MOUNT)
        assert mount_of(MOUNT) is first
        monkeypatch.setattr(first, "close", lambda: closed.append(first.name))
    assert closed == [MOUNT]


def test_the_mixin_needs_a_connection_id():
    with pytest.raises(MountConfigError, match="_Task: no mount_conn_id"), _Task(None).mount():
        pass
