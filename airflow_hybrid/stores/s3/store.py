"""An S3 bucket prefix as a store, through the amazon provider's ``S3Hook``.

Listing pages through ``ListObjectsV2`` (with ``/`` as delimiter for one level, without it for a flat
recursive walk that scales to millions of keys). Reads are ranged ``GetObject`` calls streamed chunk by
chunk, resumed from the current offset (``If-Match`` on the ETag) when a connection drops mid-body
(:mod:`.reader`). Writes are streamed multipart uploads that we drive ourselves (:mod:`.multipart`): parts
are read from the input one at a time and uploaded by a small thread pool with a bounded number of parts in
flight, spooled to temporary files by default (``part_buffer``; in memory, about ``part_size`` each), each part carrying the CRC32C we computed so S3
rejects a corrupted part, and the whole-object CRC32C combined from the parts so the result can be verified end
to end. No upload is left open, whatever fails: a failed write aborts its upload, uploads created by a
``CreateMultipartUpload`` whose answer was lost (botocore retried it) are found and aborted, and a request
applied but unanswered is recognised as ours on its retry; only a killed process can leave one, for
:meth:`S3Store.abort_open_uploads` (a migration's sweep). ``write(..., if_absent=True)`` is an exclusive
create at every size (``If-None-Match: *`` on ``PutObject`` and ``CompleteMultipartUpload``).

Directories are implicit: ``mkdir`` does nothing and a prefix with objects under it is a directory.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO
from urllib.parse import urlparse

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.ops.checksums import CRC32C, CRC32C_COMPOSITE, Crc32c, split_composite
from airflow_hybrid.stores.base import (
    Checksum,
    FileInfo,
    Store,
    StoreError,
    StoreFeatures,
    UnsupportedFeatureError,
    after_marker,
    child_key,
    join_path,
    normalize_path,
)
from airflow_hybrid.stores.s3.crt_put import CrtPutClient
from airflow_hybrid.stores.s3.multipart import (
    CLOCK_SLACK,
    OpenUpload,
    composite_matches,
    error_code,
    put_multipart,
    read_part,
    retry_count,
)
from airflow_hybrid.stores.s3.options import MAX_PART_SIZE, MAX_PARTS, GiB, MiB, S3Options
from airflow_hybrid.stores.s3.reader import open_object
from airflow_hybrid.values import parse_verify

log = logging.getLogger(__name__)

#: Largest object ``CopyObject`` copies in one request; larger ones need a multipart copy.
MAX_SINGLE_COPY = 5 * GiB

_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchBucket", "NoSuchUpload"}
_DENIED = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId",
           "SignatureDoesNotMatch", "AccountProblem", "InvalidToken", "ExpiredToken"}
#: Codes of a refused ``If-None-Match: *`` (412, or 409 for a concurrent conditional write).
_REFUSED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


def checksum_from_response(response: dict[str, Any]) -> Checksum | None:
    """The object's checksum as S3 reports it in ``HeadObject`` (``ChecksumMode=ENABLED``)."""
    composite = response.get("ChecksumType") == "COMPOSITE"
    for algorithm in ("CRC32C", "CRC64NVME", "CRC32", "SHA256", "SHA1"):
        value = response.get(f"Checksum{algorithm}")
        if value:
            if composite or split_composite(value)[1] is not None:
                return Checksum(f"{algorithm}-COMPOSITE", value)
            return Checksum(algorithm, value)
    return None


class S3Store(Store):
    """Objects under ``s3://bucket/prefix``, reached with the Airflow connection ``aws_conn_id``.

    :param root_uri: ``s3://bucket`` or ``s3://bucket/prefix`` (``s3a://`` is accepted).
    :param aws_conn_id: Airflow AWS connection; its extra ``endpoint_url`` points at S3-compatible servers.
    :param options: :class:`S3Options` fields (part size, upload concurrency, checksum type, retries...).
    :param client: a ready boto3 S3 client to use instead of the connection's (benchmarks, tests).
    """

    scheme = "s3"

    def __init__(
        self,
        root_uri: str,
        aws_conn_id: str | None = "aws_default",
        options: dict[str, Any] | None = None,
        client: Any = None,
    ) -> None:
        try:
            parsed = urlparse(root_uri)
        except ValueError:  # an invalid IPv6 netloc such as s3://[x/p
            parsed = None
        if parsed is None or parsed.scheme.lower() not in ("s3", "s3a") or not parsed.netloc:
            raise HybridConfigError(f"S3 store needs a URI like s3://bucket/prefix, got {root_uri!r}")
        super().__init__(root_uri)
        self.bucket = parsed.netloc
        self.prefix = normalize_path(parsed.path)
        self.aws_conn_id = aws_conn_id
        self.options = S3Options.from_mapping(options)
        #: Store-wide cap on multipart parts held in memory (see ``S3Options.max_buffered_parts``).
        self._buffered_parts = threading.BoundedSemaphore(self.options.max_buffered_parts)
        self._client = client
        self._owns_client = client is None
        self._client_lock = threading.Lock()
        #: The key the client is shared under and its TLS verification, once made (:meth:`_make_client`).
        self._client_key: Any = None
        self._verify: bool | str | None = None
        self._crt_puts: CrtPutClient | None = None

    # -- connection -------------------------------------------------------------------------------
    @property
    def client(self):
        """The boto3 S3 client (thread-safe; created on first use from the Airflow connection)."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self):
        """The process's shared client for this store's connection and client settings (:mod:`.clients`)."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from airflow_hybrid.stores.s3.clients import shared_client

        hook = S3Hook(aws_conn_id=self.aws_conn_id)
        try:
            conn = hook.get_connection(self.aws_conn_id) if self.aws_conn_id else None
        except Exception:  # noqa: BLE001 - a missing connection: the hook falls back to boto3's own chain
            conn = None
        identity = None if conn is None else (conn.conn_type, conn.host, conn.login, conn.password, conn.extra)
        settings = (self.options.max_attempts, self.options.max_pool_connections, self.options.connect_timeout,
                    self.options.read_timeout)
        self._client_key = ("s3", self.aws_conn_id, identity, settings)
        self._verify = parse_verify(hook.verify, f"connection {str(self.aws_conn_id)!r}: extra verify", default=None)
        return shared_client(self._client_key, lambda: self._new_client(hook))

    def _new_client(self, hook):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        ours = Config(
            retries={"mode": "standard", "total_max_attempts": self.options.max_attempts},
            max_pool_connections=self.options.max_pool_connections,
            connect_timeout=self.options.connect_timeout,
            read_timeout=self.options.read_timeout,
            # We send our own CRC32C with every body; botocore need not compute another checksum.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        # Settings from the connection's ``config_kwargs`` win over ours.
        verify = self._verify
        if verify is False:
            log.warning(
                "AWS connection %r: TLS certificate verification is OFF (extra verify=false); the S3 endpoint's "
                "identity is not checked. Set verify to true or to a CA bundle path.",
                self.aws_conn_id,
            )
        return S3Hook(aws_conn_id=self.aws_conn_id, config=ours.merge(hook.config), verify=verify).get_conn()

    def close(self) -> None:
        """Let go of the client; a shared one (:mod:`.clients`) stays open for the process's other stores."""
        self._client = None

    # -- keys -------------------------------------------------------------------------------------
    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix and rel else (self.prefix or rel)

    def _dir_prefix(self, rel: str) -> str:
        key = self._key(rel)
        return f"{key}/" if key else ""

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1:] if self.prefix else key

    def s3_uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    @contextmanager
    def _errors(self, operation: str, key: str):
        """Translate botocore errors: missing -> FileNotFoundError, denied -> PermissionError."""
        try:
            yield
        except ClientError as err:
            error = err.response.get("Error", {})
            code = str(error.get("Code", ""))
            message = error.get("Message", "")
            where = self.s3_uri(key)
            if code == "NoSuchBucket":
                raise FileNotFoundError(f"bucket {self.bucket!r} does not exist ({operation} {where})") from err
            if code in _NOT_FOUND:
                raise FileNotFoundError(f"{where} does not exist") from err
            if code in _DENIED:
                raise PermissionError(f"access to {where} denied ({operation}): {code} {message}") from err
            raise StoreError(f"S3 {operation} of {where} failed: {code} {message}".rstrip()) from err
        except BotoCoreError as err:
            raise StoreError(f"S3 {operation} of {self.s3_uri(key)} failed: {err}") from err

    # -- metadata ---------------------------------------------------------------------------------
    def _file_info(self, rel: str, size: int, last_modified, etag: str | None, **extra) -> FileInfo:
        # HeadObject reports whole seconds and ListObjects milliseconds: keep seconds so both agree.
        return FileInfo(path=rel, size=int(size), mtime=float(int(last_modified.timestamp())),
                        etag=etag.strip('"') if etag else None, extra=extra)

    def _head(self, key: str) -> dict[str, Any]:
        with self._errors("HeadObject", key):
            return self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")

    def _has_children(self, prefix: str) -> bool:
        with self._errors("ListObjectsV2", prefix):
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        return page.get("KeyCount", 0) > 0

    def info(self, path: str) -> FileInfo:
        rel = normalize_path(path)
        if rel:
            try:
                head = self._head(self._key(rel))
            except FileNotFoundError:
                pass
            else:
                return self._file_info(rel, head["ContentLength"], head["LastModified"], head.get("ETag"),
                                       checksum=checksum_from_response(head))
        prefix = self._dir_prefix(rel)
        if self._has_children(prefix) or not rel:
            return FileInfo(path=rel, size=0, mtime=0.0, is_dir=True)
        raise FileNotFoundError(f"{self.uri(rel)} does not exist")

    def checksum(self, path: str) -> Checksum | None:
        """The stored checksum: ``CRC32C`` (whole object) or ``CRC32C-COMPOSITE`` (``<b64>-<parts>``)."""
        return checksum_from_response(self._head(self._key(normalize_path(path))))

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("ListObjectsV2", prefix):
            yield from paginator.paginate(**kwargs, PaginationConfig={"PageSize": self.options.page_size})

    def _addressable(self, rel: str) -> bool:
        """Keys such as ``a//b`` or ``a/../b`` cannot be named through a store path; they are skipped."""
        try:
            if normalize_path(rel) == rel:
                return True
        except ValueError:
            pass
        log.warning("Skipping S3 key %s: not addressable as a store path", self.s3_uri(self._key(rel)))
        return False

    def _lone_file(self, rel: str) -> Iterator[FileInfo]:
        """After an empty listing of ``rel/``: the object ``rel`` itself, nothing for an empty directory (a
        prefix listed meanwhile), else :class:`FileNotFoundError`. One ListObjectsV2 of at most one key
        (``rel`` sorts before every other key it prefixes), not a HeadObject and a second listing."""
        key = self._key(rel)
        with self._errors("ListObjectsV2", key):
            page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        for obj in page.get("Contents", ()):
            if obj["Key"] == key:
                yield self._file_info(rel, obj["Size"], obj["LastModified"], obj.get("ETag"))
                return
            if obj["Key"].startswith(key + "/"):
                return
        raise FileNotFoundError(f"{self.uri(rel)} does not exist")

    def list(self, path: str) -> Iterator[FileInfo]:
        rel = normalize_path(path)
        found = False
        for entry in self.list_children(rel):
            found = True
            yield entry
        if not found and rel:
            yield from self._lone_file(rel)

    def list_children(self, path: str) -> Iterator[FileInfo]:
        """:meth:`list` without its check of an empty listing: one ListObjectsV2 page per 1,000 children, one
        request for a missing directory."""
        rel = normalize_path(path)
        prefix = self._dir_prefix(rel)
        for page in self._pages(prefix, "/"):
            for common in page.get("CommonPrefixes", ()):
                child = self._rel(common["Prefix"][:-1])
                if self._addressable(child):
                    yield FileInfo(path=child, size=0, mtime=0.0, is_dir=True)
            for obj in page.get("Contents", ()):
                if obj["Key"] != prefix and self._addressable(child := self._rel(obj["Key"])):
                    yield self._file_info(child, obj["Size"], obj["LastModified"], obj.get("ETag"))

    def list_sorted(
        self, path: str, start_after: str | None = None, limit: int = 1000, name_prefix: str = ""
    ) -> list[FileInfo]:
        """:meth:`Store.list_sorted` natively: ``ListObjectsV2`` with ``Delimiter=/``, ``StartAfter`` and
        ``Prefix`` (S3 lists in this order), so a call costs about ``limit / page_size`` requests."""
        rel = normalize_path(path)
        prefix = self._dir_prefix(rel)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix + name_prefix, "Delimiter": "/"}
        if start_after:
            kwargs["StartAfter"] = prefix + start_after.rstrip("\x00")
        found: list[FileInfo] = []
        with self._errors("ListObjectsV2", prefix):
            while len(found) < limit:
                page = self.client.list_objects_v2(**kwargs, MaxKeys=min(self.options.page_size, limit - len(found)))
                batch = [FileInfo(path=self._rel(c["Prefix"][:-1]), size=0, mtime=0.0, is_dir=True)
                         for c in page.get("CommonPrefixes", ())]
                batch += [self._file_info(self._rel(o["Key"]), o["Size"], o["LastModified"], o.get("ETag"))
                          for o in page.get("Contents", ()) if o["Key"] != prefix]
                batch.sort(key=child_key)
                found += [e for e in batch if self._addressable(e.path) and e.name
                          and after_marker(child_key(e), e.is_dir, start_after)]
                if not page.get("IsTruncated"):
                    break
                kwargs["ContinuationToken"] = page["NextContinuationToken"]
        return found[:limit]

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        """Every object below ``path`` in one flat, paginated listing (no per-directory requests)."""
        rel = normalize_path(path)
        found = False
        for page in self._pages(self._dir_prefix(rel), None):
            for obj in page.get("Contents", ()):
                found = True
                if obj["Key"].endswith("/"):
                    continue
                child = self._rel(obj["Key"])
                if self._addressable(child):
                    yield self._file_info(child, obj["Size"], obj["LastModified"], obj.get("ETag"))
        if not found and rel:
            yield from self._lone_file(rel)

    # -- reads ------------------------------------------------------------------------------------
    def _get_object(self, key: str, byte_range: str | None = None, **kwargs) -> dict[str, Any]:
        if byte_range:
            kwargs["Range"] = byte_range
        with self._errors("GetObject", key):
            return self.client.get_object(Bucket=self.bucket, Key=key, **kwargs)

    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return open_object(self, normalize_path(path), offset, length)

    # -- writes -----------------------------------------------------------------------------------
    def _initial_part_size(self, size_hint: int | None) -> int:
        part_size = self.options.part_size
        if size_hint and size_hint > part_size * MAX_PARTS:
            part_size = math.ceil(size_hint / MAX_PARTS / MiB) * MiB
            if part_size > MAX_PART_SIZE:
                raise StoreError(f"{size_hint} bytes exceed S3's largest object (10,000 parts of 5 GiB)")
        return part_size

    @property
    def features(self) -> StoreFeatures:
        """Exclusive creates at every size with ``conditional_writes`` (``If-None-Match: *`` on ``PutObject`` and
        ``CompleteMultipartUpload``, which AWS S3, MinIO, moto and SeaweedFS honour;
        :meth:`probe_conditional_writes` checks a server), refused in one request below one part; multipart
        uploads; CRC32C checksums (whole object or composite); a missing key found by one ``HeadObject``. No times, no atomic rename."""
        exclusive = self.options.conditional_writes
        return StoreFeatures(
            exclusive_create=exclusive,
            exclusive_create_one_request_below=self.options.part_size if exclusive else 0,
            multipart_uploads=True,
            server_checksum=CRC32C,  # CRC32C or CRC32C-COMPOSITE
            checksum_finds_missing_cheaply=True,
            sorted_listing=True,
        )

    def write(self, path: str, stream: BinaryIO, size_hint: int | None = None, *, if_absent: bool = False) -> FileInfo:
        """Upload ``stream`` to ``path``; return its status with our checksums in ``extra``.

        ``extra`` holds ``crc32c`` (base64 CRC32C of every byte written), ``parts`` (0 for a single
        ``PutObject``), ``crc32c_composite`` for multipart uploads, and ``checksum``: what S3 reports it
        stored (the ``PutObject`` answer carries it: S3 validated the CRC32C we sent against the body it
        stored; a multipart upload costs one ``HeadObject`` when the completion does not report it). The
        object is verified against it before returning (:class:`StoreError` otherwise). The status's
        ``mtime`` is the server's ``Date`` of the answer when no ``HeadObject`` was made (S3 does not report
        ``LastModified`` on writes; it may be a second later than a later :meth:`info` shows).

        A multipart upload is never left open, whatever fails (see :meth:`_create_upload`): a failed write aborts
        its upload, and uploads created by a ``CreateMultipartUpload`` whose answer was lost (botocore retried
        it) are found and aborted. A request of ours that was applied but whose answer was lost, then refused on
        its retry by the object it had just created (``If-None-Match``), is recognised as ours.

        :param if_absent: create the object only if no object exists at ``path`` (``If-None-Match: *`` on
            ``PutObject`` and ``CompleteMultipartUpload``, atomic on the server, at every size):
            :class:`FileExistsError` if one does, and nothing is replaced.
        """
        rel = normalize_path(path)
        if not rel:
            raise IsADirectoryError(f"cannot write to the root of {self.root_uri}")
        key = self._key(rel)
        if if_absent and not self.options.conditional_writes:
            raise UnsupportedFeatureError(
                f"{self.uri(rel)}: if_absent=True needs conditional_writes, which are switched off")
        condition = {"IfNoneMatch": "*"} if if_absent else {}
        part_size = self._initial_part_size(size_hint)
        # The first read of a file known to span parts holds a slot of the store-wide part buffers (memory stays
        # bounded however many large files are written at once); smaller or unsized writes are not held back.
        held = size_hint is not None and size_hint >= part_size
        if held:
            self._buffered_parts.acquire()
        try:
            # A part of a file known to span parts may go to disk (``part_buffer``); a smaller one is one put.
            first = read_part(stream, part_size, on_disk=held and self.options.part_buffer == "DISK")
            with self._conditional(key, if_absent):
                if first.size < part_size:
                    try:
                        data = first.in_memory()
                    finally:
                        first.close()
                    whole, composite, parts = Crc32c(), None, 0
                    whole.update(data)
                    response = self._put_single(key, data, whole, **condition)
                else:
                    handed, held = held, False  # the first part releases it once uploaded
                    whole, composite, parts, response = put_multipart(self, key, stream, first, part_size,
                                                                      first_slot_held=handed, **condition)
        finally:
            if held:
                self._buffered_parts.release()
        stored = checksum_from_response(response)
        if "LastModified" in response:  # a HeadObject made while recognising a retried write as ours
            head = response
        elif stored is not None and response.get("ETag"):
            head = None
        else:  # the answer has no checksum (S3-compatible servers, moto's CompleteMultipartUpload)
            head = self._head(key)
        if head is None:
            info = self._file_info(rel, whole.length, _response_date(response), response["ETag"], checksum=stored,
                                   crc32c=whole.b64, crc32c_composite=composite, parts=parts)
        else:
            info = self._file_info(rel, head["ContentLength"], head["LastModified"], head.get("ETag"),
                                   checksum=checksum_from_response(head), crc32c=whole.b64,
                                   crc32c_composite=composite, parts=parts)
        self._check_stored(key, info, whole, composite)
        return info

    @contextmanager
    def _conditional(self, key: str, if_absent: bool):
        """Turn S3's refusal of ``If-None-Match: *`` (412, or 409 for a concurrent conditional write)
        into :class:`FileExistsError`."""
        try:
            yield
        except StoreError as err:
            if if_absent and error_code(err) in _REFUSED:
                raise FileExistsError(f"{self.s3_uri(key)} already exists; not replaced") from err
            raise

    def _check_stored(self, key: str, info: FileInfo, whole: Crc32c, composite: str | None) -> None:
        stored: Checksum | None = info.extra["checksum"]
        problem = None
        if info.size != whole.length:
            problem = f"S3 holds {info.size} bytes, {whole.length} were written"
        elif stored is None or not stored.algorithm.startswith(CRC32C):
            log.debug("%s reports no CRC32C (%s); not checked after write", self.s3_uri(key), stored)
        elif stored.algorithm == CRC32C and stored.value != whole.b64:
            problem = f"S3 reports CRC32C {stored.value}, we wrote {whole.b64}"
        elif stored.algorithm == CRC32C_COMPOSITE and not composite_matches(stored.value, composite):
            problem = f"S3 reports composite CRC32C {stored.value}, we wrote {composite}"
        if problem:
            with self._errors("DeleteObject", key):
                self.client.delete_object(Bucket=self.bucket, Key=key)
            raise StoreError(f"upload of {self.s3_uri(key)} did not verify and was deleted: {problem}")

    def _crt_put_client(self) -> CrtPutClient:
        """The CRT client of ``put_client: crt`` (:mod:`.crt_put`), made on first use."""
        if self._crt_puts is None:
            client = self.client
            with self._client_lock:
                if self._crt_puts is None:
                    given = not self._owns_client
                    verify = getattr(getattr(client, "_endpoint", None), "http_session", None)
                    self._crt_puts = CrtPutClient(
                        client, self.bucket, client_key=None if given else self._client_key,
                        verify=getattr(verify, "_verify", None) if given else self._verify,
                        max_connections=self.options.max_pool_connections)
        return self._crt_puts

    def _put_single(self, key: str, data: bytes, whole: Crc32c, **condition: str) -> dict[str, Any]:
        started = time.monotonic()
        crt = self.options.put_client == "CRT"
        try:
            with self._errors("PutObject", key):
                if crt:
                    return self._crt_put_client().put(key, data, whole.b64, if_none_match=bool(condition))
                return self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentLength=len(data),
                                              ChecksumAlgorithm="CRC32C", ChecksumCRC32C=whole.b64, **condition)
        except StoreError as err:
            # Refused on a retry: maybe by the object an earlier attempt created before its answer was lost (the
            # CRT client does not tell whether it retried, so each of its refusals is checked).
            if condition and error_code(err) in _REFUSED and (crt or retry_count(err)):
                head = self._own_object(key, started, len(data), hashlib.md5(data).hexdigest(), whole.b64, None)
                if head is not None:
                    log.info("PutObject of %s was applied before its answer was lost; the retry was refused "
                             "by that object (ours)", self.s3_uri(key))
                    return head
            raise

    def _own_object(self, key: str, started: float, size: int, etag: str | None, crc: str,
                    composite: str | None) -> dict[str, Any] | None:
        """``HeadObject`` of ``key`` if it is the object a request of ours (sent since ``started``, monotonic)
        created: our length, our ETag or CRC32C, and last modified since the request was sent (server clock:
        the ``Date`` of the ``HeadObject`` answer less the time elapsed); else ``None``."""
        try:
            head = self._head(key)
        except FileNotFoundError:
            return None
        if int(head["ContentLength"]) != size:
            return None
        stored = checksum_from_response(head)
        ours = (etag is not None and (head.get("ETag") or "").strip('"') == etag) or (
            stored is not None and (stored.value == crc or (stored.algorithm == CRC32C_COMPOSITE
                                                            and composite_matches(stored.value, composite))))
        if not ours:
            return None
        sent = _response_date(head).timestamp() - (time.monotonic() - started) - CLOCK_SLACK
        return head if head["LastModified"].timestamp() >= sent else None

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self._abort_key(key, upload_id)
        except Exception:  # the original error matters more; the next migration's sweep aborts it
            log.exception("Could not abort multipart upload %s of %s", upload_id, self.s3_uri(key))

    def _abort_key(self, key: str, upload_id: str) -> bool:
        with self._errors("AbortMultipartUpload", key):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise
                return False
        return True

    # -- orphaned uploads -------------------------------------------------------------------------
    def _upload_pages(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        with self._errors("ListMultipartUploads", prefix):
            yield from paginator.paginate(Bucket=self.bucket, Prefix=prefix)

    def _key_uploads(self, key: str) -> Iterator[OpenUpload]:
        """The open uploads of exactly ``key`` (paths relative to the store)."""
        for page in self._upload_pages(key):
            for upload in page.get("Uploads", ()):
                if upload["Key"] == key:
                    yield OpenUpload(self._rel(key), upload["UploadId"], upload["Initiated"].timestamp())

    def list_open_uploads(self, path: str = "") -> Iterator[OpenUpload]:
        """Multipart uploads at or below ``path`` that were never completed nor aborted (path, upload id and
        initiation time; moto reports one fixed time for every upload)."""
        rel = normalize_path(path)
        key = self._key(rel)
        for page in self._upload_pages(key):
            for upload in page.get("Uploads", ()):
                if key and upload["Key"] != key and not upload["Key"].startswith(f"{key}/"):
                    continue
                if self.prefix and not upload["Key"].startswith(f"{self.prefix}/"):
                    continue
                yield OpenUpload(self._rel(upload["Key"]), upload["UploadId"], upload["Initiated"].timestamp())

    def abort_upload(self, path: str, upload_id: str) -> bool:
        """Abort one open upload of ``path``; ``False`` if it was no longer open (completed or aborted)."""
        return self._abort_key(self._key(normalize_path(path)), upload_id)

    def abort_open_uploads(self, path: str = "", older_than: float | None = None) -> int:
        """Abort open uploads at or below ``path`` (only those started ``older_than`` seconds ago, if
        given, to spare concurrent writers); return how many were aborted."""
        cutoff = time.time() - older_than if older_than is not None else None
        aborted = 0
        for upload in list(self.list_open_uploads(path)):
            if cutoff is not None and upload.initiated > cutoff:
                continue
            if self.abort_upload(upload.path, upload.upload_id):
                log.info("Aborted orphaned multipart upload %s of %s", upload.upload_id,
                         self.s3_uri(self._key(upload.path)))
                aborted += 1
        return aborted

    def probe_conditional_writes(self, path: str = ".hybrid-conditional-probe") -> bool:
        """Whether the server honours ``If-None-Match: *`` on ``PutObject`` and ``CompleteMultipartUpload``
        (what :attr:`features` assumes of ``conditional_writes``): writes ``path`` (a fresh key below it), tries to replace it
        both ways, and deletes it. Five requests; for set-up checks and tests, not on every write."""
        rel = join_path(normalize_path(path), uuid.uuid4().hex)
        key = self._key(rel)
        refused = 0
        with self._errors("PutObject", key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=b"probe")
        try:
            try:
                with self._errors("PutObject", key):
                    self.client.put_object(Bucket=self.bucket, Key=key, Body=b"replaced", IfNoneMatch="*")
            except StoreError as err:
                refused += error_code(err) in _REFUSED
            with self._errors("CreateMultipartUpload", key):
                upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
            try:
                with self._errors("UploadPart", key):
                    etag = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=1,
                                                   Body=b"replaced")["ETag"]
                with self._errors("CompleteMultipartUpload", key):
                    self.client.complete_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id, IfNoneMatch="*",
                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
            except StoreError as err:
                refused += error_code(err) in _REFUSED
            finally:
                self._abort(key, upload_id)
        finally:
            with self._errors("DeleteObject", key):
                self.client.delete_object(Bucket=self.bucket, Key=key)
        return refused == 2

    # -- delete, rename ---------------------------------------------------------------------------
    def delete(self, path: str, recursive: bool = False) -> bool:
        rel = normalize_path(path)
        deleted = False
        if rel:
            key = self._key(rel)
            try:
                self._head(key)
            except FileNotFoundError:
                pass
            else:
                with self._errors("DeleteObject", key):
                    self.client.delete_object(Bucket=self.bucket, Key=key)
                deleted = True
        prefix = self._dir_prefix(rel)
        if recursive:
            return self._delete_prefix(prefix) > 0 or deleted
        if not deleted:
            with self._errors("ListObjectsV2", prefix):
                page = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=2)
            keys = [obj["Key"] for obj in page.get("Contents", ())]
            if keys == [prefix]:  # only a directory marker
                return self._delete_prefix(prefix) > 0
            if keys:
                raise OSError(errno.ENOTEMPTY, f"{self.uri(rel)} is a directory that is not empty; "
                                               "pass recursive=True to delete it")
        return deleted

    def _delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix`` in batches of 1000; return how many were deleted."""
        count = 0
        batch: list[dict[str, str]] = []
        for page in self._pages(prefix, None):
            for obj in page.get("Contents", ()):
                batch.append({"Key": obj["Key"]})
                if len(batch) == 1000:
                    count += self._delete_batch(prefix, batch)
                    batch = []
        if batch:
            count += self._delete_batch(prefix, batch)
        return count

    def _delete_batch(self, prefix: str, batch: list[dict[str, str]]) -> int:
        with self._errors("DeleteObjects", prefix):
            response = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise StoreError(f"S3 DeleteObjects under {self.s3_uri(prefix)} failed for {len(errors)} keys, "
                             f"e.g. {self.s3_uri(first.get('Key', ''))}: {first.get('Code')} {first.get('Message')}")
        return len(batch)

    def mkdir(self, path: str) -> None:
        """Directories are implicit in S3: nothing to create."""
        normalize_path(path)

    def rename(self, src: str, dst: str) -> None:
        """Server-side copy then delete (a file, or every object under a directory)."""
        src_rel, dst_rel = normalize_path(src), normalize_path(dst)
        if not src_rel or not dst_rel:
            raise HybridConfigError(f"cannot rename the root of {self.root_uri}")
        if dst_rel == src_rel or dst_rel.startswith(f"{src_rel}/"):
            raise HybridConfigError(f"cannot rename {self.uri(src_rel)} into itself ({self.uri(dst_rel)})")
        entry = self.info(src_rel)
        if not entry.is_dir:
            self._copy_object(self._key(src_rel), self._key(dst_rel), entry.size)
            self.delete(src_rel)
            return
        for child in self.walk_files(src_rel):
            target = join_path(dst_rel, child.path[len(src_rel) + 1:])
            self._copy_object(self._key(child.path), self._key(target), child.size)
        self.delete(src_rel, recursive=True)

    def _copy_object(self, src_key: str, dst_key: str, size: int) -> None:
        source = {"Bucket": self.bucket, "Key": src_key}
        with self._errors("CopyObject", src_key):
            if size <= MAX_SINGLE_COPY:
                self.client.copy_object(Bucket=self.bucket, Key=dst_key, CopySource=source,
                                        ChecksumAlgorithm="CRC32C")
            else:  # CopyObject stops at 5 GiB; boto3's managed copy runs a multipart UploadPartCopy
                self.client.copy(source, self.bucket, dst_key, ExtraArgs={"ChecksumAlgorithm": "CRC32C"})


def _response_date(response: dict[str, Any]) -> datetime:
    """The server's ``Date`` header of an answer (now, if it has none)."""
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    try:
        return parsedate_to_datetime(date) if date else datetime.now(timezone.utc)
    except (TypeError, ValueError):
        return datetime.now(timezone.utc)
