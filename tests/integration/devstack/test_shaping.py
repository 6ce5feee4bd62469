"""Link shaping on the devstack (latency, bandwidth cap, faults), driven over its HTTP control endpoint.

The devstack runs in another process; every assertion counts (requests, delays, faults, bytes), none
measures time.
"""

from __future__ import annotations

import errno
import http.client
import io
import os
import socket
import uuid

import pytest
from botocore.exceptions import ClientError
from hdfs import HdfsError, InsecureClient

from airflow_hybrid.devstack.control import DevStackClient, DevStackError, devstack_status
from airflow_hybrid.stores.base import StoreError
from airflow_hybrid.stores.hdfs.store import HdfsStore
from tests.integration import moto_s3

pytestmark = pytest.mark.integration


@pytest.fixture
def store(airflow_connections):
    store = HdfsStore(
        f"hdfs:///it/shaping/{uuid.uuid4().hex[:12]}", options={"retry_backoff": 0.001, "max_attempts": 4}
    )
    store.mkdir("")
    yield store
    store.delete("", recursive=True)


def counts(devstack, server: str = "webhdfs") -> dict[str, int]:
    return devstack.stats()[server]


def link_stats(devstack, link: str = "webhdfs") -> dict[str, int]:
    return devstack.stats()["shaping"][link]


def grew(before: dict, after: dict, key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


def test_latency_is_applied_to_every_request(devstack, devstack_shaping, store):
    devstack_shaping.configure("webhdfs", latency_ms=2)
    before = link_stats(devstack)
    for _ in range(5):
        store.info("")
    after = link_stats(devstack)
    assert grew(before, after, "delayed") == 5
    assert grew(before, after, "requests") == 5
    assert link_stats(devstack, "s3").get("delayed", 0) == 0  # only the webhdfs link was shaped


def test_bandwidth_cap_throttles_bodies_in_both_directions(devstack, devstack_shaping, store):
    payload = os.urandom(300_000)
    devstack_shaping.configure("webhdfs", bandwidth=20_000_000)
    before = link_stats(devstack)
    store.write("capped.bin", io.BytesIO(payload))
    with store.open_read("capped.bin") as stream:
        assert stream.read() == payload
    throttled = grew(before, link_stats(devstack), "throttled_bytes")
    assert throttled >= 2 * len(payload)  # the upload and the download went through the cap


def test_reset_fault_is_a_real_tcp_reset(devstack, devstack_shaping):
    devstack_shaping.fail_next(1, op="GETFILESTATUS", kind="reset", target="webhdfs")
    connection = http.client.HTTPConnection(devstack.webhdfs_host, devstack.webhdfs_port, timeout=10)
    try:
        connection.request("GET", "/webhdfs/v1/?op=GETFILESTATUS&user.name=hdfs")
        with pytest.raises(ConnectionResetError) as error:  # ECONNRESET, not a clean end of stream
            connection.getresponse().read()
        assert error.value.errno == errno.ECONNRESET
    finally:
        connection.close()
    assert link_stats(devstack)["faults.reset"] >= 1


def test_webhdfs_errors_are_remote_exceptions(devstack, devstack_shaping):
    client = InsecureClient(devstack.webhdfs_url, user="hdfs")
    devstack_shaping.fail_next(1, op="GETFILESTATUS", kind="503", target="webhdfs")
    with pytest.raises(HdfsError) as error:
        client.status("/")
    assert error.value.exception == "RetriableException"
    assert "Injected fault" in error.value.message
    devstack_shaping.fail_next(1, op="LISTSTATUS", kind="500", target="webhdfs")
    with pytest.raises(HdfsError) as error:
        client.list("/")
    assert error.value.exception == "RuntimeException"
    assert client.status("/")["type"] == "DIRECTORY"  # scripted faults are used up


def test_persistent_faults_surface_a_clear_error_after_retries(devstack, devstack_shaping, store):
    devstack_shaping.fail_next(100, op="GETFILESTATUS", kind="503", target="webhdfs")
    before = counts(devstack)
    with pytest.raises(StoreError) as error:
        store.info("")
    message = str(error.value)
    assert message.startswith(f"{store.uri('')}: WebHDFS GETFILESTATUS failed after 4 attempts")
    assert "HTTP 503 RetriableException" in message
    assert grew(before, counts(devstack), "GETFILESTATUS") == 4  # bounded: exactly max_attempts calls

    devstack_shaping.clear()
    devstack_shaping.fail_next(100, op="LISTSTATUS_BATCH", kind="reset", target="webhdfs")
    with pytest.raises(
        StoreError, match=r"LISTSTATUS_BATCH failed after 4 attempts; last error: ConnectionError"
    ):
        list(store.list(""))


def test_writes_are_not_blindly_retried(devstack, devstack_shaping, store):
    devstack_shaping.fail_next(1, op="RENAME", kind="500", target="webhdfs")
    before = counts(devstack)
    with pytest.raises(StoreError, match="RENAME failed after 1 attempt"):
        store.write("once.txt", io.BytesIO(b"data"))
    after = counts(devstack)
    assert grew(before, after, "RENAME") == 1
    assert [entry.path for entry in store.list("")] == []  # the uploaded temporary file was removed


def test_a_read_succeeds_when_only_some_requests_fail(devstack, devstack_shaping, store):
    payload = os.urandom(2 * 1024 * 1024 + 5)
    store.write("flaky.bin", io.BytesIO(payload))
    devstack_shaping.fail_next(2, op="datanode.OPEN", kind="reset", target="webhdfs")
    before = counts(devstack)
    with store.open_read("flaky.bin") as stream:
        assert stream.read() == payload
    assert grew(before, counts(devstack), "datanode.OPEN") == 3

    # The connection drops in the middle of the body: the read resumes at the current offset.
    devstack_shaping.fail_next(
        1, op="datanode.OPEN", kind="reset_body", after_bytes=700_000, target="webhdfs"
    )
    before = counts(devstack)
    with store.open_read("flaky.bin", offset=100, length=2_000_000) as stream:
        received = b"".join(iter(lambda: stream.read(256 * 1024), b""))
    assert received == payload[100:2_000_100]
    assert grew(before, counts(devstack), "datanode.OPEN") == 2
    assert link_stats(devstack)["faults.reset_body"] >= 1


def test_random_faults_are_repeatable_with_a_seed(devstack, devstack_shaping):
    client = InsecureClient(devstack.webhdfs_url, user="hdfs")

    def succeeds() -> bool:
        try:
            client.status("/")
        except HdfsError as error:
            assert error.exception == "RetriableException"
            return False
        return True

    def outcomes() -> list[bool]:
        devstack_shaping.configure(
            "webhdfs", fault_rate=0.5, fault_kinds=["503"], fault_ops="GETFILESTATUS", seed=42
        )
        return [succeeds() for _ in range(24)]

    first, second = outcomes(), outcomes()
    assert first == second
    assert 0 < sum(first) < 24  # some failed, some did not


def test_s3_faults_have_s3_error_documents(devstack, devstack_shaping):
    s3 = moto_s3.client(devstack.s3_endpoint, retries={"total_max_attempts": 1, "mode": "standard"})  # see each fault
    bucket = devstack.ensure_bucket(f"shaping-{uuid.uuid4().hex[:8]}")
    s3.put_object(Bucket=bucket, Key="k", Body=b"value")
    devstack_shaping.fail_next(1, op="GetObject", kind="503", target="s3")
    with pytest.raises(ClientError) as error:
        s3.get_object(Bucket=bucket, Key="k")
    assert error.value.response["Error"]["Code"] == "SlowDown"
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    devstack_shaping.fail_next(1, op="PutObject", kind="500", target="s3")
    with pytest.raises(ClientError) as error:
        s3.put_object(Bucket=bucket, Key="k2", Body=b"x")
    assert error.value.response["Error"]["Code"] == "InternalError"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"value"
    assert counts(devstack, "s3")["GetObject"] >= 2


def test_objects_auto_create_their_bucket(devstack):
    s3 = moto_s3.client(devstack.s3_endpoint)
    bucket = f"auto-{uuid.uuid4().hex[:8]}"
    s3.put_object(Bucket=bucket, Key="first/object", Body=b"1")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["first/object"]


def test_control_endpoint_rejects_bad_settings(devstack, devstack_shaping):
    with pytest.raises(DevStackError, match="unknown fault kind 'explode'"):
        devstack_shaping.fail_next(1, kind="explode")
    with pytest.raises(DevStackError, match="fault_rate must be between 0 and 1"):
        devstack_shaping.configure("s3", fault_rate=2)
    with pytest.raises(DevStackError, match="unknown link 'mainframe'"):
        devstack_shaping.configure("mainframe", latency_ms=1)
    snapshot = devstack_shaping.snapshot()
    assert snapshot["s3"]["settings"]["fault_rate"] == 0.0
    assert snapshot["webhdfs"]["settings"]["scripted_faults"] == []


def test_devstack_status_and_connections(devstack, tmp_path):
    status = devstack_status(devstack.state["state_file"].rsplit("/", 1)[0])
    assert status["running"] and status["healthy"]
    assert status["webhdfs_url"] == devstack.webhdfs_url
    with socket.create_connection((devstack.host, status["s3_port"]), timeout=5):
        pass
    connections = DevStackClient(status).connections(mount_conn_id="lake", bucket="b1")
    assert connections["webhdfs_default"] == {
        "conn_type": "webhdfs",
        "host": devstack.webhdfs_host,
        "port": devstack.webhdfs_port,
        "login": "hdfs",
    }
    assert connections["aws_default"]["extra"]["endpoint_url"] == devstack.s3_endpoint
    assert connections["lake"]["extra"] == {
        "members": {
            "hdfs": {"uri": "hdfs:///tmp/tpcds", "conn_id": "webhdfs_default"},
            "s3": {"uri": "s3://b1/tpcds", "conn_id": "aws_default"},
        },
        "priority.read": "s3,hdfs",
        "collection.create": "s3",
    }
    assert devstack_status(tmp_path) == {
        "running": False,
        "healthy": False,
        "state_file": str(tmp_path / "devstack.json"),
    }
