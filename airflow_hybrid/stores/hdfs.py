"""HDFS through the WebHDFS REST API, with the connection from Airflow's ``WebHDFSHook``.

The hook gives an HdfsCLI client whose :class:`requests.Session` carries authentication (``user.name``,
Kerberos SPNEGO) and TLS settings; this store speaks WebHDFS through that session so it can page
listings (``LISTSTATUS_BATCH``), stream ranged reads (``OPEN`` with ``offset``/``length``, following the
data-node redirect and resuming after a dropped connection), stream writes (``CREATE`` two-step with a
chunked body) and retry idempotent calls with backoff.

Writes go to a hidden temporary name (``.hybrid-tmp-*``) next to the target and are renamed into
place with ``RENAME`` + ``renameoptions=OVERWRITE`` (HDFS ``rename2``), so readers never see a
partial file.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import logging
import os
import posixpath
import random
import re
import struct
import threading
import time
import urllib.request
import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO
from urllib.parse import quote, urlparse

import google_crc32c
import requests
import urllib3

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import (
    CHUNK_SIZE,
    Checksum,
    FileInfo,
    Store,
    StoreError,
    StoreFeatures,
    normalize_path,
)
from airflow_hybrid.stores.kerberos import KerberosAuthError, KerberosLogin
from airflow_hybrid.values import parse_bool, parse_duration, parse_int, parse_size, parse_verify

log = logging.getLogger(__name__)

#: Prefix of the temporary files a write creates next to its target (hidden from listings).
HDFS_TMP_PREFIX = ".hybrid-tmp-"
DEFAULT_BLOCK_SIZE = 128 * 1024 * 1024
BYTES_PER_CRC = 512
#: HDFS's limit on one path component (``dfs.namenode.fs-limits.max-component-length``), in UTF-8 bytes.
MAX_NAME_BYTES = 255
#: Sent on every request: clusters with ``dfs.webhdfs.rest-csrf.enabled`` refuse writes without it.
CSRF_HEADER = "X-XSRF-HEADER"
_CRC_FUNCTIONS = {"CRC32C": google_crc32c.value, "CRC32": zlib.crc32}
#: ``FsServerDefaults.checksumType`` (Hadoop's ``DataChecksum.Type`` ids).
_CHECKSUM_TYPES = {1: "CRC32", 2: "CRC32C"}
_MD5_OF_CRC = re.compile(r"MD5-of-(\d+)MD5-of-(\d+)(CRC32C?)")

_RETRIABLE_REMOTE = {"RetriableException", "StandbyException", "SafeModeException"}
#: Data-node answers to ``CREATE`` given before the file exists (nothing to remove after them).
_CREATE_REFUSALS = _RETRIABLE_REMOTE | {
    "AccessControlException",
    "FileAlreadyExistsException",
    "ParentNotDirectoryException",
    "NSQuotaExceededException",
    "PathComponentTooLongException",
    "InvalidPathException",
}
_TRANSPORT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


class HdfsFileChecksum:
    """HDFS's default file checksum (``MD5-of-<n>MD5-of-<bytes>CRC32C``) computed over a byte stream.

    HDFS takes a CRC of every ``bytes_per_crc`` chunk (``dfs.bytes-per-checksum``, CRC32C or CRC32 by
    ``dfs.checksum.type``), an MD5 of each block's CRCs, then an MD5 of the block MD5s as held in Java's
    growable buffer (zero-padded to 32, 64, 128... bytes). ``<n>`` is the number of CRCs per block for files
    of more than one block, else 0. The result equals what ``GETFILECHECKSUM`` returns for the same bytes
    written with the same block size (the file's own ``blockSize``) and bytes per CRC, so a copy can be
    verified against HDFS without reading it back. Memory stays constant whatever the length.
    """

    def __init__(
        self, block_size: int = DEFAULT_BLOCK_SIZE, bytes_per_crc: int = BYTES_PER_CRC, crc: str = "CRC32C"
    ) -> None:
        if bytes_per_crc <= 0 or block_size <= 0 or block_size % bytes_per_crc:
            raise ValueError(f"block size {block_size} must be a positive multiple of {bytes_per_crc}")
        if crc not in _CRC_FUNCTIONS:
            raise ValueError(
                f"unsupported HDFS checksum type {crc!r} (expected one of {sorted(_CRC_FUNCTIONS)})"
            )
        self.block_size = block_size
        self.bytes_per_crc = bytes_per_crc
        self.crc = crc
        self.length = 0
        self._crc = _CRC_FUNCTIONS[crc]
        self._pending = b""  # bytes of an incomplete chunk
        self._block_crcs = hashlib.md5()  # noqa: S324 - HDFS's algorithm, not a security use
        self._block_filled = 0
        self._file_md5 = hashlib.md5()  # noqa: S324 - MD5 of the block MD5s, fed as blocks complete
        self._blocks = 0

    @property
    def params(self) -> tuple[int, int, str]:
        """``(block_size, bytes_per_crc, crc)``: what the result depends on besides the bytes."""
        return self.block_size, self.bytes_per_crc, self.crc

    def update(self, data: bytes) -> None:
        if not data:
            return
        self.length += len(data)
        data = self._pending + bytes(data) if self._pending else bytes(data)
        step = self.bytes_per_crc
        crc = self._crc
        pos, end = 0, len(data) - len(data) % step
        while pos < end:
            take = min(end - pos, self.block_size - self._block_filled)
            crcs = [crc(data[o : o + step]) for o in range(pos, pos + take, step)]
            self._block_crcs.update(struct.pack(f">{len(crcs)}I", *crcs))
            self._block_filled += take
            pos += take
            if self._block_filled == self.block_size:
                self._file_md5.update(self._block_crcs.digest())
                self._blocks += 1
                self._block_crcs = hashlib.md5()  # noqa: S324
                self._block_filled = 0
        self._pending = data[end:]

    def result(self) -> Checksum:
        """The checksum as ``GETFILECHECKSUM`` reports it: algorithm name and the hex of its bytes."""
        file_md5, blocks = self._file_md5.copy(), self._blocks
        if self._pending or self._block_filled:
            crcs = self._block_crcs.copy()
            if self._pending:
                crcs.update(struct.pack(">I", self._crc(self._pending)))
            file_md5.update(crcs.digest())
            blocks += 1
        if not blocks:  # an empty file has no block; HDFS answers a fixed "magic" value
            digest = hashlib.md5(bytes(32)).digest()  # noqa: S324
            return Checksum("MD5-of-0MD5-of-0CRC32", (struct.pack(">iq", 0, 0) + digest).hex())
        capacity = 32  # Java's DataOutputBuffer: the whole backing array is hashed, padding included
        while capacity < 16 * blocks:
            capacity *= 2
        file_md5.update(bytes(capacity - 16 * blocks))
        crc_per_block = self.block_size // self.bytes_per_crc if blocks > 1 else 0
        algorithm = f"MD5-of-{crc_per_block}MD5-of-{self.bytes_per_crc}{self.crc}"
        value = struct.pack(">iq", self.bytes_per_crc, crc_per_block) + file_md5.digest()
        return Checksum(algorithm, value.hex())

    @classmethod
    def of_stream(
        cls,
        stream: BinaryIO,
        block_size: int = DEFAULT_BLOCK_SIZE,
        bytes_per_crc: int = BYTES_PER_CRC,
        crc: str = "CRC32C",
    ) -> Checksum:
        summer = cls(block_size, bytes_per_crc, crc)
        while chunk := stream.read(CHUNK_SIZE):
            summer.update(chunk)
        return summer.result()

    @staticmethod
    def params_of(checksum: Checksum) -> tuple[int, str] | None:
        """``(bytes_per_crc, crc)`` of a ``GETFILECHECKSUM`` answer of this kind; ``None`` for another kind
        (e.g. ``COMPOSITE-CRC32C``) or an empty file (whose checksum does not depend on them)."""
        match = _MD5_OF_CRC.fullmatch(checksum.algorithm)
        if not match or match.group(2) == "0":
            return None
        return int(match.group(2)), match.group(3)


class WebHdfsRemoteError(StoreError):
    """A WebHDFS ``RemoteException`` (or an HTTP error without one) that maps to no builtin error."""

    def __init__(self, message: str, status: int, exception: str | None, remote_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.exception = exception
        self.remote_message = remote_message


def _as_bool(value: Any, default: bool, option: str) -> bool:
    """A boolean option (``true``/``false``, ``yes``/``no``, ``on``/``off``, ``1``/``0``); ``None``: ``default``."""
    return default if value is None else parse_bool(value, option)


def _tls_extras(extras: dict, conn_id: str) -> dict:
    """``extras`` with ``use_ssl`` and ``verify`` read once, by our rules, for us and for ``WebHDFSHook``.

    The provider turns TLS on for any non-empty ``use_ssl`` (``"false"`` too) and leaves it unverified
    without ``verify``; handing it the values we decided keeps both on the same connection settings.
    """
    use_ssl = _as_bool(extras.get("use_ssl"), False, f"connection {conn_id!r}: extra use_ssl")
    verify = parse_verify(extras.get("verify", True), f"connection {conn_id!r}: extra verify")
    if use_ssl and verify is False:
        log.warning(
            "WebHDFS connection %r: TLS certificate verification is OFF (extra verify=false); the namenode's and "
            "data nodes' identity is not checked. Set verify to true or to a CA bundle path.",
            conn_id,
        )
    return {**extras, "use_ssl": use_ssl, "verify": verify}


def _netrc_exists() -> bool:
    """Whether requests could find a netrc file (``$NETRC``, ``~/.netrc``, ``~/_netrc``)."""
    candidates = [os.environ["NETRC"]] if os.environ.get("NETRC") else ["~/.netrc", "~/_netrc"]
    return any(os.path.exists(os.path.expanduser(path)) for path in candidates)


def _connect_failed(error: BaseException) -> bool:
    """Whether a transport error happened before the request reached the server (safe to retry)."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError) or isinstance(
        error, (requests.exceptions.ConnectTimeout, ConnectionRefusedError)
    )


def _describe(error: BaseException | None) -> str:
    if isinstance(error, WebHdfsRemoteError):
        return " ".join(filter(None, [f"HTTP {error.status}", error.exception])) + f": {error.remote_message}"
    return f"{type(error).__name__}: {error}"


def _temp_name(name: str) -> str:
    """``.hybrid-tmp-<uuid>-<name>``, cut to HDFS's 255-byte name limit without splitting a character."""
    raw = f"{HDFS_TMP_PREFIX}{uuid.uuid4().hex}-{name}".encode()
    return raw[:MAX_NAME_BYTES].decode("utf-8", "ignore")


def _rewind_point(stream: Any) -> int | None:
    """The position ``stream`` can be rewound to for another attempt; ``None`` if it cannot seek."""
    try:
        return stream.tell() if stream.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


class _DataNodeFailure(Exception):
    """The data-node step of ``CREATE`` failed with ``error`` (internal to :meth:`HdfsStore.write`)."""

    def __init__(self, error: Exception, *, retriable: bool, maybe_created: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retriable = retriable
        self.maybe_created = maybe_created


class _WebHdfsReader(io.RawIOBase):
    """Streamed, ranged read of one file; reopens at the current offset after a dropped connection."""

    def __init__(self, store: HdfsStore, rel: str, offset: int, length: int | None) -> None:
        super().__init__()
        if offset < 0:
            raise ValueError(f"{store.uri(rel)}: negative read offset {offset}")
        if length is not None and length < 0:
            raise ValueError(f"{store.uri(rel)}: negative read length {length}")
        self._store = store
        self._rel = rel
        self._pos = offset
        self._end = None if length is None else offset + length
        self._response: requests.Response | None = None
        self._left: int | None = None
        self._resumes = 0
        if length == 0:
            self._check_file()  # nothing to read, but the file must exist, as for open()
        self._open()

    def _open(self) -> None:
        if self._end is not None and self._pos >= self._end:
            self._response, self._left = None, 0
            return
        length = None if self._end is None else self._end - self._pos
        try:
            self._response = self._store._call(
                "GET", self._rel, "OPEN", params={"offset": self._pos or None, "length": length}, stream=True
            )
        except WebHdfsRemoteError as error:
            # Hadoop refuses OPEN at or past the end of a file (403 IOException "Offset=... out of the
            # range"; EOFException "Cannot seek after EOF" for an empty one); a Python file reads b"".
            if error.exception not in ("IOException", "EOFException") or self._pos < self._check_file().size:
                raise
            self._response, self._left = None, 0
            return
        size = self._response.headers.get("Content-Length")
        self._left = int(size) if size is not None else None

    def _check_file(self) -> FileInfo:
        info = self._store.info(self._rel)
        if info.is_dir:
            raise IsADirectoryError(f"{self._store.uri(self._rel)} is a directory")
        return info

    def _resume(self, error: BaseException) -> None:
        self._resumes += 1
        if self._response is not None:
            self._response.close()
        if self._resumes >= self._store.max_attempts:
            raise StoreError(
                f"{self._store.uri(self._rel)}: read failed at offset {self._pos} after "
                f"{self._resumes} attempts: {error}"
            ) from error
        log.warning(
            "read of %s interrupted at offset %d (%s); resuming", self._store.uri(self._rel), self._pos, error
        )
        self._store._backoff(self._resumes)
        self._open()

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed file")
        if size is None or size < 0:
            return self.readall()
        while True:
            if self._response is None:
                if self._left == 0:
                    return b""
                self._open()
                continue
            want = size if self._left is None else min(size, self._left)
            if want == 0:
                return b""
            try:
                data = self._response.raw.read(want)
            except _TRANSPORT_ERRORS as error:
                self._resume(error)
                continue
            if not data and self._left:
                self._resume(ConnectionError(f"connection closed with {self._left} bytes unread"))
                continue
            self._pos += len(data)
            if self._left is not None:
                self._left -= len(data)
            if not data:
                self._left = 0
            return data

    def readall(self) -> bytes:
        return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            size = self._check_file().size
            offset += size if self._end is None else min(size, self._end)
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        if offset != self._pos:
            if self._response is not None:
                self._response.close()
            self._response, self._left = None, None
            self._pos = offset
            if self._end is not None and offset >= self._end:
                self._left = 0
        return self._pos

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None
        super().close()


class HdfsStore(Store):
    """Files under an HDFS directory, reached through WebHDFS with an Airflow ``webhdfs`` connection.

    :param root_uri: ``hdfs://[nameservice]/path`` (``webhdfs://`` also accepted); the path is the root.
    :param webhdfs_conn_id: Airflow connection (host may list HA namenodes ``nn1,nn2``; extras
        ``use_ssl``, ``verify`` (default true), ``cert``/``key``; Kerberos: ``kerberos_principal``,
        ``kerberos_keytab``, ``kerberos_ccache``, ``krb5_conf``, ``auth: kerberos``, and for SPNEGO
        ``mutual_auth``, ``max_concurrency``, ``hostname_override``, ``service``; see
        :mod:`airflow_hybrid.stores.kerberos`).
    :param options: ``max_attempts`` (5), ``retry_backoff`` (0.2 s, doubled per attempt),
        ``retry_backoff_max`` (5 s), ``timeout`` (seconds, or ``[connect, read]``), ``chunk_size``,
        ``proxy_user``, ``verify_checksum`` (check each write with ``GETFILECHECKSUM`` before it is
        committed), ``replication``, ``blocksize``, ``permission`` (for created files).
    :param client: an HdfsCLI client to use instead of the connection's (tests, custom auth).
    """

    scheme = "hdfs"

    def __init__(
        self,
        root_uri: str,
        webhdfs_conn_id: str = "webhdfs_default",
        options: dict | None = None,
        client: Any = None,
    ) -> None:
        parsed = urlparse(root_uri)
        if parsed.scheme not in ("hdfs", "webhdfs", "swebhdfs"):
            raise ValueError(f"HDFS store needs an hdfs:// URI, got {root_uri!r}")
        rel_root = normalize_path(parsed.path)
        self.root = f"/{rel_root}"
        super().__init__(f"{parsed.scheme}://{parsed.netloc}/{rel_root}")
        self.webhdfs_conn_id = webhdfs_conn_id
        self.options = dict(options or {})
        opts = self.options
        self._parse_options(opts)
        self._client = client
        self._kerberos: KerberosLogin | None = None
        self._urls: deque[str] = deque()
        self._batch_listing = True
        self._layout: tuple[int, int, str] | None = None  # block size, bytes per CRC, CRC of new files
        self._lock = threading.Lock()

    def _parse_options(self, opts: dict) -> None:
        """Read the store options (sizes, durations and booleans in :mod:`airflow_hybrid.values`' grammar)."""

        def given(key: str, default: Any) -> Any:
            value = opts.get(key)
            return default if value is None else value

        self.max_attempts = parse_int(given("max_attempts", 5), "HDFS option max_attempts", minimum=1, maximum=1000)
        self.retry_backoff = parse_duration(given("retry_backoff", 0.2), "HDFS option retry_backoff")
        self.retry_backoff_max = parse_duration(given("retry_backoff_max", 5.0), "HDFS option retry_backoff_max")
        timeout = given("timeout", (10.0, 300.0))
        if isinstance(timeout, (list, tuple)):
            if len(timeout) != 2:
                raise HybridConfigError(f"HDFS option timeout: expected seconds or [connect, read], got {timeout!r}")
            self.timeout = tuple(parse_duration(t, "HDFS option timeout") for t in timeout)
        else:
            self.timeout = parse_duration(timeout, "HDFS option timeout")
        self.chunk_size = parse_size(given("chunk_size", 4 * CHUNK_SIZE), "HDFS option chunk_size")
        if not 0 < self.chunk_size <= 1024 * 1024 * 1024:
            raise HybridConfigError(f"HDFS option chunk_size: {self.chunk_size} is not between 1 B and 1 GiB")
        self.verify_checksum = _as_bool(opts.get("verify_checksum"), False, "HDFS option verify_checksum")
        if opts.get("replication") is not None:
            opts["replication"] = parse_int(opts["replication"], "HDFS option replication", minimum=1, maximum=32767)
        if opts.get("blocksize") is not None:
            opts["blocksize"] = parse_size(opts["blocksize"], "HDFS option blocksize")
            if not opts["blocksize"]:
                raise HybridConfigError("HDFS option blocksize: must be positive")
        permission = opts.get("permission")
        text = permission if isinstance(permission, str) else None
        if isinstance(permission, int) and not isinstance(permission, bool) and 0 <= permission < 10_000:
            text = str(permission)
        if permission is not None and not (text and re.fullmatch(r"[01]?[0-7]{1,3}", text)):
            raise HybridConfigError(f"HDFS option permission: expected an octal mode such as 644, got {permission!r}")
        proxy_user = opts.get("proxy_user")
        if proxy_user is not None and not isinstance(proxy_user, str):
            raise HybridConfigError(f"HDFS option proxy_user: expected a user name, got {proxy_user!r}")

    # -- connection ---------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The HdfsCLI client (``InsecureClient`` or ``KerberosClient``), connected on first use."""
        if self._client is None or not self._urls:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
                if not self._urls:
                    self._urls = deque(self._client.urls)
                    self._tune_session(self._client._session)
        return self._client

    @property
    def session(self) -> requests.Session:
        """The client's authenticated session (``user.name`` or SPNEGO, TLS settings)."""
        return self.client._session

    def _connect(self) -> Any:
        from airflow.providers.apache.hdfs.hooks.webhdfs import WebHDFSHook

        hook = WebHDFSHook(webhdfs_conn_id=self.webhdfs_conn_id, proxy_user=self.options.get("proxy_user"))
        try:
            conn = hook.get_connection(self.webhdfs_conn_id)
        except Exception as error:
            raise StoreError(
                f"{self.root_uri}: WebHDFS connection {self.webhdfs_conn_id!r} not found: {error}"
            ) from error
        if not conn.host:
            raise StoreError(f"{self.root_uri}: connection {self.webhdfs_conn_id!r} has no namenode host")
        extras = _tls_extras(conn.extra_dejson, self.webhdfs_conn_id)
        namenodes = [host.strip() for host in conn.host.split(",") if host.strip()]
        kerberos = KerberosLogin.from_extras(self.webhdfs_conn_id, extras)
        if kerberos is not None and kerberos.named:
            kerberos.login()  # a wrong principal, a missing keytab, an expired ticket: a clear error, here
        self._kerberos = kerberos
        # Never hook.get_conn(): it re-reads the raw extras, where the provider takes use_ssl "false" as on.
        client = self._connect_secured(hook, conn, namenodes, extras, kerberos)
        if client is None:
            raise StoreError(
                f"{self.root_uri}: no WebHDFS namenode answered for connection {self.webhdfs_conn_id!r} "
                f"(tried {', '.join(f'{nn}:{conn.port}' for nn in namenodes)})"
            )
        chosen = urlparse(client.url)
        bases = [
            chosen._replace(netloc=f"{nn}:{conn.port}" if conn.port else nn).geturl() for nn in namenodes
        ]
        if client.url in bases:
            bases.remove(client.url)
        client.urls = [client.url, *bases]
        return client

    def _connect_secured(
        self, hook: Any, conn: Any, namenodes: list[str], extras: dict, kerberos: KerberosLogin | None
    ) -> Any:
        """Like ``WebHDFSHook.get_conn`` but with TLS verification on before the first request, and Kerberos
        from the connection's own login (``KerberosClient``, SPNEGO to the namenodes only)."""
        from hdfs.util import HdfsError

        for namenode in namenodes:
            client = hook._get_client(namenode, conn.port, conn.login, conn.password, conn.schema, extras)
            client._session.verify = parse_verify(extras.get("verify", True), "verify")
            if kerberos is not None:
                from hdfs.ext.kerberos import KerberosClient

                session = client._session
                session.params.pop("user.name", None)
                client = KerberosClient(client.url, session=session, proxy=self.options.get("proxy_user"))
                session.auth = kerberos.auth(
                    {f"{nn}:{conn.port}" if conn.port else nn for nn in namenodes},
                    **{
                        key: extras[key]
                        for key in ("mutual_auth", "max_concurrency", "hostname_override", "service")
                        if key in extras
                    },
                )
            session = client._session
            try:  # like client.status("/"), but with the connection's TLS verification (see _call)
                probe = session.get(
                    self._url(client.url, "/"),
                    params={"op": "GETFILESTATUS"},
                    timeout=self.timeout,
                    verify=session.verify,
                )
                if probe.status_code == 401:
                    self._refused(kerberos, probe, namenode)
                if probe.status_code >= 400:
                    raise HdfsError(f"HTTP {probe.status_code}: {probe.text[:200]}")
            except (HdfsError, *_TRANSPORT_ERRORS) as error:
                log.warning("namenode %s of connection %s failed: %s", namenode, self.webhdfs_conn_id, error)
                continue
            return client
        return None

    def _refused(self, kerberos: KerberosLogin | None, response: requests.Response, namenode: str) -> None:
        """A namenode's 401 at connect time: Kerberos refused, or needed but not configured."""
        detail = f"HTTP 401 from {namenode}: {response.text[:200].strip()}"
        if kerberos is not None:
            raise kerberos.refused(detail)
        if "negotiate" in response.headers.get("WWW-Authenticate", "").lower():
            raise KerberosAuthError(
                f"WebHDFS connection {self.webhdfs_conn_id!r}: namenode {namenode} requires Kerberos (SPNEGO), "
                "but the connection has none: set the extras kerberos_principal and kerberos_keytab"
            )

    def _tune_session(self, session: requests.Session) -> None:
        session.headers.setdefault(CSRF_HEADER, "airflow-hybrid")  # any value will do
        # Connections kept per host (namenode, each data node): more than the threads that share this store.
        adapter = requests.adapters.HTTPAdapter(pool_connections=8, pool_maxsize=64, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # With trust_env, requests scans the environment for proxy settings and reads ~/.netrc on every
        # request and redirect (about a millisecond each with Airflow's large environment, as much CPU as
        # the rest of a small file's request). With no proxy variable and no netrc file there is nothing to
        # find; TLS verification is passed explicitly on every call, so the CA bundle variables play no part.
        if session.trust_env and not urllib.request.getproxies() and not _netrc_exists():
            session.trust_env = False

    def close(self) -> None:
        if self._client is not None:
            self._client._session.close()

    # -- raw WebHDFS calls --------------------------------------------------------------------------
    def _abs(self, rel: str) -> str:
        rel = normalize_path(rel)
        return posixpath.join(self.root, rel) if rel else self.root

    def _url(self, base: str, hdfs_path: str) -> str:
        return f"{base.rstrip('/')}/webhdfs/v1{quote(hdfs_path, safe='/')}"

    def _backoff(self, attempt: int) -> None:
        delay = min(self.retry_backoff_max, self.retry_backoff * 2 ** (attempt - 1))
        time.sleep(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter

    def _call(
        self,
        method: str,
        rel: str,
        op: str,
        *,
        params: dict | None = None,
        idempotent: bool = True,
        stream: bool = False,
        allow_redirects: bool = True,
        hdfs_path: str | None = None,
    ) -> requests.Response:
        """One WebHDFS call on ``rel`` (or an absolute ``hdfs_path``), retried when that is safe."""
        client = self.client
        query = {"op": op}
        query.update({key: value for key, value in (params or {}).items() if value is not None})
        if client._proxy:
            query["doas"] = client._proxy
        target = hdfs_path or self._abs(rel)
        last_error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = client._session.request(
                    method,
                    self._url(self._urls[0], target),
                    params=query,
                    headers={"Content-Type": "application/octet-stream"},
                    timeout=self.timeout,
                    stream=stream,
                    allow_redirects=allow_redirects,
                    # Explicit, or requests lets REQUESTS_CA_BUNDLE override the connection's "verify".
                    verify=client._session.verify,
                )
            except _TRANSPORT_ERRORS as error:
                last_error = error
                not_sent = _connect_failed(error)
                if not_sent and len(self._urls) > 1:
                    self._urls.rotate(-1)  # namenode down: fail over
                if not (idempotent or not_sent) or attempt == self.max_attempts:
                    break
            else:
                if response.status_code < 400:
                    return response
                error = self._remote_error(response, rel, op, target)
                if error.exception == "StandbyException" and len(self._urls) > 1:
                    self._urls.rotate(-1)
                # The namenode rejected these before doing anything, so any operation may be retried.
                not_run = error.exception in _RETRIABLE_REMOTE
                if response.status_code == 401 and self._kerberos is not None:
                    raise self._kerberos.refused(f"{op} {target}: HTTP 401")
                if response.status_code < 500 and not not_run:
                    raise self._builtin_error(error)
                last_error = error
                if not (idempotent or not_run) or attempt == self.max_attempts:
                    break
            log.warning(
                "WebHDFS %s %s failed (%s); retry %d of %d",
                op,
                target,
                _describe(last_error),
                attempt,
                self.max_attempts - 1,
            )
            self._backoff(attempt)
        raise StoreError(
            f"{self.uri(rel)}: WebHDFS {op} failed after {attempt} attempt{'s' if attempt > 1 else ''}; "
            f"last error: {_describe(last_error)}"
        ) from last_error

    def _remote_error(
        self, response: requests.Response, rel: str, op: str, target: str
    ) -> WebHdfsRemoteError:
        exception, message = None, ""
        try:
            remote = response.json()["RemoteException"]
            exception, message = remote.get("exception"), remote.get("message", "")
        except (ValueError, KeyError, TypeError):
            message = response.text[:300].strip() or response.reason
        finally:
            response.close()
        if response.status_code == 401:
            exception = exception or "AuthenticationException"
            message = message or "authentication failed (check the connection's user or Kerberos ticket)"
        label = exception or f"HTTP {response.status_code}"
        return WebHdfsRemoteError(
            f"{self.uri(rel)}: WebHDFS {op} {target}: {label}: {message}",
            response.status_code,
            exception,
            message,
        )

    @staticmethod
    def _builtin_error(error: WebHdfsRemoteError) -> Exception:
        message = str(error)
        if error.exception == "FileNotFoundException" or (error.status == 404 and not error.exception):
            return FileNotFoundError(message)
        if error.exception in ("AccessControlException", "SecurityException", "AuthenticationException"):
            return PermissionError(message)
        if error.exception == "FileAlreadyExistsException":
            return FileExistsError(message)
        if error.exception == "PathIsNotEmptyDirectoryException":
            return OSError(errno.ENOTEMPTY, message)
        if error.exception == "ParentNotDirectoryException":
            return NotADirectoryError(message)
        return error

    # -- metadata -----------------------------------------------------------------------------------
    def _info(self, rel: str, status: dict) -> FileInfo:
        is_dir = status.get("type") == "DIRECTORY"
        atime = status.get("accessTime") or 0
        return FileInfo(
            path=rel,
            size=0 if is_dir else int(status.get("length", 0)),
            mtime=status.get("modificationTime", 0) / 1000.0,
            is_dir=is_dir,
            atime=atime / 1000.0 if atime else None,
            extra={
                key: status[key]
                for key in ("blockSize", "replication", "permission", "owner", "group", "fileId")
                if key in status
            },
        )

    def info(self, path: str) -> FileInfo:
        rel = normalize_path(path)
        status = self._call("GET", rel, "GETFILESTATUS").json()["FileStatus"]
        return self._info(rel, status)

    def list(self, path: str) -> Iterator[FileInfo]:
        """Children of ``path`` page by page (``LISTSTATUS_BATCH``); the next page is fetched while
        the current one is consumed. Falls back to one ``LISTSTATUS`` on servers without batches."""
        rel = normalize_path(path)
        page = self._list_page(rel, None) if self._batch_listing else None
        if page is None:
            statuses = self._call("GET", rel, "LISTSTATUS").json()["FileStatuses"]["FileStatus"]
            yield from self._entries(rel, statuses)
            return
        prefetcher: ThreadPoolExecutor | None = None
        try:
            while True:
                statuses, remaining = page
                upcoming: Future | None = None
                if remaining and statuses:
                    if prefetcher is None:
                        prefetcher = ThreadPoolExecutor(1, thread_name_prefix="hdfs-list")
                    upcoming = prefetcher.submit(self._list_page, rel, statuses[-1]["pathSuffix"])
                yield from self._entries(rel, statuses)
                if upcoming is None:
                    return
                page = upcoming.result()
                if page[0] and page[0][0]["pathSuffix"] <= statuses[-1]["pathSuffix"]:
                    # Names come in order; a page that does not start after the last one would repeat forever
                    # (a server that ignores the ``startafter`` parameter answers the first page again).
                    raise StoreError(
                        f"{self.uri(rel)}: LISTSTATUS_BATCH did not advance: the page after "
                        f"{statuses[-1]['pathSuffix']!r} starts at {page[0][0]['pathSuffix']!r}"
                    )
        finally:
            if prefetcher is not None:
                prefetcher.shutdown(wait=False, cancel_futures=True)

    def _list_page(self, rel: str, start_after: str | None) -> tuple[list[dict], int] | None:
        """One ``LISTSTATUS_BATCH`` page: statuses and remaining entries; ``None`` if unsupported."""
        try:
            response = self._call(
                "GET", rel, "LISTSTATUS_BATCH", params={"startafter": start_after}
            )  # Hadoop ignores "startAfter"
        except WebHdfsRemoteError as error:
            unsupported = error.exception in ("IllegalArgumentException", "UnsupportedOperationException")
            if start_after is None and error.status == 400 and unsupported:
                log.info("%s does not support LISTSTATUS_BATCH; listing with LISTSTATUS", self.root_uri)
                self._batch_listing = False
                return None
            raise
        listing = response.json()["DirectoryListing"]
        return listing["partialListing"]["FileStatuses"]["FileStatus"], int(
            listing.get("remainingEntries") or 0
        )

    def _entries(self, rel: str, statuses: list[dict]) -> Iterator[FileInfo]:
        for status in statuses:
            name = status.get("pathSuffix", "")
            if name.startswith(HDFS_TMP_PREFIX):
                continue
            yield self._info(f"{rel}/{name}" if rel and name else (name or rel), status)

    def content_summary(self, path: str = "") -> dict:
        """``GETCONTENTSUMMARY``: ``length``, ``fileCount``, ``directoryCount``, quotas."""
        return self._call("GET", normalize_path(path), "GETCONTENTSUMMARY").json()["ContentSummary"]

    def checksum(self, path: str) -> Checksum:
        """HDFS's file checksum (e.g. ``MD5-of-0MD5-of-512CRC32C``); compare with :class:`HdfsFileChecksum`."""
        return self._file_checksum(normalize_path(path))

    def _file_checksum(self, rel: str, hdfs_path: str | None = None) -> Checksum:
        result = self._call("GET", rel, "GETFILECHECKSUM", hdfs_path=hdfs_path).json()["FileChecksum"]
        value, length = result["bytes"], result.get("length")
        if isinstance(length, int) and 0 <= 2 * length < len(value):
            value = value[: 2 * length]  # Hadoop hexes the serialization buffer, trailing padding included
        return Checksum(result["algorithm"], value)

    @property
    def features(self) -> StoreFeatures:
        """``SETTIMES``, an atomic ``RENAME`` and HDFS file checksums (``MD5-of-<n>MD5-of-<bytes>CRC32C``);
        no exclusive create (a write renames its temporary file over ``path``), no multipart uploads."""
        return StoreFeatures(set_times=True, atomic_rename=True, server_checksum="MD5MD5CRC")

    # -- data ---------------------------------------------------------------------------------------
    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return _WebHdfsReader(self, normalize_path(path), offset, length)  # type: ignore[return-value]

    def write(
        self, path: str, stream: BinaryIO, size_hint: int | None = None, *, if_absent: bool = False
    ) -> FileInfo:
        """Stream ``stream`` to a hidden temporary name beside ``path`` (two-step ``CREATE``), check it with
        ``GETFILECHECKSUM`` when ``verify_checksum`` is on, then rename it over ``path``.

        The data node is where Hadoop refuses a file: its errors map to :class:`PermissionError`,
        :class:`FileExistsError`, :class:`NotADirectoryError`, or :class:`StoreError` (quotas...). A
        retriable failure (safe mode, ``RetriableException``, a dropped connection) repeats the whole write,
        up to ``max_attempts`` times, when ``stream`` can be rewound; otherwise it is a :class:`StoreError`.
        """
        rel = normalize_path(path)
        self._refuse_if_absent(rel, if_absent)
        if not rel:
            raise IsADirectoryError(f"{self.uri(rel)} is the store root, not a file")
        target = self._abs(rel)
        parent, name = posixpath.split(target)
        start = _rewind_point(stream)
        attempt = 0
        while True:
            attempt += 1
            temp = posixpath.join(parent, _temp_name(name))
            try:
                summer = self._upload(rel, temp, stream)
            except _DataNodeFailure as failure:
                if failure.maybe_created:
                    self._discard(temp)
                if not failure.retriable:
                    raise failure.error from failure.error.__cause__
                if start is None or attempt >= self.max_attempts:
                    why = (
                        f"after {attempt} attempts"
                        if start is not None
                        else "not retried: the source stream cannot be rewound"
                    )
                    raise StoreError(
                        f"{self.uri(rel)}: WebHDFS CREATE {temp} failed at the data node ({why}); "
                        f"last error: {_describe(failure.error)}"
                    ) from failure.error
                log.warning(
                    "WebHDFS CREATE %s failed at the data node (%s); retry %d of %d",
                    temp,
                    _describe(failure.error),
                    attempt,
                    self.max_attempts - 1,
                )
                self._backoff(attempt)
                stream.seek(start)
                continue
            except BaseException:
                self._discard(temp)
                raise
            try:
                if summer is not None:
                    self._verify_written(rel, temp, summer, stream, start)
                self._rename_over(temp, target, rel)
            except BaseException:
                self._discard(temp)
                raise
            return self.info(rel)

    def _upload(self, rel: str, temp: str, stream: BinaryIO) -> HdfsFileChecksum | None:
        """Both steps of ``CREATE`` for ``temp``; the checksum of what was sent, when verifying.

        :raises _DataNodeFailure: the data node refused the file or the connection to it failed.
        """
        opts = self.options
        redirect = self._call(
            "PUT",
            rel,
            "CREATE",
            hdfs_path=temp,
            params={
                "overwrite": "false",
                "replication": opts.get("replication"),
                "blocksize": opts.get("blocksize"),
                "permission": opts.get("permission"),
            },
            allow_redirects=False,
        )
        location = redirect.headers.get("Location")
        if redirect.status_code == 200 and not location:  # noredirect-style answer
            location = redirect.json().get("Location")
        redirect.close()
        if not location:
            raise StoreError(
                f"{self.uri(rel)}: WebHDFS CREATE answered {redirect.status_code} without a data-node location"
            )
        summer = HdfsFileChecksum(*self._file_layout()) if self.verify_checksum else None
        source_errors: list[Exception] = []

        def body() -> Iterator[bytes]:
            while True:
                try:
                    chunk = stream.read(self.chunk_size)
                except Exception as error:  # noqa: BLE001 - re-raised by _upload
                    # End the body instead of dropping the connection: a Hadoop data node goes on to create
                    # the file regardless, maybe after a DELETE of it; once it has answered, the DELETE works.
                    source_errors.append(error)
                    return
                if not chunk:
                    return
                if summer is not None:
                    summer.update(chunk)
                yield chunk

        try:
            response = self._datanode_put(location, body())
        except _TRANSPORT_ERRORS as error:
            if source_errors:  # the source failed, not the data node
                raise source_errors[0] from None
            # A data node that refuses a file answers and closes the connection, maybe while the body is
            # still being sent; urllib3 reads that answer after a broken pipe, but a reset can lose it.
            refusal = self._probe_create(location, rel, temp)
            if refusal is None:
                raise _DataNodeFailure(
                    StoreError(f"{self.uri(rel)}: upload of {temp} to the data node failed: {error}"),
                    retriable=True,
                    maybe_created=True,
                ) from error
            remote = refusal
        else:
            if source_errors:  # the data node stored what was read before the source failed: not a file
                response.close()
                raise source_errors[0]
            if response.status_code < 400:
                response.close()
                return summer
            remote = self._remote_error(response, rel, "CREATE", temp)
        retriable = remote.exception in _RETRIABLE_REMOTE
        raise _DataNodeFailure(
            remote if retriable else self._builtin_error(remote),
            retriable=retriable,
            maybe_created=remote.exception not in _CREATE_REFUSALS,
        )

    def _datanode_put(self, location: str, data: Any) -> requests.Response:
        return self.session.put(
            location,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=self.timeout,
            verify=self.session.verify,
        )

    def _probe_create(self, location: str, rel: str, temp: str) -> WebHdfsRemoteError | None:
        """After a failed upload, the data node's answer to the same ``CREATE`` without a body: it repeats a
        refusal (permission, parent, safe mode, quota). ``None`` if it accepts or cannot be reached, or
        finds the file there (the failed upload had created it: the connection failed, not the create)."""
        try:
            response = self._datanode_put(location, b"")
        except _TRANSPORT_ERRORS:
            return None
        if response.status_code < 400:
            response.close()
            return None
        error = self._remote_error(response, rel, "CREATE", temp)
        if error.exception in ("FileAlreadyExistsException", "AlreadyBeingCreatedException"):
            return None
        return error

    def _file_layout(self) -> tuple[int, int, str]:
        """Block size, bytes per CRC and CRC type that new files get, for :class:`HdfsFileChecksum`: the
        ``blocksize`` option, else the namenode's ``GETSERVERDEFAULTS``, else HDFS's defaults (128 MiB, 512,
        CRC32C); corrected by what a verified upload found."""
        if self._layout is None:
            defaults = self._server_defaults()
            self._layout = (
                int(defaults.get("blockSize") or DEFAULT_BLOCK_SIZE),
                int(defaults.get("bytesPerChecksum") or BYTES_PER_CRC),
                _CHECKSUM_TYPES.get(defaults.get("checksumType"), "CRC32C"),
            )
        block_size, bytes_per_crc, crc = self._layout
        return int(self.options.get("blocksize") or block_size), bytes_per_crc, crc

    def _server_defaults(self) -> dict:
        """``GETSERVERDEFAULTS`` (Hadoop 3.x); empty on servers without it."""
        try:
            return self._call("GET", "", "GETSERVERDEFAULTS", hdfs_path="/").json()["FsServerDefaults"]
        except (WebHdfsRemoteError, ValueError, KeyError, TypeError) as error:
            log.info("%s: no GETSERVERDEFAULTS (%s); assuming HDFS's defaults", self.root_uri, error)
            return {}

    def _verify_written(
        self, rel: str, temp: str, summer: HdfsFileChecksum, stream: BinaryIO, start: int | None
    ) -> None:
        """HDFS's checksum of ``temp`` against the one of the bytes sent, both for the file's own block size
        and bytes per CRC (if they are not the ones assumed, the source is read again from ``start``)."""
        status = self._call("GET", rel, "GETFILESTATUS", hdfs_path=temp).json()["FileStatus"]
        actual = self._file_checksum(rel, temp)
        found = HdfsFileChecksum.params_of(actual)
        if found is None and summer.length:
            raise StoreError(
                f"{self.uri(rel)}: cannot verify the upload: HDFS answered a {actual.algorithm} checksum, "
                "not MD5-of-MD5-of-CRC (dfs.checksum.combine.mode=MD5MD5CRC)"
            )
        layout = (int(status.get("blockSize") or summer.block_size), *(found or summer.params[1:]))
        if layout != summer.params:
            self._layout = layout if not self.options.get("blocksize") else (self._layout[0], *layout[1:])
            if start is None:
                raise StoreError(
                    f"{self.uri(rel)}: cannot verify the upload: HDFS stored it in {layout[0]}-byte blocks "
                    f"with a {layout[2]} per {layout[1]} bytes, not the {summer.block_size}-byte blocks and "
                    f"{summer.crc} per {summer.bytes_per_crc} bytes assumed, and the source cannot be re-read"
                )
            log.info(
                "%s: HDFS stored %s as %s (not %s); re-reading the source",
                self.root_uri,
                temp,
                layout,
                summer.params,
            )
            length, summer = summer.length, HdfsFileChecksum(*layout)
            stream.seek(start)
            while length and (chunk := stream.read(min(self.chunk_size, length))):
                summer.update(chunk)
                length -= len(chunk)
        expected = summer.result()
        if actual != expected:
            raise StoreError(
                f"{self.uri(rel)}: checksum mismatch after upload: sent {expected.algorithm}:{expected.value}, "
                f"HDFS has {actual.algorithm}:{actual.value}"
            )

    def _discard(self, temp: str) -> None:
        try:
            self._call("DELETE", "", "DELETE", hdfs_path=temp, params={"recursive": "false"})
        except Exception as error:  # noqa: BLE001 - best effort; the original error matters more
            log.warning("could not remove temporary file %s: %s", temp, error)

    def _rename_over(self, source: str, target: str, rel: str) -> None:
        """``RENAME`` with ``OVERWRITE`` (atomic ``rename2``); plain rename + delete when unsupported."""
        response = self._call(
            "PUT",
            rel,
            "RENAME",
            hdfs_path=source,
            params={"destination": target, "renameoptions": "OVERWRITE"},
            idempotent=False,
        )
        if not response.content or response.json().get("boolean", True):
            return
        # The server ignored renameoptions (old WebHDFS/HttpFS): replace non-atomically.
        log.warning(
            "%s does not support RENAME with OVERWRITE; replacing %s non-atomically", self.root_uri, target
        )
        self._call("DELETE", rel, "DELETE", hdfs_path=target, params={"recursive": "false"})
        response = self._call(
            "PUT", rel, "RENAME", hdfs_path=source, params={"destination": target}, idempotent=False
        )
        if not response.json().get("boolean"):
            raise StoreError(f"{self.uri(rel)}: WebHDFS RENAME {source} -> {target} returned false")

    def delete(self, path: str, recursive: bool = False) -> bool:
        rel = normalize_path(path)
        response = self._call("DELETE", rel, "DELETE", params={"recursive": "true" if recursive else "false"})
        return bool(response.json()["boolean"])

    def mkdir(self, path: str) -> None:
        rel = normalize_path(path)
        if not self._call("PUT", rel, "MKDIRS").json()["boolean"]:
            raise StoreError(f"{self.uri(rel)}: WebHDFS MKDIRS returned false")

    def rename(self, src: str, dst: str) -> None:
        src_rel, dst_rel = normalize_path(src), normalize_path(dst)
        parent = posixpath.dirname(dst_rel)
        if parent:
            self.mkdir(parent)
        self._rename_over(self._abs(src_rel), self._abs(dst_rel), src_rel)

    def set_times(self, path: str, mtime: float | None = None, atime: float | None = None) -> None:
        """``SETTIMES`` (seconds since the epoch; ``None`` leaves a time unchanged)."""
        params = {
            "modificationtime": int(mtime * 1000) if mtime is not None else -1,
            "accesstime": int(atime * 1000) if atime is not None else -1,
        }
        self._call("PUT", normalize_path(path), "SETTIMES", params=params)
