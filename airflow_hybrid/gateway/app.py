"""The gateway's ASGI application (Starlette): S3's REST API, a bucket per mount, in path style
(``/<bucket>/<key>``) or virtual-hosted style (``Host: <bucket>.<domain>``). Every request is authenticated
(:mod:`~airflow_hybrid.gateway.sigv4`) before anything else is read; blocking mount calls run in the thread
pool; bodies stream both ways (uploads spooled to disk and verified before they reach the mount,
:mod:`~airflow_hybrid.gateway.spool`; GETs streamed from the cache or the member with their
``Content-Length`` announced, so a member failing mid-stream cuts the connection short instead of ending a
truncated object cleanly). A GET's lookup, open and first read take one thread hand-off; a body of one
chunk (:data:`~airflow_hybrid.gateway.objects.READ_CHUNK`) is then sent whole, a longer one is read a chunk
ahead of the socket.

Operations: ListBuckets, HeadBucket, GetBucketLocation, ListObjectsV2, ListObjects, ListMultipartUploads,
HeadObject, GetObject, PutObject, CopyObject (within a bucket), DeleteObject, DeleteObjects,
CreateMultipartUpload, UploadPart, ListParts, CompleteMultipartUpload, AbortMultipartUpload. Keys ending in
``/`` are directory markers (as Hadoop's s3a writes them): a PUT of an empty one makes the directory.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import threading
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, unquote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from airflow_hybrid.gateway import responses
from airflow_hybrid.gateway.config import MAX_KEY_BYTES, GatewayConfig
from airflow_hybrid.gateway.errors import S3Error
from airflow_hybrid.gateway.listing import decode_token, encode_token, list_page
from airflow_hybrid.gateway.multipart import PartsReader, UploadStore
from airflow_hybrid.gateway.objects import (
    body_chunks,
    check_conditions,
    checksum_headers,
    current_version,
    etag_of,
    first_chunk,
    http_date,
    parse_range,
)
from airflow_hybrid.gateway.sigv4 import Identity, verify
from airflow_hybrid.gateway.spool import Spooled, spool
from airflow_hybrid.mount.union import HybridMount
from airflow_hybrid.stores.base import PathEscapeError, StoreError, normalize_path

log = logging.getLogger(__name__)

#: Largest XML body (DeleteObjects of 1000 keys, a CompleteMultipartUpload of 10,000 parts).
MAX_XML_BODY = 4 * 1024 * 1024
#: Bytes of a refused request's body read to keep its connection usable.
DRAIN_LIMIT = 8 * 1024 * 1024
#: Largest single PutObject or part (S3's 5 GiB).
MAX_PUT = 5 * 1024**3


class Gateway:
    """The state one application serves: mounts by bucket name, keys, spool and upload directories."""

    def __init__(self, config: GatewayConfig, mounts: Mapping[str, HybridMount] | None = None,
                 mount_factory: Callable[[str], HybridMount] = HybridMount.from_conn_id) -> None:
        self.config = config
        self._factory = mount_factory
        self._given = dict(mounts or {})
        self.mounts: dict[str, HybridMount] = dict(self._given)
        self._own_spool: tempfile.TemporaryDirectory | None = None
        spool_dir = config.spool_dir
        if spool_dir is None:
            self._own_spool = tempfile.TemporaryDirectory(prefix="hybrid-gateway-")
            spool_dir = Path(self._own_spool.name)
        self.spool_dir = Path(spool_dir)
        self.uploads = UploadStore(self.spool_dir / "uploads")
        self.key_locks = KeyLocks()

    @staticmethod
    def bucket_and_conn(spec: str) -> tuple[str, str]:
        """``BUCKET=CONN_ID`` or ``CONN_ID`` (the bucket named after the connection)."""
        bucket, sep, conn_id = spec.partition("=")
        return (bucket, conn_id) if sep else (spec, spec)

    def open(self) -> None:
        self.uploads.recover()
        for leftover in self.spool_dir.glob("body-*"):  # bodies a stopped gateway was receiving
            leftover.unlink(missing_ok=True)
        for spec in self.config.mounts:
            bucket, conn_id = self.bucket_and_conn(spec)
            if bucket not in self.mounts:
                self.mounts[bucket] = self._factory(conn_id)
        for mount in self.mounts.values():
            _ = mount.cache  # built once here, not by the first concurrent requests

    def close(self) -> None:
        for bucket, mount in list(self.mounts.items()):
            if bucket not in self._given:
                mount.close()
                del self.mounts[bucket]
        if self._own_spool is not None:
            self._own_spool.cleanup()

    def mount(self, bucket: str) -> HybridMount:
        try:
            return self.mounts[bucket]
        except KeyError:
            raise S3Error("NoSuchBucket", "the specified bucket does not exist", bucket, BucketName=bucket) from None

    def authorize(self, identity: Identity, bucket: str | None, write: bool) -> None:
        if identity.anonymous:
            mode = self.config.anonymous
            if mode == "write" or (mode == "read" and not write):
                return
            raise S3Error("AccessDenied", "anonymous access is not allowed; sign the request")
        if not identity.key.allows(bucket, write):
            raise S3Error("AccessDenied", f"access key {identity.key.access_key!r} may not "
                          f"{'write' if write else 'read'}{f' bucket {bucket!r}' if bucket else ''}")


def check_key(key: str) -> str:
    """The logical path of ``key``; refuses keys that are not one (module doc of the union's paths)."""
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", f"your key is longer than {MAX_KEY_BYTES} bytes")
    if "\x00" in key:
        raise S3Error("InvalidArgument", "a key may not contain a NUL byte", ArgumentName="key")
    try:
        rel = normalize_path(key)
    except PathEscapeError:
        raise S3Error("AccessDenied", "a key may not leave its bucket ('..')", key) from None
    if rel != key.rstrip("/") or "\\" in key:
        raise S3Error("InvalidArgument", "the key is not a plain path ('//', '.', a leading '/' or '\\')",
                      key, ArgumentName="key")
    return rel


def _headers(request: Request) -> dict[str, str]:
    merged: dict[str, str] = {}
    for name, value in request.headers.items():
        merged[name] = f"{merged[name]},{value}" if name in merged else value
    return merged


def _query(raw_query: str) -> dict[str, str]:
    return dict(parse_qsl(raw_query, keep_blank_values=True))


def _int(query: Mapping[str, str], name: str, default: int, low: int = 0, high: int = 2**31) -> int:
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise S3Error("InvalidArgument", f"{name} must be an integer", ArgumentName=name) from None
    if not low <= number <= high:
        raise S3Error("InvalidArgument", f"{name} must be between {low} and {high}", ArgumentName=name)
    return number


def _xml(data: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(data, status, headers=dict(headers or {}), media_type="application/xml")


async def _read_xml(request: Request) -> ET.Element:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_XML_BODY:
            raise S3Error("MalformedXML", "the XML body is too large")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise S3Error("MalformedXML", "document type declarations are not accepted")
    try:
        root = ET.fromstring(bytes(body))
    except ET.ParseError:
        raise S3Error("MalformedXML", "the XML you provided was not well-formed") from None
    for element in root.iter():  # drop the namespace: clients send it or not
        element.tag = element.tag.rpartition("}")[2]
    return root


def create_app(config: GatewayConfig, mounts: Mapping[str, HybridMount] | None = None,
               mount_factory: Callable[[str], HybridMount] = HybridMount.from_conn_id) -> Starlette:
    """The ASGI application over ``config.mounts`` (or the ``mounts`` given, bucket -> mount, left open)."""
    gateway = Gateway(config, mounts, mount_factory)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        await run_in_threadpool(gateway.open)
        try:
            yield
        finally:
            await run_in_threadpool(gateway.close)

    async def handle(request: Request) -> Response:
        request_id = uuid.uuid4().hex[:16].upper()
        try:
            response = await _dispatch(gateway, request)
        except S3Error as err:
            response = _error(err, request, request_id)
        except ClientDisconnect:
            log.info("client disconnected during %s %s", request.method, request.url.path)
            return Response(status_code=400)
        except FileNotFoundError as err:
            response = _error(S3Error("NoSuchKey", str(err)), request, request_id)
        except PermissionError as err:
            response = _error(S3Error("AccessDenied", str(err)), request, request_id)
        except PathEscapeError as err:
            response = _error(S3Error("InvalidArgument", str(err)), request, request_id)
        except (StoreError, OSError) as err:
            log.warning("%s %s failed: %s", request.method, request.url.path, err)
            response = _error(S3Error("InternalError", str(err)), request, request_id)
        if response.status_code >= 400 and request.method in ("PUT", "POST"):
            await _discard_body(request, response)
        response.headers["x-amz-request-id"] = request_id
        return response

    app = Starlette(
        routes=[Route("/{path:path}", handle, methods=["GET", "HEAD", "PUT", "POST", "DELETE"])],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app


async def _discard_body(request: Request, response: Response) -> None:
    """Read what is left of a refused request's body (up to :data:`DRAIN_LIMIT`), so the connection can serve
    the client's next request; beyond that the connection is closed after the response (as S3 does)."""
    drained = 0
    try:
        async for chunk in request.stream():
            drained += len(chunk)
            if drained > DRAIN_LIMIT:
                response.headers["connection"] = "close"
                return
    except (RuntimeError, ClientDisconnect):  # read already, perhaps in part: do not reuse the connection
        response.headers["connection"] = "close"


def _error(err: S3Error, request: Request, request_id: str) -> Response:
    if err.status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, err)
    if request.method == "HEAD":  # no body; the status says it
        return Response(status_code=err.status, headers={"x-amz-error-code": err.code})
    return _xml(err.to_xml(request_id), err.status)


async def _dispatch(gw: Gateway, request: Request) -> Response:
    scope = request.scope
    raw_path = scope.get("raw_path") or scope["path"].encode()
    raw_path = raw_path.decode("latin-1") if isinstance(raw_path, bytes) else raw_path
    raw_query = scope.get("query_string", b"").decode("latin-1")
    headers = _headers(request)
    query = _query(raw_query)
    identity = verify(request.method, raw_path, raw_query, headers, query, gw.config.keys,
                      max_skew=gw.config.max_clock_skew)
    path = unquote(raw_path.split("?", 1)[0])
    bucket, _, key = path.lstrip("/").partition("/")
    host = headers.get("host", "").rsplit(":", 1)[0]
    label = host.split(".", 1)[0]
    if "." in host and label in gw.mounts and not host.replace(".", "").isdigit():  # virtual-hosted style
        bucket, key = label, path.lstrip("/")
    method = request.method
    if not bucket:
        if method != "GET":
            raise S3Error("MethodNotAllowed", "the specified method is not allowed against the service")
        gw.authorize(identity, None, write=False)
        names = [b for b in gw.mounts if identity.anonymous or identity.key.allows(b, False)]
        return _xml(responses.list_buckets(names))
    write = method in ("PUT", "POST", "DELETE")
    if method == "POST" and "delete" not in query and "uploads" not in query and "uploadId" not in query:
        raise S3Error("NotImplemented", "this POST request is not implemented")
    gw.authorize(identity, bucket, write)
    if not key and method == "PUT" and bucket not in gw.mounts:
        raise S3Error("AccessDenied", "the gateway's buckets are its mounts: no bucket can be created", bucket)
    mount = gw.mount(bucket)
    if not key:
        return await _bucket_operation(gw, mount, bucket, request, query, headers)
    marker = key.endswith("/")
    rel = check_key(key)
    return await _object_operation(gw, mount, bucket, key, rel, marker, request, query, headers, identity)


# -- buckets ------------------------------------------------------------------------------------------
async def _bucket_operation(gw: Gateway, mount: HybridMount, bucket: str, request: Request,
                            query: Mapping[str, str], headers: Mapping[str, str]) -> Response:
    method = request.method
    if method == "HEAD":
        return Response(headers={"x-amz-bucket-region": gw.config.region})
    if method == "GET":
        if "location" in query:
            return _xml(responses.location(gw.config.region))
        if "uploads" in query:
            uploads = await run_in_threadpool(gw.uploads.uploads, bucket, query.get("prefix", ""))
            return _xml(responses.list_uploads(bucket, uploads))
        return await _list_objects(mount, bucket, query)
    if method == "POST" and "delete" in query:
        return await _delete_objects(mount, request)
    if method == "PUT":
        raise S3Error("BucketAlreadyOwnedByYou", "the bucket is a mount of this gateway", bucket)
    raise S3Error("MethodNotAllowed", f"{method} is not allowed on a bucket of the gateway", bucket)


async def _list_objects(mount: HybridMount, bucket: str, query: Mapping[str, str]) -> Response:
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter") or None
    max_keys = _int(query, "max-keys", 1000, 0, 2**31)
    url = query.get("encoding-type", "").lower() == "url"
    if query.get("encoding-type") and not url:
        raise S3Error("InvalidArgument", "invalid encoding type", ArgumentName="encoding-type")
    v2 = query.get("list-type") == "2"
    if query.get("list-type") not in (None, "1", "2"):
        raise S3Error("InvalidArgument", "list-type must be 1 or 2", ArgumentName="list-type")
    page_size = min(max_keys, 1000)
    if v2:
        token = query.get("continuation-token")
        start_after = query.get("start-after") or None
        after_prefix = False
        if token:
            start_after, after_prefix = decode_token(token)
        page = await run_in_threadpool(list_page, mount, prefix, start_after, page_size, delimiter=delimiter,
                                       after_prefix=after_prefix)
        next_token = encode_token(page.items[-1]) if page.truncated and page.items else None
        return _xml(responses.list_objects_v2(
            bucket, page, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
            start_after=query.get("start-after"), token=token, next_token=next_token, url=url,
            owner=query.get("fetch-owner", "").lower() == "true"))
    marker = query.get("marker", "")
    # a v1 marker that is a common prefix returned earlier (NextMarker) skips the keys below it
    after_prefix = bool(delimiter) and marker.endswith("/")
    page = await run_in_threadpool(list_page, mount, prefix, marker or None, page_size, delimiter=delimiter,
                                   after_prefix=after_prefix)
    return _xml(responses.list_objects_v1(bucket, page, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
                                          marker=marker, url=url))


async def _delete_objects(mount: HybridMount, request: Request) -> Response:
    root = await _read_xml(request)
    quiet = (root.findtext("Quiet") or "").strip().lower() == "true"
    keys = [obj.findtext("Key") or "" for obj in root.findall("Object")]
    if len(keys) > 1000:
        raise S3Error("MalformedXML", "at most 1000 keys per DeleteObjects")
    deleted, errors = [], []
    for key in keys:
        try:
            rel = check_key(key)
            if not key.endswith("/"):
                await run_in_threadpool(_delete_quietly, mount, rel)
            deleted.append(key)
        except S3Error as err:
            errors.append((key, err.code, err.message))
        except PermissionError as err:
            errors.append((key, "AccessDenied", str(err)))
        except (StoreError, OSError) as err:
            errors.append((key, "InternalError", str(err)))
    return _xml(responses.delete_result(deleted, errors, quiet))


def _delete_quietly(mount: HybridMount, rel: str) -> None:
    """S3's DeleteObject: a missing key is a success; a directory is not an object (left alone)."""
    try:
        if mount.resolve(rel)[1].is_dir:
            return
        mount.delete(rel)
    except FileNotFoundError:
        pass


# -- objects ------------------------------------------------------------------------------------------
async def _object_operation(gw: Gateway, mount: HybridMount, bucket: str, key: str, rel: str, marker: bool,
                            request: Request, query: Mapping[str, str], headers: Mapping[str, str],
                            identity: Identity) -> Response:
    method = request.method
    upload_id = query.get("uploadId")
    if method in ("GET", "HEAD"):
        if upload_id is not None and method == "GET":
            upload = await run_in_threadpool(gw.uploads.get, bucket, key, upload_id)
            parts = await run_in_threadpool(gw.uploads.parts, upload)
            return _xml(responses.list_parts(upload, parts))
        if marker:
            raise S3Error("NoSuchKey", "the specified key does not exist (a directory)", key)
        return await _get_object(mount, rel, headers, head=method == "HEAD")
    if method == "PUT":
        if upload_id is not None:
            return await _upload_part(gw, bucket, key, query, request, headers, identity)
        if "x-amz-copy-source" in headers:
            return await _copy_object(mount, bucket, rel, headers)
        return await _put_object(gw, mount, bucket, rel, marker, request, headers, identity)
    if method == "POST":
        if "uploads" in query:
            upload = await run_in_threadpool(gw.uploads.create, bucket, key)
            return _xml(responses.initiate_upload(upload))
        return await _complete_upload(gw, mount, bucket, key, rel, upload_id, request)
    if method == "DELETE":
        if upload_id is not None:
            upload = await run_in_threadpool(gw.uploads.get, bucket, key, upload_id)
            await run_in_threadpool(gw.uploads.abort, upload)
            return Response(status_code=204)
        if not marker:
            await run_in_threadpool(_delete_quietly, mount, rel)
        return Response(status_code=204)
    raise S3Error("MethodNotAllowed", f"{method} is not allowed on an object", key)


async def _get_object(mount: HybridMount, rel: str, headers: Mapping[str, str], *, head: bool) -> Response:
    code, meta, first, stream = await run_in_threadpool(_prepare_get, mount, rel, headers, head)
    if stream is None:
        return Response(first, status_code=code, headers=meta)
    return StreamingResponse(body_chunks(first, stream, int(meta["Content-Length"])), status_code=code,
                             headers=meta)


def _prepare_get(mount: HybridMount, rel: str, headers: Mapping[str, str],
                 head: bool) -> tuple[int, dict[str, str], bytes, BinaryIO | None]:
    """A GET's or HEAD's status, headers, and its body's first chunk (the whole body when it fits, then no
    stream), in one thread hand-off: the lookup, the open and the first read."""
    version = current_version(mount, rel)
    info = version.info
    meta = {
        "ETag": version.etag,
        "Last-Modified": http_date(info.mtime),
        "Accept-Ranges": "bytes",
        "Content-Type": "application/octet-stream",
    }
    status = check_conditions(headers, version)
    if status == 304:
        return 304, {k: v for k, v in meta.items() if k != "Content-Type"}, b"", None
    span = parse_range(headers.get("range"), info.size)
    start, end = span if span is not None else (0, info.size)
    if span is not None:
        meta["Content-Range"] = f"bytes {start}-{end - 1}/{info.size}"
    elif headers.get("x-amz-checksum-mode", "").lower() == "enabled":
        meta.update(checksum_headers(info))  # of the whole object: never with a range, as S3
    meta["Content-Length"] = str(end - start)
    code = 206 if span is not None else 200
    if head or end == start:
        return code, meta, b"", None
    first, stream = first_chunk(version, start, end - start)
    return code, meta, first, stream


class KeyLocks:
    """One lock per key being written, so that a write with ``If-None-Match: *`` checks and writes as one step
    against every other write through this gateway (writers elsewhere on the mount are not seen)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], list] = {}  # key -> [lock, users]

    @contextmanager
    def hold(self, bucket: str, rel: str) -> Iterator[None]:
        with self._guard:
            held = self._locks.setdefault((bucket, rel), [threading.Lock(), 0])
            held[1] += 1
        try:
            with held[0]:
                yield
        finally:
            with self._guard:
                held[1] -= 1
                if not held[1]:
                    del self._locks[(bucket, rel)]


def _if_absent(headers: Mapping[str, str]) -> bool:
    return headers.get("if-none-match", "").strip() == "*"


def _refuse_existing(mount: HybridMount, rel: str) -> None:
    if mount.exists(rel):
        raise S3Error("PreconditionFailed", "the key exists (If-None-Match: *)", Condition="If-None-Match")


def _write(gw: Gateway, bucket: str, mount: HybridMount, rel: str, body: Spooled, if_absent: bool) -> Any:
    with gw.key_locks.hold(bucket, rel):
        if if_absent:
            _refuse_existing(mount, rel)
        with open(body.path, "rb") as stream:
            mount.write(rel, stream, size_hint=body.size)
        return mount.resolve(rel)[1]


async def _put_object(gw: Gateway, mount: HybridMount, bucket: str, rel: str, marker: bool, request: Request,
                      headers: Mapping[str, str], identity: Identity) -> Response:
    body = await spool(request.stream(), headers, identity, gw.spool_dir, max_size=MAX_PUT)
    try:
        if marker:
            if body.size:
                raise S3Error("InvalidArgument", "a key ending in '/' is a directory: its body must be empty")
            await run_in_threadpool(mount.mkdir, rel)
            return Response(headers={"ETag": f'"{body.md5}"'})
        info = await run_in_threadpool(_write, gw, bucket, mount, rel, body, _if_absent(headers))
    finally:
        body.remove()
    extra = {f"x-amz-checksum-{algorithm}": value for algorithm, value in body.checksums.items()}
    return Response(headers={"ETag": etag_of(info), **extra})


async def _copy_object(mount: HybridMount, bucket: str, rel: str, headers: Mapping[str, str]) -> Response:
    source = unquote(headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
    src_bucket, _, src_key = source.partition("/")
    if src_bucket != bucket:
        raise S3Error("NotImplemented", "the gateway copies within a bucket (one mount) only", source)
    src_rel = check_key(src_key)
    if src_rel == rel:
        raise S3Error("InvalidRequest", "this copy request is illegal because it would copy an object onto itself")

    def copy():
        version = current_version(mount, src_rel)
        if headers.get("x-amz-copy-source-if-match") and \
                headers["x-amz-copy-source-if-match"].strip('" ') != version.etag.strip('"'):
            raise S3Error("PreconditionFailed", "x-amz-copy-source-if-match did not hold")
        with version.open() as stream:
            mount.write(rel, stream, size_hint=version.info.size)
        return mount.resolve(rel)[1]

    info = await run_in_threadpool(copy)
    return _xml(responses.copy_result(etag_of(info), info.mtime))


async def _upload_part(gw: Gateway, bucket: str, key: str, query: Mapping[str, str], request: Request,
                       headers: Mapping[str, str], identity: Identity) -> Response:
    if "x-amz-copy-source" in headers:
        raise S3Error("NotImplemented", "UploadPartCopy is not implemented by the gateway")
    number = _int(query, "partNumber", 0, 1, 10_000)
    upload = await run_in_threadpool(gw.uploads.get, bucket, key, query["uploadId"])
    body = await spool(request.stream(), headers, identity, gw.spool_dir, max_size=MAX_PUT)
    part = await run_in_threadpool(gw.uploads.add_part, upload, number, body)
    extra = {f"x-amz-checksum-{algorithm}": value for algorithm, value in body.checksums.items()}
    return Response(headers={"ETag": part.etag, **extra})


async def _complete_upload(gw: Gateway, mount: HybridMount, bucket: str, key: str, rel: str,
                           upload_id: str | None, request: Request) -> Response:
    if upload_id is None:
        raise S3Error("InvalidRequest", "POST on an object needs ?uploads or ?uploadId")
    upload = await run_in_threadpool(gw.uploads.get, bucket, key, upload_id)
    root = await _read_xml(request)
    wanted = []
    for part in root.findall("Part"):
        try:
            wanted.append((int(part.findtext("PartNumber") or ""), part.findtext("ETag") or ""))
        except ValueError:
            raise S3Error("MalformedXML", "a PartNumber is not a number") from None

    def complete():
        with gw.key_locks.hold(bucket, rel):
            if if_absent:
                _refuse_existing(mount, rel)  # the upload stays open, as S3 leaves it
            claimed, paths, size = gw.uploads.claim(upload, wanted)
            try:
                with PartsReader(paths) as stream:
                    mount.write(rel, stream, size_hint=size)
            except BaseException:
                gw.uploads.release(upload, claimed)
                raise
            gw.uploads.discard(claimed)
            return mount.resolve(rel)[1]

    if_absent = _if_absent(request.headers)

    info = await run_in_threadpool(complete)
    return _xml(responses.complete_upload(bucket, key, f"/{bucket}/{key}", etag_of(info)))
