"""Streamed multipart uploads: parts in flight bounded per upload and per store, CRC32C per part and for the
whole object, and no upload left open whatever fails (lost answers of retried requests included).

Also what S3 computes from parts: the multipart ETag (MD5 of the part MD5s) and the composite CRC32C.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.exceptions import ClientError

from airflow_hybrid.ops.checksums import Crc32c, composite_crc32c, crc32c, encode_crc32c, split_composite
from airflow_hybrid.ops.reader import read_full
from airflow_hybrid.stores.base import CHUNK_SIZE, StoreError
from airflow_hybrid.stores.s3.options import MAX_PART_SIZE, MAX_PARTS

if TYPE_CHECKING:
    from airflow_hybrid.stores.s3.store import S3Store

log = logging.getLogger(__name__)

#: Seconds of slack when comparing server times: ``Date``, ``Initiated`` and ``LastModified`` may be whole seconds.
CLOCK_SLACK = 2.0


class _PartSlots:
    """Room for one more part in memory: a slot of its upload and a slot of the whole store."""

    def __init__(self, upload: threading.BoundedSemaphore, store: threading.BoundedSemaphore) -> None:
        self._upload, self._store = upload, store

    def acquire(self, store: bool = True) -> None:
        """Wait for a slot of the upload, and of the store unless the caller already holds that one."""
        self._upload.acquire()
        if store:
            self._store.acquire()

    def release(self) -> None:
        self._store.release()
        self._upload.release()


@dataclass(frozen=True)
class OpenUpload:
    """A multipart upload that was started and neither completed nor aborted."""

    path: str
    upload_id: str
    initiated: float


@dataclass(frozen=True)
class _Part:
    number: int
    etag: str
    crc: int
    size: int


@dataclass
class PartData:
    """One part's bytes as read from the input: in memory, or spooled to an unnamed temporary file
    (``part_buffer: disk``) with the CRC32C computed on the way."""

    body: bytes | bytearray | BinaryIO
    size: int
    crc: int | None = None

    def checksum(self) -> int:
        return self.crc if self.crc is not None else crc32c(self.body)  # type: ignore[arg-type]

    def in_memory(self) -> bytes:
        """The part's bytes in memory (a spooled part is read back)."""
        if isinstance(self.body, (bytes, bytearray)):
            return bytes(self.body)
        self.body.seek(0)
        return self.body.read()

    def close(self) -> None:
        if not isinstance(self.body, (bytes, bytearray)):
            self.body.close()


def read_part(stream: BinaryIO, size: int, *, on_disk: bool) -> PartData:
    """The next ``size`` bytes of ``stream`` (fewer at its end) as a part: ``on_disk``, written to a temporary
    file (``$TMPDIR``) in chunks, so memory holds one chunk however large the part is (as S3A's
    ``fs.s3a.fast.upload.buffer=disk``); else read into memory."""
    if not on_disk:
        data = read_full(stream, size)
        return PartData(data, len(data))
    file = tempfile.TemporaryFile(prefix="hybrid-part-")  # noqa: SIM115 - handed to the upload, which closes it
    try:
        crc = length = 0
        while length < size and (chunk := stream.read(min(size - length, CHUNK_SIZE))):
            file.write(chunk)
            crc = crc32c(chunk, crc)
            length += len(chunk)
        file.seek(0)
    except BaseException:
        file.close()
        raise
    return PartData(file, length, crc)


def error_code(err: BaseException) -> str | None:
    """The S3 error code behind ``err`` (a botocore ``ClientError`` or one of ours caused by one)."""
    cause = err if isinstance(err, ClientError) else err.__cause__
    return str(cause.response.get("Error", {}).get("Code")) if isinstance(cause, ClientError) else None


def retry_count(outcome: dict[str, Any] | BaseException) -> int:
    """How many times botocore retried the call behind an answer or an error (0 when not known)."""
    if isinstance(outcome, BaseException):
        cause = outcome if isinstance(outcome, ClientError) else outcome.__cause__
        if not isinstance(cause, ClientError):
            return 0
        outcome = cause.response
    return int(outcome.get("ResponseMetadata", {}).get("RetryAttempts") or 0)


def multipart_etag(part_etags: Iterable[str]) -> str | None:
    """The ETag S3 gives an object completed from parts with these ETags (MD5 of their MD5s, ``-<parts>``);
    ``None`` when a part's ETag is not an MD5 (e.g. SSE-KMS)."""
    digests, count = hashlib.md5(), 0
    for etag in part_etags:
        value = etag.strip('"')
        if len(value) != 32:
            return None
        try:
            digests.update(bytes.fromhex(value))
        except ValueError:
            return None
        count += 1
    return f"{digests.hexdigest()}-{count}"


def composite_matches(reported: str, ours: str | None) -> bool:
    """Compare S3's composite checksum with ours; S3 shows ``<b64>-<parts>``, moto omits the suffix."""
    if ours is None:
        return False
    value, parts = split_composite(reported)
    our_value, our_parts = split_composite(ours)
    return value == our_value and (parts is None or parts == our_parts)


def put_multipart(store: S3Store, key: str, stream: BinaryIO, first: PartData, part_size: int, *,
                  first_slot_held: bool = False, **condition: str) -> tuple[Crc32c, str, int, dict[str, Any]]:
    """Upload ``first`` and the rest of ``stream`` as parts of ``part_size``; ``first_slot_held``: the caller
    holds the store-wide buffer slot ``first`` was read into, and it passes to the first part."""
    checksum_type = store.options.checksum_type
    on_disk = store.options.part_buffer == "DISK"
    try:
        upload_id = _create_upload(store, key)
    except BaseException:
        first.close()
        if first_slot_held:
            store._buffered_parts.release()
        raise
    concurrency = store.options.upload_concurrency
    slots = _PartSlots(threading.BoundedSemaphore(concurrency), store._buffered_parts)  # one per part held
    failed = threading.Event()
    futures = []
    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="s3-part") as pool:
            slots.acquire(store=not first_slot_held)
            part: PartData | None = first
            number = 1
            while part is not None and part.size:
                futures.append(pool.submit(_upload_part, store, key, upload_id, number, part, slots, failed))
                part = None
                slots.acquire()  # wait for room before reading the next part
                if failed.is_set():
                    slots.release()
                    break
                number += 1
                if number > MAX_PARTS:
                    raise StoreError(f"upload to {store.s3_uri(key)} needs more than {MAX_PARTS} parts; "
                                     "pass size_hint or raise part_size")
                if number % 1000 == 1:  # size unknown: grow parts so 10,000 of them reach 5 TB
                    part_size = min(part_size * 2, MAX_PART_SIZE)
                part = read_part(stream, part_size, on_disk=on_disk)
                if not part.size:
                    part.close()
                    slots.release()
        parts = [future.result() for future in futures]  # raises the first failure
        whole = Crc32c()
        for part in parts:
            whole.combine(part.crc, part.size)
        composite = composite_crc32c(part.crc for part in parts)
        kwargs: dict[str, Any] = dict(condition)
        if checksum_type == "FULL_OBJECT":
            # S3 checks the whole-object checksum and size against the parts it assembled.
            kwargs.update(ChecksumType="FULL_OBJECT", ChecksumCRC32C=whole.b64, MpuObjectSize=whole.length)
        response = _complete(store, key, upload_id, parts, whole, composite, kwargs)
    except BaseException:
        failed.set()
        store._abort(key, upload_id)
        raise
    return whole, composite, len(parts), response


def _create_upload(store: S3Store, key: str) -> str:
    """``CreateMultipartUpload``; no upload it created is ever left behind.

    When an answer is lost after the server created the upload (a reset connection, a timeout), botocore
    retries and a second upload is created: the first one's id is never seen. So whenever the call was
    retried, the key's open uploads are listed and those initiated during the call (from the call's duration
    before the upload we got, to it; server times) are aborted. When the call fails altogether (or is
    interrupted), every open upload of the key is aborted: the lost ones cannot be told from others there,
    which are orphans of killed runs (aborted by migrations anyway) or a concurrent writer of the same key.
    """
    started = time.monotonic()
    try:
        with store._errors("CreateMultipartUpload", key):
            response = store.client.create_multipart_upload(
                Bucket=store.bucket, Key=key, ChecksumAlgorithm="CRC32C", ChecksumType=store.options.checksum_type
            )
    except BaseException as err:
        cause = err.__cause__ if isinstance(err, (StoreError, OSError)) else err
        if not (isinstance(cause, ClientError) and not retry_count(cause)):  # else: the one answer was an error
            _abort_lost_uploads(store, key, None, time.monotonic() - started)
        raise
    upload_id = response["UploadId"]
    if retry_count(response):
        try:
            _abort_lost_uploads(store, key, upload_id, time.monotonic() - started)
        except BaseException:
            store._abort(key, upload_id)
            raise
    return upload_id


def _abort_lost_uploads(store: S3Store, key: str, keep: str | None, window: float) -> None:
    """Abort the open uploads of ``key`` a ``CreateMultipartUpload`` call of ``window`` seconds may have
    created unseen: those initiated up to ``window`` before ``keep`` (the upload it returned), or all of them
    when it returned none."""
    try:
        listed = list(store._key_uploads(key))
    except Exception:
        log.exception("Could not list the open uploads of %s after a failed or retried CreateMultipartUpload; "
                      "any left open are aborted by the next migration's sweep", store.s3_uri(key))
        return
    uploads = [upload for upload in listed if upload.upload_id != keep]
    mine = next((upload for upload in listed if upload.upload_id == keep), None)
    if mine is not None:  # Initiated is a server time; moto reports one fixed time for every upload
        earliest = mine.initiated - window - CLOCK_SLACK
        uploads = [upload for upload in uploads if earliest <= upload.initiated <= mine.initiated]
    for upload in uploads:
        log.warning("Aborting multipart upload %s of %s: created by a CreateMultipartUpload whose answer was "
                    "lost", upload.upload_id, store.s3_uri(key))
        store._abort(key, upload.upload_id)


def _complete(store: S3Store, key: str, upload_id: str, parts: list[_Part], whole: Crc32c, composite: str,
              kwargs: dict[str, Any]) -> dict[str, Any]:
    """``CompleteMultipartUpload``; when it fails after a retry or with a lost answer, the object is checked:
    an attempt may have completed it (SeaweedFS refuses the retry of a completed conditional upload with 412,
    AWS answers ``NoSuchUpload``)."""
    started = time.monotonic()
    try:
        with store._errors("CompleteMultipartUpload", key):
            return store.client.complete_multipart_upload(
                Bucket=store.bucket, Key=key, UploadId=upload_id,
                MultipartUpload={"Parts": [
                    {"PartNumber": p.number, "ETag": p.etag, "ChecksumCRC32C": encode_crc32c(p.crc)}
                    for p in parts
                ]},
                **kwargs,
            )
    except BaseException as err:
        cause = err.__cause__ if isinstance(err, (StoreError, OSError)) else err
        if isinstance(cause, ClientError) and not retry_count(cause):
            raise  # the only attempt was answered with this error: nothing was completed
        try:
            head = store._own_object(key, started, whole.length, multipart_etag(p.etag for p in parts),
                                    whole.b64, composite)
        except Exception:
            log.exception("Could not check whether %s was completed", store.s3_uri(key))
            head = None
        if head is None:
            raise
        log.info("CompleteMultipartUpload of %s was applied though its answer was lost (%s)", store.s3_uri(key), err)
        return head


def _upload_part(store: S3Store, key: str, upload_id: str, number: int, part: PartData,
                 slots: _PartSlots, failed: threading.Event) -> _Part:
    try:
        if failed.is_set():
            raise StoreError(f"upload of {store.s3_uri(key)} cancelled before part {number}")
        crc = part.checksum()
        with store._errors(f"UploadPart {number}", key):
            response = store.client.upload_part(
                Bucket=store.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part.body,
                ContentLength=part.size, ChecksumAlgorithm="CRC32C", ChecksumCRC32C=encode_crc32c(crc),
            )
        return _Part(number, response["ETag"], crc, part.size)
    except BaseException:
        failed.set()
        raise
    finally:
        part.close()
        slots.release()
