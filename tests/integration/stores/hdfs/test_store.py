"""HdfsStore through real Airflow ``webhdfs`` connections (``AIRFLOW_CONN_*``), on both HDFS servers.

The module is marked ``hdfs_servers``: every test that uses ``store`` (or ``hdfs_server``) runs once on the
devstack's WebHDFS server and once on Apache Hadoop 3.5.0 (``tests/hadoop_fixtures.py``). Tests of the
devstack's own features (request counters, its local directory, page size) use ``devstack_store``, which
is not parametrized. ``hadoop_custom`` is a second, module-scoped Hadoop with CSRF protection and a
non-default block size and checksum, for what the shared cluster cannot show (and safe mode, quotas).

Real servers on loopback; the only thing not exercised for real is a Kerberos KDC (see that test).
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import io
import json
import os
import subprocess
import uuid

import pytest
import requests
from hdfs import InsecureClient

from airflow_hybrid.devstack.hadoop import HadoopError, HadoopHdfs, hadoop_classpath, java_command
from airflow_hybrid.devstack.webhdfs import RemoteException, WebHdfsServer
from airflow_hybrid.stores.base import PathEscapeError, StoreError
from airflow_hybrid.stores.hdfs.checksum import HdfsFileChecksum
from airflow_hybrid.stores.hdfs.client import WebHdfsConnection, WebHdfsRemoteError
from airflow_hybrid.stores.hdfs.store import HdfsStore
from airflow_hybrid.stores.hdfs.writer import HDFS_TMP_PREFIX, MAX_NAME_BYTES, _temp_name
from tests.client_requests import RequestLog
from tests.doubles import CountingReader
from tests.services import running

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]

FAST_RETRIES = {"retry_backoff": 0.001}
MiB = 1024 * 1024
DEVSTACK_BLOCK_SIZE = 128 * MiB


def _new_store(conn_id: str = "webhdfs_default", root: str | None = None, **options) -> HdfsStore:
    store = HdfsStore(
        f"hdfs://{root or f'/it/store/{uuid.uuid4().hex[:12]}'}",
        webhdfs_conn_id=conn_id,
        options={**FAST_RETRIES, **options},
    )
    store.mkdir("")
    return store


def _fresh_store():
    """A fresh directory as a store, removed with everything in it afterwards."""
    store = _new_store()
    yield store
    store.delete("", recursive=True)
    store.close()


@pytest.fixture
def store(airflow_connections):
    """A fresh directory of the HDFS server under test, as its connection's user (``hdfs``)."""
    yield from _fresh_store()


@pytest.fixture
def devstack_env(devstack, monkeypatch, tmp_path):
    """The devstack's ``AIRFLOW_CONN_*`` alone (not parametrized), for tests of its own features."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    for name, value in devstack.airflow_env().items():
        monkeypatch.setenv(name, value)
    return devstack


@pytest.fixture
def devstack_store(devstack_env):
    yield from _fresh_store()


def _set_connection(monkeypatch, conn_id: str, **conn) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "webhdfs", **conn}))


def superuser_client(hdfs_server) -> InsecureClient:
    return InsecureClient(
        f"http://{hdfs_server.webhdfs_host}:{hdfs_server.webhdfs_port}", user=hdfs_server.user
    )


@pytest.fixture
def alice_store(store, hdfs_server, monkeypatch):
    """``store``'s directory as ``alice``: an ordinary user (not a superuser, in no group), so permission bits
    apply to her on real Hadoop as they do to everyone on the devstack."""
    _set_connection(
        monkeypatch,
        "webhdfs_alice",
        host=hdfs_server.webhdfs_host,
        port=hdfs_server.webhdfs_port,
        login="alice",
    )
    alice = HdfsStore(f"hdfs://{store.root}", webhdfs_conn_id="webhdfs_alice", options=FAST_RETRIES)
    yield alice
    alice.close()


def local_dir(devstack, store: HdfsStore, rel: str = ""):
    return devstack.hdfs_dir / store.root.lstrip("/") / rel


def names(store: HdfsStore, rel: str = "") -> list[str]:
    """Every name in a directory, hidden temporary files included (a raw ``LISTSTATUS``)."""
    statuses = store._call("GET", rel, "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
    return sorted(status["pathSuffix"] for status in statuses)


def block_size_of(hdfs_server) -> int:
    return hdfs_server.hadoop.block_size if hdfs_server.kind == "hadoop" else DEVSTACK_BLOCK_SIZE


def webhdfs_counts(devstack) -> dict[str, int]:
    return devstack.stats()["webhdfs"]


def delta(before: dict[str, int], after: dict[str, int], op: str) -> int:
    return after.get(op, 0) - before.get(op, 0)


# -- checksums (HDFS's algorithm, checked against values a real HDFS-compatible filesystem publishes) --
@pytest.mark.parametrize(
    ("data", "block_size", "expected"),
    [
        (b"", 128 << 20, "MD5-of-0MD5-of-0CRC32:" + "0" * 24 + "70bc8f4b72a86921468bf8e8441dce51"),
        (
            b"world\n",
            128 << 20,
            "MD5-of-0MD5-of-512CRC32C:" + "00000200" + "0" * 16 + "a74dcf6d5ba98e50ae0182c9d5d886fe",
        ),
        (
            b"world",
            128 << 20,
            "MD5-of-0MD5-of-512CRC32C:" + "00000200" + "0" * 16 + "05a157db1cc7549c82ec6f31f63fdb46",
        ),
        (
            bytes(150 * 1024000),  # two blocks: crcPerBlock = 128 MiB / 512
            128 << 20,
            "MD5-of-262144MD5-of-512CRC32C:"
            + "00000200"
            + "0000000000040000"
            + "7d04ac8132ad64988f7ba4d819cbde62",
        ),
    ],
)
def test_hdfs_file_checksum_known_values(data, block_size, expected):
    summer = HdfsFileChecksum(block_size)
    for start in range(0, len(data), 3_000_001):  # chunking must not matter
        summer.update(data[start : start + 3_000_001])
    result = summer.result()
    assert f"{result.algorithm}:{result.value}" == expected


def test_hdfs_file_checksum_rejects_bad_parameters():
    with pytest.raises(ValueError, match="multiple of 512"):
        HdfsFileChecksum(1000)
    with pytest.raises(ValueError, match="unsupported HDFS checksum type 'ADLER32'"):
        HdfsFileChecksum(crc="ADLER32")


def test_temporary_names_are_cut_at_255_bytes_between_characters():
    name = "a" + "数据" * 40  # 241 bytes of UTF-8
    temp = _temp_name(name)
    encoded = temp.encode()
    assert temp.startswith(HDFS_TMP_PREFIX) and len(temp) < 255
    assert len(encoded) == MAX_NAME_BYTES - 2  # 255 bytes would end inside a 3-byte character
    assert temp.endswith("数") and name.startswith(temp[temp.index("-", len(HDFS_TMP_PREFIX)) + 1 :])
    assert _temp_name("short.txt").endswith("-short.txt")


# -- URIs ------------------------------------------------------------------------------------------
def test_uris_and_path_escapes():
    plain = HdfsStore("hdfs:///tmp/tpcds/")
    assert plain.uri("store_sales/part-0.parquet") == "hdfs:///tmp/tpcds/store_sales/part-0.parquet"
    assert plain.uri("") == "hdfs:///tmp/tpcds"
    assert HdfsStore("hdfs://nameservice1/data").uri("x") == "hdfs://nameservice1/data/x"
    with pytest.raises(PathEscapeError):
        plain.uri("../etc/passwd")
    with pytest.raises(ValueError, match="hdfs://"):
        HdfsStore("s3://bucket/x")


# -- metadata and data -----------------------------------------------------------------------------
def test_write_info_and_ranged_reads(store, hdfs_server):
    data = os.urandom(1_000_003)
    info = store.write("dir/sub/blob.bin", io.BytesIO(data))
    assert info.path == "dir/sub/blob.bin"
    assert info.size == len(data) and not info.is_dir
    assert info.mtime == store.info("dir/sub/blob.bin").mtime > 0
    assert info.extra["blockSize"] == block_size_of(hdfs_server)
    assert store.info("dir").is_dir
    assert store.exists("dir/sub/blob.bin") and not store.exists("dir/nothing")

    with store.open_read("dir/sub/blob.bin") as stream:
        assert stream.read() == data
    with store.open_read("dir/sub/blob.bin", offset=12_345, length=100_000) as stream:
        assert stream.read() == data[12_345:112_345]
    with store.open_read("dir/sub/blob.bin", offset=len(data) - 3, length=1000) as stream:
        assert stream.read() == data[-3:]
    with store.open_read("dir/sub/blob.bin") as stream:
        stream.seek(500_000)
        assert stream.read(10) == data[500_000:500_010]
        assert stream.tell() == 500_010
    with pytest.raises(ValueError, match="negative"):
        store.open_read("dir/sub/blob.bin", offset=-1)


def test_mtime_is_the_devstack_files_modification_time(devstack_store, devstack):
    info = devstack_store.write("m.bin", io.BytesIO(b"m"))
    assert info.mtime == local_dir(devstack, devstack_store, "m.bin").stat().st_mtime_ns // 1_000_000 / 1000


def test_reads_at_and_past_the_end_are_empty_as_in_python_files(store, hdfs_server):
    data = os.urandom(1000)
    store.write("f.bin", io.BytesIO(data))
    if hdfs_server.kind == "hadoop":  # what the store must cope with: Hadoop refuses OPEN at the end
        answer = requests.get(
            f"http://{hdfs_server.webhdfs_host}:{hdfs_server.webhdfs_port}/webhdfs/v1{store.root}/f.bin",
            params={"op": "OPEN", "offset": len(data), "user.name": hdfs_server.user},
        )
        assert answer.status_code == 403 and answer.json()["RemoteException"]["exception"] == "IOException"
    for offset in (len(data), len(data) + 1, 10 * len(data)):
        with store.open_read("f.bin", offset=offset) as stream:
            assert stream.read() == b""
            assert stream.read(10) == b""
            assert stream.tell() == offset
    for offset in (0, 10, len(data), 5 * len(data)):
        with store.open_read("f.bin", offset=offset, length=0) as stream:
            assert stream.read() == b""
    with store.open_read("f.bin") as stream:
        assert stream.seek(len(data)) == len(data)
        assert stream.read() == b""
        stream.seek(len(data) + 100)
        assert stream.read(5) == b"" and stream.tell() == len(data) + 100
        assert stream.seek(-10, io.SEEK_END) == len(data) - 10
        assert stream.read() == data[-10:]
        assert stream.seek(0, io.SEEK_END) == len(data)
        assert stream.read(1) == b""
        assert stream.seek(-len(data), io.SEEK_CUR) == 0
        assert stream.read(3) == data[:3]
    with store.open_read("f.bin", offset=100, length=50) as stream:
        assert stream.seek(0, io.SEEK_END) == 150  # the end of the range
        assert stream.read() == b""
        assert stream.seek(-5, io.SEEK_END) == 145
        assert stream.read() == data[145:150]
    with store.open_read("f.bin", offset=990, length=50) as stream:
        assert stream.seek(0, io.SEEK_END) == len(data)  # the range goes past the end of the file
    store.write("empty", io.BytesIO(b""))
    for offset in (0, 1, 100):
        with store.open_read("empty", offset=offset) as stream:
            assert stream.read() == b""
    with pytest.raises(FileNotFoundError, match="nothing"):
        store.open_read("nothing", length=0)
    with pytest.raises(FileNotFoundError, match="nothing"):
        store.open_read("nothing", offset=5)


def test_missing_paths_name_the_store_and_path(store):
    with pytest.raises(FileNotFoundError) as error:
        store.info("no/such/file")
    assert store.uri("no/such/file") in str(error.value)
    assert "FileNotFoundException" in str(error.value)
    with pytest.raises(FileNotFoundError, match="no/such/file"):
        store.open_read("no/such/file")
    with pytest.raises(FileNotFoundError):
        list(store.list("no/such"))


def test_write_streams_a_large_body_and_leaves_no_temporary_file(store, hdfs_server):
    store.chunk_size = 256 * 1024
    payload = os.urandom(9 * MiB + 11)  # three blocks on Hadoop
    info = store.write("big.bin", io.BufferedReader(io.BytesIO(payload)))
    assert info.size == len(payload)
    assert [entry.name for entry in store.list("")] == ["big.bin"]
    assert names(store) == ["big.bin"]
    with store.open_read("big.bin") as stream:
        assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(payload).digest()


def test_a_devstack_write_is_one_create_and_one_rename(devstack_store, devstack):
    payload = os.urandom(3 * MiB + 11)
    before = webhdfs_counts(devstack)
    devstack_store.write("big.bin", io.BufferedReader(io.BytesIO(payload)))
    after = webhdfs_counts(devstack)
    assert delta(before, after, "datanode.CREATE") == 1
    assert delta(before, after, "RENAME") == 1
    assert sorted(p.name for p in local_dir(devstack, devstack_store).iterdir()) == ["big.bin"]
    assert local_dir(devstack, devstack_store, "big.bin").read_bytes() == payload


def test_long_multibyte_names_fit_hdfs_byte_limit(store):
    name = "数据" * 40  # 80 characters, 240 bytes: the temporary name must be cut to 255 bytes
    store.write(f"cjk/{name}", io.BytesIO(b"unicode"))
    assert [entry.name for entry in store.list("cjk")] == [name]
    assert names(store, "cjk") == [name]
    with store.open_read(f"cjk/{name}") as stream:
        assert stream.read() == b"unicode"


def test_overwrite_replaces_the_file(store):
    store.write("f.txt", io.BytesIO(b"version one"))
    store.write("f.txt", io.BytesIO(b"v2"))
    with store.open_read("f.txt") as stream:
        assert stream.read() == b"v2"
    assert [entry.path for entry in store.list("")] == ["f.txt"]


class _FailingStream(io.RawIOBase):
    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise OSError("source disk failed")
        chunk = b"x" * min(size if size > 0 else 65536, self.left)
        self.left -= len(chunk)
        return chunk


def test_failed_write_keeps_the_old_file_and_no_temporary(store):
    store.write("keep.txt", io.BytesIO(b"original"))
    with pytest.raises(OSError, match="source disk failed"):  # the source's error, not a transport one
        store.write("keep.txt", _FailingStream(3 * MiB))
    with store.open_read("keep.txt") as stream:
        assert stream.read() == b"original"
    assert [entry.path for entry in store.list("")] == ["keep.txt"]
    assert names(store) == ["keep.txt"]  # the partial upload under the temporary name was removed


def test_listing_pages_through_many_files(devstack_store, devstack):
    store = devstack_store
    folder = local_dir(devstack, store, "many")
    folder.mkdir()
    for i in range(260):  # put behind the server's back: the server lists the directory it serves
        (folder / f"part-{i:05d}.parquet").write_bytes(b"x" * (i % 7))
    (folder / f"{HDFS_TMP_PREFIX}in-flight").write_bytes(b"partial upload of another writer")
    devstack.configure(list_page_size=50)
    try:
        before = webhdfs_counts(devstack)
        entries = list(store.list("many"))
        after = webhdfs_counts(devstack)
    finally:
        devstack.configure(list_page_size=1000)
    assert [e.path for e in entries] == [f"many/part-{i:05d}.parquet" for i in range(260)]
    assert [e.size for e in entries[:8]] == [0, 1, 2, 3, 4, 5, 6, 0]
    assert delta(before, after, "LISTSTATUS_BATCH") == 6  # 260 visible entries + 1 hidden, 50 a page
    assert delta(before, after, "LISTSTATUS") == 0


def test_walk_files_is_recursive(store):
    for path in ("a/1", "a/b/2", "a/b/c/3", "d/4", "5"):
        store.write(path, io.BytesIO(path.encode()))
    store.mkdir("empty/dir")
    assert sorted(f.path for f in store.walk_files("")) == ["5", "a/1", "a/b/2", "a/b/c/3", "d/4"]
    assert sorted(f.path for f in store.walk_files("a/b")) == ["a/b/2", "a/b/c/3"]
    listing = {e.path: e.is_dir for e in store.list("a")}
    assert listing == {"a/1": False, "a/b": True}
    assert [e.path for e in store.list("a/1")] == ["a/1"]  # listing a file yields the file


def test_listing_falls_back_when_the_server_has_no_batches(tmp_path, monkeypatch):
    """An older WebHDFS server that answers LISTSTATUS_BATCH with IllegalArgumentException (real server)."""
    with WebHdfsServer(tmp_path / "old-hdfs") as server:

        def no_batches(request, start_response):
            raise RemoteException(
                "IllegalArgumentException", "No enum constant GetOpParam.Op.LISTSTATUS_BATCH"
            )

        monkeypatch.setattr(server.namenode_app, "_nn_liststatus_batch", no_batches)
        (server.root / "data").mkdir()
        for name in ("x", "y", "z"):
            (server.root / "data" / name).write_bytes(b"1")
        store = HdfsStore("hdfs:///data", connection=WebHdfsConnection.insecure(server.url, user="hdfs"))
        assert [e.path for e in store.list("")] == ["x", "y", "z"]
        assert [e.path for e in store.list("")] == ["x", "y", "z"]
        assert server.stats["LISTSTATUS_BATCH"] == 1  # probed once, then LISTSTATUS
        assert server.stats["LISTSTATUS"] == 2


def test_delete_and_mkdir(store):
    store.mkdir("p/q/r")
    assert store.info("p/q/r").is_dir
    store.write("p/q/file", io.BytesIO(b"1"))
    with pytest.raises(OSError) as error:
        store.delete("p")
    assert error.value.errno == errno.ENOTEMPTY
    assert store.uri("p") in str(error.value)
    assert store.delete("p/q/file") is True
    assert store.delete("p", recursive=True) is True
    assert store.delete("p", recursive=True) is False
    assert not store.exists("p")


def test_rename(store):
    store.write("src.txt", io.BytesIO(b"moving"))
    store.rename("src.txt", "new/parent/dst.txt")
    assert not store.exists("src.txt")
    with store.open_read("new/parent/dst.txt") as stream:
        assert stream.read() == b"moving"
    store.write("other.txt", io.BytesIO(b"replacement"))
    store.rename("other.txt", "new/parent/dst.txt")  # replaces the target
    with store.open_read("new/parent/dst.txt") as stream:
        assert stream.read() == b"replacement"
    with pytest.raises(FileNotFoundError, match="src.txt"):
        store.rename("src.txt", "elsewhere.txt")


def test_content_summary_and_set_times(store):
    store.write("s/a", io.BytesIO(b"123"))
    store.write("s/t/b", io.BytesIO(b"4567"))
    summary = store.content_summary("s")
    assert (summary["fileCount"], summary["directoryCount"], summary["length"]) == (2, 2, 7)
    when = datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc).timestamp()
    store.set_times("s/a", mtime=when)
    assert store.info("s/a").mtime == when


# -- checksums against the server's GETFILECHECKSUM ------------------------------------------------
def test_checksum_and_verified_writes(store, hdfs_server):
    store.verify_checksum = True
    data = os.urandom(9 * MiB + 99)  # three blocks on Hadoop, one on the devstack
    info = store.write("c.bin", CountingReader(data, seekable=False))
    block_size = block_size_of(hdfs_server)
    assert info.extra["blockSize"] == block_size
    crc_per_block = block_size // 512 if len(data) > block_size else 0
    assert store.checksum("c.bin").algorithm == f"MD5-of-{crc_per_block}MD5-of-512CRC32C"
    assert store.checksum("c.bin") == HdfsFileChecksum.of_stream(io.BytesIO(data), block_size)
    store.write("empty", io.BytesIO(b""))
    assert store.checksum("empty") == HdfsFileChecksum.of_stream(io.BytesIO(b""))


def test_verified_writes_use_the_files_own_block_size(store, hdfs_server):
    """HDFS uses a ``blocksize`` option (Hadoop does): the verification follows the file, not 128 MiB."""
    store.verify_checksum = True
    store.options["blocksize"] = MiB
    data = os.urandom(2 * MiB + 5)
    source = CountingReader(data)
    info = store.write("one-mib-blocks.bin", source)
    assert info.extra["blockSize"] == MiB
    assert source.passes == 1  # the checksum was computed for 1 MiB blocks while sending
    assert store.checksum("one-mib-blocks.bin") == HdfsFileChecksum.of_stream(io.BytesIO(data), MiB)
    assert store.checksum("one-mib-blocks.bin").algorithm == "MD5-of-2048MD5-of-512CRC32C"


def test_a_devstack_verified_write_asks_for_one_checksum(devstack_store, devstack):
    devstack_store.verify_checksum = True
    before = webhdfs_counts(devstack)
    devstack_store.write("c.bin", io.BytesIO(os.urandom(2 * MiB + 99)))
    after = webhdfs_counts(devstack)
    assert delta(before, after, "GETFILECHECKSUM") == 1  # the upload was checked before the rename


# -- ownership, permissions and the data node's refusals -------------------------------------------
def test_owner_group_and_permission_are_hdfs_own(store, alice_store, hdfs_server):
    info = store.write("mine.txt", io.BytesIO(b"x"))
    root_group = store.info("").extra["group"]
    assert (info.extra["owner"], info.extra["group"], info.extra["permission"]) == (
        hdfs_server.user,
        root_group,  # HDFS gives a new file its directory's group
        "644",
    )
    store.options["permission"] = "640"
    assert store.write("private.txt", io.BytesIO(b"x")).extra["permission"] == "640"
    store.mkdir("shared")
    superuser_client(hdfs_server).set_permission(f"{store.root}/shared", "777")
    theirs = alice_store.write("shared/alice.txt", io.BytesIO(b"from alice"))
    assert (theirs.extra["owner"], theirs.extra["group"]) == ("alice", store.info("shared").extra["group"])
    assert store.info("shared/alice.txt").extra["owner"] == "alice"


def test_permission_denied_maps_to_permission_error(store, alice_store, hdfs_server):
    store.mkdir("ro")
    superuser_client(hdfs_server).set_permission(f"{store.root}/ro", "555")
    with pytest.raises(PermissionError) as error:
        alice_store.write("ro/f", io.BytesIO(b"x" * (3 * MiB)))
    assert "AccessControlException" in str(error.value)
    assert alice_store.uri("ro/f") in str(error.value)
    assert names(store, "ro") == []


def test_a_file_as_parent_maps_to_not_a_directory(store):
    store.write("plain", io.BytesIO(b"a file"))
    with pytest.raises(NotADirectoryError) as error:
        store.write("plain/child", io.BytesIO(b"x"))
    assert "ParentNotDirectoryException" in str(error.value)
    assert store.uri("plain/child") in str(error.value)
    assert names(store) == ["plain"]


def test_an_existing_file_at_the_data_node_step_maps_to_file_exists(store, hdfs_server, monkeypatch):
    """The temporary name is taken (by another writer): Hadoop's data node refuses with
    FileAlreadyExistsException, which the store maps and leaves alone (it is not its file)."""
    fixed = uuid.UUID("00000000-0000-4000-8000-000000000001")
    monkeypatch.setattr("airflow_hybrid.stores.hdfs.writer.uuid.uuid4", lambda: fixed)
    taken = f"{store.root}/{HDFS_TMP_PREFIX}{fixed.hex}-target"
    superuser_client(hdfs_server).write(taken, data=b"someone else's upload")
    with pytest.raises(FileExistsError) as error:
        store.write("target", io.BytesIO(b"x"))
    assert "FileAlreadyExistsException" in str(error.value)
    assert store.uri("target") in str(error.value)
    assert not store.exists("target")
    with superuser_client(hdfs_server).read(taken) as reader:
        assert reader.read() == b"someone else's upload"


def test_a_reset_while_sending_still_surfaces_the_data_nodes_refusal(
    store, alice_store, hdfs_server, monkeypatch
):
    store.mkdir("ro")
    superuser_client(hdfs_server).set_permission(f"{store.root}/ro", "555")
    real_put, bodies = alice_store._datanode_put, []

    def reset_during_the_body(location, data):
        bodies.append(data)
        if len(bodies) == 1:  # the data node refused and closed; its answer was lost with the reset
            next(iter(data))
            raise requests.ConnectionError(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
        return real_put(location, data)

    monkeypatch.setattr(alice_store, "_datanode_put", reset_during_the_body)
    with pytest.raises(PermissionError, match="AccessControlException"):
        alice_store.write("ro/f", io.BytesIO(b"x" * MiB))
    assert len(bodies) == 2 and bodies[1] == b""  # the data node told why when asked without a body


@pytest.mark.parametrize("seekable", [True, False])
def test_a_dropped_upload_is_retried_when_the_source_can_be_rewound(store, monkeypatch, seekable):
    real_put, attempts = store._datanode_put, []

    def drop_the_first_upload(location, data):
        if data != b"":
            attempts.append(location)
            if len(attempts) == 1:
                next(iter(data))
                raise requests.ConnectionError("Connection aborted: the data node went away")
        return real_put(location, data)

    monkeypatch.setattr(store, "_datanode_put", drop_the_first_upload)
    payload = os.urandom(300_000)
    if seekable:
        store.write("retried.bin", io.BytesIO(payload))
        with store.open_read("retried.bin") as stream:
            assert stream.read() == payload
        assert len(attempts) == 2
    else:
        with pytest.raises(StoreError, match="not retried: the source stream cannot be rewound"):
            store.write("retried.bin", CountingReader(payload, seekable=False))
        assert len(attempts) == 1
    assert names(store) == (["retried.bin"] if seekable else [])  # no temporary file either way


# -- a second Hadoop: CSRF protection, its own block size and checksum; safe mode and quotas ---------
@pytest.fixture(scope="module")
def hadoop_custom(tmp_path_factory):
    """Apache Hadoop with ``dfs.webhdfs.rest-csrf.enabled``, 1 MiB blocks and a CRC32 per 1024 bytes (none of
    HDFS's defaults), started for this module only and stopped after it."""
    hdfs = HadoopHdfs(
        tmp_path_factory.mktemp("hadoop-custom"),
        block_size=MiB,
        csrf=True,
        properties={
            "dfs.bytes-per-checksum": 1024,
            "dfs.checksum.type": "CRC32",
            "dfs.webhdfs.rest-csrf.browser-useragents-regex": ".*",  # every client, not only browsers
        },
    )
    with running(hdfs, "Apache Hadoop", HadoopError):
        yield hdfs


@pytest.fixture
def custom_store(hadoop_custom, monkeypatch, tmp_path):
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    _set_connection(monkeypatch, "webhdfs_custom", **hadoop_custom.webhdfs_connection())
    store = _new_store("webhdfs_custom", f"/tmp/custom-{uuid.uuid4().hex[:12]}", verify_checksum=True)
    yield store
    store.delete("", recursive=True)
    store.close()


def dfsadmin(hdfs: HadoopHdfs, *args: str) -> None:
    """Hadoop's ``hdfs dfsadmin`` (as the JVMs' OS user, a superuser) against ``hdfs``."""
    classpath = os.pathsep.join([str(hdfs.conf_dir), hadoop_classpath()])
    command = [java_command(), "-cp", classpath, "org.apache.hadoop.hdfs.tools.DFSAdmin", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def safe_mode(hadoop_custom):
    """``hadoop_custom`` in safe mode; call the fixture's value to leave it (it is left at the end anyway)."""
    dfsadmin(hadoop_custom, "-safemode", "enter")
    state = {"on": True}

    def leave() -> None:
        if state["on"]:
            dfsadmin(hadoop_custom, "-safemode", "leave")
            state["on"] = False

    yield leave
    leave()


def test_every_request_carries_the_csrf_header(custom_store, hadoop_custom):
    refused = requests.put(  # the cluster enforces it: a write without the header is refused
        f"{hadoop_custom.webhdfs_url}/webhdfs/v1/tmp/no-header", params={"op": "MKDIRS", "user.name": "hdfs"}
    )
    assert refused.status_code == 400, refused.text
    store = custom_store
    store.mkdir("d")
    store.write("d/f.txt", io.BytesIO(b"protected"))  # namenode and data node steps, rename
    store.rename("d/f.txt", "d/g.txt")
    store.set_times("d/g.txt", mtime=1_600_000_000)
    with store.open_read("d/g.txt") as stream:
        assert stream.read() == b"protected"
    assert store.delete("d/g.txt") is True


def test_verification_uses_the_clusters_block_size_and_checksum(custom_store):
    data = os.urandom(2 * MiB + 512 + 7)  # three 1 MiB blocks, the last one with a partial chunk
    source = CountingReader(data, seekable=False)  # learned from GETSERVERDEFAULTS, not re-read
    info = custom_store.write("three-blocks.bin", source)
    assert info.extra["blockSize"] == MiB and source.passes == 1
    stored = custom_store.checksum("three-blocks.bin")
    assert stored.algorithm == "MD5-of-1024MD5-of-1024CRC32"
    assert stored == HdfsFileChecksum.of_stream(io.BytesIO(data), MiB, 1024, "CRC32")
    assert stored != HdfsFileChecksum.of_stream(io.BytesIO(data), MiB)  # the defaults would not match


def test_verification_learns_the_layout_from_the_written_file(custom_store, monkeypatch):
    """A server without GETSERVERDEFAULTS: the store assumes HDFS's defaults, finds the file's own block
    size and checksum after the upload, re-reads a rewindable source once and remembers them."""
    monkeypatch.setattr(custom_store, "_server_defaults", lambda: {})
    with pytest.raises(StoreError, match="cannot verify the upload: HDFS stored it in 1048576-byte blocks"):
        custom_store.write("not-rewindable.bin", CountingReader(os.urandom(MiB + 1), seekable=False))
    assert names(custom_store) == []

    custom_store._layout = None
    data = os.urandom(MiB + 3)
    first = CountingReader(data)
    custom_store.write("rewound.bin", first)
    assert first.passes == 2
    second = CountingReader(data, seekable=False)
    custom_store.write("learned.bin", second)
    assert second.passes == 1
    assert custom_store.checksum("learned.bin") == HdfsFileChecksum.of_stream(
        io.BytesIO(data), MiB, 1024, "CRC32"
    )


def test_safe_mode_at_the_data_node_without_a_rewindable_source_is_a_clear_error(custom_store, safe_mode):
    with pytest.raises(StoreError) as error:
        custom_store.write("f.bin", CountingReader(b"x" * 1000, seekable=False))
    message = str(error.value)
    assert "SafeModeException" in message and "not retried: the source stream cannot be rewound" in message
    assert custom_store.uri("f.bin") in message
    safe_mode()
    assert names(custom_store) == []


def test_safe_mode_at_the_data_node_is_retried_with_a_rewindable_source(custom_store, safe_mode, monkeypatch):
    backoffs = []

    def leave_safe_mode_while_waiting(attempt: int) -> None:
        backoffs.append(attempt)
        safe_mode()  # as an administrator or the namenode's start-up would

    monkeypatch.setattr(custom_store, "_backoff", leave_safe_mode_while_waiting)
    payload = os.urandom(100_000)
    custom_store.write("f.bin", io.BytesIO(payload))
    assert backoffs == [1]
    with custom_store.open_read("f.bin") as stream:
        assert stream.read() == payload
    assert names(custom_store) == ["f.bin"]


def test_quota_errors_at_the_data_node_are_store_errors(custom_store, hadoop_custom):
    custom_store.mkdir("files")
    custom_store.mkdir("space")
    hadoop_custom.superuser_call("PUT", f"{custom_store.root}/files", "SETQUOTA", namespacequota=1)
    hadoop_custom.superuser_call("PUT", f"{custom_store.root}/space", "SETQUOTA", storagespacequota=1024)
    for folder, exception in (("files", "NSQuotaExceededException"), ("space", "DSQuotaExceededException")):
        with pytest.raises(WebHdfsRemoteError) as error:
            custom_store.write(f"{folder}/f.bin", io.BytesIO(os.urandom(100_000)))
        assert error.value.exception == exception and isinstance(error.value, StoreError)
        assert custom_store.uri(f"{folder}/f.bin") in str(error.value)
        assert names(custom_store, folder) == []


# -- connections: HA namenodes, TLS, Kerberos ------------------------------------------------------
def test_namenode_ha_list_skips_a_dead_namenode_and_fails_over(airflow_connections, hdfs_server, monkeypatch):
    # 127.0.0.2 is loopback too, but nothing listens there: connections are refused.
    port = hdfs_server.webhdfs_port
    _set_connection(monkeypatch, "webhdfs_ha", host="127.0.0.2,127.0.0.1", port=port, login=hdfs_server.user)
    store = HdfsStore("hdfs:///", webhdfs_conn_id="webhdfs_ha", options=FAST_RETRIES)
    live, dead = f"http://127.0.0.1:{port}", f"http://127.0.0.2:{port}"
    assert store.info("").is_dir
    assert list(store._urls) == [live, dead]
    store._urls.rotate(1)  # as if the active namenode had been the one that died
    assert store.info("").is_dir
    assert store._urls[0] == live


def test_unreachable_namenodes_fail_with_a_clear_error(devstack_env, monkeypatch):
    _set_connection(monkeypatch, "webhdfs_nowhere", host="127.0.0.2", port=9, login="hdfs")
    store = HdfsStore("hdfs:///x", webhdfs_conn_id="webhdfs_nowhere")
    with pytest.raises(
        StoreError,
        match=r"no WebHDFS namenode answered for connection 'webhdfs_nowhere' \(tried 127.0.0.2:9\)",
    ):
        store.info("")


def test_missing_connection_is_named(devstack_env):
    with pytest.raises(StoreError, match="'no_such_conn'"):
        HdfsStore("hdfs:///x", webhdfs_conn_id="no_such_conn").info("")


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the verify=false case
def test_tls_verification_is_on_by_default(devstack_env, monkeypatch, tls_webhdfs, tls_files):
    cert_file, _ = tls_files
    common = {"host": "127.0.0.1", "port": tls_webhdfs.port, "login": "hdfs"}
    _set_connection(monkeypatch, "webhdfs_tls_default", **common, extra={"use_ssl": True})
    _set_connection(
        monkeypatch, "webhdfs_tls_ca", **common, extra={"use_ssl": True, "verify": str(cert_file)}
    )
    _set_connection(monkeypatch, "webhdfs_tls_off", **common, extra={"use_ssl": "True", "verify": "false"})

    with pytest.raises(StoreError, match="no WebHDFS namenode answered"):  # self-signed: rejected
        HdfsStore("hdfs:///secure", webhdfs_conn_id="webhdfs_tls_default").info("")

    trusted = HdfsStore("hdfs:///secure", webhdfs_conn_id="webhdfs_tls_ca")
    trusted.write("over-tls.bin", io.BytesIO(b"encrypted in transit"))  # namenode and data node over TLS
    with trusted.open_read("over-tls.bin") as stream:
        assert stream.read() == b"encrypted in transit"
    assert trusted.session.verify == str(cert_file)

    unverified = HdfsStore("hdfs:///secure", webhdfs_conn_id="webhdfs_tls_off")
    assert unverified.info("over-tls.bin").size == 20
    assert unverified.session.verify is False


def test_kerberos_extra_selects_the_kerberos_client(airflow_connections, hdfs_server, monkeypatch):
    """No KDC runs here: this checks the wiring (client class, no user.name), not a SPNEGO handshake.

    Neither server asks for authentication (simple auth), so requests go through without a ticket.
    """
    from hdfs.ext.kerberos import KerberosClient

    _set_connection(
        monkeypatch,
        "webhdfs_krb",
        host="127.0.0.1",
        port=hdfs_server.webhdfs_port,
        extra={"auth": "kerberos"},
    )
    store = HdfsStore("hdfs:///", webhdfs_conn_id="webhdfs_krb")
    assert isinstance(store.client, KerberosClient)
    assert "user.name" not in (store.session.params or {})
    assert store.info("").is_dir


def test_a_connection_to_one_namenode_is_not_probed(airflow_connections, hdfs_server, monkeypatch):
    """Its first request stands for the probe: a process's first listing costs one request, not two."""
    _set_connection(monkeypatch, "webhdfs_single", host="127.0.0.1", port=hdfs_server.webhdfs_port,
                    login=hdfs_server.user)
    store = HdfsStore("hdfs:///", webhdfs_conn_id="webhdfs_single", options=FAST_RETRIES)
    with RequestLog(hdfs_server.webhdfs_port) as sent:
        list(store.list(""))
    assert sent.counts("webhdfs") == {"webhdfs.LISTSTATUS_BATCH": 1}
