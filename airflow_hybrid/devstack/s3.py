"""An S3 server on loopback: moto's WSGI application behind the devstack's keep-alive server and shaper.

Buckets are created on demand: :meth:`S3Server.ensure_bucket`, ``POST /_devstack/buckets/<name>``, or
automatically on the first object write to a missing bucket (``auto_create_buckets``).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from airflow_hybrid.devstack import processes
from airflow_hybrid.devstack.shaping import ControlApp, LinkShaper, RequestStats, Shaping, ShapingMiddleware
from airflow_hybrid.devstack.wsgi import WSGIServer

DEFAULT_REGION = "us-east-1"


def s3_error_body(status: int, message: str) -> tuple[str, bytes]:
    """S3's error document for an injected fault: ``SlowDown`` for 503, ``InternalError`` otherwise."""
    if status == 503:
        code, text = "SlowDown", "Please reduce your request rate."
    else:
        code, text = "InternalError", "We encountered an internal error. Please try again."
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{text} ({escape(message)})</Message>"
        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId><HostId>devstack</HostId></Error>"
    )
    return "application/xml", body.encode()


def _bucket_and_key(environ: dict) -> tuple[str, str]:
    path = environ.get("PATH_INFO", "")
    bucket, _, key = path.lstrip("/").partition("/")
    return bucket, key


def s3_operation(environ: dict) -> str:
    """The S3 API operation of a path-style request (``GetObject``, ``UploadPart``, ``ListObjectsV2``...)."""
    method = environ.get("REQUEST_METHOD", "GET").upper()
    bucket, key = _bucket_and_key(environ)
    query = {name for name, _ in parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)}
    copy = "HTTP_X_AMZ_COPY_SOURCE" in environ
    if not bucket:
        return "ListBuckets"
    if not key:
        if method == "GET":
            if "uploads" in query:
                return "ListMultipartUploads"
            if "location" in query:
                return "GetBucketLocation"
            if "versions" in query:
                return "ListObjectVersions"
            return "ListObjectsV2" if "list-type" in query else "ListObjects"
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return {"HEAD": "HeadBucket", "PUT": "CreateBucket", "DELETE": "DeleteBucket"}.get(
            method, f"Bucket{method}"
        )
    if method == "GET":
        if "uploadId" in query:
            return "ListParts"
        if "tagging" in query:
            return "GetObjectTagging"
        return "GetObject"
    if method == "HEAD":
        return "HeadObject"
    if method == "PUT":
        if "partNumber" in query and "uploadId" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        if "tagging" in query:
            return "PutObjectTagging"
        return "CopyObject" if copy else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        if "uploadId" in query:
            return "CompleteMultipartUpload"
        return "PostObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
    return f"Object{method}"


def _preserve_metadata_header_names(environ: dict, headers: Any) -> None:
    """What moto's request handler adds: original spelling of ``x-amz-meta-*`` headers with underscores."""
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    dashed = {environ_key_for_header(name) for name in headers if "_" not in name}
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        if not should_preserve_original_header_name(name):
            continue
        key = environ_key_for_header(name)
        if key in dashed:
            continue
        names.setdefault(key, name)
        values.setdefault(key, []).append(value.replace("\r\n", ""))
    for key, key_values in values.items():
        environ[key] = ",".join(key_values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names


class S3Server(processes.Service):
    """moto's S3 on ``host:port`` (0 picks a free port), shaped by ``shaper`` (the ``s3`` link)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        region: str = DEFAULT_REGION,
        auto_create_buckets: bool = True,
        shaper: LinkShaper | None = None,
        control_app: Callable | None = None,
    ) -> None:
        self.host = host
        self.region = region
        self.auto_create_buckets = auto_create_buckets
        self.shaper = shaper or LinkShaper("s3")
        self.stats = RequestStats()
        self.control_app = control_app or ControlApp(
            Shaping({"s3": self.shaper}),
            stats=lambda: {"s3": self.stats.snapshot()},
            reset_stats=self.stats.reset,
            actions={"buckets": lambda body: {"bucket": self.ensure_bucket(body["name"])}},
        )
        self._port = port
        self._server: WSGIServer | None = None
        self._moto_app: Any = None
        self._bucket_lock = threading.Lock()

    # -- buckets --------------------------------------------------------------------------------------
    def _backend(self) -> Any:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends
        from moto.utilities.utils import get_partition

        return s3_backends[DEFAULT_ACCOUNT_ID][get_partition(self.region)]

    def ensure_bucket(self, name: str) -> str:
        """Create bucket ``name`` unless it exists; return the name."""
        from moto.s3.exceptions import MissingBucket

        if not name or "/" in name:
            raise ValueError(f"invalid bucket name {name!r}")
        backend = self._backend()
        with self._bucket_lock:
            try:
                backend.get_bucket(name)
            except MissingBucket:
                backend.create_bucket(name, self.region)
        return name

    # -- WSGI -----------------------------------------------------------------------------------------
    def _app(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if self.auto_create_buckets and environ.get("REQUEST_METHOD", "").upper() in ("PUT", "POST"):
            bucket, key = _bucket_and_key(environ)
            if bucket and key:
                self.ensure_bucket(bucket)
        return self._moto_app(environ, start_response)

    def start(self) -> S3Server:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._moto_app = DomainDispatcherApplication(create_backend_app)
        app = ShapingMiddleware(
            self._app,
            self.shaper,
            classify=s3_operation,
            error_body=s3_error_body,
            stats=self.stats,
            control_app=lambda environ, start_response: self.control_app(environ, start_response),
        )
        self._server = WSGIServer(self.host, self._port, app, environ_hook=_preserve_metadata_header_names)
        self._server.start("s3-server")
        self._warm_up()
        return self

    def _warm_up(self) -> None:
        """Answer one ListBuckets in process, past the shaper and the statistics: moto builds its S3 app on the
        first request (~0.25 s), a cost no real S3 makes its first client pay."""
        from werkzeug.test import EnvironBuilder

        auth = f"AWS4-HMAC-SHA256 Credential=devstack/20260101/{self.region}/s3/aws4_request, SignedHeaders=host, Signature=0"
        environ = EnvironBuilder(path="/", base_url=self.endpoint_url, headers={"Authorization": auth}).get_environ()
        for _ in self._moto_app(environ, lambda status, headers, exc_info=None: None):
            pass

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("S3 server is not started")
        return self._server.port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"
