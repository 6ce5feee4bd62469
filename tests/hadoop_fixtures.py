"""Pytest fixtures for Apache Hadoop's HDFS (imported by ``tests/conftest.py``).

``hadoop_hdfs``   session-scoped: a real NameNode + DataNode (Hadoop 3.5.0, :mod:`airflow_hybrid.devstack.hadoop`)
                  on free loopback ports, 4 MiB blocks, 100 entries per listing page, permissions on; its logs are appended to the report
                  of any failing test that used it.
``kerberized_hdfs`` session-scoped: the same Hadoop secured with Kerberos (:mod:`airflow_hybrid.devstack.kerberos`'s
                  MiniKdc, realm ``EXAMPLE.COM``, users ``alice`` and ``bob`` with a keytab each): SPNEGO on
                  WebHDFS, delegation tokens on data-node redirects; its connection is
                  ``webhdfs_connection()`` (alice's principal and keytab). Under ``CI=true`` a KDC or cluster
                  that cannot start fails the tests.
``hdfs_server``   which HDFS a test talks to: ``devstack`` (our WebHDFS server) unless a module or test is
                  marked ``hdfs_servers``, which runs it once per server (``devstack`` and ``hadoop``; or only
                  those named: ``hdfs_servers("hadoop")``). Both
                  kinds offer ``kind``, ``connections()``, ``airflow_env()``, ``webhdfs_host``/``port``,
                  ``user``, ``s3_endpoint`` (the devstack's S3 server serves both).
"""

from __future__ import annotations

import pytest

from airflow_hybrid.devstack.hadoop import HadoopError, HadoopHdfs
from airflow_hybrid.devstack.kerberos import MiniKdc
from airflow_hybrid.devstack.stack import StackConnections
from tests.services import running

HDFS_SERVERS = ("devstack", "hadoop")
_HADOOP_KEY = pytest.StashKey[HadoopHdfs]()
_KERBERIZED_KEY = pytest.StashKey[HadoopHdfs]()


class HadoopStack(StackConnections):
    """Real HDFS for ``hdfs``, the devstack's S3 server for ``s3``: what ``connections()`` gives tests."""

    kind = "hadoop"

    def __init__(self, hadoop: HadoopHdfs, devstack) -> None:
        self.hadoop = hadoop
        self.devstack = devstack
        self.webhdfs_host = hadoop.webhdfs_host
        self.webhdfs_port = hadoop.webhdfs_port
        self.user = hadoop.user
        self.s3_endpoint = devstack.s3_endpoint

    def __repr__(self) -> str:
        return f"HadoopStack({self.hadoop.webhdfs_url}, s3={self.s3_endpoint})"


@pytest.fixture(scope="session")
def hadoop_hdfs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    base = tmp_path_factory.mktemp("hadoop")
    # Small listing pages (dfs.ls.limit, default 1000), so paging is exercised with a few hundred files.
    with running(HadoopHdfs(base, properties={"dfs.ls.limit": 100}), "Apache Hadoop", HadoopError) as hdfs:
        request.config.stash[_HADOOP_KEY] = hdfs
        yield hdfs


@pytest.fixture(scope="session")
def kerberized_hdfs(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    base = tmp_path_factory.mktemp("kerberized-hadoop")
    with running(MiniKdc(base / "kdc", users=("alice", "bob")), "MiniKdc (Kerberos KDC)", HadoopError) as kdc:
        cluster = HadoopHdfs(base / "hadoop", kerberos=kdc, user="alice", properties={"dfs.ls.limit": 100})
        with running(cluster, "Kerberized Apache Hadoop", HadoopError) as hdfs:
            request.config.stash[_KERBERIZED_KEY] = hdfs
            yield hdfs


@pytest.fixture
def hdfs_server(request: pytest.FixtureRequest, devstack):
    kind = getattr(request, "param", "devstack")
    if kind == "devstack":
        devstack.kind = "devstack"
        return devstack
    return HadoopStack(request.getfixturevalue("hadoop_hdfs"), devstack)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("hdfs_servers")
    if "hdfs_server" in metafunc.fixturenames and marker:  # hdfs_servers("hadoop"): only the servers named
        metafunc.parametrize("hdfs_server", marker.args or HDFS_SERVERS, indirect=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    hdfs = item.config.stash.get(_HADOOP_KEY, None)
    used = {*getattr(item, "fixturenames", ()), *getattr(item, "funcargs", {})}
    if report.failed and hdfs is not None and "hadoop_hdfs" in used:
        report.sections.append(("Apache Hadoop logs", f"{hdfs.base_dir}\n{hdfs.log_tail()}"))
    secured = item.config.stash.get(_KERBERIZED_KEY, None)
    if report.failed and secured is not None and "kerberized_hdfs" in used:
        logs = f"{secured.base_dir}\n{secured.log_tail()}\n{secured.kerberos.log_tail()}"
        report.sections.append(("Kerberized Apache Hadoop logs", logs))
