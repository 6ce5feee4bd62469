"""``airflow hybrid devstack up --hdfs hadoop``: the devstack with Apache Hadoop's HDFS in place of our server."""

from __future__ import annotations

import io
import os

import pytest

from airflow_hybrid.devstack.control import DevStackClient, devstack_down, devstack_up
from airflow_hybrid.devstack.hadoop import HadoopError
from airflow_hybrid.devstack.stack import airflow_env
from airflow_hybrid.stores.hdfs.store import HdfsStore
from tests.services import unavailable

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_devstack_up_with_hadoop_serves_real_hdfs_and_down_stops_its_jvms(tmp_path, monkeypatch):
    state_dir = tmp_path / "state"
    try:
        status = devstack_up(state_dir, hdfs="hadoop", with_parent=True)
    except Exception as error:  # noqa: BLE001 - the reason is in the message
        if isinstance(error, HadoopError) or "Hadoop" in str(error):
            unavailable(f"Apache Hadoop could not be started: {error}")
        raise
    try:
        assert status["hdfs"] == "hadoop" and status["hdfs_dir"] is None
        assert status["fs_uri"].startswith("hdfs://127.0.0.1:")
        jvms = status["hadoop"]["pids"]
        assert all(_alive(pid) for pid in jvms.values())
        client = DevStackClient.from_state_dir(state_dir)
        for name, value in airflow_env(client.connections()).items():
            monkeypatch.setenv(name, value)
        store = HdfsStore("hdfs:///tmp/devstack-hadoop")
        store.write("a/b.bin", io.BytesIO(b"x" * 5000))
        info = store.info("a/b.bin")
        # Hadoop's own answer: its 4 MiB test block size and the creating user as owner.
        assert (info.size, info.extra["blockSize"], info.extra["owner"]) == (5000, 4 * 1024 * 1024, "hdfs")
        with store.open_read("a/b.bin", offset=4990) as reader:
            assert reader.read() == b"x" * 10
        store.close()
    finally:
        assert devstack_down(state_dir)
    assert not any(_alive(pid) for pid in jvms.values())
