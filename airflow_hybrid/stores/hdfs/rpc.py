"""HDFS through its own RPC and data-transfer protocols (``transport: rpc``), with ``hdfs-native``.

`hdfs-native <https://github.com/Kimahriman/hdfs-native>`_ is a Rust client of the namenode's
``ClientProtocol`` and of the data nodes' streaming protocol (no JVM, no WebHDFS gateway); the ``rpc`` extra
installs it. :class:`HdfsRpcStore` is the same :class:`~airflow_hybrid.stores.base.Store` as the WebHDFS one
(:class:`~airflow_hybrid.stores.hdfs.store.HdfsStore`), on the same paths and URIs:

* the namenode's RPC address: the member option ``namenode`` (``host[:port]``, 8020 by default) or
  ``nameservice`` (an HA nameservice of ``$HADOOP_CONF_DIR/hdfs-site.xml``), else an ``hdfs://host:port/``
  root URI's authority (as :func:`~airflow_hybrid.stores.hdfs.store.engine_authority` reads it);
* the user: Hadoop's rules as ``hdfs-native`` applies them (``HADOOP_USER_NAME``, else the OS user;
  Kerberos from the default ticket cache when ``hadoop.security.authentication`` is ``kerberos``);
* writes stream to a hidden temporary name beside the target (``.hybrid-tmp-*``, hidden from listings, as
  WebHDFS writes do) renamed over it (``rename2`` with ``OVERWRITE``): nothing partial is ever visible. An
  exclusive create (``if_absent``) is refused by one status request before any data is sent, and its final
  rename is without ``OVERWRITE``, so it never replaces a file created meanwhile;
* HDFS has a file checksum call (``getFileChecksum``), ``hdfs-native`` does not: each write computes the
  CRC32C of its bytes while they stream and returns it in the written status (``extra["checksum"]``), so a
  copy to this store is verified without reading it back (the data nodes check each packet's chunk CRCs as
  they receive it); :meth:`HdfsRpcStore.checksum` reads the file to compute it;
* listings stream page by page (``getListing``, ``dfs.ls.limit`` entries per request, each page asked for
  once the previous one is consumed), reads are ranged and seekable;
* a write's ``complete`` waits: hdfs-native retries it after a fixed 500 ms when the namenode has not heard
  from the data node yet (usually the case right after the last packet), where Hadoop's Java client waits
  ``dfs.client.block.write.locateFollowingBlock.initial.delay.ms`` (400 ms by default): per-file write
  latency is the weak side of this transport (``bench/bench_hdfs_transport.py``).
"""

from __future__ import annotations

import errno
import io
import logging
import posixpath
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlparse

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.ops.checksums import CRC32C, Crc32c
from airflow_hybrid.ops.reader import ResumableReader
from airflow_hybrid.stores.base import (
    CHUNK_SIZE,
    Checksum,
    FileInfo,
    Store,
    StoreError,
    StoreFeatures,
    TreeFingerprint,
    normalize_path,
)
from airflow_hybrid.stores.factory import parse_transport
from airflow_hybrid.stores.hdfs.store import engine_authority
from airflow_hybrid.stores.hdfs.writer import HDFS_TMP_PREFIX, _rewind_point, _temp_name
from airflow_hybrid.values import parse_int, parse_size

log = logging.getLogger(__name__)

T = TypeVar("T")
#: ``RuntimeError("RPCError(\"<java class>\", \"<message>\\n\\tat ...\")")``: a namenode refusal as hdfs-native
#: reports those it has no Python type for.
_RPC_ERROR = re.compile(r'RPCError\("(?P<cls>[\w.$]+)", "(?P<message>(?:[^"\\]|\\.)*?)(?:\\n|")')
#: Java exception (last name) -> the built-in error callers catch.
_JAVA_ERRORS: dict[str, Callable[[str], OSError]] = {
    "FileNotFoundException": FileNotFoundError,
    "FileAlreadyExistsException": FileExistsError,
    "AccessControlException": PermissionError,
    "AuthorizationException": PermissionError,
    "ParentNotDirectoryException": NotADirectoryError,
    "PathIsNotEmptyDirectoryException": lambda message: OSError(errno.ENOTEMPTY, message),
}
#: A write refused because the data node has not reported a block yet (hdfs-native does not retry these).
_NOT_REPORTED = re.compile(r"NotReplicatedYetException|Failed to complete file in time")
_BUILTIN_ERRORS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0].strip()


class _Body:
    """A window of an open file read as a byte stream (``read_range_stream``'s chunks, re-cut to ``read(n)``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def read(self, size: int) -> bytes:
        if not self._buffer:
            chunk = next(self._chunks, b"")
            if not chunk:
                return b""
            self._buffer = memoryview(chunk)
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(data)

    def close(self) -> None:
        self._chunks = iter(())
        self._buffer = memoryview(b"")


def _abandon(writer: Any) -> None:
    """Mark an hdfs-native ``FileWriter`` closed without completing its file. It is an :class:`io.RawIOBase`
    whose ``close`` completes the file at the namenode, and ``IOBase.__del__`` calls ``close`` on any writer
    not marked closed: a writer dropped after a failed write would complete it at garbage collection, in
    whatever thread that happens, retrying for as long as the namenode does not answer (a test run hung there
    once its cluster had stopped)."""
    if isinstance(writer, io.IOBase):
        io.IOBase.close(writer)


class HdfsRpcStore(Store):
    """Files under an HDFS directory, reached over HDFS's RPC protocol (``hdfs-native``).

    :param root_uri: ``hdfs://[namenode:port | nameservice]/path``; the path is the root.
    :param conn_id: accepted for symmetry with the WebHDFS store (the member's ``conn_id``); RPC does not use
        an Airflow connection.
    :param options: ``namenode`` / ``nameservice`` (see the module), ``transport`` (``rpc``), ``chunk_size``
        (bytes per write call, 4 MiB), ``replication``, ``blocksize``, ``permission`` (of created files),
        ``max_attempts`` (reads resumed after a dropped connection); the WebHDFS-only ``retry_backoff``,
        ``retry_backoff_max``, ``timeout`` and ``verify_checksum`` are accepted and unused (hdfs-native retries
        and fails over itself); ``proxy_user`` is refused (hdfs-native reads ``HADOOP_PROXY_USER`` only).
        Dotted Hadoop properties (``dfs.client.use.datanode.hostname``...) are handed to hdfs-native as
        its configuration.
    :param client: an ``hdfs_native.Client`` to use instead of one built from the options (tests).
    """

    scheme = "hdfs"

    def __init__(
        self,
        root_uri: str,
        conn_id: str | None = None,
        options: dict | None = None,
        client: Any = None,
    ) -> None:
        parsed = urlparse(root_uri)
        if parsed.scheme.lower() != "hdfs":
            raise HybridConfigError(f"HDFS option transport: rpc needs an hdfs:// URI, got {root_uri!r}")
        rel_root = normalize_path(parsed.path)
        self.root = f"/{rel_root}"
        super().__init__(f"{parsed.scheme}://{parsed.netloc}/{rel_root}")
        self.conn_id = conn_id
        self.options = dict(options or {})
        opts = self.options
        transport = parse_transport(opts.get("transport"), root_uri)
        if transport not in (None, "rpc"):
            raise HybridConfigError(f"{root_uri}: HDFS option transport: HdfsRpcStore is transport rpc, got {transport!r}")
        if opts.get("proxy_user") is not None:
            raise HybridConfigError(
                f"{root_uri}: HDFS option proxy_user is not supported with transport rpc (set HADOOP_PROXY_USER)"
            )
        self.engine_authority = engine_authority(root_uri, opts)
        if self.engine_authority is None and client is None:
            raise HybridConfigError(
                f"{root_uri}: HDFS option transport: rpc needs the namenode's RPC address: set the member option "
                f"namenode (host:port) or nameservice, or use an hdfs://host:port/ URI"
            )

        def given(key: str, default: Any) -> Any:
            value = opts.get(key)
            return default if value is None else value

        self.max_attempts = parse_int(given("max_attempts", 5), "HDFS option max_attempts", minimum=1, maximum=1000)
        self.chunk_size = parse_size(given("chunk_size", 4 * CHUNK_SIZE), "HDFS option chunk_size")
        if not 0 < self.chunk_size <= 1024 * 1024 * 1024:
            raise HybridConfigError(f"HDFS option chunk_size: {self.chunk_size} is not between 1 B and 1 GiB")
        self.replication = (
            parse_int(opts["replication"], "HDFS option replication", minimum=1, maximum=32767)
            if opts.get("replication") is not None else None
        )
        self.blocksize = parse_size(opts["blocksize"], "HDFS option blocksize") if opts.get("blocksize") else None
        if opts.get("blocksize") is not None and not self.blocksize:
            raise HybridConfigError("HDFS option blocksize: must be positive")
        permission = opts.get("permission")
        text = str(permission) if isinstance(permission, (str, int)) and not isinstance(permission, bool) else ""
        if permission is not None and not re.fullmatch(r"[01]?[0-7]{1,3}", text):
            raise HybridConfigError(f"HDFS option permission: expected an octal mode such as 644, got {permission!r}")
        self.permission = int(text, 8) if permission is not None else 0o644
        self.hadoop_config = {key: str(value) for key, value in opts.items() if "." in key and value is not None}
        self._client = client
        self._lock = threading.Lock()

    # -- client ---------------------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The ``hdfs_native.Client`` on the namenode (or nameservice), built on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        from hdfs_native import Client
                    except ImportError as error:
                        raise HybridConfigError(
                            f"{self.root_uri}: HDFS option transport: rpc needs hdfs-native "
                            f"(pip install 'airflow-hybrid[rpc]')"
                        ) from error
                    self._client = Client(f"hdfs://{self.engine_authority}", self.hadoop_config or None)
        return self._client

    def engine_uri(self, path: str) -> str:
        """``hdfs://<namenode or nameservice>/<root>/<path>``: the URI Spark, Trino or Hive open."""
        return f"hdfs://{self.engine_authority}{self._abs(path)}"

    def _abs(self, rel: str) -> str:
        rel = normalize_path(rel)
        return posixpath.join(self.root, rel) if rel else self.root

    def _rel(self, absolute: str) -> str:
        """The store-relative path of an absolute HDFS path the namenode answered with."""
        if self.root == "/":
            return normalize_path(absolute)
        if absolute == self.root:
            return ""
        if not absolute.startswith(self.root + "/"):
            raise StoreError(f"{self.root_uri}: the namenode answered with {absolute!r}, outside the store root")
        return normalize_path(absolute[len(self.root) + 1 :])

    def _error(self, error: BaseException, rel: str, op: str) -> BaseException:
        """``error`` from hdfs-native as the error callers catch, its message naming the URI and the call."""
        where = f"{self.uri(rel)}: HDFS RPC {op}"
        if isinstance(error, _BUILTIN_ERRORS):
            return type(error)(f"{where}: {_first_line(str(error))}")
        text = str(error)
        match = _RPC_ERROR.search(text) if isinstance(error, RuntimeError) else None
        if match:
            java = match["cls"].rsplit(".", 1)[-1]
            message = f"{where}: {java}: {match['message']}"
            builtin = _JAVA_ERRORS.get(java)
            if builtin is not None:
                return builtin(message)
            return StoreError(message)
        return StoreError(f"{where}: {type(error).__name__}: {_first_line(text)}")

    def _rpc(self, op: str, rel: str, call: Callable[[], T]) -> T:
        """One hdfs-native call; its errors (and panics, which are BaseExceptions) mapped by :meth:`_error`."""
        try:
            return call()
        except (KeyboardInterrupt, SystemExit, GeneratorExit):
            raise
        except BaseException as error:  # noqa: BLE001 - pyo3's PanicException derives from BaseException
            raise self._error(error, rel, op) from error

    def close(self) -> None:
        self._client = None

    # -- metadata -------------------------------------------------------------------------------------
    def _info(self, rel: str, status: Any) -> FileInfo:
        atime = status.access_time
        return FileInfo(
            path=rel,
            size=0 if status.isdir else int(status.length),
            mtime=status.modification_time / 1000.0,
            is_dir=bool(status.isdir),
            atime=atime / 1000.0 if atime else None,
            extra={
                "permission": f"{status.permission:o}",
                "owner": status.owner,
                "group": status.group,
                **({"replication": status.replication, "blockSize": status.blocksize} if not status.isdir else {}),
            },
        )

    def info(self, path: str) -> FileInfo:
        rel = normalize_path(path)
        return self._info(rel, self._rpc("getFileInfo", rel, lambda: self.client.get_file_info(self._abs(rel))))

    def _statuses(self, rel: str, recursive: bool) -> Iterator[Any]:
        """``getListing`` of ``rel`` streamed (one page per ``dfs.ls.limit`` entries); errors mapped."""
        listing = self._rpc("getListing", rel, lambda: iter(self.client.list_status(self._abs(rel), recursive)))
        while True:
            status = self._rpc("getListing", rel, lambda: next(listing, None))
            if status is None:
                return
            yield status

    def list(self, path: str) -> Iterator[FileInfo]:
        """Children of ``path`` page by page (a file lists itself); hidden temporary files are left out."""
        rel = normalize_path(path)
        for status in self._statuses(rel, recursive=False):
            child = self._rel(status.path)
            if not posixpath.basename(child).startswith(HDFS_TMP_PREFIX):
                yield self._info(child, status)

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        """Every file below ``path``: one recursive listing, streamed depth first by hdfs-native."""
        rel = normalize_path(path)
        for status in self._statuses(rel, recursive=True):
            if status.isdir:
                continue
            child = self._rel(status.path)
            if not posixpath.basename(child).startswith(HDFS_TMP_PREFIX):
                yield self._info(child, status)

    def tree_fingerprint(self, path: str = "") -> TreeFingerprint:
        """Two namenode requests: the status of ``path`` and its content summary (a file: the status only).

        Not exact for a directory, as :meth:`HdfsStore.tree_fingerprint
        <airflow_hybrid.stores.hdfs.store.HdfsStore.tree_fingerprint>` (hdfs-native reports no ``fileId``).
        """
        rel = normalize_path(path)
        try:
            status = self._rpc("getFileInfo", rel, lambda: self.client.get_file_info(self._abs(rel)))
            if not status.isdir:
                value = f"file:{status.length}:{status.modification_time}"
                return TreeFingerprint(value, exact=True, files=1, bytes=int(status.length))
            summary = self._rpc("getContentSummary", rel, lambda: self.client.get_content_summary(self._abs(rel)))
        except FileNotFoundError:
            return TreeFingerprint.absent()
        value = f"dir:{status.modification_time}:{summary.length}:{summary.file_count}:{summary.directory_count}"
        return TreeFingerprint(value, exact=False, files=summary.file_count, bytes=summary.length)

    def checksum(self, path: str) -> Checksum:
        """The CRC32C of the file, computed by reading it (hdfs-native has no ``getFileChecksum``)."""
        rel = normalize_path(path)
        hasher = Crc32c()
        with self.open_read(rel) as stream:
            while chunk := stream.read(CHUNK_SIZE):
                hasher.update(chunk)
        return Checksum(CRC32C, hasher.b64)

    @property
    def features(self) -> StoreFeatures:
        """Exclusive creates (refused by one status request at any size), ``setTimes``, an atomic ``rename2``,
        CRC32C checksums (from the bytes written, or read); no multipart uploads."""
        return StoreFeatures(
            exclusive_create=True,
            exclusive_create_one_request_below=2**63,
            set_times=True,
            atomic_rename=True,
            server_checksum=CRC32C,
        )

    # -- data -----------------------------------------------------------------------------------------
    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A seekable stream over ``[offset, offset + length)`` (to the end without ``length``): one
        ``getBlockLocations``, then the data nodes' packets as they arrive."""
        rel = normalize_path(path)
        reader = self._rpc("getBlockLocations", rel, lambda: self.client.read(self._abs(rel)))
        size = reader.size

        def open_at(position: int, count: int | None) -> tuple[_Body, int] | None:
            end = size if count is None else min(size, position + count)
            if position >= end:
                return None
            chunks = self._rpc("read", rel, lambda: reader.read_range_stream(position, end - position))
            return _Body(self._checked(chunks, rel)), end - position

        return ResumableReader(  # type: ignore[return-value]
            open_at,
            name=self.uri(rel),
            dropped=lambda error: isinstance(error, (ConnectionError, TimeoutError)),
            offset=offset,
            length=length,
            max_attempts=self.max_attempts,
            size=lambda: size,
        )

    def _checked(self, chunks: Iterator[bytes], rel: str) -> Iterator[bytes]:
        while True:
            chunk = self._rpc("read", rel, lambda: next(chunks, None))
            if chunk is None:
                return
            yield chunk

    def write(
        self, path: str, stream: BinaryIO, size_hint: int | None = None, *, if_absent: bool = False
    ) -> FileInfo:
        """Stream ``stream`` to a hidden temporary file beside ``path`` (its CRC32C computed on the way), then
        rename it over ``path`` (``if_absent``: refused when ``path`` exists, before and at the rename).

        The written status carries ``extra["checksum"]``: the CRC32C of the bytes written. hdfs-native 0.14 does
        not retry a new block the namenode refuses because the data node has not reported the one before last
        yet (``NotReplicatedYetException``, which Hadoop's Java client retries): the temporary file is then
        closed by lease recovery and appended to (:meth:`_reopen`), data is never sent across a block boundary
        in one call so nothing is lost. A ``complete`` that never succeeds repeats the whole write, up to
        ``max_attempts`` times, when ``stream`` can be rewound; otherwise it is a :class:`StoreError`.
        """
        rel = normalize_path(path)
        if not rel:
            raise IsADirectoryError(f"{self.uri(rel)} is the store root, not a file")
        target = self._abs(rel)
        if if_absent and self.exists(rel):
            raise FileExistsError(f"{self.uri(rel)}: exists (write with if_absent)")
        start = _rewind_point(stream)
        attempt = 1
        while True:
            try:
                checksum = self._write_once(rel, target, stream, if_absent)
                break
            except StoreError as error:
                if not _NOT_REPORTED.search(str(error)) or start is None or attempt >= self.max_attempts:
                    raise
                log.warning("%s; writing %s again (attempt %d of %d)", error, self.uri(rel), attempt + 1,
                            self.max_attempts)
                time.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
                stream.seek(start)
                attempt += 1
        info = self.info(rel)
        return replace(info, extra={**info.extra, "checksum": checksum})

    def _write_once(self, rel: str, target: str, stream: BinaryIO, if_absent: bool) -> Checksum:
        from hdfs_native import WriteOptions

        parent, name = posixpath.split(target)
        temp = posixpath.join(parent, _temp_name(name))
        options = WriteOptions(block_size=self.blocksize, replication=self.replication, permission=self.permission,
                               overwrite=False, create_parent=True)
        writer = self._rpc("create", rel, lambda: self.client.create(temp, options))
        hasher = Crc32c()
        written = 0
        try:
            try:
                block = self.blocksize or self._rpc("getFileInfo", rel, lambda: self.client.get_file_info(temp)).blocksize
                while chunk := stream.read(self.chunk_size):
                    hasher.update(chunk)
                    view = memoryview(chunk)
                    while view:  # never across a block boundary: a refused new block took none of the piece
                        piece = view[: block - written % block]
                        try:
                            self._rpc("write", rel, lambda data=piece, out=writer: out.write(data))
                        except StoreError as error:
                            if not _NOT_REPORTED.search(str(error)) or written % block or not written:
                                raise
                            refused, writer = writer, self._reopen(rel, temp, written, error)
                            _abandon(refused)  # lease recovery closed its file: completing it again would fail
                            self._rpc("write", rel, lambda data=piece, out=writer: out.write(data))
                        written += len(piece)
                        view = view[len(piece):]
            except BaseException:
                try:
                    writer.close()
                except BaseException as error:  # noqa: BLE001 - the first error matters
                    log.debug("closing the abandoned %s failed: %s", temp, error)
                    _abandon(writer)
                raise
            try:
                self._rpc("complete", rel, writer.close)
            finally:
                _abandon(writer)  # completed or refused: never completed again by the garbage collector
            self._rpc("rename", rel, lambda: self.client.rename(temp, target, not if_absent))
        except BaseException:
            self._discard(temp)
            raise
        return Checksum(CRC32C, hasher.b64)

    def _reopen(self, rel: str, temp: str, written: int, error: StoreError) -> Any:
        """After a new block was refused (the data node had not reported the last one yet): close ``temp`` by
        lease recovery (its blocks are whole on the data node), check it holds the ``written`` bytes, and append
        to it, as Hadoop's Java client would have retried the block."""
        log.info("%s; recovering %s to append the rest", error, temp)
        deadline = time.monotonic() + 60.0
        while not self._rpc("recoverLease", rel, lambda: self.client.recover_lease(temp)):
            if time.monotonic() > deadline:
                raise StoreError(f"{self.uri(rel)}: HDFS RPC recoverLease of {temp} did not finish in 60 s") from error
            time.sleep(0.2)
        length = self._rpc("getFileInfo", rel, lambda: self.client.get_file_info(temp)).length
        if length != written:
            raise StoreError(f"{self.uri(rel)}: {temp} holds {length} bytes after recovery, {written} were written"
                             ) from error
        while True:  # the recovered last block may not be reported yet either
            try:
                return self._rpc("append", rel, lambda: self.client.append(temp))
            except StoreError as refused:
                if "not sufficiently replicated yet" not in str(refused) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _discard(self, temp: str) -> None:
        try:
            self.client.delete(temp, False)
        except BaseException as error:  # noqa: BLE001 - best effort; the original error matters more
            log.warning("could not remove temporary file %s: %s", temp, error)

    def delete(self, path: str, recursive: bool = False) -> bool:
        rel = normalize_path(path)
        return bool(self._rpc("delete", rel, lambda: self.client.delete(self._abs(rel), recursive)))

    def mkdir(self, path: str) -> None:
        rel = normalize_path(path)
        self._rpc("mkdirs", rel, lambda: self.client.mkdirs(self._abs(rel), 0o755, True))

    def rename(self, src: str, dst: str) -> None:
        """``rename2`` with ``OVERWRITE`` (one atomic namenode operation); the target's parents are created."""
        src_rel, dst_rel = normalize_path(src), normalize_path(dst)
        parent = posixpath.dirname(dst_rel)
        if parent:
            self.mkdir(parent)
        self._rpc("rename", src_rel, lambda: self.client.rename(self._abs(src_rel), self._abs(dst_rel), True))

    def set_times(self, path: str, mtime: float | None = None, atime: float | None = None) -> None:
        """``setTimes`` (seconds since the epoch; ``None`` leaves a time unchanged: hdfs-native takes no -1, so
        the current time is read first)."""
        rel = normalize_path(path)
        if mtime is None or atime is None:
            status = self._rpc("getFileInfo", rel, lambda: self.client.get_file_info(self._abs(rel)))
        modified = int(mtime * 1000) if mtime is not None else status.modification_time
        accessed = int(atime * 1000) if atime is not None else status.access_time
        self._rpc("setTimes", rel, lambda: self.client.set_times(self._abs(rel), modified, accessed))
