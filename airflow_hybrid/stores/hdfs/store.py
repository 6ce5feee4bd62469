"""HDFS through the WebHDFS REST API, with an Airflow ``webhdfs`` connection (:mod:`.client`).

The store speaks WebHDFS through the connection's session so it can page listings (``LISTSTATUS_BATCH``),
stream ranged reads (:mod:`.reader`), stream writes (:mod:`.writer`: ``CREATE`` two-step with a chunked body)
and retry idempotent calls with backoff, failing over between HA namenodes.

Writes go to a hidden temporary name (``.hybrid-tmp-*``) next to the target and are renamed into
place with ``RENAME`` + ``renameoptions=OVERWRITE`` (HDFS ``rename2``), so readers never see a
partial file; with ``verify_checksum`` the upload is checked first against :class:`.HdfsFileChecksum`.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import posixpath
import random
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlparse

import requests

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import (
    CHUNK_SIZE,
    Checksum,
    FileInfo,
    Store,
    StoreError,
    StoreFeatures,
    TreeFingerprint,
    after_marker,
    child_key,
    normalize_path,
)
from airflow_hybrid.stores.factory import parse_transport
from airflow_hybrid.stores.hdfs.client import (
    RETRIABLE_REMOTE,
    TRANSPORT_ERRORS,
    WebHdfsConnection,
    WebHdfsRemoteError,
    connect_failed,
    describe,
    webhdfs_url,
)
from airflow_hybrid.stores.hdfs.reader import open_file
from airflow_hybrid.stores.hdfs.sorted_listing import (
    held_back_names,
    listing_start,
    s3_ordered,
    within_prefix,
)
from airflow_hybrid.stores.hdfs.writer import HDFS_TMP_PREFIX, write_file
from airflow_hybrid.values import parse_bool, parse_duration, parse_int, parse_size

if TYPE_CHECKING:
    from airflow_hybrid.stores.hdfs.kerberos import KerberosLogin

log = logging.getLogger(__name__)


class _UnorderedListing(Exception):
    """A directory whose names the namenode orders otherwise than S3 (outside ASCII), or cannot page."""

#: The namenode's RPC port assumed when an engine URI's namenode comes without one.
DEFAULT_RPC_PORT = 8020
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
_NAMESERVICE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,252}")


def _authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _parse_namenode(value: Any, where: str) -> str:
    """``host:port`` of the ``namenode`` option (``host``, ``host:port``, ``[v6]:port`` or ``hdfs://host:port``)."""
    problem = f"{where}: HDFS option namenode: expected host[:port] such as 'nn.corp:8020', got {value!r}"
    text = value.strip() if isinstance(value, str) else ""
    if text.lower().startswith("hdfs://"):
        text = text[len("hdfs://") :].rstrip("/")
    if not text or re.search(r"[/?#@\\\s]", text):
        raise HybridConfigError(problem)
    try:
        parsed = urlparse(f"//{text}")
        host, port = parsed.hostname, parsed.port
    except ValueError:  # a port that is not a number, a broken [v6]
        raise HybridConfigError(problem) from None
    if not host:
        raise HybridConfigError(problem)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _HOST.fullmatch(host):
            raise HybridConfigError(problem) from None
    if port is not None and not 0 < port < 65536:
        raise HybridConfigError(f"{where}: HDFS option namenode: port {port} is out of range in {value!r}")
    return _authority(host, port or DEFAULT_RPC_PORT)


def engine_authority(root_uri: str, options: dict) -> str | None:
    """The authority of engine URIs (``host:port`` or an HA nameservice): the ``namenode`` or ``nameservice``
    option, else an ``hdfs://`` root URI's own; ``None`` when only the WebHDFS connection can tell (see
    :meth:`HdfsStore.engine_uri`).

    :raises HybridConfigError: naming the option, for a malformed value or both options at once.
    """
    namenode, nameservice = options.get("namenode"), options.get("nameservice")
    if namenode is not None and nameservice is not None:
        raise HybridConfigError(f"{root_uri}: HDFS options namenode and nameservice are exclusive; set one")
    if nameservice is not None:
        if not isinstance(nameservice, str) or not _NAMESERVICE.fullmatch(nameservice):
            raise HybridConfigError(
                f"{root_uri}: HDFS option nameservice: expected a nameservice id such as 'lake-ha', got {nameservice!r}"
            )
        return nameservice
    if namenode is not None:
        return _parse_namenode(namenode, root_uri)
    parsed = urlparse(root_uri)
    if parsed.scheme.lower() == "hdfs" and parsed.netloc:
        return parsed.netloc  # hdfs://nn:8020/... or hdfs://<nameservice>/...
    return None  # hdfs:///path, or webhdfs://<http address>: the namenode's RPC address is not in it


class HdfsStore(Store):
    """Files under an HDFS directory, reached through WebHDFS with an Airflow ``webhdfs`` connection.

    :param root_uri: ``hdfs://[nameservice]/path`` (``webhdfs://`` also accepted); the path is the root.
    :param webhdfs_conn_id: Airflow connection (host may list HA namenodes ``nn1,nn2``; extras
        ``use_ssl``, ``verify`` (default true), ``cert``/``key``; Kerberos: ``kerberos_principal``,
        ``kerberos_keytab``, ``kerberos_ccache``, ``krb5_conf``, ``auth: kerberos``, and for SPNEGO
        ``mutual_auth``, ``max_concurrency``, ``hostname_override``, ``service``; see
        :mod:`airflow_hybrid.stores.hdfs.kerberos`).
    :param options: ``max_attempts`` (5), ``retry_backoff`` (0.2 s, doubled per attempt),
        ``retry_backoff_max`` (5 s), ``timeout`` (seconds, or ``[connect, read]``), ``chunk_size``,
        ``proxy_user``, ``verify_checksum`` (check each write with ``GETFILECHECKSUM`` before it is
        committed), ``replication``, ``blocksize``, ``permission`` (for created files); for engines outside
        this process (:meth:`engine_uri`): ``namenode`` (``host[:rpc port]``, port 8020 when left out) or
        ``nameservice`` (an HA nameservice the engine's ``hdfs-site.xml`` defines).
    :param connection: a :class:`~airflow_hybrid.stores.hdfs.client.WebHdfsConnection` to use instead of the
        Airflow connection's (tests, custom auth).
    """

    scheme = "hdfs"

    def __init__(
        self,
        root_uri: str,
        webhdfs_conn_id: str = "webhdfs_default",
        options: dict | None = None,
        connection: WebHdfsConnection | None = None,
    ) -> None:
        parsed = urlparse(root_uri)
        if parsed.scheme not in ("hdfs", "webhdfs", "swebhdfs"):
            raise HybridConfigError(f"HDFS store needs an hdfs:// URI, got {root_uri!r}")
        rel_root = normalize_path(parsed.path)
        self.root = f"/{rel_root}"
        super().__init__(f"{parsed.scheme}://{parsed.netloc}/{rel_root}")
        self.webhdfs_conn_id = webhdfs_conn_id
        self.options = dict(options or {})
        opts = self.options
        self._parse_options(opts)
        self.engine_authority = engine_authority(root_uri, opts)
        self._connection = connection
        self._batch_listing = True
        self._unordered_dirs: OrderedDict[str, None] = OrderedDict()  # seen holding names outside ASCII
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
        self.verify_checksum = parse_bool(given("verify_checksum", False), "HDFS option verify_checksum")
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
        if parse_transport(opts.get("transport"), self.root_uri) == "rpc":
            raise HybridConfigError(
                f"{self.root_uri}: HDFS option transport: rpc is served by HdfsRpcStore (store_from_uri picks it)"
            )
        proxy_user = opts.get("proxy_user")
        if proxy_user is not None and not isinstance(proxy_user, str):
            raise HybridConfigError(f"HDFS option proxy_user: expected a user name, got {proxy_user!r}")

    # -- URIs for engines outside this process ----------------------------------------------------------
    def engine_uri(self, path: str) -> str:
        """``hdfs://<namenode or nameservice>/<root>/<path>``: the URI Spark, Trino or Hive on another host opens.

        The authority is the ``namenode`` or ``nameservice`` option, else the root URI's host, else the host of
        the WebHDFS namenode this store talks to (the active one) with the RPC port :data:`DEFAULT_RPC_PORT`.
        """
        authority = self.engine_authority
        if authority is None:
            host = urlparse(self.connection.urls[0]).hostname
            if not host:
                raise HybridConfigError(
                    f"{self.root_uri}: no namenode for engine URIs; set the member option namenode or nameservice"
                )
            authority = _authority(host, DEFAULT_RPC_PORT)
        return f"hdfs://{authority}{self._abs(path)}"

    # -- connection ---------------------------------------------------------------------------------
    @property
    def connection(self) -> WebHdfsConnection:
        """The namenodes, session and login of :attr:`webhdfs_conn_id`, connected on first use."""
        if self._connection is None:
            with self._lock:
                if self._connection is None:
                    self._connection = WebHdfsConnection.from_airflow(
                        self.webhdfs_conn_id,
                        proxy_user=self.options.get("proxy_user"),
                        timeout=self.timeout,
                        where=self.root_uri,
                    )
        return self._connection

    @property
    def client(self) -> Any:
        """The HdfsCLI client (``InsecureClient`` or ``KerberosClient``) on :attr:`session`."""
        return self.connection.client

    @property
    def session(self) -> requests.Session:
        """The authenticated session (``user.name`` or SPNEGO, TLS settings)."""
        return self.connection.session

    @property
    def _urls(self) -> deque[str]:
        return self.connection.urls

    @property
    def _kerberos(self) -> KerberosLogin | None:
        return self.connection.kerberos

    def close(self) -> None:
        if self._connection is not None:
            self._connection.session.close()

    # -- raw WebHDFS calls --------------------------------------------------------------------------
    def _abs(self, rel: str) -> str:
        rel = normalize_path(rel)
        return posixpath.join(self.root, rel) if rel else self.root

    def _delay(self, attempt: int) -> float:
        """Seconds before retry ``attempt``: ``retry_backoff`` doubled per attempt, at most ``retry_backoff_max``,
        with jitter."""
        delay = min(self.retry_backoff_max, self.retry_backoff * 2 ** (attempt - 1))
        return delay * (0.5 + random.random() / 2)  # noqa: S311 - jitter

    def _backoff(self, attempt: int) -> None:
        time.sleep(self._delay(attempt))

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
        conn = self.connection
        query = {"op": op}
        query.update({key: value for key, value in (params or {}).items() if value is not None})
        if conn.proxy_user:
            query["doas"] = conn.proxy_user
        target = hdfs_path or self._abs(rel)
        last_error: BaseException | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = conn.session.request(
                    method,
                    webhdfs_url(conn.urls[0], target),
                    params=query,
                    headers={"Content-Type": "application/octet-stream"},
                    timeout=self.timeout,
                    stream=stream,
                    allow_redirects=allow_redirects,
                    # Explicit, or requests lets REQUESTS_CA_BUNDLE override the connection's "verify".
                    verify=conn.session.verify,
                )
            except TRANSPORT_ERRORS as error:
                last_error = error
                not_sent = connect_failed(error)
                if not_sent and len(conn.urls) > 1:
                    conn.urls.rotate(-1)  # namenode down: fail over
                if not (idempotent or not_sent) or attempt == self.max_attempts:
                    break
            else:
                conn.answered = True
                if response.status_code < 400:
                    return response
                if (refusal := conn.refusal(response)) is not None:
                    response.close()
                    raise refusal
                error = self._remote_error(response, rel, op, target)
                if error.exception == "StandbyException" and len(conn.urls) > 1:
                    conn.urls.rotate(-1)
                # The namenode rejected these before doing anything, so any operation may be retried.
                not_run = error.exception in RETRIABLE_REMOTE
                if response.status_code < 500 and not not_run:
                    raise self._builtin_error(error)
                last_error = error
                if not (idempotent or not_run) or attempt == self.max_attempts:
                    break
            log.warning(
                "WebHDFS %s %s failed (%s); retry %d of %d",
                op,
                target,
                describe(last_error),
                attempt,
                self.max_attempts - 1,
            )
            self._backoff(attempt)
        if not conn.answered:
            raise StoreError(f"{self.root_uri}: {conn.first_failure(describe(last_error))}") from last_error
        raise StoreError(
            f"{self.uri(rel)}: WebHDFS {op} failed after {attempt} attempt{'s' if attempt > 1 else ''}; "
            f"last error: {describe(last_error)}"
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

    def list_sorted(
        self, path: str, start_after: str | None = None, limit: int = 1000, name_prefix: str = ""
    ) -> list[FileInfo]:
        """A page in S3 order from the namenode's sorted listing, resumed after the marker
        (:mod:`.sorted_listing`): ``ceil(limit / dfs.ls.limit)`` ``LISTSTATUS_BATCH`` requests and a
        ``GETFILESTATUS`` for each directory the marker's name may precede, whatever the directory's size. A
        directory holding names outside ASCII, which HDFS orders otherwise, is scanned whole (the default)."""
        rel = normalize_path(path)
        with self._lock:
            unordered = rel in self._unordered_dirs
        if (limit <= 0 or not self._batch_listing or unordered
                or not (start_after or "").isascii() or not name_prefix.isascii()):
            return super().list_sorted(rel, start_after, limit, name_prefix)
        start = listing_start(start_after, name_prefix)
        names = [name for name in held_back_names(start_after, name_prefix) if not name.startswith(HDFS_TMP_PREFIX)]
        try:
            with ThreadPoolExecutor(len(names) + 1, thread_name_prefix="hdfs-list") as pool:
                first = pool.submit(self._list_page, rel, start)  # together with the look-ups: one round trip
                found = list(pool.map(lambda name: self._status_or_none(f"{rel}/{name}" if rel else name), names))
                first_page = first.result()
            held = [entry for entry in found
                    if entry is not None and after_marker(child_key(entry), entry.is_dir, start_after)]
            return s3_ordered(within_prefix(self._names_after(rel, start, first_page), name_prefix), held, limit)
        except (FileNotFoundError, NotADirectoryError):
            return []
        except _UnorderedListing:
            with self._lock:  # the gateway lists from many threads
                self._unordered_dirs[rel] = None
                while len(self._unordered_dirs) > 4096:
                    self._unordered_dirs.popitem(last=False)
            return super().list_sorted(rel, start_after, limit, name_prefix)

    def _status_or_none(self, rel: str) -> FileInfo | None:
        try:
            return self.info(rel)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _names_after(self, rel: str, start: str | None, page: tuple[list[dict], int] | None) -> Iterator[FileInfo]:
        """The children of directory ``rel`` named after ``start``, in the namenode's order, from its listing
        ``page`` on; :class:`NotADirectoryError` for a file, :class:`_UnorderedListing` at a name outside ASCII."""
        while True:
            if page is None:
                raise _UnorderedListing(rel)  # no LISTSTATUS_BATCH on this server: scan with LISTSTATUS
            statuses, remaining = page
            for status in statuses:
                name = status.get("pathSuffix", "")
                if not name:
                    raise NotADirectoryError(self.uri(rel))
                if not name.isascii():
                    raise _UnorderedListing(rel)
                if not name.startswith(HDFS_TMP_PREFIX):
                    yield self._info(f"{rel}/{name}" if rel else name, status)
            if not remaining or not statuses:
                return
            if start is not None and statuses[-1]["pathSuffix"] <= start:
                raise StoreError(f"{self.uri(rel)}: LISTSTATUS_BATCH did not advance after {start!r}")
            start = statuses[-1]["pathSuffix"]
            page = self._list_page(rel, start)

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

    def tree_fingerprint(self, path: str = "") -> TreeFingerprint:
        """Two namenode requests, whatever the size of the tree: ``GETFILESTATUS`` of ``path`` (its
        ``modificationTime`` and ``fileId``) and ``GETCONTENTSUMMARY`` (``length``, ``fileCount``,
        ``directoryCount`` of the whole subtree); a file costs the first only and is exact.

        For a directory it is not exact (``exact=False``): it sees every file added, removed or renamed anywhere
        below (counts), every change of length anywhere below, and any create, delete or rename directly in
        ``path`` (its mtime: a rewrite there, which HDFS does as delete + create or as a rename over the file,
        changes it). It misses a rewrite to the same length inside a *subdirectory* (only that subdirectory's
        mtime changes) and a ``SETTIMES`` on a file. Hidden temporary files are counted (a write in progress
        changes it). The namenode computes the summary by walking the subtree: one request, but work in
        proportion to the subtree's size on the namenode.
        """
        rel = normalize_path(path)
        try:
            status = self._call("GET", rel, "GETFILESTATUS").json()["FileStatus"]
            if status.get("type") != "DIRECTORY":
                info = self._info(rel, status)
                value = f"file:{info.size}:{status.get('modificationTime')}:{status.get('fileId')}"
                return TreeFingerprint(value, exact=True, files=1, bytes=info.size)
            summary = self.content_summary(rel)
        except FileNotFoundError:
            return TreeFingerprint.absent()
        files, length = int(summary.get("fileCount", 0)), int(summary.get("length", 0))
        value = (f"dir:{status.get('modificationTime')}:{status.get('fileId')}:{length}:{files}:"
                 f"{summary.get('directoryCount')}")
        return TreeFingerprint(value, exact=False, files=files, bytes=length)

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
        return StoreFeatures(set_times=True, atomic_rename=True, server_checksum="MD5MD5CRC", sorted_listing=True)

    # -- data ---------------------------------------------------------------------------------------
    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return open_file(self, normalize_path(path), offset, length)  # type: ignore[return-value]

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
        return write_file(self, path, stream, if_absent=if_absent)

    def _datanode_put(self, location: str, data: Any) -> requests.Response:
        return self.session.put(
            location,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            timeout=self.timeout,
            verify=self.session.verify,
        )

    def _server_defaults(self) -> dict:
        """``GETSERVERDEFAULTS`` (Hadoop 3.x); empty on servers without it."""
        try:
            return self._call("GET", "", "GETSERVERDEFAULTS", hdfs_path="/").json()["FsServerDefaults"]
        except (WebHdfsRemoteError, ValueError, KeyError, TypeError) as error:
            log.info("%s: no GETSERVERDEFAULTS (%s); assuming HDFS's defaults", self.root_uri, error)
            return {}

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
