"""HDFS members with ``transport: rpc`` (:class:`~airflow_hybrid.stores.hdfs.rpc.HdfsRpcStore`, hdfs-native) on
Apache Hadoop 3.5 (the ``hadoop_hdfs`` fixture), in a mount with the devstack's S3 server.

The mount's HDFS member is ``hdfs://127.0.0.1:<rpc port>/tmp/rpc-<id>`` with ``options.transport: rpc``; a
WebHDFS store on the same directory (the ``webhdfs`` fixture) checks what the RPC member wrote and writes what
it must read, so both transports see one file system. The Store contract itself runs in
``tests/contract/test_store_contract.py`` (``TestHadoopRpcStore``).
"""

from __future__ import annotations

import io
import random
import uuid

import pytest

from airflow_hybrid.devstack.hadoop import HadoopError, HadoopHdfs
from airflow_hybrid.devstack.stack import airflow_env, devstack_connections
from airflow_hybrid.migration.planner import plan_migration
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.operators.migrate import UfsMigrateOperator
from airflow_hybrid.ops.checksums import CRC32C, Crc32c
from airflow_hybrid.ops.copy import copy_file
from airflow_hybrid.stores.factory import store_from_uri
from airflow_hybrid.stores.hdfs.rpc import HdfsRpcStore
from airflow_hybrid.stores.hdfs.store import HdfsStore
from tests.contract.store_contract import Unseekable
from tests.integration.migrate_support import POLICY, make_dataset
from tests.services import running

pytestmark = pytest.mark.integration

MOUNT = "rpc_lake"


@pytest.fixture
def names():
    return f"rpc-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def rpc_lake(hadoop_hdfs, devstack, monkeypatch, tmp_path, names):
    """The mount ``rpc_lake``: Apache Hadoop over RPC (``hdfs``, where new files are created) + moto's S3
    (``s3``, read first), from a ``hybrid_mount`` connection as a deployment has it."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    devstack.ensure_bucket("hybrid-lake")
    connections = devstack_connections(
        webhdfs_host=hadoop_hdfs.webhdfs_host, webhdfs_port=hadoop_hdfs.webhdfs_port,
        s3_endpoint=devstack.s3_endpoint, user="hdfs", mount_conn_id=MOUNT, s3_prefix=names,
    )
    extra = connections[MOUNT]["extra"]
    extra["members"]["hdfs"].update(uri=f"{hadoop_hdfs.fs_uri}/tmp/{names}", options={"transport": "rpc"})
    extra["collection.create"] = "hdfs"
    for key, value in airflow_env(connections).items():
        monkeypatch.setenv(key, value)
    mount = HybridMount.from_conn_id(MOUNT)
    mount.members["hdfs"].mkdir("")
    yield mount
    mount.members["hdfs"].delete("", recursive=True)
    mount.close()


@pytest.fixture
def webhdfs(rpc_lake, names):
    """The same HDFS directory through WebHDFS (the mount's ``webhdfs_default`` connection)."""
    store = HdfsStore(f"hdfs:///tmp/{names}", webhdfs_conn_id="webhdfs_default")
    yield store
    store.close()


def read(store, path: str) -> bytes:
    with store.open_read(path) as stream:
        return stream.read()


def test_a_member_with_transport_rpc_reads_lists_and_writes_through_the_mount(rpc_lake, webhdfs):
    hdfs = rpc_lake.members["hdfs"]
    assert isinstance(hdfs, HdfsRpcStore) and hdfs.engine_uri("a") == f"{hdfs.engine_uri('')}/a"
    data = random.Random(3).randbytes(3 * 1024 * 1024 + 17)  # several 1 MiB packets, not a block multiple
    webhdfs.write("tables/t1/part-0.bin", io.BytesIO(data))  # written over WebHDFS, read over RPC
    rpc_lake.members["s3"].write("tables/t1/part-1.bin", io.BytesIO(b"in s3"))

    assert read(rpc_lake, "tables/t1/part-0.bin") == data
    with rpc_lake.open_read("tables/t1/part-0.bin", 1024 * 1024 - 3, 10) as stream:
        assert stream.read() == data[1024 * 1024 - 3:1024 * 1024 + 7]
    listed = {info.path: info.size for info in rpc_lake.ls("tables/t1")}
    assert listed == {"tables/t1/part-0.bin": len(data), "tables/t1/part-1.bin": 5}
    assert rpc_lake.info("tables/t1/part-0.bin").size == len(data)

    written = rpc_lake.write("tables/t2/new.bin", io.BytesIO(b"created over rpc"))  # collection.create: hdfs
    assert written.size == 16
    assert read(webhdfs, "tables/t2/new.bin") == b"created over rpc"  # the same file, seen over WebHDFS
    assert not rpc_lake.members["s3"].exists("tables/t2/new.bin")
    hasher = Crc32c()
    hasher.update(b"created over rpc")
    assert hdfs.checksum("tables/t2/new.bin").value == hasher.b64
    assert {info.path for info in rpc_lake.walk_files("tables")} == {
        "tables/t1/part-0.bin", "tables/t1/part-1.bin", "tables/t2/new.bin"}


def test_a_migration_from_the_rpc_member_to_s3_streams_each_source_once_and_verifies_by_crc32c(
    rpc_lake, monkeypatch
):
    dataset = make_dataset(rpc_lake, seed=23, small=5, medium=2, new=1)
    opened: list[str] = []
    original_open = HdfsRpcStore.open_read

    def counting_open(self, path, offset=0, length=None):
        opened.append(path)
        return original_open(self, path, offset, length)

    monkeypatch.setattr(HdfsRpcStore, "open_read", counting_open)
    plan = plan_migration(rpc_lake, dataset.root, POLICY)
    summary = UfsMigrateOperator(task_id="migrate", mount_conn_id=MOUNT, plan_id=plan.plan_id, concurrency=4,
                                 verify="checksum", file_retry_delay=0.05).execute({})

    assert (summary["moved"], summary["failed"]) == (len(dataset.old), 0)
    assert sorted(opened) == sorted(dataset.old)  # each source streamed once, never read back
    dataset.assert_migrated()
    for path in dataset.old:
        assert dataset.s3.checksum(path).algorithm in (CRC32C, "CRC32C-COMPOSITE")


def test_a_copy_to_the_rpc_member_is_verified_by_its_streamed_crc32c_without_reading_it_back(
    rpc_lake, monkeypatch
):
    hdfs, s3 = rpc_lake.members["hdfs"], rpc_lake.members["s3"]
    data = random.Random(5).randbytes(2 * 1024 * 1024 + 3)
    s3.write("back/file.bin", io.BytesIO(data))
    monkeypatch.setattr(HdfsRpcStore, "open_read", lambda *args, **kwargs: pytest.fail("read back"))
    monkeypatch.setattr(HdfsRpcStore, "checksum", lambda *args, **kwargs: pytest.fail("checksum read"))

    result = copy_file(s3, "back/file.bin", hdfs, "back/file.bin", verify="checksum")

    assert (result.verified_by, result.size) == (CRC32C, len(data))
    assert result.destination.extra["checksum"].value == result.crc32c
    monkeypatch.undo()
    assert read(hdfs, "back/file.bin") == data


@pytest.fixture(scope="module")
def late_reporting_hdfs(tmp_path_factory):
    """Apache Hadoop whose data node reports new blocks every 1.5 s (``dfs.blockreport.incremental.intervalMsec``):
    a client writing 1 MiB blocks faster than that is refused its third block (``NotReplicatedYetException``),
    every time."""
    cluster = HadoopHdfs(tmp_path_factory.mktemp("late-hadoop"),
                         properties={"dfs.blockreport.incremental.intervalMsec": 1500})
    with running(cluster, "Apache Hadoop (late block reports)", HadoopError) as hdfs:
        yield hdfs


def test_a_write_from_a_pipe_survives_blocks_the_namenode_refuses_until_the_data_node_reports(late_reporting_hdfs):
    options = {"transport": "rpc", "namenode": f"{late_reporting_hdfs.host}:{late_reporting_hdfs.rpc_port}",
               "blocksize": "1MiB"}
    store = store_from_uri(f"hdfs:///tmp/late-{uuid.uuid4().hex[:8]}", options=options)
    data = random.Random(9).randbytes(7 * 1024 * 1024 + 4099)  # 8 blocks
    info = store.write("big.bin", Unseekable(data, max_read=1024 * 1024 + 77))  # cannot be sent again
    hasher = Crc32c()
    hasher.update(data)
    assert info.size == len(data) and info.extra["checksum"].value == hasher.b64
    assert read(store, "big.bin") == data
    assert [entry.path for entry in store.list("")] == ["big.bin"]  # no temporary file left
    store.delete("", recursive=True)
