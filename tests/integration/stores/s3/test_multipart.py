"""S3Store never leaves a multipart upload open, and its exclusive creates hold at every size, on moto's S3
server and on SeaweedFS, with connection resets injected at botocore's HTTP layer (:mod:`tests.faults`):
``reset`` (the request never reaches the server) or ``lost`` (the server applies it, the answer is dropped and
botocore retries, as it does after a reset connection in production).
"""

from __future__ import annotations

import io
import json
import uuid

import pytest

from airflow_hybrid.stores.base import StoreError
from airflow_hybrid.stores.s3.multipart import multipart_etag
from airflow_hybrid.stores.s3.options import MiB
from airflow_hybrid.stores.s3.store import S3Store
from tests.faults import S3Faults
from tests.integration.moto_s3 import AWS_CONN_ID
from tests.seaweedfs_fixtures import SEAWEED_BUCKET

pytestmark = pytest.mark.integration

PART = 5 * MiB
BACKENDS = ("moto", "seaweedfs")


def data_of(size: int, seed: int) -> bytes:
    block = bytes((i * seed + i // 7) % 251 for i in range(64 * 1024))
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture(params=BACKENDS)
def backend(request, monkeypatch):
    """``(store_factory, raw boto3 client, bucket, key prefix)`` on moto or SeaweedFS."""
    if request.param == "moto":
        name = request.getfixturevalue("bucket")
        raw, conn_id, prefix = request.getfixturevalue("s3_client"), AWS_CONN_ID, "root"
    else:
        seaweed = request.getfixturevalue("seaweed_s3")
        conn_id = "aws_seaweed_uploads"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(seaweed.aws_connection()))
        name, raw, prefix = SEAWEED_BUCKET, seaweed.client(), f"uploads-{uuid.uuid4().hex[:10]}"
    stores: list[S3Store] = []

    def make(**options) -> S3Store:
        store = S3Store(f"s3://{name}/{prefix}", aws_conn_id=conn_id,
                        options={"part_size": PART, "max_attempts": 3, **options})
        stores.append(store)
        return store

    yield make, raw, name, prefix
    for store in stores:
        store.close()


def open_uploads(raw, bucket: str, prefix: str) -> list[dict]:
    """Every open multipart upload under ``prefix``, straight from ListMultipartUploads."""
    return raw.list_multipart_uploads(Bucket=bucket, Prefix=f"{prefix}/").get("Uploads", [])


def read(raw, bucket: str, key: str) -> bytes:
    return raw.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.mark.parametrize("kind", ["lost", "reset"])
def test_create_retried_after_a_lost_or_reset_answer_leaves_no_upload(backend, kind):
    make, raw, name, prefix = backend
    store = make()
    faults = S3Faults(store.client)
    faults.arm("CreateMultipartUpload", kind)
    payload = data_of(2 * PART + 3, seed=3)
    info = store.write("a/big.bin", io.BytesIO(payload), if_absent=True)
    assert faults.injected == {f"CreateMultipartUpload.{kind}": 1}
    assert info.size == len(payload) and read(raw, name, f"{prefix}/a/big.bin") == payload
    assert open_uploads(raw, name, prefix) == []


def test_create_whose_every_answer_is_lost_fails_and_leaves_no_upload(backend):
    make, raw, name, prefix = backend
    store = make()
    faults = S3Faults(store.client)
    faults.arm("CreateMultipartUpload", "lost", count=3)  # max_attempts=3: the server created three uploads
    with pytest.raises(StoreError, match="CreateMultipartUpload"):
        store.write("a/big.bin", io.BytesIO(data_of(PART + 1, seed=4)))
    assert faults.injected == {"CreateMultipartUpload.lost": 3}
    assert open_uploads(raw, name, prefix) == []
    assert not store.exists("a/big.bin")


@pytest.mark.parametrize("if_absent", [True, False])
def test_a_completion_applied_but_unanswered_is_recognised_as_ours(backend, if_absent):
    """The retry of a completed conditional upload: moto answers as if new, SeaweedFS refuses it (412) because
    the object (ours) now exists; either way the write succeeds, and nothing is left open."""
    make, raw, name, prefix = backend
    store = make()
    faults = S3Faults(store.client)
    faults.arm("CompleteMultipartUpload", "lost")
    payload = data_of(PART + 11, seed=5)
    info = store.write("c.bin", io.BytesIO(payload), if_absent=if_absent)
    assert faults.injected == {"CompleteMultipartUpload.lost": 1}
    assert info.size == len(payload) and info.extra["parts"] == 2
    assert read(raw, name, f"{prefix}/c.bin") == payload
    assert open_uploads(raw, name, prefix) == []


def test_an_exclusive_put_applied_but_unanswered_is_recognised_as_ours(backend):
    make, raw, name, prefix = backend
    store = make()
    faults = S3Faults(store.client)
    faults.arm("PutObject", "lost")
    info = store.write("small.bin", io.BytesIO(b"small and exclusive"), if_absent=True)
    assert faults.injected == {"PutObject.lost": 1}
    assert info.size == 19 and read(raw, name, f"{prefix}/small.bin") == b"small and exclusive"
    # someone else's object is still refused, even on a retry
    faults.arm("PutObject", "reset")
    with pytest.raises(FileExistsError, match="already exists"):
        store.write("small.bin", io.BytesIO(b"another writer"), if_absent=True)
    assert read(raw, name, f"{prefix}/small.bin") == b"small and exclusive"


def test_an_existing_object_refuses_a_retried_multipart_create(backend):
    """A retried completion refused by an object that is not ours (other bytes) is FileExistsError, aborted."""
    make, raw, name, prefix = backend
    store = make()
    raw.put_object(Bucket=name, Key=f"{prefix}/taken.bin", Body=b"first writer")
    faults = S3Faults(store.client)
    faults.arm("CompleteMultipartUpload", "reset")
    with pytest.raises(FileExistsError, match="already exists"):
        store.write("taken.bin", io.BytesIO(data_of(PART + 1, seed=6)), if_absent=True)
    assert faults.injected == {"CompleteMultipartUpload.reset": 1}
    assert read(raw, name, f"{prefix}/taken.bin") == b"first writer"
    assert open_uploads(raw, name, prefix) == []


@pytest.mark.parametrize("operation", ["UploadPart", "CompleteMultipartUpload", "AbortMultipartUpload"])
def test_failures_on_every_attempt_abort_the_upload(backend, operation):
    """Every attempt of a call fails: the write fails clearly and its upload is aborted (for the
    abort itself, by the store's next attempt of the abort after botocore's)."""
    make, raw, name, prefix = backend
    store = make()
    faults = S3Faults(store.client)
    if operation == "AbortMultipartUpload":
        faults.arm("UploadPart", "reset", count=100)
        faults.arm("AbortMultipartUpload", "lost", count=2)  # applied, answer lost, then NoSuchUpload or OK
    else:
        faults.arm(operation, "reset", count=100)
    with pytest.raises(StoreError):
        store.write("f.bin", io.BytesIO(data_of(PART + 1, seed=7)))
    assert open_uploads(raw, name, prefix) == []
    assert not store.exists("f.bin")


def test_an_interrupt_while_parts_are_read_aborts_the_upload(backend):
    make, raw, name, prefix = backend
    store = make()
    payload = io.BytesIO(data_of(3 * PART, seed=8))

    class Interrupted(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            if payload.tell() >= 2 * PART:
                raise KeyboardInterrupt
            return payload.readinto(buffer)

    with pytest.raises(KeyboardInterrupt):
        store.write("interrupted.bin", io.BufferedReader(Interrupted(), PART))
    assert open_uploads(raw, name, prefix) == []
    assert not store.exists("interrupted.bin")


def test_conditional_writes_are_honoured_at_every_size(backend):
    make, raw, name, prefix = backend
    store = make()
    assert store.probe_conditional_writes() is True
    features = store.features
    assert features.exclusive_create and features.cheap_exclusive_create(PART - 1)
    assert not features.cheap_exclusive_create(PART)
    assert raw.list_objects_v2(Bucket=name, Prefix=f"{prefix}/").get("KeyCount", 0) == 0  # the probe cleaned up
    store.write("x.bin", io.BytesIO(b"first"), if_absent=True)
    with pytest.raises(FileExistsError):
        store.write("x.bin", io.BytesIO(data_of(2 * PART, seed=9)), if_absent=True)
    assert read(raw, name, f"{prefix}/x.bin") == b"first"
    assert open_uploads(raw, name, prefix) == []
    assert make(conditional_writes=False).features.exclusive_create is False


def test_open_uploads_are_listed_and_aborted_one_by_one(backend):
    make, raw, name, prefix = backend
    store = make()
    first = raw.create_multipart_upload(Bucket=name, Key=f"{prefix}/d/one.bin")["UploadId"]
    raw.create_multipart_upload(Bucket=name, Key=f"{prefix}/d/two.bin")
    listed = sorted(store.list_open_uploads("d"), key=lambda upload: upload.path)
    assert [u.path for u in listed] == ["d/one.bin", "d/two.bin"] and listed[0].upload_id == first
    assert all(isinstance(u.initiated, float) for u in listed)
    assert store.abort_upload("d/one.bin", first) is True
    assert store.abort_upload("d/one.bin", "no-such-upload-id") is False
    assert [u.path for u in store.list_open_uploads("d")] == ["d/two.bin"]
    assert store.abort_open_uploads("d") == 1 and open_uploads(raw, name, prefix) == []


def test_multipart_etag_is_the_md5_of_the_part_md5s(backend):
    make, raw, name, prefix = backend
    store = make(checksum_type="COMPOSITE", upload_concurrency=1)  # parts answered in order
    parts: list[str] = []
    store.client.meta.events.register("after-call.s3.UploadPart",
                                      lambda parsed, **_: parts.append(parsed["ETag"]))
    info = store.write("e.bin", io.BytesIO(data_of(2 * PART + 1, seed=10)))
    assert info.etag == multipart_etag(parts) and multipart_etag(['"kms-etag"']) is None
