"""The devstack WebHDFS server, driven by the unmodified ``hdfs`` client (HdfsCLI) that ``WebHDFSHook`` returns.

Real servers on loopback (the session devstack, in its own process); no mocks.
"""

from __future__ import annotations

import http.client
import os
import threading
import uuid
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from hdfs import HdfsError, InsecureClient

from airflow_hybrid.devstack.webhdfs import WebHdfsServer
from airflow_hybrid.stores.hdfs.checksum import DEFAULT_BLOCK_SIZE, HdfsFileChecksum

pytestmark = pytest.mark.integration


@pytest.fixture
def client(devstack) -> InsecureClient:
    return InsecureClient(devstack.webhdfs_url, user="hdfs")


@pytest.fixture
def base(client: InsecureClient) -> str:
    path = f"/it/webhdfs/{uuid.uuid4().hex[:12]}"
    client.makedirs(path)
    yield path
    client.delete(path, recursive=True)


@pytest.fixture
def webhdfs_stats(devstack):
    """Requests per operation since the test started (the devstack is shared by the session)."""
    before = devstack.stats()["webhdfs"]

    def delta() -> dict[str, int]:
        now = devstack.stats()["webhdfs"]
        return {op: count - before.get(op, 0) for op, count in now.items() if count != before.get(op, 0)}

    return delta


def raw(client: InsecureClient, method: str, url_path: str, **kwargs) -> requests.Response:
    """A WebHDFS call through the client's own session (it carries ``user.name``)."""
    return client._session.request(method, f"{client.url}/webhdfs/v1{url_path}", **kwargs)


def test_file_status_fields(client, base, devstack):
    client.write(f"{base}/a.txt", data=b"hello webhdfs")
    status = client.status(f"{base}/a.txt")
    local = devstack.hdfs_dir / base.lstrip("/") / "a.txt"
    assert status["type"] == "FILE"
    assert status["length"] == 13
    assert status["pathSuffix"] == ""
    assert status["permission"] == "644"
    assert status["owner"] == devstack.user
    assert status["blockSize"] == 128 * 1024 * 1024
    assert status["replication"] == 1
    assert status["modificationTime"] == local.stat().st_mtime_ns // 1_000_000
    directory = client.status(base)
    assert directory["type"] == "DIRECTORY"
    assert directory["childrenNum"] == 1
    assert directory["length"] == 0


def test_missing_path_maps_to_file_not_found(client, base):
    with pytest.raises(HdfsError) as error:
        client.status(f"{base}/missing")
    assert error.value.exception == "FileNotFoundException"
    assert error.value.message == f"File does not exist: {base}/missing"
    assert client.status(f"{base}/missing", strict=False) is None

    response = raw(client, "GET", f"{base}/missing", params={"op": "GETFILESTATUS"})
    assert response.status_code == 404
    assert response.json() == {
        "RemoteException": {
            "exception": "FileNotFoundException",
            "javaClassName": "java.io.FileNotFoundException",
            "message": f"File does not exist: {base}/missing",
        }
    }


def test_dot_dot_paths_are_rejected(devstack, base):
    connection = http.client.HTTPConnection(devstack.webhdfs_host, devstack.webhdfs_port, timeout=10)
    try:  # http.client sends the path as is (requests would normalise the dots away)
        connection.request("GET", f"/webhdfs/v1{base}/../../etc?op=GETFILESTATUS&user.name=hdfs")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert response.status == 400
    assert b'"exception": "InvalidPathException"' in body


def test_list_directory_sorted_and_list_of_a_file(client, base):
    for name in ("b", "a", "c"):
        client.write(f"{base}/{name}", data=name.encode())
    client.makedirs(f"{base}/sub")
    assert client.list(base) == ["a", "b", "c", "sub"]
    statuses = dict(client.list(base, status=True))
    assert statuses["sub"]["type"] == "DIRECTORY"
    assert statuses["a"]["length"] == 1

    file_listing = raw(client, "GET", f"{base}/a", params={"op": "LISTSTATUS"}).json()
    assert [s["pathSuffix"] for s in file_listing["FileStatuses"]["FileStatus"]] == [""]
    with pytest.raises(HdfsError, match="is not a directory"):
        client.list(f"{base}/a")


def test_liststatus_batch_pages_with_start_after(client, base, devstack):
    names = [f"part-{i:03d}" for i in range(25)]
    local = devstack.hdfs_dir / base.lstrip("/")
    for name in names:  # files created behind the server's back are served like any other
        (local / name).write_bytes(name.encode())
    devstack.configure(list_page_size=10)
    try:
        pages, start_after = [], None
        while True:
            params = {"op": "LISTSTATUS_BATCH", **({"startafter": start_after} if start_after else {})}
            listing = raw(client, "GET", base, params=params).json()["DirectoryListing"]
            batch = [s["pathSuffix"] for s in listing["partialListing"]["FileStatuses"]["FileStatus"]]
            pages.append((batch, listing["remainingEntries"]))
            if not listing["remainingEntries"]:
                break
            start_after = batch[-1]
        assert [(len(batch), remaining) for batch, remaining in pages] == [(10, 15), (10, 5), (5, 0)]
        assert [name for batch, _ in pages for name in batch] == names
        # startAfter need not name an existing entry
        after_gap = raw(
            client, "GET", base, params={"op": "LISTSTATUS_BATCH", "startafter": "part-0045"}
        ).json()
        first = after_gap["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"][0]
        assert first["pathSuffix"] == "part-005"
    finally:
        devstack.configure(list_page_size=1000)


def test_open_redirects_to_the_data_node_and_honours_offset_length(client, base, devstack, webhdfs_stats):
    data = os.urandom(3 * 1024 * 1024 + 17)
    client.write(f"{base}/blob", data=data)
    redirect = raw(
        client, "GET", f"{base}/blob", params={"op": "OPEN", "offset": 5, "length": 10}, allow_redirects=False
    )
    assert redirect.status_code == 307
    location = urlparse(redirect.headers["Location"])
    assert f"{location.scheme}://{location.netloc}" == devstack.datanode_url != devstack.webhdfs_url
    query = parse_qs(location.query)
    assert query["offset"] == ["5"] and query["length"] == ["10"] and query["user.name"] == ["hdfs"]

    before = webhdfs_stats()
    with client.read(f"{base}/blob", offset=1_000_000, length=2_000_000) as reader:
        assert reader.read() == data[1_000_000:3_000_000]
    with client.read(f"{base}/blob", offset=len(data) - 7) as reader:
        assert reader.read() == data[-7:]
    with pytest.raises(HdfsError) as error, client.read(f"{base}/blob", offset=len(data)):
        pass  # refused by the namenode, as Hadoop does: never redirected
    assert error.value.exception == "IOException"
    after = webhdfs_stats()
    assert after.get("OPEN", 0) - before.get("OPEN", 0) == 3
    assert after.get("datanode.OPEN", 0) - before.get("datanode.OPEN", 0) == 2
    with pytest.raises(HdfsError, match="Path is not a file"), client.read(base):
        pass


def test_create_is_two_step_and_accepts_chunked_bodies(client, base, webhdfs_stats):
    step_one = raw(client, "PUT", f"{base}/two-step", params={"op": "CREATE"}, allow_redirects=False)
    assert step_one.status_code == 307
    assert step_one.content == b""
    chunks = [os.urandom(65536) for _ in range(40)]
    step_two = client._session.put(step_one.headers["Location"], data=iter(chunks))  # generator: chunked
    assert step_two.status_code == 201
    assert step_two.headers["Location"].startswith("hdfs://")
    with client.read(f"{base}/two-step") as reader:
        assert reader.read() == b"".join(chunks)

    client.write(f"{base}/generated", data=(bytes([i]) * 100_000 for i in range(30)))
    assert client.status(f"{base}/generated")["length"] == 3_000_000
    counts = webhdfs_stats()
    assert counts["CREATE"] == 2 and counts["datanode.CREATE"] == 2


def test_create_without_overwrite_refuses_an_existing_file(client, base):
    client.write(f"{base}/once", data=b"first")
    with pytest.raises(HdfsError) as error:
        client.write(f"{base}/once", data=b"second")
    assert error.value.exception == "FileAlreadyExistsException"
    response = raw(
        client, "PUT", f"{base}/once", params={"op": "CREATE", "overwrite": "false"}, allow_redirects=False
    )
    assert response.status_code == 307  # the data node refuses it, as on Hadoop
    client.write(f"{base}/once", data=b"second", overwrite=True)
    with client.read(f"{base}/once") as reader:
        assert reader.read() == b"second"
    with pytest.raises(HdfsError, match="already exists as a directory"):
        client.write(base, data=b"x", overwrite=True)


def test_create_becomes_visible_only_when_complete(client, base, devstack):
    client.write(f"{base}/atomic", data=b"old content")
    first_chunk_sent, finish = threading.Event(), threading.Event()

    def slow_body():
        yield b"new "
        first_chunk_sent.set()
        finish.wait(30)
        yield b"content"

    writer = threading.Thread(
        target=client.write, args=(f"{base}/atomic",), kwargs={"data": slow_body(), "overwrite": True}
    )
    writer.start()
    try:
        assert first_chunk_sent.wait(30)
        with client.read(f"{base}/atomic") as reader:
            assert reader.read() == b"old content"  # readers still see the previous version
        assert client.list(base) == ["atomic"]  # the upload's temporary file is not listed
        client.write(f"{base}/fresh", data=(part for part in [b"a", b"b"]))
    finally:
        finish.set()
        writer.join(30)
    with client.read(f"{base}/atomic") as reader:
        assert reader.read() == b"new content"
    leftovers = [p.name for p in (devstack.hdfs_dir / base.lstrip("/")).iterdir()]
    assert sorted(leftovers) == ["atomic", "fresh"]


def test_append(client, base):
    client.write(f"{base}/log", data=b"one\n")
    client.write(f"{base}/log", data=b"two\n", append=True)
    client.write(f"{base}/log", data=(line for line in [b"three\n", b"four\n"]), append=True)
    with client.read(f"{base}/log") as reader:
        assert reader.read() == b"one\ntwo\nthree\nfour\n"
    with pytest.raises(HdfsError) as error:
        client.write(f"{base}/nolog", data=b"x", append=True)
    assert error.value.exception == "FileNotFoundException"


def test_mkdirs_rename_and_delete(client, base):
    client.makedirs(f"{base}/x/y/z", permission="750")
    assert client.status(f"{base}/x/y/z")["permission"] == "750"
    client.write(f"{base}/file", data=b"payload")
    with pytest.raises(HdfsError) as error:
        client.makedirs(f"{base}/file/sub")
    assert error.value.exception == "ParentNotDirectoryException"

    client.rename(f"{base}/file", f"{base}/x")  # into an existing directory, as HDFS does
    assert client.list(f"{base}/x") == ["file", "y"]
    client.write(f"{base}/other", data=b"other")
    with pytest.raises(HdfsError, match="Unable to rename"):  # destination file exists: false
        client.rename(f"{base}/other", f"{base}/x/file")

    with pytest.raises(HdfsError) as error:
        client.delete(f"{base}/x")
    assert error.value.exception == "PathIsNotEmptyDirectoryException"
    assert client.delete(f"{base}/x", recursive=True) is True
    assert client.delete(f"{base}/x", recursive=True) is False
    assert client.status(f"{base}/x", strict=False) is None


def test_rename_with_overwrite_option_replaces_the_target(client, base):
    client.write(f"{base}/src", data=b"new")
    client.write(f"{base}/dst", data=b"old")
    refused = raw(
        client,
        "PUT",
        f"{base}/src",
        params={"op": "RENAME", "destination": f"{base}/dst", "renameoptions": "NONE"},
    )
    assert refused.status_code == 403
    assert refused.json()["RemoteException"]["exception"] == "FileAlreadyExistsException"
    done = raw(
        client,
        "PUT",
        f"{base}/src",
        params={"op": "RENAME", "destination": f"{base}/dst", "renameoptions": "OVERWRITE"},
    )
    assert done.status_code == 200
    with client.read(f"{base}/dst") as reader:
        assert reader.read() == b"new"
    assert client.status(f"{base}/src", strict=False) is None
    missing_parent = raw(
        client,
        "PUT",
        f"{base}/dst",
        params={"op": "RENAME", "destination": f"{base}/no/where", "renameoptions": "NONE"},
    )
    assert missing_parent.status_code == 404


def test_set_times_and_content_summary(client, base, devstack):
    client.write(f"{base}/d/f1", data=b"12345")
    client.write(f"{base}/d/e/f2", data=b"123")
    client.set_times(f"{base}/d/f1", access_time=1_600_000_000_000, modification_time=1_500_000_000_000)
    status = client.status(f"{base}/d/f1")
    assert status["modificationTime"] == 1_500_000_000_000
    assert status["accessTime"] == 1_600_000_000_000
    assert (devstack.hdfs_dir / base.lstrip("/") / "d" / "f1").stat().st_mtime == 1_500_000_000
    summary = client.content(f"{base}/d")
    assert (summary["directoryCount"], summary["fileCount"], summary["length"]) == (2, 2, 8)
    assert summary["quota"] == -1


@pytest.mark.parametrize(
    ("data", "algorithm", "md5"),
    [
        (b"", "MD5-of-0MD5-of-0CRC32", "70bc8f4b72a86921468bf8e8441dce51"),
        (b"world\n", "MD5-of-0MD5-of-512CRC32C", "a74dcf6d5ba98e50ae0182c9d5d886fe"),
    ],
)
def test_file_checksum_is_the_hdfs_algorithm(client, base, data, algorithm, md5):
    client.write(f"{base}/sum", data=data)
    checksum = client.checksum(f"{base}/sum")
    assert checksum["algorithm"] == algorithm
    assert checksum["bytes"].endswith(md5 + "00000000")  # Hadoop's 32-byte buffer
    assert checksum["length"] == 28


def test_checksum_of_random_data_matches_a_streamed_computation(client, base):
    data = os.urandom(5 * 1024 * 1024 + 300)
    client.write(f"{base}/random", data=data)
    summer = HdfsFileChecksum()
    for start in range(0, len(data), 777_777):
        summer.update(data[start : start + 777_777])
    expected = summer.result()
    assert client.checksum(f"{base}/random") == {
        "algorithm": expected.algorithm,
        "bytes": expected.value + "00000000",
        "length": 28,
    }


def test_permission_denied_is_access_control_exception(devstack):
    alice = InsecureClient(devstack.webhdfs_url, user="alice")
    locked = f"/tmp/locked-{uuid.uuid4().hex[:8]}"
    alice.makedirs(locked, permission="555")
    try:
        with pytest.raises(HdfsError) as error:
            alice.write(f"{locked}/f", data=b"x")
        assert error.value.exception == "AccessControlException"
        assert error.value.message.startswith(
            f'Permission denied: user=alice, access=WRITE, inode="{locked}"'
        )
        InsecureClient(devstack.webhdfs_url, user="hdfs").write(f"{locked}/f", data=b"x")  # the superuser
    finally:
        InsecureClient(devstack.webhdfs_url, user="hdfs").delete(locked, recursive=True)


def test_user_name_and_relative_paths(devstack, base):
    alice = InsecureClient(devstack.webhdfs_url, user="alice")
    home = raw(alice, "GET", "/", params={"op": "GETHOMEDIRECTORY"}).json()
    assert home == {"Path": "/user/alice"}
    alice.write("notes.txt", data=b"relative")  # HdfsCLI resolves it under the home directory
    try:
        assert alice.status("/user/alice/notes.txt")["length"] == 8
    finally:
        alice.delete("/user/alice", recursive=True)


def test_keep_alive_serves_many_requests_on_one_connection(devstack, base):
    connection = http.client.HTTPConnection(devstack.webhdfs_host, devstack.webhdfs_port, timeout=10)
    try:
        for _ in range(5):
            connection.request("GET", f"/webhdfs/v1{base}?op=GETFILESTATUS&user.name=hdfs")
            response = connection.getresponse()
            assert response.status == 200
            response.read()
        local_port = connection.sock.getsockname()[1]
        connection.request("GET", f"/webhdfs/v1{base}?op=LISTSTATUS&user.name=hdfs")
        response = connection.getresponse()
        assert response.status == 200 and response.read().startswith(b'{"FileStatuses"')
        assert connection.sock.getsockname()[1] == local_port  # still the same TCP connection
    finally:
        connection.close()


def test_concurrent_clients(devstack, base):
    payloads = {f"{base}/c{i}": os.urandom(200_000 + i) for i in range(12)}
    errors: list[BaseException] = []

    def roundtrip(path: str, data: bytes) -> None:
        try:
            own = InsecureClient(devstack.webhdfs_url, user="hdfs")
            own.write(path, data=data)
            with own.read(path) as reader:
                assert reader.read() == data
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=roundtrip, args=item) for item in payloads.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sorted(InsecureClient(devstack.webhdfs_url, user="hdfs").list(base)) == sorted(
        p.rsplit("/", 1)[1] for p in payloads
    )


def test_owners_and_block_sizes_survive_a_restart_and_foreign_files_get_defaults(tmp_path):
    with WebHdfsServer(tmp_path / "hdfs", owner="hdfs") as server:
        alice = InsecureClient(server.url, user="alice")
        alice.write("/tmp/a/f", data=b"x", blocksize=1024 * 1024)
        (server.root / "tmp" / "a" / "foreign").write_bytes(b"y")  # behind the server's back
    with WebHdfsServer(tmp_path / "hdfs", owner="hdfs") as server:
        statuses = dict(InsecureClient(server.url, user="hdfs").list("/tmp/a", status=True))
    assert (statuses["f"]["owner"], statuses["f"]["group"], statuses["f"]["blockSize"]) == (
        "alice",
        "supergroup",
        1024 * 1024,
    )
    assert (statuses["foreign"]["owner"], statuses["foreign"]["blockSize"]) == ("hdfs", DEFAULT_BLOCK_SIZE)
