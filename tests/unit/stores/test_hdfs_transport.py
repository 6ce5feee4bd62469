"""The HDFS option ``transport`` (``webhdfs`` | ``rpc``): validated where member options are parsed and where
:func:`~airflow_hybrid.stores.factory.store_from_uri` picks the store; :class:`HdfsRpcStore`'s options and error
mapping without a cluster (a client double raising what hdfs-native raises)."""

from __future__ import annotations

import errno

import pytest

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount.options import MountConfigError, parse_mount_options
from airflow_hybrid.stores.base import StoreError
from airflow_hybrid.stores.factory import parse_transport, store_from_uri
from airflow_hybrid.stores.hdfs.rpc import HdfsRpcStore
from airflow_hybrid.stores.hdfs.store import HdfsStore


def test_transport_rpc_picks_the_rpc_store_and_webhdfs_or_none_the_webhdfs_one():
    rpc = store_from_uri("hdfs:///lake", options={"transport": "RPC", "namenode": "nn.corp:9000"})
    assert isinstance(rpc, HdfsRpcStore)
    assert rpc.uri("a/b") == "hdfs:///lake/a/b"  # the same URIs as over WebHDFS
    assert rpc.engine_uri("a/b") == "hdfs://nn.corp:9000/lake/a/b"
    assert store_from_uri("hdfs://nn.corp/lake", options={"transport": "rpc"}).engine_uri("") == "hdfs://nn.corp/lake"
    assert isinstance(store_from_uri("hdfs:///lake", options={"transport": "webhdfs"}), HdfsStore)
    assert isinstance(store_from_uri("hdfs:///lake", options={"transport": None}), HdfsStore)
    assert isinstance(store_from_uri("hdfs:///lake"), HdfsStore)


@pytest.mark.parametrize("value", ["grpc", "", 5, True, ["rpc"]])
def test_a_bad_transport_is_a_config_error_naming_the_option_and_the_value(value):
    with pytest.raises(HybridConfigError, match=r"hdfs:///lake: HDFS option transport: expected webhdfs or rpc, got"):
        store_from_uri("hdfs:///lake", options={"transport": value})
    with pytest.raises(HybridConfigError, match=repr(value).replace("[", r"\[").replace("]", r"\]")):
        parse_transport(value, "here")


def test_a_mount_member_with_a_bad_transport_is_named():
    members = {"hdfs": {"uri": "hdfs:///lake", "options": {"transport": "http"}}, "s3": {"uri": "s3://b/p"}}
    with pytest.raises(MountConfigError, match=r"members\.hdfs\.options\.transport: expected webhdfs or rpc, got 'http'"):
        parse_mount_options("lake", {"members": members})
    members = {"hdfs": {"uri": "hdfs:///lake"}, "s3": {"uri": "s3://b/p", "options": {"transport": "rpc"}}}
    with pytest.raises(MountConfigError, match=r"members\.s3\.options\.transport: expected no transport"):
        parse_mount_options("lake", {"members": members})
    flat = {"alluxio-union.hdfs.uri": "hdfs://nn:8020/lake", "alluxio-union.hdfs.option.transport": "rpc"}
    member = parse_mount_options("lake", flat).members["hdfs"]
    assert (member.options, member.conn_id) == ({"transport": "rpc"}, None)  # no webhdfs connection needed


def test_an_rpc_member_keeps_a_conn_id_it_is_given_and_webhdfs_members_default_to_webhdfs_default():
    members = {"a": {"uri": "hdfs://nn/x", "conn_id": "mine", "options": {"transport": "rpc"}},
               "b": {"uri": "hdfs://nn/y", "options": {"transport": "webhdfs"}}, "c": {"uri": "hdfs://nn/z"}}
    spec = parse_mount_options("lake", {"members": members})
    assert [spec.members[name].conn_id for name in "abc"] == ["mine", "webhdfs_default", "webhdfs_default"]


def test_rpc_needs_a_namenode_address_an_hdfs_uri_and_no_proxy_user():
    with pytest.raises(HybridConfigError, match="rpc needs the namenode's RPC address: set the member option namenode"):
        store_from_uri("hdfs:///lake", options={"transport": "rpc"})
    with pytest.raises(HybridConfigError, match="rpc needs an hdfs:// URI"):
        store_from_uri("webhdfs://nn:9870/lake", options={"transport": "rpc", "namenode": "nn"})
    with pytest.raises(HybridConfigError, match="proxy_user is not supported with transport rpc"):
        store_from_uri("hdfs://nn/lake", options={"transport": "rpc", "proxy_user": "etl"})
    with pytest.raises(HybridConfigError, match="namenode: expected host"):
        store_from_uri("hdfs:///lake", options={"transport": "rpc", "namenode": "nn/x"})
    with pytest.raises(HybridConfigError, match="served by HdfsRpcStore"):
        HdfsStore("hdfs:///lake", options={"transport": "rpc"})


def test_rpc_store_options_are_checked():
    store = HdfsRpcStore("hdfs://nn/lake", options={"permission": "640", "blocksize": "8MiB", "replication": 2,
                                                    "dfs.client.use.datanode.hostname": True})
    assert (store.permission, store.blocksize, store.replication) == (0o640, 8 * 2**20, 2)
    assert store.hadoop_config == {"dfs.client.use.datanode.hostname": "True"}
    for key, value in (("permission", "999"), ("chunk_size", 0), ("replication", 0), ("blocksize", "0")):
        with pytest.raises(HybridConfigError, match=f"HDFS option {key}"):
            HdfsRpcStore("hdfs://nn/lake", options={key: value})


class RaisingClient:
    """An hdfs-native client double whose every call raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __getattr__(self, name):
        def call(*args, **kwargs):
            raise self.error
        return call


def rpc_error(java_class: str, message: str) -> RuntimeError:
    """A refusal as hdfs-native 0.14 raises those it has no Python type for (Rust's Debug of the error)."""
    return RuntimeError(f'RPCError("{java_class}", "{message}\\n\\tat org.apache.hadoop.Some.frame(Some.java:1)\\n")')


@pytest.mark.parametrize(("error", "expected", "text"), [
    (rpc_error("org.apache.hadoop.security.AccessControlException", "Permission denied: user=x"), PermissionError,
     "HDFS RPC mkdirs: AccessControlException: Permission denied: user=x"),
    (rpc_error("org.apache.hadoop.fs.ParentNotDirectoryException", "/lake/f (is not a directory)"),
     NotADirectoryError, "ParentNotDirectoryException: /lake/f (is not a directory)"),
    (rpc_error("org.apache.hadoop.hdfs.protocol.NSQuotaExceededException", "quota of /lake is exceeded"),
     StoreError, "NSQuotaExceededException: quota of /lake is exceeded"),
    (FileNotFoundError("File does not exist: /lake/d\n\tat org.apache.hadoop.X(X.java:1)"), FileNotFoundError,
     "HDFS RPC mkdirs: File does not exist: /lake/d"),
    (ConnectionRefusedError("Connection refused (os error 111)"), StoreError,
     "HDFS RPC mkdirs: ConnectionRefusedError: Connection refused"),
])
def test_hdfs_native_errors_become_the_errors_callers_catch_naming_the_uri(error, expected, text):
    store = HdfsRpcStore("hdfs://nn/lake", client=RaisingClient(error))
    with pytest.raises(expected) as raised:
        store.mkdir("d")
    assert type(raised.value) is expected or expected is StoreError
    assert str(raised.value).startswith("hdfs://nn/lake/d: ") and text in str(raised.value)
    assert "\\tat " not in str(raised.value) and "\tat " not in str(raised.value)  # no Java stack


def test_a_non_empty_directory_refusal_has_errno_enotempty():
    error = rpc_error("org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", "`/lake/d is non empty'")
    store = HdfsRpcStore("hdfs://nn/lake", client=RaisingClient(error))
    with pytest.raises(OSError) as raised:
        store.delete("d")
    assert raised.value.errno == errno.ENOTEMPTY and "hdfs://nn/lake/d" in str(raised.value)


class FlakyBlockClient:
    """A client double whose first file has its second block refused with NotReplicatedYetException (as the
    namenode does while the data node has not reported the first); recover_lease closes a file, append reopens
    it. Files (their bytes as written so far) are kept in ``files``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.refusals = 1
        self.calls: list[str] = []

    def _writer(self, path):
        client = self

        class Writer:
            def write(self, data) -> int:
                if client.files[path] and client.refusals:
                    client.refusals -= 1
                    raise rpc_error("org.apache.hadoop.hdfs.server.namenode.NotReplicatedYetException",
                                    f"Not replicated yet: {path}")
                client.files[path] += bytes(data)
                return len(data)

            def close(self) -> None:
                client.calls.append("close")

        return Writer()

    def create(self, path, options):
        self.files[path] = b""
        return self._writer(path)

    def recover_lease(self, path) -> bool:
        self.calls.append("recover_lease")
        return True

    def append(self, path):
        self.calls.append("append")
        return self._writer(path)

    def rename(self, src, dst, overwrite):
        self.files[dst] = self.files.pop(src)

    def delete(self, path, recursive):
        return self.files.pop(path, None) is not None

    def get_file_info(self, path):
        if path not in self.files:
            raise FileNotFoundError(path)

        class Status:
            length, isdir, permission, owner, group = len(self.files[path]), False, 0o644, "u", "g"
            modification_time = access_time = 1_700_000_000_000
            replication, blocksize = 1, 4
        return Status()


def test_a_new_block_refused_for_a_late_block_report_is_recovered_and_appended_to():
    from tests.contract.store_contract import Unseekable

    client = FlakyBlockClient()
    store = HdfsRpcStore("hdfs://nn/lake", options={"chunk_size": 6, "blocksize": 4}, client=client)
    info = store.write("f.bin", Unseekable(b"0123456789", max_read=6))  # a pipe: nothing can be sent again
    assert client.files == {"/lake/f.bin": b"0123456789"} and info.size == 10
    assert client.calls == ["recover_lease", "append", "close"]  # the refused piece was sent after the append


def test_a_recovered_file_of_another_length_is_a_store_error_and_nothing_is_left():
    client = FlakyBlockClient()
    client.recover_lease = lambda path: client.files.update({path: client.files[path][:2]}) or True
    store = HdfsRpcStore("hdfs://nn/lake", options={"chunk_size": 4, "blocksize": 4}, client=client)
    import io

    with pytest.raises(StoreError, match="holds 2 bytes after recovery, 4 were written"):
        store.write("f.bin", io.BytesIO(b"0123456789"))
    assert client.files == {}


def test_an_abandoned_rpc_writer_is_never_completed_by_the_garbage_collector():
    """hdfs-native's FileWriter is an io.RawIOBase whose close completes the file at the namenode; IOBase's
    finaliser calls close on a writer not marked closed. An abandoned writer is marked closed without it."""
    import gc
    import io

    from airflow_hybrid.stores.hdfs.rpc import _abandon

    completed = []

    class Writer(io.RawIOBase):  # the shape of hdfs_native.FileWriter
        def close(self):
            completed.append(self)

    dropped, abandoned = Writer(), Writer()
    _abandon(abandoned)
    del dropped, abandoned
    gc.collect()
    assert len(completed) == 1  # only the writer dropped as it was
