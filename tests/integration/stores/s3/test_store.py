"""S3Store against moto's S3 server over loopback, through a real Airflow AWS connection."""

from __future__ import annotations

import datetime
import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_hybrid.ops.checksums import CRC32C, CRC32C_COMPOSITE, composite_crc32c, crc32c, encode_crc32c
from airflow_hybrid.stores.base import CHUNK_SIZE, PathEscapeError, StoreError
from airflow_hybrid.stores.s3.options import MiB, S3Options, parse_size
from airflow_hybrid.stores.s3.store import S3Store
from tests.client_requests import RequestLog
from tests.doubles import CountingReader
from tests.integration.moto_s3 import AWS_CONN_ID

pytestmark = pytest.mark.integration

PART = 5 * MiB


@pytest.fixture
def store(bucket):
    s3 = S3Store(f"s3://{bucket}/root", aws_conn_id=AWS_CONN_ID, options={"part_size": PART})
    yield s3
    s3.close()


def put(s3_client, bucket, key, data=b"x"):
    s3_client.put_object(Bucket=bucket, Key=key, Body=data)


def data_of(size: int, seed: int = 0) -> bytes:
    block = os.urandom(64 * 1024) if seed == 0 else bytes((i * seed) % 251 for i in range(64 * 1024))
    return (block * (size // len(block) + 1))[:size]


# -- construction and options ---------------------------------------------------------------------
def test_connection_endpoint_and_retry_config_come_from_airflow(store, moto_endpoint):
    assert store.client.meta.endpoint_url == moto_endpoint
    assert store.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert store.bucket.startswith("test-") and store.prefix == "root"
    assert store.uri("a/b.parquet") == f"s3://{store.bucket}/root/a/b.parquet"


def test_options_are_validated_and_parsed():
    opts = S3Options.from_mapping({"part-size": "16MiB", "upload_concurrency": "3", "checksum_type": "composite",
                                   "alluxio.underfs.s3.threads.max": "9"})
    assert (opts.part_size, opts.upload_concurrency, opts.checksum_type) == (16 * MiB, 3, "COMPOSITE")
    with pytest.raises(ValueError, match="part_size=1048576 must be between 5 MiB and 5 GiB"):
        S3Options.from_mapping({"part_size": "1MiB"})
    assert S3Options().part_buffer == "DISK" and S3Options.from_mapping({"part_buffer": "memory"}).part_buffer == "MEMORY"
    with pytest.raises(ValueError, match="part_buffer='TAPE' must be disk or memory"):
        S3Options.from_mapping({"part_buffer": "tape"})
    with pytest.raises(ValueError, match="unknown S3 store option 'part_sise'"):
        S3Options.from_mapping({"part_sise": 1})
    with pytest.raises(ValueError, match="not a size"):
        parse_size("lots", "part_size")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        S3Store("hdfs://nn/x")


# -- metadata and listing -------------------------------------------------------------------------
def test_info_of_file_directory_root_and_missing(store, s3_client, bucket):
    put(s3_client, bucket, "root/dir/sub/file.bin", b"12345")
    info = store.info("dir/sub/file.bin")
    assert (info.path, info.size, info.is_dir) == ("dir/sub/file.bin", 5, False)
    assert info.etag and info.mtime > 0
    assert store.info("dir").is_dir and store.info("dir/sub").is_dir and store.info("").is_dir
    with pytest.raises(FileNotFoundError, match=f"s3://{bucket}/root/dir/nope does not exist"):
        store.info("dir/nope")
    assert store.exists("dir/sub/file.bin") and not store.exists("dir/su")
    with pytest.raises(PathEscapeError):
        store.info("dir/../../other-bucket")


def test_missing_bucket_is_named(moto_endpoint):
    s3 = S3Store("s3://no-such-bucket-here/x", aws_conn_id=AWS_CONN_ID)
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket-here' does not exist"):
        s3.info("a")
    with pytest.raises(FileNotFoundError, match="no-such-bucket-here"):
        list(s3.list(""))


def test_list_one_level_with_directory_marker(store, s3_client, bucket):
    for key in ("root/a.txt", "root/d1/b.txt", "root/d1/deeper/c.txt", "root/d2/", "rootless.txt"):
        put(s3_client, bucket, key)
    top = {(e.path, e.is_dir) for e in store.list("")}
    assert top == {("a.txt", False), ("d1", True), ("d2", True)}
    assert {(e.path, e.is_dir) for e in store.list("d1")} == {("d1/b.txt", False), ("d1/deeper", True)}
    assert list(store.list("d2")) == []  # only a marker: an empty directory
    assert [e.path for e in store.list("a.txt")] == ["a.txt"]
    with pytest.raises(FileNotFoundError):
        list(store.list("missing"))


def test_a_missing_directory_costs_one_listing_to_merge_and_two_to_tell_apart(store, s3_client, bucket):
    put(s3_client, bucket, "root/t/part-0", b"abc")
    with RequestLog() as sent:
        assert list(store.list_children("absent")) == []
    assert sent.counts() == {"s3.GET": 1}  # one ListObjectsV2: nothing to merge
    with RequestLog() as sent, pytest.raises(FileNotFoundError):
        list(store.list("absent"))
    assert sent.counts() == {"s3.GET": 2}  # the prefix, then one key at most (no HeadObject)
    with RequestLog() as sent:
        assert [(e.path, e.size) for e in store.list("t/part-0")] == [("t/part-0", 3)]
    assert sent.counts() == {"s3.GET": 2}
    with RequestLog() as sent:
        assert [e.path for e in store.list_children("t")] == ["t/part-0"]
    assert sent.counts() == {"s3.GET": 1}


def test_list_and_walk_page_through_more_than_1000_keys(store, s3_client, bucket):
    keys = [f"root/big/{i // 100:02d}/part-{i:05d}" for i in range(1100)] + ["root/big/top.txt"]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: put(s3_client, bucket, k), keys))
    walked = [e.path for e in store.walk_files("big")]
    assert sorted(walked) == sorted(k[len("root/"):] for k in keys)
    assert len(set(walked)) == len(walked)
    flat = S3Store(f"s3://{bucket}/root/big/00", aws_conn_id=AWS_CONN_ID, options={"page_size": 30})
    assert len(list(flat.list(""))) == 100  # 4 pages of 30
    assert {e.path for e in store.list("big") if e.is_dir} == {f"big/{i:02d}" for i in range(11)}
    assert store.delete("big", recursive=True)  # two DeleteObjects batches
    assert list(s3_client.list_objects_v2(Bucket=bucket, Prefix="root/big/").get("Contents", [])) == []


# -- reads --------------------------------------------------------------------------------------------
def test_ranged_reads_stream_in_chunks(store, s3_client, bucket):
    payload = data_of(3 * MiB + 17)
    put(s3_client, bucket, "root/r.bin", payload)
    with store.open_read("r.bin", offset=1000, length=2 * MiB) as stream:
        chunks = []
        while chunk := stream.read(256 * 1024):
            chunks.append(chunk)
    assert b"".join(chunks) == payload[1000 : 1000 + 2 * MiB] and max(map(len, chunks)) <= 256 * 1024
    with store.open_read("r.bin", offset=3 * MiB) as stream:
        assert stream.read() == payload[3 * MiB:]
    with store.open_read("r.bin") as stream:
        assert stream.read() == payload
    with store.open_read("r.bin", offset=10 * MiB) as stream:
        assert stream.read() == b""
    with store.open_read("r.bin", offset=5, length=0) as stream:
        assert stream.read() == b""
    with pytest.raises(FileNotFoundError):
        store.open_read("nope.bin")


def test_read_resumes_when_the_connection_drops(store, s3_client, bucket):
    payload = data_of(2 * MiB)
    put(s3_client, bucket, "root/resume.bin", payload)
    with store.open_read("resume.bin", offset=10) as stream:
        head = stream.read(1000)
        stream._stream._raw_stream.close()  # the HTTP connection goes away mid-body
        rest = stream.read()
    assert head + rest == payload[10:]


# -- writes -------------------------------------------------------------------------------------------
def test_small_file_is_one_put_with_crc32c(store):
    info = store.write("small/one.bin", io.BytesIO(b"hello world"))
    expected = encode_crc32c(crc32c(b"hello world"))
    assert info.size == 11 and info.extra["parts"] == 0 and info.extra["crc32c"] == expected
    assert store.checksum("small/one.bin").algorithm == CRC32C
    assert store.checksum("small/one.bin").value == expected
    empty = store.write("small/empty.bin", io.BytesIO(b""))
    assert empty.size == 0 and store.open_read("small/empty.bin").read() == b""


@pytest.mark.parametrize("part_buffer", ["disk", "memory"])
def test_a_file_shorter_than_its_size_hint_said_is_one_put(bucket, s3_client, part_buffer):
    store = S3Store(f"s3://{bucket}/root", aws_conn_id=AWS_CONN_ID, options={"part_size": PART, "part_buffer": part_buffer})
    payload = data_of(PART - 1, seed=3)  # its first part, spooled when on disk, is read back for one PutObject
    info = store.write("shrunk.bin", io.BytesIO(payload), size_hint=2 * PART)
    assert info.size == len(payload) and info.extra["parts"] == 0
    assert info.extra["crc32c"] == encode_crc32c(crc32c(payload))
    assert s3_client.get_object(Bucket=bucket, Key="root/shrunk.bin")["Body"].read() == payload


@pytest.mark.parametrize("part_buffer", ["disk", "memory"])
def test_streamed_multipart_upload_is_bounded_and_checksummed(bucket, s3_client, part_buffer):
    concurrency = 2
    store = S3Store(f"s3://{bucket}/root", aws_conn_id=AWS_CONN_ID,
                    options={"part_size": PART, "upload_concurrency": concurrency, "part_buffer": part_buffer})
    payload = data_of(6 * PART + 123)
    lock = threading.Lock()
    done = {"parts": 0, "in_flight": 0, "max_in_flight": 0}
    outstanding = []

    def started(**_):
        with lock:
            done["in_flight"] += 1
            done["max_in_flight"] = max(done["max_in_flight"], done["in_flight"])

    def finished(**_):
        with lock:
            done["in_flight"] -= 1
            done["parts"] += 1

    def on_read(position):  # parts taken from the stream (incl. the one being read) minus parts uploaded
        with lock:
            outstanding.append(position // PART + 1 - done["parts"])

    store.client.meta.events.register("before-call.s3.UploadPart", started)
    store.client.meta.events.register("after-call.s3.UploadPart", finished)
    stream = CountingReader(payload, seekable=False, on_read=on_read)
    info = store.write("big/file.bin", stream, size_hint=len(payload))

    # A part spooled to disk is read chunk by chunk: no read holds a part in memory.
    assert stream.largest_read <= (CHUNK_SIZE if part_buffer == "disk" else PART)
    assert max(outstanding) <= concurrency + 1
    assert done["max_in_flight"] <= concurrency and done["parts"] == 7
    assert info.size == len(payload) and info.extra["parts"] == 7
    whole = encode_crc32c(crc32c(payload))
    assert info.extra["crc32c"] == whole
    assert info.extra["crc32c_composite"].endswith("-7")
    assert store.checksum("big/file.bin") == info.extra["checksum"]
    assert info.extra["checksum"].algorithm == CRC32C and info.extra["checksum"].value == whole  # FULL_OBJECT
    assert s3_client.get_object(Bucket=bucket, Key="root/big/file.bin")["Body"].read() == payload
    assert list(store.list_open_uploads()) == []


def test_composite_checksum_matches_the_parts(bucket, s3_client):
    store = S3Store(f"s3://{bucket}", aws_conn_id=AWS_CONN_ID,
                    options={"part_size": PART, "checksum_type": "COMPOSITE"})
    payload = data_of(2 * PART + 5, seed=7)
    info = store.write("c.bin", io.BytesIO(payload))
    parts = [payload[:PART], payload[PART : 2 * PART], payload[2 * PART :]]
    ours = composite_crc32c(crc32c(p) for p in parts)
    assert info.extra["crc32c_composite"] == ours and ours.endswith("-3")
    stored = store.checksum("c.bin")
    assert stored.algorithm == CRC32C_COMPOSITE and stored.value.split("-")[0] == ours.split("-")[0]
    assert s3_client.head_object(Bucket=bucket, Key="c.bin")["ContentLength"] == len(payload)


def test_failed_multipart_upload_is_aborted(store, s3_client, bucket):
    broken = CountingReader(data_of(4 * PART), seekable=False, fail_after=2 * PART)
    with pytest.raises(OSError, match="input stream broke"):
        store.write("broken.bin", broken)
    assert list(store.list_open_uploads()) == []
    assert s3_client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert not store.exists("broken.bin")


def test_orphaned_uploads_are_listed_and_aborted(store, s3_client, bucket):
    s3_client.create_multipart_upload(Bucket=bucket, Key="root/ds/orphan.bin")
    s3_client.create_multipart_upload(Bucket=bucket, Key="root/other/keep.bin")
    s3_client.create_multipart_upload(Bucket=bucket, Key="root/dsx.bin")
    assert [u.path for u in store.list_open_uploads("ds")] == ["ds/orphan.bin"]
    # Too recent to be an orphan (moto reports every upload as initiated in 2010, hence the 50 years).
    assert store.abort_open_uploads("ds", older_than=50 * 365 * 86400) == 0
    assert store.abort_open_uploads("ds") == 1
    assert list(store.list_open_uploads("ds")) == []
    assert sorted(u.path for u in store.list_open_uploads()) == ["dsx.bin", "other/keep.bin"]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_):
        yield self.body


def inject_server_errors(store: S3Store, operation: str, count: int) -> list[int]:
    """Answer the next ``count`` ``operation`` requests with HTTP 500 instead of sending them (a fault
    injected at botocore's HTTP layer; the retries and everything else are real)."""
    from botocore.awsrequest import AWSResponse

    injected = []

    def fail(request, **_):
        if len(injected) < count:
            injected.append(1)
            body = b"<Error><Code>InternalError</Code><Message>injected fault</Message></Error>"
            return AWSResponse(request.url, 500, {"Content-Type": "application/xml"}, _Raw(body))
        return None

    store.client.meta.events.register(f"before-send.s3.{operation}", fail)
    return injected


def test_server_errors_are_retried(bucket):
    store = S3Store(f"s3://{bucket}", aws_conn_id=AWS_CONN_ID, options={"part_size": PART, "max_attempts": 3})
    injected = inject_server_errors(store, "UploadPart", 2)
    payload = data_of(2 * PART + 1)
    info = store.write("retried.bin", io.BytesIO(payload))
    assert len(injected) == 2 and info.size == len(payload)
    assert store.open_read("retried.bin").read() == payload


def test_persistent_server_errors_fail_clearly_and_abort(bucket):
    store = S3Store(f"s3://{bucket}", aws_conn_id=AWS_CONN_ID, options={"part_size": PART, "max_attempts": 2})
    inject_server_errors(store, "UploadPart", 100)
    with pytest.raises(StoreError, match=rf"S3 UploadPart \d of s3://{bucket}/failing.bin failed: InternalError"):
        store.write("failing.bin", io.BytesIO(data_of(2 * PART + 1)))
    assert list(store.list_open_uploads()) == [] and not store.exists("failing.bin")


# -- delete and rename ----------------------------------------------------------------------------------
def test_delete_file_directory_and_missing(store, s3_client, bucket):
    for key in ("root/d/a", "root/d/e/b", "root/f"):
        put(s3_client, bucket, key)
    assert store.delete("f") and not store.exists("f")
    assert store.delete("f") is False
    with pytest.raises(OSError, match="not empty; pass recursive=True"):
        store.delete("d")
    assert store.delete("d", recursive=True)
    assert not store.exists("d") and store.delete("d", recursive=True) is False
    put(s3_client, bucket, "root/marker/")
    assert store.delete("marker")


def test_rename_file_and_directory(store, s3_client, bucket):
    put(s3_client, bucket, "root/src/x.bin", b"xx")
    put(s3_client, bucket, "root/src/sub/y.bin", b"yyy")
    store.rename("src/x.bin", "moved/x.bin")
    assert store.open_read("moved/x.bin").read() == b"xx" and not store.exists("src/x.bin")
    store.rename("src", "dst")
    assert sorted(e.path for e in store.walk_files("dst")) == ["dst/sub/y.bin"]
    assert not store.exists("src")
    with pytest.raises(FileNotFoundError):
        store.rename("src", "elsewhere")
    with pytest.raises(ValueError, match="into itself"):
        store.rename("dst", "dst/inner")


# -- error mapping --------------------------------------------------------------------------------------
def test_access_denied_and_other_errors_are_mapped():
    """moto's server does not enforce permissions, so botocore's Stubber stands in for the denial."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    store = S3Store("s3://locked/data", client=client)
    with Stubber(client) as stub:
        stub.add_client_error("head_object", service_error_code="AccessDenied", http_status_code=403)
        with pytest.raises(PermissionError, match="access to s3://locked/data/secret.bin denied"):
            store.checksum("secret.bin")
        stub.add_client_error("get_object", service_error_code="SlowDown", service_message="Reduce rate",
                              http_status_code=503)
        with pytest.raises(StoreError, match="S3 GetObject of s3://locked/data/hot.bin failed: SlowDown"):
            store.open_read("hot.bin")


def test_write_reports_the_put_answer_and_if_absent_never_replaces(store, s3_client, bucket):
    calls: list[str] = []
    store.client.meta.events.register("before-call.s3", lambda event_name, **_: calls.append(event_name))
    info = store.write("x/new.bin", io.BytesIO(b"first"), if_absent=True)
    assert [c.rsplit(".", 1)[-1] for c in calls] == ["PutObject"]  # no HeadObject after the write
    stored = store.info("x/new.bin")
    assert info.extra["checksum"] == store.checksum("x/new.bin") == stored.extra["checksum"]
    assert (info.size, info.etag) == (stored.size, stored.etag) and abs(info.mtime - stored.mtime) <= 2

    with pytest.raises(FileExistsError, match="already exists"):
        store.write("x/new.bin", io.BytesIO(b"second"), if_absent=True)
    with pytest.raises(FileExistsError):  # multipart: refused at completion, and the upload aborted
        store.write("x/new.bin", io.BytesIO(data_of(PART + 1)), if_absent=True)
    assert s3_client.get_object(Bucket=bucket, Key="root/x/new.bin")["Body"].read() == b"first"
    assert list(store.list_open_uploads()) == []
    store.write("x/new.bin", io.BytesIO(b"replaced"))  # without if_absent, a write replaces
    assert s3_client.get_object(Bucket=bucket, Key="root/x/new.bin")["Body"].read() == b"replaced"

    assert store.features.cheap_exclusive_create(PART - 1) and not store.features.cheap_exclusive_create(PART)
    off = S3Store(f"s3://{bucket}/root", aws_conn_id=AWS_CONN_ID, options={"conditional_writes": "false"})
    assert off.options.conditional_writes is False and not off.features.cheap_exclusive_create(1)
    with pytest.raises(ValueError, match="conditional_writes"):
        off.write("x/other.bin", io.BytesIO(b""), if_absent=True)
    with pytest.raises(ValueError, match="conditional_writes=.maybe. is invalid"):
        S3Options.from_mapping({"conditional_writes": "maybe"})


def test_put_client_crt_sends_small_puts_through_the_crt_and_parts_through_botocore(bucket, s3_client):
    store = S3Store(f"s3://{bucket}/root", aws_conn_id=AWS_CONN_ID, options={"part_size": PART, "put_client": "crt"})
    calls: list[str] = []
    store.client.meta.events.register("before-call.s3", lambda event_name, **_: calls.append(event_name))
    info = store.write("x/a key+é.bin", io.BytesIO(b"first"), if_absent=True)
    assert calls == []  # not through botocore
    stored = store.info("x/a key+é.bin")
    assert info.extra["checksum"] == store.checksum("x/a key+é.bin") == stored.extra["checksum"]
    assert info.extra["checksum"].value == encode_crc32c(crc32c(b"first")) and info.extra["parts"] == 0
    assert (info.size, info.etag) == (stored.size, stored.etag) and abs(info.mtime - stored.mtime) <= 2
    with pytest.raises(FileExistsError, match="already exists"):  # the server's 412, through the CRT client
        store.write("x/a key+é.bin", io.BytesIO(b"second"), if_absent=True)
    assert s3_client.get_object(Bucket=bucket, Key="root/x/a key+é.bin")["Body"].read() == b"first"
    # The CRT client does not tell whether it retried, so a refusal by an object of the same bytes made since the
    # request was sent is taken for its own retried put (as botocore's are): here, one made just before.
    s3_client.delete_object(Bucket=bucket, Key="root/x/a key+é.bin")
    store.write("x/a key+é.bin", io.BytesIO(b"first"), if_absent=True)
    assert store.write("x/a key+é.bin", io.BytesIO(b"first"), if_absent=True).size == 5
    payload = data_of(PART + 1)
    assert store.write("x/big.bin", io.BytesIO(payload)).extra["parts"] == 2
    assert "before-call.s3.CreateMultipartUpload" in calls and "before-call.s3.PutObject" not in calls
    assert store.open_read("x/big.bin").read() == payload


def test_put_client_crt_signs_with_refreshed_credentials(bucket, s3_client, moto_endpoint):
    """Temporary credentials (an assumed role, SSO) are refreshed through botocore for the CRT's signing;
    static keys are handed to the CRT once (no call back into Python per request)."""
    import boto3
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    refreshes = []

    def refresh() -> dict[str, str]:
        refreshes.append(1)
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(minutes=1)  # always due
        return {"access_key": "testing", "secret_key": "testing", "token": f"t{len(refreshes)}",
                "expiry_time": expiry.isoformat()}

    core = botocore.session.get_session()
    core._credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test-assume-role")
    client = boto3.Session(botocore_session=core).client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    store = S3Store(f"s3://{bucket}/root", options={"put_client": "crt"}, client=client)
    before = len(refreshes)
    store.write("a.bin", io.BytesIO(b"temporary"), if_absent=True)
    store.write("b.bin", io.BytesIO(b"keys"), if_absent=True)
    assert len(refreshes) - before >= 2  # asked again for each request's signature
    assert s3_client.get_object(Bucket=bucket, Key="root/a.bin")["Body"].read() == b"temporary"


def test_put_client_crt_errors_are_the_stores(s3_client, monkeypatch):
    missing = S3Store("s3://no-such-bucket-crt/data", aws_conn_id=AWS_CONN_ID, options={"put_client": "crt"})
    with pytest.raises(FileNotFoundError, match="bucket 'no-such-bucket-crt' does not exist .PutObject"):
        missing.write("x.bin", io.BytesIO(b"x"))
    with pytest.raises(ValueError, match="put_client='FAST' must be classic or crt"):
        S3Options.from_mapping({"put_client": "fast"})
    assert S3Options().put_client == "CLASSIC"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    proxied = S3Store("s3://any/data", aws_conn_id=AWS_CONN_ID, options={"put_client": "crt"})
    with pytest.raises(ValueError, match="put_client=crt: the environment sets a proxy"):
        proxied.write("x.bin", io.BytesIO(b"x"))


def test_parts_buffered_across_uploads_stay_under_the_store_wide_cap(bucket):
    """Many large files written in parallel (a migration) hold at most max_buffered_parts parts at once."""
    cap = 3
    store = S3Store(f"s3://{bucket}/root", aws_conn_id=AWS_CONN_ID,
                    options={"part_size": PART, "upload_concurrency": 4, "max_buffered_parts": cap})
    lock = threading.Lock()
    state = {"in_flight": 0, "max_in_flight": 0}

    def started(**_):
        with lock:
            state["in_flight"] += 1
            state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])

    def finished(**_):
        with lock:
            state["in_flight"] -= 1

    store.client.meta.events.register("before-call.s3.UploadPart", started)
    store.client.meta.events.register("after-call.s3.UploadPart", finished)
    payloads = {f"many/{i}.bin": data_of(4 * PART + i) for i in range(3)}
    writers = [
        threading.Thread(target=store.write, args=(path, io.BytesIO(data)), kwargs={"size_hint": len(data)})
        for path, data in payloads.items()
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert state["max_in_flight"] <= cap
    for path, data in payloads.items():
        assert store.open_read(path).read() == data
    with pytest.raises(ValueError, match="max_buffered_parts=0 must be at least 1"):
        S3Store(f"s3://{bucket}/root", aws_conn_id=AWS_CONN_ID, options={"max_buffered_parts": 0})


def test_first_reads_of_large_files_count_against_the_store_wide_cap(bucket):
    """A large file's first part is read into a slot of the store-wide cap, so parts held in memory (read and
    not yet uploaded) stay under max_buffered_parts however many large files are written at once (in memory:
    one read per part; on disk the same cap bounds the spooled parts)."""
    cap = 2
    store = S3Store(f"s3://{bucket}/root", aws_conn_id=AWS_CONN_ID,
                    options={"part_size": PART, "upload_concurrency": 4, "max_buffered_parts": cap,
                             "part_buffer": "memory"})
    lock = threading.Lock()
    state = {"held": 0, "max_held": 0}

    class PartReader(io.BytesIO):
        def read(self, size: int = -1) -> bytes:
            data = super().read(size)
            if data:
                with lock:
                    state["held"] += 1
                    state["max_held"] = max(state["max_held"], state["held"])
            return data

    def uploaded(**_):
        with lock:
            state["held"] -= 1

    store.client.meta.events.register("after-call.s3.UploadPart", uploaded)
    payloads = {f"firsts/{i}.bin": data_of(2 * PART, seed=i) for i in range(5)}
    with ThreadPoolExecutor(len(payloads)) as pool:
        list(pool.map(lambda item: store.write(item[0], PartReader(item[1]), size_hint=len(item[1])),
                      payloads.items()))
    assert 1 <= state["max_held"] <= cap
    for path, data in payloads.items():
        assert store.open_read(path).read() == data
