"""HdfsStore through real Airflow ``webhdfs`` connections (``AIRFLOW_CONN_*``) to the devstack's WebHDFS server.

Real servers on loopback; the only thing not exercised for real is a Kerberos KDC (see that test).
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import io
import json
import os
import ssl
import uuid

import pytest
from hdfs import InsecureClient

from airflow_hybrid.devstack.webhdfs import RemoteException, WebHdfsServer
from airflow_hybrid.stores.base import PathEscapeError, StoreError
from airflow_hybrid.stores.hdfs import HDFS_TMP_PREFIX, HdfsFileChecksum, HdfsStore

pytestmark = pytest.mark.integration

FAST_RETRIES = {"retry_backoff": 0.001}


@pytest.fixture
def store(airflow_connections):
    root = f"/it/store/{uuid.uuid4().hex[:12]}"
    store = HdfsStore(f"hdfs://{root}", options=FAST_RETRIES)
    store.mkdir("")
    yield store
    store.delete("", recursive=True)
    store.close()


def local_dir(devstack, store: HdfsStore, rel: str = ""):
    return devstack.hdfs_dir / store.root.lstrip("/") / rel


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


def test_hdfs_file_checksum_rejects_bad_block_size():
    with pytest.raises(ValueError, match="multiple of 512"):
        HdfsFileChecksum(1000)


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
def test_write_info_and_ranged_reads(store, devstack):
    data = os.urandom(1_000_003)
    info = store.write("dir/sub/blob.bin", io.BytesIO(data))
    local = local_dir(devstack, store, "dir/sub/blob.bin")
    assert info.path == "dir/sub/blob.bin"
    assert info.size == len(data) and not info.is_dir
    assert info.mtime == local.stat().st_mtime_ns // 1_000_000 / 1000
    assert info.extra["blockSize"] == 128 * 1024 * 1024
    assert store.info("dir").is_dir
    assert store.exists("dir/sub/blob.bin") and not store.exists("dir/nothing")

    with store.open_read("dir/sub/blob.bin") as stream:
        assert stream.read() == data
    with store.open_read("dir/sub/blob.bin", offset=12_345, length=100_000) as stream:
        assert stream.read() == data[12_345:112_345]
    with store.open_read("dir/sub/blob.bin", offset=len(data) - 3, length=1000) as stream:
        assert stream.read() == data[-3:]
    with store.open_read("dir/sub/blob.bin", offset=10, length=0) as stream:
        assert stream.read() == b""
    with store.open_read("dir/sub/blob.bin") as stream:
        stream.seek(500_000)
        assert stream.read(10) == data[500_000:500_010]
        assert stream.tell() == 500_010
    with pytest.raises(ValueError, match="negative"):
        store.open_read("dir/sub/blob.bin", offset=-1)


def test_missing_paths_name_the_store_and_path(store):
    with pytest.raises(FileNotFoundError) as error:
        store.info("no/such/file")
    assert store.uri("no/such/file") in str(error.value)
    assert "FileNotFoundException" in str(error.value)
    with pytest.raises(FileNotFoundError, match="no/such/file"):
        store.open_read("no/such/file")
    with pytest.raises(FileNotFoundError):
        list(store.list("no/such"))


def test_write_streams_a_large_body_and_leaves_no_temporary_file(airflow_connections, devstack):
    store = HdfsStore(f"hdfs:///it/store/{uuid.uuid4().hex[:12]}", options={"chunk_size": 256 * 1024})
    try:
        payload = os.urandom(9 * 1024 * 1024 + 11)
        before = webhdfs_counts(devstack)
        store.write("big.bin", io.BufferedReader(io.BytesIO(payload)))
        after = webhdfs_counts(devstack)
        assert delta(before, after, "datanode.CREATE") == 1
        assert delta(before, after, "RENAME") == 1
        assert [entry.name for entry in store.list("")] == ["big.bin"]
        assert sorted(p.name for p in local_dir(devstack, store).iterdir()) == ["big.bin"]
        assert (
            hashlib.sha256(local_dir(devstack, store, "big.bin").read_bytes()).digest()
            == hashlib.sha256(payload).digest()
        )
    finally:
        store.delete("", recursive=True)


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


def test_failed_write_keeps_the_old_file_and_no_temporary(store, devstack):
    store.write("keep.txt", io.BytesIO(b"original"))
    with pytest.raises((OSError, StoreError)):
        store.write("keep.txt", _FailingStream(3 * 1024 * 1024))
    with store.open_read("keep.txt") as stream:
        assert stream.read() == b"original"
    assert [entry.path for entry in store.list("")] == ["keep.txt"]
    # The server discards its own partial upload when it notices the dropped connection; the store's
    # temporary name was never committed.
    assert not [p.name for p in local_dir(devstack, store).iterdir() if p.name.startswith(HDFS_TMP_PREFIX)]


def test_listing_pages_through_many_files(store, devstack):
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
        store = HdfsStore("hdfs:///data", client=InsecureClient(server.url, user="hdfs"))
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


def test_checksum_and_verified_writes(airflow_connections, devstack):
    store = HdfsStore(f"hdfs:///it/store/{uuid.uuid4().hex[:12]}", options={"verify_checksum": "true"})
    try:
        data = os.urandom(2 * 1024 * 1024 + 99)
        before = webhdfs_counts(devstack)
        store.write("c.bin", io.BytesIO(data))
        after = webhdfs_counts(devstack)
        assert delta(before, after, "GETFILECHECKSUM") == 1  # the upload was checked before the rename
        assert store.checksum("c.bin") == HdfsFileChecksum.of_stream(io.BytesIO(data))
        assert store.checksum("c.bin").algorithm == "MD5-of-0MD5-of-512CRC32C"
    finally:
        store.delete("", recursive=True)


def test_content_summary_and_set_times(store):
    store.write("s/a", io.BytesIO(b"123"))
    store.write("s/t/b", io.BytesIO(b"4567"))
    summary = store.content_summary("s")
    assert (summary["fileCount"], summary["directoryCount"], summary["length"]) == (2, 2, 7)
    when = datetime.datetime(2020, 1, 2, tzinfo=datetime.timezone.utc).timestamp()
    store.set_times("s/a", mtime=when)
    assert store.info("s/a").mtime == when


def test_permission_denied_maps_to_permission_error(store, devstack):
    store.mkdir("ro")
    hdfs_client = InsecureClient(devstack.webhdfs_url, user="hdfs")
    hdfs_client.set_permission(f"{store.root}/ro", "555")
    try:
        with pytest.raises(PermissionError) as error:
            store.write("ro/f", io.BytesIO(b"x"))
        assert "AccessControlException" in str(error.value)
        assert store.uri("ro/f") in str(error.value)
    finally:
        hdfs_client.set_permission(f"{store.root}/ro", "755")


# -- connections: HA namenodes, TLS, Kerberos ------------------------------------------------------
def _set_connection(monkeypatch, conn_id: str, **conn) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "webhdfs", **conn}))


def test_namenode_ha_list_skips_a_dead_namenode_and_fails_over(airflow_connections, devstack, monkeypatch):
    # 127.0.0.2 is loopback too, but nothing listens there: connections are refused.
    _set_connection(
        monkeypatch, "webhdfs_ha", host="127.0.0.2,127.0.0.1", port=devstack.webhdfs_port, login="hdfs"
    )
    store = HdfsStore("hdfs:///", webhdfs_conn_id="webhdfs_ha", options=FAST_RETRIES)
    live, dead = f"http://127.0.0.1:{devstack.webhdfs_port}", f"http://127.0.0.2:{devstack.webhdfs_port}"
    assert store.info("").is_dir
    assert list(store._urls) == [live, dead]
    store._urls.rotate(1)  # as if the active namenode had been the one that died
    assert store.info("").is_dir
    assert store._urls[0] == live


def test_unreachable_namenodes_fail_with_a_clear_error(airflow_connections, monkeypatch):
    _set_connection(monkeypatch, "webhdfs_nowhere", host="127.0.0.2", port=9, login="hdfs")
    store = HdfsStore("hdfs:///x", webhdfs_conn_id="webhdfs_nowhere")
    with pytest.raises(
        StoreError,
        match=r"no WebHDFS namenode answered for connection 'webhdfs_nowhere' \(tried 127.0.0.2:9\)",
    ):
        store.info("")


def test_missing_connection_is_named(airflow_connections):
    with pytest.raises(StoreError, match="'no_such_conn'"):
        HdfsStore("hdfs:///x", webhdfs_conn_id="no_such_conn").info("")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 (key and certificate PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "devstack-namenode")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_webhdfs(tls_files, tmp_path):
    cert_file, key_file = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    with WebHdfsServer(tmp_path / "tls-hdfs", ssl_context=context) as server:
        yield server


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")  # the verify=false case
def test_tls_verification_is_on_by_default(airflow_connections, monkeypatch, tls_webhdfs, tls_files):
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


def test_kerberos_extra_selects_the_kerberos_client(airflow_connections, devstack, monkeypatch):
    """No KDC runs here: this checks the wiring (client class, no user.name), not a SPNEGO handshake.

    The devstack server never answers 401, so requests go through without a ticket being needed.
    """
    from hdfs.ext.kerberos import KerberosClient

    _set_connection(
        monkeypatch, "webhdfs_krb", host="127.0.0.1", port=devstack.webhdfs_port, extra={"auth": "kerberos"}
    )
    store = HdfsStore("hdfs:///", webhdfs_conn_id="webhdfs_krb")
    assert isinstance(store.client, KerberosClient)
    assert "user.name" not in (store.session.params or {})
    assert store.info("").is_dir
