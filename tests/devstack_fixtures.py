"""Pytest fixtures for the devstack (a plugin of ``tests/conftest.py``).

``devstack``             session-scoped: WebHDFS (namenode + data node) and S3 servers in a background
                         process on free loopback ports, data in a temporary directory; a
                         :class:`~airflow_hybrid.devstack.control.DevStackClient` (addresses,
                         ``connections()``, ``stats()``, ``shaping``, ``configure()``).
``airflow_connections``  function-scoped: ``AIRFLOW_CONN_*`` for the connections of ``hdfs_server``
                         (the devstack, or real HDFS in modules marked ``hdfs_servers``; see
                         ``tests/hadoop_fixtures.py``): ``webhdfs_default``, ``aws_default``,
                         ``onprem_union``, and a temporary ``AIRFLOW_HOME``; returns the connection dicts by id.
``devstack_shaping``     function-scoped: the devstack's link shaping, cleared before and after the test.
``union_lake``           function-scoped: the :class:`~airflow_hybrid.mount.HybridMount` ``onprem_union`` of
                         ``hdfs_server`` (``hdfs:///tmp/tpcds`` + ``s3://hybrid-lake/tpcds``, read ``s3,hdfs``).
``devstack_lake``        function-scoped: the same mount on the devstack only, never Apache Hadoop's (for tests
                         that shape its links).

The stack runs in its own process so its moto state is isolated from tests that use ``mock_aws``, and
servers do not compete with the test for the GIL.
"""

from __future__ import annotations

import pytest

from airflow_hybrid.devstack.control import DevStackClient, devstack_down, devstack_up
from airflow_hybrid.devstack.stack import airflow_env
from airflow_hybrid.mount import HybridMount

MOUNT = "onprem_union"


@pytest.fixture(scope="session")
def devstack(tmp_path_factory: pytest.TempPathFactory):
    state_dir = tmp_path_factory.mktemp("devstack")
    devstack_up(state_dir, seed=20240601, with_parent=True)
    try:
        yield DevStackClient.from_state_dir(state_dir)
    finally:
        devstack_down(state_dir)


def _use_airflow_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """A fresh ``AIRFLOW_HOME`` under ``tmp_path`` and ``env`` (``AIRFLOW_CONN_*``) for the test."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    for name, value in env.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def airflow_connections(hdfs_server, monkeypatch: pytest.MonkeyPatch, tmp_path):
    connections = hdfs_server.connections()
    _use_airflow_env(airflow_env(connections), monkeypatch, tmp_path)
    return connections


@pytest.fixture
def devstack_shaping(devstack: DevStackClient):
    devstack.shaping.clear()
    yield devstack.shaping
    devstack.shaping.clear()


@pytest.fixture
def union_lake(airflow_connections):
    """The union mount of ``hdfs_server`` (both servers in modules marked ``hdfs_servers``)."""
    with HybridMount.from_conn_id(MOUNT) as mount:
        yield mount


@pytest.fixture
def devstack_lake(devstack, monkeypatch: pytest.MonkeyPatch, tmp_path):
    """The devstack's union mount, never Apache Hadoop's: for tests that shape its links (fault injection)."""
    _use_airflow_env(devstack.airflow_env(), monkeypatch, tmp_path)
    with HybridMount.from_conn_id(MOUNT) as mount:
        yield mount
