"""A WebHDFS server (namenode + data node) over a local directory that answers as Apache Hadoop 3.5 does.

Implemented operations: ``GETFILESTATUS``, ``LISTSTATUS``, ``LISTSTATUS_BATCH`` (``startafter`` paging),
``GETCONTENTSUMMARY``, ``GETFILECHECKSUM`` (HDFS's MD5-of-MD5-of-CRC32C over the file's own block size),
``GETHOMEDIRECTORY``, ``GETTRASHROOT``, ``OPEN`` (``offset``/``length``), ``CREATE`` and ``APPEND``
(two-step: the namenode answers 307 with a data-node URL that takes the body, plain or chunked),
``MKDIRS``, ``RENAME`` (with ``renameoptions=OVERWRITE`` as HDFS ``rename2``), ``DELETE``
(``recursive``), ``SETTIMES``, ``SETPERMISSION``, ``SETOWNER``, ``SETREPLICATION``.

As Hadoop (checked against a real NameNode and DataNode, see ``tests/integration/devstack/test_hdfs_servers.py``):

* errors are ``RemoteException`` JSON with Hadoop's status, exception and message; the namenode only
  builds ``CREATE``'s redirect, the data node checks it (existing file, permissions, parent that is a
  file, block size) and, like every data-node answer, closes the connection;
* query parameter names are case-sensitive (``startAfter`` is ignored, ``startafter`` pages), except
  ``user.name`` and ``doas``; a request without ``user.name`` acts as the configured owner (Hadoop's
  ``hadoop.http.staticuser.user``);
* every file and directory has an owner (the ``user.name`` that created it) and a group (its parent's,
  ``supergroup`` at the root), kept in an extended attribute of the local file with the file's block
  size; permissions are checked on the owner, group and other bits, with traverse (execute) checks on
  every ancestor and the sticky bit, for everyone but the superuser (the configured owner, as the user
  that starts a NameNode); new files are 644, new directories 755 unless ``permission`` says otherwise,
  parents made by ``CREATE`` inherit the nearest ancestor's permission (plus ``u+wx``); ``/tmp`` and
  ``/user`` start as 1777;
* with ``csrf`` (``dfs.webhdfs.rest-csrf.enabled``) a browser's ``PUT``/``POST``/``DELETE`` without an
  ``X-XSRF-HEADER`` header is refused with 400.

Files are plain files under ``root``; a ``CREATE`` writes a hidden temporary file next to its target
and renames it into place when the body is complete or the client aborts it (Hadoop keeps what an aborted
upload sent), so readers never see a file being written (on Hadoop it is visible, empty or partial).
"""

from __future__ import annotations

import bisect
import errno
import json
import os
import posixpath
import re
import shutil
import ssl
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, urlencode

from airflow_hybrid.devstack import processes
from airflow_hybrid.devstack.shaping import ControlApp, LinkShaper, RequestStats, Shaping, ShapingMiddleware
from airflow_hybrid.devstack.wsgi import FileWrapper, WSGIServer
from airflow_hybrid.stores.hdfs.checksum import BYTES_PER_CRC, DEFAULT_BLOCK_SIZE, HdfsFileChecksum

PREFIX = "/webhdfs/v1"
#: Temporary files of in-flight CREATEs; never listed, never addressable.
TMP_PREFIX = ".devstack-tmp-"
DEFAULT_PAGE_SIZE = 1000
STREAM_CHUNK = 1024 * 1024
#: ``dfs.namenode.fs-limits.min-block-size`` (Hadoop's default, or the block size when that is smaller).
MIN_BLOCK_SIZE = 1024 * 1024
SUPERGROUP = "supergroup"
#: Where owner, group and block size of a file or directory are kept (an extended attribute).
_XATTR = "user.webhdfs"
#: Directories every HDFS of the project starts with (as :class:`~airflow_hybrid.devstack.hadoop.HadoopHdfs`).
_SHARED_DIRS = ("tmp", "user")

GET_OPS = {
    "OPEN", "GETFILESTATUS", "LISTSTATUS", "LISTSTATUS_BATCH", "GETCONTENTSUMMARY", "GETFILECHECKSUM",
    "GETHOMEDIRECTORY", "GETTRASHROOT", "GETQUOTAUSAGE", "GETDELEGATIONTOKEN", "GETXATTRS", "LISTXATTRS",
    "CHECKACCESS", "GETACLSTATUS", "GETFILEBLOCKLOCATIONS", "GETSERVERDEFAULTS", "GETSTATUS",
}  # fmt: skip
PUT_OPS = {
    "CREATE", "MKDIRS", "RENAME", "SETTIMES", "SETPERMISSION", "SETOWNER", "SETREPLICATION",
    "CREATESYMLINK", "SETXATTR", "REMOVEXATTR", "SETACL", "MODIFYACLENTRIES", "CREATESNAPSHOT",
}  # fmt: skip
POST_OPS = {"APPEND", "CONCAT", "TRUNCATE"}
DELETE_OPS = {"DELETE", "DELETESNAPSHOT"}
_OPS_BY_METHOD = {"GET": GET_OPS, "PUT": PUT_OPS, "POST": POST_OPS, "DELETE": DELETE_OPS}

_JAVA_CLASSES = {
    "FileNotFoundException": ("java.io.FileNotFoundException", 404),
    "AccessControlException": ("org.apache.hadoop.security.AccessControlException", 403),
    "SecurityException": ("java.lang.SecurityException", 401),
    "IllegalArgumentException": ("java.lang.IllegalArgumentException", 400),
    "HadoopIllegalArgumentException": ("org.apache.hadoop.HadoopIllegalArgumentException", 400),
    "InvalidPathException": ("org.apache.hadoop.fs.InvalidPathException", 400),
    "UnsupportedOperationException": ("java.lang.UnsupportedOperationException", 400),
    "FileAlreadyExistsException": ("org.apache.hadoop.fs.FileAlreadyExistsException", 403),
    "ParentNotDirectoryException": ("org.apache.hadoop.fs.ParentNotDirectoryException", 403),
    "PathIsNotEmptyDirectoryException": ("org.apache.hadoop.fs.PathIsNotEmptyDirectoryException", 403),
    "AlreadyBeingCreatedException": ("org.apache.hadoop.hdfs.protocol.AlreadyBeingCreatedException", 403),
    "EOFException": ("java.io.EOFException", 403),
    "IOException": ("java.io.IOException", 403),
    "RetriableException": ("org.apache.hadoop.ipc.RetriableException", 503),
    "RuntimeException": ("java.lang.RuntimeException", 500),
    "NotAllowedException": ("javax.ws.rs.NotAllowedException", 500),
}
#: rwx bits each ``FsAction`` needs.
_ACTIONS = {"READ": 4, "WRITE": 2, "EXECUTE": 1, "READ_EXECUTE": 5, "READ_WRITE": 6, "ALL": 7}
#: ``dfs.webhdfs.rest-csrf.browser-useragents-regex`` and ``...methods-to-ignore`` (Hadoop's defaults).
_BROWSER = re.compile(r"^Mozilla.*|^Opera.*")
_CSRF_SAFE_METHODS = {"GET", "OPTIONS", "HEAD", "TRACE"}
CSRF_HEADER = "X-XSRF-HEADER"
CSRF_REASON = "Missing Required Header for CSRF Vulnerability Protection"


class RemoteException(Exception):
    """An error answered as WebHDFS ``RemoteException`` JSON with the status HDFS uses for it."""

    def __init__(self, exception: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        java_class, default_status = _JAVA_CLASSES.get(exception, ("java.io.IOException", 403))
        self.exception = exception
        self.java_class = java_class
        self.message = message
        self.status = status or default_status

    def body(self) -> bytes:
        payload = {"exception": self.exception, "javaClassName": self.java_class, "message": self.message}
        return json.dumps({"RemoteException": payload}).encode()


def remote_exception_body(status: int, message: str) -> tuple[str, bytes]:
    """Content type and body of an injected WebHDFS error (``RetriableException`` for 503)."""
    exception = "RetriableException" if status == 503 else "RuntimeException"
    return "application/json", RemoteException(exception, message, status).body()


_REASONS = {
    200: "OK", 201: "Created", 307: "Temporary Redirect", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip


def _status_line(code: int) -> str:
    return f"{code} {_REASONS.get(code, 'Unknown')}"


def _access_denied(message: str) -> RemoteException:
    return RemoteException("AccessControlException", message)


class _Params:
    """Query parameters. Names are case-sensitive as in Hadoop 3.5, except ``user.name`` and ``doas``
    (read by the authentication filter); bad values raise Hadoop's IllegalArgumentException."""

    _ANY_CASE = ("user.name", "doas")

    def __init__(self, query: str) -> None:
        self.values: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name.lower() in self._ANY_CASE:
                name = name.lower()
            self.values.setdefault(name, value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    @staticmethod
    def invalid(name: str, why: str) -> RemoteException:
        return RemoteException(
            "IllegalArgumentException",
            f'Invalid value for webhdfs parameter "{name}": java.lang.IllegalArgumentException: {why}',
        )

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None or value == "":
            return default
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self.invalid(name, f'Failed to parse "{value}" to Boolean.')

    def long(self, name: str, default: int | None, minimum: int | None = None) -> int | None:
        value = self.get(name)
        if value is None or value == "" or value.lower() == "null":
            return default
        try:
            number = int(value)
        except ValueError:
            raise self.invalid(name, f'Failed to parse "{value}" as a radix-10 long integer.') from None
        if minimum is not None and number < minimum:
            raise self.invalid(name, f"Invalid parameter range: {name} = {number} < {minimum}")
        return number

    def permission(self, default: int) -> int:
        value = self.get("permission")
        if value is None or value == "":
            return default
        try:
            mode = int(value, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o1777:
            raise self.invalid("permission", f'Failed to parse "{value}" as a radix-8 short integer.')
        return mode


def normalize_hdfs_path(raw: str) -> str:
    """``/a//b/`` -> ``/a/b``; ``.``/``..`` components are rejected as HDFS does."""
    parts = [part for part in raw.split("/") if part]
    for part in parts:
        if part in (".", "..") or "\x00" in part:
            raise RemoteException("InvalidPathException", f"Invalid path name Invalid file name: {raw}")
    return "/" + "/".join(parts)


class _ListingCache:
    """Sorted child names of recently listed directories, so paging a huge directory is not quadratic.

    An entry is reused while the directory's mtime is unchanged and was already older than the scan
    (filesystem timestamps are coarse; a change in the same tick as the scan is never trusted).
    """

    def __init__(self, max_dirs: int = 64) -> None:
        self._entries: OrderedDict[str, tuple[int, int, list[str]]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_dirs

    def names(self, local: Path | str) -> list[str]:
        key = str(local)
        before = os.stat(local)
        with self._lock:
            hit = self._entries.get(key)
            if hit and hit[0] == before.st_mtime_ns and hit[1] == before.st_ino:
                self._entries.move_to_end(key)
                return hit[2]
        scan_started = time.time_ns()
        with os.scandir(local) as entries:
            names = sorted((entry.name for entry in entries if not entry.name.startswith(TMP_PREFIX)), key=hdfs_order)
        if before.st_mtime_ns < scan_started - 50_000_000:
            with self._lock:
                self._entries[key] = (before.st_mtime_ns, before.st_ino, names)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return names

    def invalidate(self, *locals_: Path | str) -> None:
        with self._lock:
            for local in locals_:
                self._entries.pop(str(local), None)


_SIGNED = bytes(b ^ 0x80 for b in range(256))


def hdfs_order(name: str) -> bytes:
    """The sort key of a name as the namenode orders a directory: its UTF-8 bytes compared as Java's signed
    bytes (``DFSUtilClient.compareBytes``), so names outside ASCII come before ``a`` (``é`` < ``a``)."""
    return name.encode("utf-8", "surrogateescape").translate(_SIGNED)


class Node(NamedTuple):
    """One component of a resolved path: its HDFS path, local path and ``stat`` (``None`` when missing)."""

    path: str
    local: str
    st: os.stat_result | None

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)


class Namespace:
    """The HDFS namespace kept in a local directory, with Hadoop's owners, permissions and messages."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        replication: int = 1,
        owner: str = "hdfs",
        group: str = SUPERGROUP,
        superuser: str | None = None,
    ) -> None:
        if block_size <= 0 or block_size % BYTES_PER_CRC:
            raise ValueError(f"block size {block_size} must be a positive multiple of {BYTES_PER_CRC}")
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.block_size = block_size
        self.min_block_size = min(MIN_BLOCK_SIZE, block_size)
        self.replication = replication
        self.owner = owner
        self.group = group
        self.superuser = superuser or owner
        self.lock = threading.RLock()  # the namenode's write lock: one namespace mutation at a time
        self.listings = _ListingCache()
        self._leases: set[str] = set()
        self._xattrs = True
        self._attrs: dict[tuple[int, int], tuple[str, str, int]] = {}  # where extended attributes fail
        self._format()

    def _format(self) -> None:
        """A new root is ``owner:supergroup`` 755 with ``/tmp`` and ``/user`` 1777, as on our Hadoop."""
        if self._read_attrs(str(self.root), os.stat(self.root)) is not None:
            return
        os.chmod(self.root, 0o755)
        self.set_attrs(str(self.root), self.owner, self.group)
        for name in _SHARED_DIRS:
            local = self.root / name
            if not local.exists():
                local.mkdir()
                os.chmod(local, 0o1777)
                self.set_attrs(str(local), self.owner, self.group)

    # -- owner, group, block size -----------------------------------------------------------------
    def _read_attrs(self, local: str, st: os.stat_result) -> tuple[str, str, int] | None:
        if self._xattrs:
            try:
                owner, group, block_size = os.getxattr(local, _XATTR).decode().split("\0")
                return owner, group, int(block_size)
            except (OSError, ValueError):
                return None
        return self._attrs.get((st.st_dev, st.st_ino))

    def attrs(self, local: str, st: os.stat_result) -> tuple[str, str, int]:
        """Owner, group and block size (files made behind the server's back: owner, supergroup)."""
        found = self._read_attrs(local, st)
        if found is None:
            return self.owner, self.group, 0 if stat.S_ISDIR(st.st_mode) else self.block_size
        return found

    def set_attrs(self, local: str, owner: str, group: str, block_size: int = 0) -> None:
        value = f"{owner}\0{group}\0{block_size}"
        if self._xattrs:
            try:
                os.setxattr(local, _XATTR, value.encode())
                return
            except OSError as error:
                if error.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                    raise
                self._xattrs = False  # e.g. a filesystem without user extended attributes
        st = os.stat(local)
        self._attrs[(st.st_dev, st.st_ino)] = (owner, group, block_size)

    # -- paths ------------------------------------------------------------------------------------
    def local(self, path: str) -> Path:
        parts = [part for part in path.split("/") if part]
        if any(part.startswith(TMP_PREFIX) for part in parts):
            raise RemoteException("FileNotFoundException", f"File does not exist: {path}")
        return self.root.joinpath(*parts)

    def stat(self, path: str) -> os.stat_result | None:
        try:
            return os.stat(self.local(path))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def is_super(self, user: str) -> bool:
        return user == self.superuser

    def groups(self, user: str) -> set[str]:
        """The superuser is in ``supergroup``; other users belong to no group (as in HadoopHdfs)."""
        return {self.group} if self.is_super(user) else set()

    def resolve(
        self, user: str, path: str, *, create: bool = False, lenient: str | None = None
    ) -> list[Node]:
        """The nodes of ``path`` from the root, checking traverse (execute) permission on every ancestor.

        An ancestor that is a file is ParentNotDirectoryException when ``path`` is to be created, else an
        AccessControlException (for the superuser of GETFILESTATUS and OPEN, the ``lenient`` not-found message).
        """
        if any(part.startswith(TMP_PREFIX) for part in path.split("/")):
            raise RemoteException("FileNotFoundException", f"File does not exist: {path}")
        nodes = [Node("/", str(self.root), os.stat(self.root))]
        parts = [part for part in path.split("/") if part]
        current, local = "", str(self.root)
        missing = False
        for part in parts:
            parent = nodes[-1]
            if parent.st is not None and not missing:
                if not stat.S_ISDIR(parent.st.st_mode):
                    message = f"{parent.path} (is not a directory)"
                    if create:
                        raise RemoteException("ParentNotDirectoryException", message)
                    if lenient and self.is_super(user):
                        raise RemoteException("FileNotFoundException", lenient.format(path=path))
                    raise _access_denied(message)
                self.check(user, parent, "EXECUTE")
            current, local = f"{current}/{part}", f"{local}/{part}"
            st = None
            if not missing:
                try:
                    st = os.stat(local)
                except (FileNotFoundError, NotADirectoryError):
                    missing = True
            nodes.append(Node(current, local, st))
        return nodes

    def describe(self, node: Node) -> str:
        owner, group, _ = self.attrs(node.local, node.st)  # type: ignore[arg-type]
        return f'"{node.path}":{owner}:{group}:{stat.filemode(node.st.st_mode)}'  # type: ignore[union-attr]

    def check(self, user: str, node: Node, action: str) -> None:
        """AccessControlException unless ``user`` may ``action`` (``READ``, ``WRITE``, ...) ``node``."""
        if node.st is None or self.is_super(user):
            return
        owner, group, _ = self.attrs(node.local, node.st)
        mode = node.st.st_mode
        if user == owner:
            granted = (mode >> 6) & 7
        elif group in self.groups(user):
            granted = (mode >> 3) & 7
        else:
            granted = mode & 7
        needed = _ACTIONS[action]
        if granted & needed != needed:
            raise _access_denied(
                f"Permission denied: user={user}, access={action}, inode={self.describe(node)}"
            )

    def check_owner(self, user: str, node: Node) -> None:
        if self.is_super(user) or node.st is None:
            return
        if self.attrs(node.local, node.st)[0] != user:
            raise _access_denied(f"Permission denied. user={user} is not the owner of inode={node.path}")

    def check_sticky(self, user: str, parent: Node, node: Node) -> None:
        """A sticky directory's entries are removed or renamed only by their owner or the directory's."""
        if (
            self.is_super(user)
            or parent.st is None
            or node.st is None
            or not parent.st.st_mode & stat.S_ISVTX
        ):
            return
        if user in (self.attrs(parent.local, parent.st)[0], self.attrs(node.local, node.st)[0]):
            return
        raise _access_denied(
            f"Permission denied by sticky bit: user={user}, path={self.describe(node)}, "
            f"parent={self.describe(parent)}"
        )

    def check_subtree(self, user: str, node: Node, action: str, ignore_empty: bool = False) -> None:
        """``action`` on every directory under (and including) ``node``, as Hadoop's ``subAccess``."""
        if self.is_super(user) or not node.is_dir:
            return
        pending = [node]
        while pending:
            current = pending.pop()
            try:
                names = self.listings.names(current.local)
            except OSError:
                continue
            if not (ignore_empty and not names):
                self.check(user, current, action)
            for name in names:
                child_local = f"{current.local}/{name}"
                try:
                    st = os.stat(child_local)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    pending.append(Node(posixpath.join(current.path, name), child_local, st))

    @staticmethod
    def ancestor(nodes: list[Node]) -> Node:
        """The nearest existing ancestor of the last node."""
        for node in reversed(nodes[:-1]):
            if node.st is not None:
                return node
        return nodes[0]

    def make_dir(self, local: str, mode: int, owner: str, group: str) -> None:
        os.mkdir(local)
        os.chmod(local, mode)
        self.set_attrs(local, owner, group)
        self.listings.invalidate(os.path.dirname(local))

    def make_missing_dirs(
        self, user: str, nodes: list[Node], mode: int, last_mode: int | None = None
    ) -> None:
        """Create the missing directories of ``nodes`` (``last_mode`` for the last one)."""
        group = self.group
        for index, node in enumerate(nodes):
            if node.st is not None:
                group = self.attrs(node.local, node.st)[1]
                continue
            is_last = index == len(nodes) - 1
            self.make_dir(node.local, last_mode if is_last and last_mode is not None else mode, user, group)

    # -- status JSON ------------------------------------------------------------------------------
    def status_json(self, suffix: str, node: Node) -> dict:
        st = node.st
        assert st is not None
        owner, group, block_size = self.attrs(node.local, st)
        is_dir = stat.S_ISDIR(st.st_mode)
        children = 0
        if is_dir:
            try:
                children = len(self.listings.names(node.local))
            except OSError:
                children = 0
        return {
            "accessTime": 0 if is_dir else st.st_atime_ns // 1_000_000,
            "blockSize": 0 if is_dir else block_size,
            "childrenNum": children,
            "fileId": st.st_ino,
            "group": group,
            "length": 0 if is_dir else st.st_size,
            "modificationTime": st.st_mtime_ns // 1_000_000,
            "owner": owner,
            "pathSuffix": suffix,
            "permission": format(st.st_mode & 0o1777, "o"),
            "replication": 0 if is_dir else self.replication,
            "storagePolicy": 0,
            "type": "DIRECTORY" if is_dir else "FILE",
        }

    _TEMPLATE = (
        '{"accessTime":%d,"blockSize":%d,"childrenNum":%d,"fileId":%d,"group":%s,"length":%d,'
        '"modificationTime":%d,"owner":%s,"pathSuffix":%s,"permission":"%o","replication":%d,'
        '"storagePolicy":0,"type":"%s"}'
    )

    def child_statuses(self, local: str, names: Iterable[str]) -> Iterator[str]:
        """``FileStatus`` JSON text of each child still present (the listing hot path: no dicts)."""
        template, dumps, attrs = self._TEMPLATE, json.dumps, self.attrs
        quoted: dict[str, str] = {}  # owners and groups repeat: quote each once

        def q(text: str) -> str:
            found = quoted.get(text)
            if found is None:
                found = quoted[text] = dumps(text)
            return found

        for name in names:
            child = f"{local}/{name}"
            try:
                st = os.stat(child)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed while listing
            owner, group, block_size = attrs(child, st)
            mtime, suffix, mode = st.st_mtime_ns // 1_000_000, dumps(name), st.st_mode & 0o1777
            if stat.S_ISDIR(st.st_mode):
                try:
                    children = len(self.listings.names(child))
                except OSError:
                    children = 0
                yield template % (
                    0,
                    0,
                    children,
                    st.st_ino,
                    q(group),
                    0,
                    mtime,
                    q(owner),
                    suffix,
                    mode,
                    0,
                    "DIRECTORY",
                )
            else:
                yield template % (
                    st.st_atime_ns // 1_000_000, block_size, 0, st.st_ino, q(group), st.st_size, mtime,
                    q(owner), suffix, mode, self.replication, "FILE",
                )  # fmt: skip

    # -- leases -----------------------------------------------------------------------------------
    def take_lease(self, path: str, client: str) -> None:
        with self.lock:
            if path in self._leases:
                raise RemoteException(
                    "AlreadyBeingCreatedException",
                    f"Failed to APPEND_FILE {path} for {client} because this file lease is currently owned by "
                    "another writer",
                )
            self._leases.add(path)

    def release_lease(self, path: str) -> None:
        with self.lock:
            self._leases.discard(path)


def _json(
    start_response: Callable, payload: Any, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    start_response(
        _status_line(status),
        [("Content-Type", "application/json"), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


def _empty(
    start_response: Callable, status: int = 200, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    start_response(
        _status_line(status),
        [("Content-Type", "application/octet-stream"), ("Content-Length", "0"), *(headers or [])],
    )
    return []


class _Request:
    def __init__(self, environ: dict, default_user: str) -> None:
        self.environ = environ
        self.method = environ["REQUEST_METHOD"].upper()
        raw = environ.get("PATH_INFO", "")
        raw = raw.encode("latin-1").decode("utf-8", "surrogateescape")
        if not raw.startswith(PREFIX):
            raise RemoteException(
                "FileNotFoundException", f"{raw} is not a WebHDFS URL (expected {PREFIX}/<path>)", 404
            )
        self.path = normalize_hdfs_path(raw[len(PREFIX) :])
        self.params = _Params(environ.get("QUERY_STRING", ""))
        self.op = (self.params.get("op") or "").upper()
        self.user = self.params.get("doas") or self.params.get("user.name") or default_user
        self.body = environ["wsgi.input"]
        self.client = environ.get("REMOTE_ADDR", "unknown")


class WebHdfsApp:
    """WSGI application of one WebHDFS role: the namenode (metadata, redirects) or the data node (bytes)."""

    def __init__(
        self,
        namespace: Namespace,
        role: str,
        *,
        namenode_address: Callable[[], str],
        datanode_url: Callable[[], str],
        list_page_size: int = DEFAULT_PAGE_SIZE,
        stream_chunk: int = STREAM_CHUNK,
        csrf: bool = False,
    ) -> None:
        if role not in ("namenode", "datanode"):
            raise ValueError(f"role must be namenode or datanode, not {role!r}")
        self.ns = namespace
        self.role = role
        self.namenode_address = namenode_address
        self.datanode_url = datanode_url
        self.list_page_size = list_page_size
        self.stream_chunk = stream_chunk
        self.csrf = csrf
        #: Data nodes close every connection after one answer (Hadoop's Netty ``WebHdfsHandler``).
        self._closing = [("Connection", "close")] if role == "datanode" else []

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if self.csrf and self._csrf_refused(environ):
            start_response(f"400 {CSRF_REASON}", [("Content-Length", "0"), *self._closing])
            return []
        try:
            request = _Request(environ, self.ns.owner)
            handler = self._handler(request)
            return handler(request, start_response)
        except RemoteException as error:
            body = error.body()
            content_type = "application/json; charset=utf-8" if self._closing else "application/json"
            start_response(
                _status_line(error.status),
                [("Content-Type", content_type), ("Content-Length", str(len(body))), *self._closing],
            )
            return [body]

    @staticmethod
    def _csrf_refused(environ: dict) -> bool:
        """Hadoop's ``RestCsrfPreventionFilter``: browsers' unsafe methods need the custom header."""
        if environ.get("REQUEST_METHOD", "GET").upper() in _CSRF_SAFE_METHODS:
            return False
        if not _BROWSER.match(environ.get("HTTP_USER_AGENT", "")):
            return False
        return "HTTP_" + CSRF_HEADER.replace("-", "_") not in environ

    def _handler(self, request: _Request) -> Callable:
        ops = _OPS_BY_METHOD.get(request.method)
        if ops is None:
            raise RemoteException("NotAllowedException", "HTTP 405 Method Not Allowed")
        if not request.op:
            space = "  " if request.method == "PUT" else " "  # sic: Hadoop's PUT message has two spaces
            raise RemoteException("UnsupportedOperationException", f"op=NULL{space}is not supported")
        if request.op not in ops:
            raise _Params.invalid("op", f"{request.op} is not a valid {request.method} operation.")
        prefix = "dn" if self.role == "datanode" else "nn"
        handler = getattr(self, f"_{prefix}_{request.op.lower()}", None)
        if handler is None:
            where = "data node" if self.role == "datanode" else "namenode"
            raise RemoteException(
                "UnsupportedOperationException",
                f"{request.op} is not supported by the devstack WebHDFS {where}",
            )
        return handler

    def _existing(self, request: _Request, missing: str, *, lenient: bool = False) -> list[Node]:
        nodes = self.ns.resolve(request.user, request.path, lenient=missing if lenient else None)
        if nodes[-1].st is None:
            raise RemoteException("FileNotFoundException", missing.format(path=request.path))
        return nodes

    # -- namenode: metadata -----------------------------------------------------------------------
    def _nn_getfilestatus(self, request: _Request, start_response: Callable) -> list[bytes]:
        nodes = self._existing(request, "File does not exist: {path}", lenient=True)
        return _json(start_response, {"FileStatus": self.ns.status_json("", nodes[-1])})

    def _list_target(self, request: _Request) -> Node:
        node = self._existing(request, "File {path} does not exist.")[-1]
        if node.is_dir:
            self.ns.check(request.user, node, "READ_EXECUTE")
        return node

    def _nn_liststatus(self, request: _Request, start_response: Callable) -> Iterable[bytes]:
        node = self._list_target(request)
        if not node.is_dir:
            return _json(start_response, {"FileStatuses": {"FileStatus": [self.ns.status_json("", node)]}})
        names = self.ns.listings.names(node.local)
        start_response(_status_line(200), [("Content-Type", "application/json")])
        return self._stream_listing(node.local, names)

    def _stream_listing(self, local: str, names: list[str]) -> Iterator[bytes]:
        yield b'{"FileStatuses":{"FileStatus":['
        batch: list[str] = []
        first = True
        for status in self.ns.child_statuses(local, names):
            batch.append(status)
            if len(batch) >= 500:
                yield (("" if first else ",") + ",".join(batch)).encode()
                first, batch = False, []
        if batch:
            yield (("" if first else ",") + ",".join(batch)).encode()
        yield b"]}}"

    def _nn_liststatus_batch(self, request: _Request, start_response: Callable) -> list[bytes]:
        node = self._list_target(request)
        if not node.is_dir:
            statuses, remaining = [json.dumps(self.ns.status_json("", node))], 0
        else:
            names = self.ns.listings.names(node.local)
            start_after = request.params.get("startafter")
            start = bisect.bisect_right(names, hdfs_order(start_after), key=hdfs_order) if start_after else 0
            end = min(len(names), start + self.list_page_size)
            statuses = list(self.ns.child_statuses(node.local, names[start:end]))
            remaining = len(names) - end
        body = (
            '{"DirectoryListing":{"partialListing":{"FileStatuses":{"FileStatus":['
            + ",".join(statuses)
            + f']}}}},"remainingEntries":{remaining}}}}}'
        ).encode()
        start_response(
            _status_line(200), [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    def _nn_getcontentsummary(self, request: _Request, start_response: Callable) -> list[bytes]:
        node = self._existing(request, "File does not exist: {path}")[-1]
        files = dirs = length = 0
        if node.is_dir:
            self.ns.check_subtree(request.user, node, "READ_EXECUTE")
            pending = [node.local]
            while pending:
                current = pending.pop()
                dirs += 1
                try:
                    with os.scandir(current) as entries:
                        for entry in entries:
                            if entry.name.startswith(TMP_PREFIX):
                                continue
                            if entry.is_dir():
                                pending.append(entry.path)
                            else:
                                files += 1
                                length += entry.stat().st_size
                except FileNotFoundError:
                    continue
        else:
            files, length = 1, node.st.st_size  # type: ignore[union-attr]
        summary = {
            "directoryCount": dirs,
            "ecPolicy": "" if node.is_dir else "Replicated",
            "fileCount": files,
            "length": length,
            "quota": -1,
            "snapshotDirectoryCount": 0,
            "snapshotFileCount": 0,
            "snapshotLength": 0,
            "snapshotSpaceConsumed": 0,
            "spaceConsumed": length * self.ns.replication,
            "spaceQuota": -1,
            "typeQuota": {},
        }
        return _json(start_response, {"ContentSummary": summary})

    def _nn_gethomedirectory(self, request: _Request, start_response: Callable) -> list[bytes]:
        return _json(start_response, {"Path": f"/user/{request.user}"})

    def _nn_gettrashroot(self, request: _Request, start_response: Callable) -> list[bytes]:
        return _json(start_response, {"Path": f"/user/{request.user}/.Trash"})

    # -- namenode: redirects to the data node -----------------------------------------------------
    def _redirect(
        self, request: _Request, start_response: Callable, query: dict[str, str] | None = None
    ) -> list[bytes]:
        """307 to the data node with the caller's identity, ``namenoderpcaddress`` and ``query``."""
        params = {"op": request.op}
        for name in ("user.name", "doas"):
            if request.params.get(name):
                params[name] = request.params.get(name)  # type: ignore[assignment]
        params["namenoderpcaddress"] = self.namenode_address()
        params.update(sorted((query or {}).items()))
        location = (
            f"{self.datanode_url()}{PREFIX}{quote(request.path, safe='/')}?{urlencode(params, safe=':')}"
        )
        if request.params.boolean("noredirect", False):
            return _json(start_response, {"Location": location})
        return _empty(start_response, 307, [("Location", location)])

    def _passthrough(self, request: _Request, *names: str) -> dict[str, str]:
        return {name: value for name in names if (value := request.params.get(name)) not in (None, "")}

    def _check_read(self, request: _Request, node: Node) -> None:
        """The namenode asks for block locations (READ) of a file with bytes; the data node checks the rest."""
        if not node.is_dir and node.st.st_size > 0:  # type: ignore[union-attr]
            self.ns.check(request.user, node, "READ")

    def _nn_open(self, request: _Request, start_response: Callable) -> list[bytes]:
        offset = request.params.long("offset", 0, minimum=0) or 0
        request.params.long("length", None, minimum=0)
        request.params.long("buffersize", None, minimum=1)
        node = self._existing(request, "File {path} not found.", lenient=True)[-1]
        size = 0 if node.is_dir else node.st.st_size  # type: ignore[union-attr]
        if size > 0 and offset >= size:
            raise RemoteException(
                "IOException", f"Offset={offset} out of the range [0, {size}); OPEN, path={request.path}"
            )
        self._check_read(request, node)
        query = {"offset": str(offset), **self._passthrough(request, "length", "buffersize")}
        return self._redirect(request, start_response, query)

    def _nn_getfilechecksum(self, request: _Request, start_response: Callable) -> list[bytes]:
        self._check_read(request, self._existing(request, "File {path} not found.", lenient=True)[-1])
        return self._redirect(request, start_response)

    def _nn_create(self, request: _Request, start_response: Callable) -> list[bytes]:
        params = request.params
        overwrite = params.boolean("overwrite", False)
        params.permission(0o644)
        params.long("blocksize", None, minimum=1)
        params.long("replication", None, minimum=1)
        params.long("buffersize", None, minimum=1)
        query = {
            "createflag": "",
            "createparent": "true",
            "overwrite": str(overwrite).lower(),
            **self._passthrough(request, "permission", "blocksize", "replication", "buffersize"),
        }
        return self._redirect(request, start_response, query)  # the data node checks the rest

    def _nn_append(self, request: _Request, start_response: Callable) -> list[bytes]:
        request.params.long("buffersize", None, minimum=1)
        self._existing(request, "File {path} not found.")
        return self._redirect(request, start_response, self._passthrough(request, "buffersize"))

    # -- namenode: namespace changes --------------------------------------------------------------
    def _nn_mkdirs(self, request: _Request, start_response: Callable) -> list[bytes]:
        mode = request.params.permission(0o755)
        with self.ns.lock:
            nodes = self.ns.resolve(request.user, request.path, create=True)
            last = nodes[-1]
            if last.st is not None:
                if not last.is_dir:
                    raise RemoteException(
                        "FileAlreadyExistsException", f"Path is not a directory: {last.path}"
                    )
                return _json(start_response, {"boolean": True})
            self.ns.check(request.user, self.ns.ancestor(nodes), "WRITE")
            self.ns.make_missing_dirs(request.user, nodes, mode | 0o300, last_mode=mode)
        return _json(start_response, {"boolean": True})

    def _nn_delete(self, request: _Request, start_response: Callable) -> list[bytes]:
        recursive = request.params.boolean("recursive", False)
        with self.ns.lock:
            if request.path == "/":
                return _json(start_response, {"boolean": False})
            nodes = self.ns.resolve(request.user, request.path)
            parent, last = nodes[-2], nodes[-1]
            if last.is_dir and not recursive and self.ns.listings.names(last.local):
                raise RemoteException(
                    "PathIsNotEmptyDirectoryException",
                    f"`{request.path} is non empty': Directory is not empty",
                )
            self.ns.check(request.user, parent, "WRITE")
            self.ns.check_sticky(request.user, parent, last)
            self.ns.check_subtree(request.user, last, "ALL", ignore_empty=True)
            if last.st is None:
                return _json(start_response, {"boolean": False})
            if last.is_dir:
                shutil.rmtree(last.local)
            else:
                os.unlink(last.local)
            self.ns.listings.invalidate(last.local, parent.local)
        return _json(start_response, {"boolean": True})

    def _nn_rename(self, request: _Request, start_response: Callable) -> list[bytes]:
        destination = request.params.get("destination")
        if not destination:
            raise RemoteException(
                "IllegalArgumentException", "Required param destination for op: RENAME is null or empty"
            )
        if not destination.startswith("/"):
            raise _Params.invalid(
                "destination",
                f'Invalid parameter value: destination = "{destination}" is not an absolute path.',
            )
        dst = normalize_hdfs_path(destination)
        options = request.params.get("renameoptions")
        flags: set[str] = set()
        for flag in (options or "").split(","):
            if flag.strip():
                if flag.strip().upper() not in ("NONE", "OVERWRITE", "TO_TRASH"):
                    raise _Params.invalid(
                        "renameoptions",
                        f"No enum constant org.apache.hadoop.fs.Options.Rename.{flag.strip()}",
                    )
                flags.add(flag.strip().upper())
        with self.ns.lock:
            if options is None:
                return _json(start_response, {"boolean": self._rename(request, request.path, dst)})
            self._rename2(request, request.path, dst, overwrite="OVERWRITE" in flags)
        return _empty(start_response)

    def _rename_checks(self, request: _Request, src: list[Node], dst: list[Node]) -> None:
        """Write on the source's parent (and its sticky bit), write on the destination's nearest ancestor."""
        if len(src) > 1:
            self.ns.check(request.user, src[-2], "WRITE")
            self.ns.check_sticky(request.user, src[-2], src[-1])
        self.ns.check(request.user, self.ns.ancestor(dst), "WRITE")

    def _rename(self, request: _Request, src: str, dst: str) -> bool:
        """HDFS ``rename``: false (not an error) when it cannot be done; into ``dst`` when it is a directory."""
        src_nodes = self.ns.resolve(request.user, src)
        dst_nodes = self.ns.resolve(request.user, dst, create=True)
        if dst_nodes[-1].is_dir and src != "/":
            dst = posixpath.join(dst, posixpath.basename(src))
            dst_nodes = self.ns.resolve(request.user, dst, create=True)
        self._rename_checks(request, src_nodes, dst_nodes)
        if src_nodes[-1].st is None or src == "/":
            return False
        if dst == src:
            return True
        if dst.startswith(src.rstrip("/") + "/") or dst_nodes[-1].st is not None or not dst_nodes[-2].is_dir:
            return False
        self._move(src_nodes[-1], dst_nodes[-1], dst_nodes[-2])
        return True

    def _rename2(self, request: _Request, src: str, dst: str, overwrite: bool) -> None:
        """HDFS ``rename2`` (``renameoptions``): errors instead of false; ``OVERWRITE`` replaces ``dst``."""
        src_nodes = self.ns.resolve(request.user, src)
        dst_nodes = self.ns.resolve(request.user, dst, create=True)
        self._rename_checks(request, src_nodes, dst_nodes)
        source, target = src_nodes[-1], dst_nodes[-1]
        if source.st is None:
            raise RemoteException("FileNotFoundException", f"rename source {src} is not found.")
        if src == "/":
            raise RemoteException("IOException", "rename source cannot be the root")
        if dst == src:
            raise RemoteException(
                "FileAlreadyExistsException", f"The source {src} and destination {dst} are the same"
            )
        if dst.startswith(src + "/"):
            raise RemoteException(
                "IOException", f"Rename destination {dst} is a directory or file under source {src}"
            )
        if dst == "/":
            raise RemoteException("IOException", "rename destination cannot be the root")
        if target.st is not None:
            if source.is_dir != target.is_dir:
                raise RemoteException(
                    "IOException", f"Source {src} and destination {dst} must both be directories"
                )
            if not overwrite:
                raise RemoteException(
                    "FileAlreadyExistsException", f"rename destination {dst} already exists"
                )
            if target.is_dir and self.ns.listings.names(target.local):
                raise RemoteException("IOException", f"rename destination directory is not empty: {dst}")
        parent = dst_nodes[-2]
        if parent.st is None:
            raise RemoteException("FileNotFoundException", f"rename destination parent {dst} not found.")
        if not parent.is_dir:
            raise RemoteException(
                "ParentNotDirectoryException", f"rename destination parent {dst} is a file."
            )
        if target.is_dir:
            os.rmdir(target.local)
        self._move(source, target, parent)

    def _move(self, source: Node, target: Node, target_parent: Node) -> None:
        os.replace(source.local, target.local)
        self.ns.listings.invalidate(source.local, os.path.dirname(source.local), target_parent.local)

    def _nn_settimes(self, request: _Request, start_response: Callable) -> list[bytes]:
        mtime = request.params.long("modificationtime", -1, minimum=-1)
        atime = request.params.long("accesstime", -1, minimum=-1)
        node = self._existing(request, "File/Directory {path} does not exist.")[-1]
        self.ns.check(request.user, node, "WRITE")
        st = node.st
        assert st is not None and mtime is not None and atime is not None
        os.utime(
            node.local,
            ns=(
                st.st_atime_ns if atime == -1 else atime * 1_000_000,
                st.st_mtime_ns if mtime == -1 else mtime * 1_000_000,
            ),
        )
        return _empty(start_response)

    def _nn_setpermission(self, request: _Request, start_response: Callable) -> list[bytes]:
        mode = request.params.permission(0o755)
        node = self._existing(request, "Directory/File does not exist {path}")[-1]
        self.ns.check_owner(request.user, node)
        os.chmod(node.local, mode)
        return _empty(start_response)

    def _nn_setowner(self, request: _Request, start_response: Callable) -> list[bytes]:
        owner, group = request.params.get("owner") or None, request.params.get("group") or None
        node = self._existing(request, "Directory/File does not exist {path}")[-1]
        self.ns.check_owner(request.user, node)
        if not self.ns.is_super(request.user):
            if owner is not None and owner != request.user:
                raise _access_denied(
                    f"User {request.user} is not a super user (non-super user cannot change owner)."
                )
            if group is not None and group not in self.ns.groups(request.user):
                raise _access_denied(f"User {request.user} does not belong to {group}")
        with self.ns.lock:
            current_owner, current_group, block_size = self.ns.attrs(node.local, node.st)  # type: ignore[arg-type]
            self.ns.set_attrs(node.local, owner or current_owner, group or current_group, block_size)
        return _empty(start_response)

    def _nn_setreplication(self, request: _Request, start_response: Callable) -> list[bytes]:
        request.params.long("replication", None, minimum=1)
        node = self._existing(request, "File does not exist: {path}")[-1]
        self.ns.check(request.user, node, "WRITE")
        return _json(start_response, {"boolean": not node.is_dir})

    # -- data node ----------------------------------------------------------------------------------
    def _dn_file(self, request: _Request) -> Node:
        node = self._existing(request, "File does not exist: {path}", lenient=True)[-1]
        if node.is_dir:
            raise RemoteException("FileNotFoundException", f"Path is not a file: {request.path}")
        self.ns.check(request.user, node, "READ")
        return node

    def _dn_open(self, request: _Request, start_response: Callable) -> Iterable[bytes]:
        offset = request.params.long("offset", 0, minimum=0) or 0
        length = request.params.long("length", None, minimum=0)
        node = self._dn_file(request)
        size = node.st.st_size  # type: ignore[union-attr]
        if offset > size:
            raise RemoteException("EOFException", "Cannot seek after EOF")
        count = size - offset if length is None else min(length, size - offset)
        handle = open(node.local, "rb")  # noqa: SIM115 - closed by the file wrapper
        start_response(
            _status_line(200),
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(count)), *self._closing],
        )
        return FileWrapper(handle, self.stream_chunk, offset, count)

    def _dn_getfilechecksum(self, request: _Request, start_response: Callable) -> list[bytes]:
        node = self._dn_file(request)
        summer = HdfsFileChecksum(self.ns.attrs(node.local, node.st)[2])  # type: ignore[arg-type]
        with open(node.local, "rb") as handle:
            while chunk := handle.read(self.stream_chunk):
                summer.update(chunk)
        result = summer.result()
        # Hadoop hex-encodes the whole buffer its 28 bytes were written to (32 bytes, zero-padded).
        checksum = {
            "algorithm": result.algorithm,
            "bytes": result.value + "00" * 4,
            "length": len(result.value) // 2,
        }
        return _json(start_response, {"FileChecksum": checksum}, headers=self._closing)

    def _check_create(self, request: _Request, overwrite: bool) -> list[Node]:
        """The namenode's ``startFile`` checks, in Hadoop's order."""
        nodes = self.ns.resolve(request.user, request.path, create=True)
        self.ns.check(request.user, self.ns.ancestor(nodes), "WRITE")
        last = nodes[-1]
        if last.st is not None:
            if last.is_dir:
                raise RemoteException(
                    "FileAlreadyExistsException", f"{request.path} already exists as a directory"
                )
            if not overwrite:
                raise RemoteException(
                    "FileAlreadyExistsException", f"{request.path} for client {request.client} already exists"
                )
            self.ns.check(request.user, last, "WRITE")
        return nodes

    def _dn_create(self, request: _Request, start_response: Callable) -> list[bytes]:
        params = request.params
        overwrite = params.boolean("overwrite", False)
        mode = params.permission(0o644)
        block_size = params.long("blocksize", None, minimum=1) or self.ns.block_size
        if block_size < self.ns.min_block_size:
            raise RemoteException(
                "IOException",
                f"Specified block size {block_size} is less than configured minimum value "
                f"dfs.namenode.fs-limits.min-block-size={self.ns.min_block_size}",
            )
        if block_size % BYTES_PER_CRC:
            raise RemoteException(
                "HadoopIllegalArgumentException",
                f"Invalid values: dfs.bytes-per-checksum (={BYTES_PER_CRC}) must divide block size (={block_size}).",
            )
        with self.ns.lock:
            nodes = self._check_create(request, overwrite)
            # Hadoop's createParent: missing parents inherit the nearest ancestor's permission, plus u+wx.
            inherited = self.ns.ancestor(nodes).st.st_mode & 0o777 | 0o300  # type: ignore[union-attr]
            self.ns.make_missing_dirs(request.user, nodes[:-1], inherited)
        parent = nodes[-2]
        group = self.ns.attrs(parent.local, os.stat(parent.local))[1]
        fd, temp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=parent.local)
        os.chmod(temp, mode)
        self.ns.set_attrs(temp, request.user, group, block_size)
        try:
            try:
                with os.fdopen(fd, "wb") as out:
                    while chunk := request.body.read(self.stream_chunk):
                        out.write(chunk)
            except (ConnectionError, TimeoutError):
                self._publish(request, overwrite, temp, parent)  # Hadoop keeps what an aborted upload sent
                raise
            self._publish(request, overwrite, temp, parent)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        namenode = request.params.get("namenoderpcaddress") or self.namenode_address()
        start_response(
            _status_line(201),
            [
                ("Location", f"hdfs://{namenode}{quote(request.path, safe='/')}"),
                ("Content-Length", "0"),
                *self._closing,
            ],
        )
        return []

    def _publish(self, request: _Request, overwrite: bool, temp: str, parent: Node) -> None:
        with self.ns.lock:
            nodes = self._check_create(request, overwrite)  # another writer may have won meanwhile
            os.replace(temp, nodes[-1].local)
            self.ns.listings.invalidate(parent.local)

    def _dn_append(self, request: _Request, start_response: Callable) -> list[bytes]:
        node = self._dn_file(request)
        self.ns.check(request.user, node, "WRITE")
        self.ns.take_lease(request.path, f"client {request.client}")
        try:
            with open(node.local, "ab") as out:
                while chunk := request.body.read(self.stream_chunk):
                    out.write(chunk)
        finally:
            self.ns.release_lease(request.path)
        return _empty(start_response, headers=self._closing)


def webhdfs_operation(environ: dict, role: str = "namenode") -> str:
    """Name of the WebHDFS operation of a request (``OPEN``; ``datanode.OPEN`` on the data node)."""
    op = ""
    for part in environ.get("QUERY_STRING", "").split("&"):
        name, _, value = part.partition("=")
        if name == "op":
            op = value.upper()
            break
    op = op or environ.get("REQUEST_METHOD", "GET")
    return f"datanode.{op}" if role == "datanode" else op


class WebHdfsServer(processes.Service):
    """A namenode and a data node on loopback ports serving ``root`` as the HDFS namespace.

    ``owner`` owns the root and is the superuser (as the user that starts a NameNode) unless
    ``superuser`` names another; it is also the user of requests without ``user.name``. ``csrf`` is
    ``dfs.webhdfs.rest-csrf.enabled``. ``stats`` counts requests per operation (``OPEN`` at the
    namenode, ``datanode.OPEN`` at the data node); ``shaper`` (a
    :class:`~airflow_hybrid.devstack.shaping.LinkShaper`) adds latency, a bandwidth cap and faults to both.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        datanode_port: int = 0,
        list_page_size: int = DEFAULT_PAGE_SIZE,
        block_size: int = DEFAULT_BLOCK_SIZE,
        owner: str = "hdfs",
        superuser: str | None = None,
        csrf: bool = False,
        shaper: LinkShaper | None = None,
        control_app: Callable | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.namespace = Namespace(root, block_size=block_size, superuser=superuser, owner=owner)
        self.host = host
        self.ssl_context = ssl_context
        self.scheme = "https" if ssl_context is not None else "http"
        self.shaper = shaper or LinkShaper("webhdfs")
        self.stats = RequestStats()
        self._ports = (port, datanode_port)
        common = {
            "namenode_address": lambda: f"{self.host}:{self.port}",
            "datanode_url": lambda: self.datanode_url,
            "list_page_size": list_page_size,
            "csrf": csrf,
        }
        self.namenode_app = WebHdfsApp(self.namespace, "namenode", **common)
        self.datanode_app = WebHdfsApp(self.namespace, "datanode", **common)
        self.control_app = control_app or ControlApp(
            Shaping({"webhdfs": self.shaper}),
            stats=lambda: {"webhdfs": self.stats.snapshot()},
            reset_stats=self.stats.reset,
            actions={"config": lambda body: self.configure(**body)},
        )
        self._namenode: WSGIServer | None = None
        self._datanode: WSGIServer | None = None

    @property
    def root(self) -> Path:
        return self.namespace.root

    @property
    def list_page_size(self) -> int:
        return self.namenode_app.list_page_size

    @list_page_size.setter
    def list_page_size(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"list page size must be positive, got {value}")
        self.namenode_app.list_page_size = value

    def configure(self, **settings: Any) -> dict:
        """Runtime settings (``list_page_size``), also reachable as ``POST /_devstack/config``."""
        unknown = set(settings) - {"list_page_size"}
        if unknown:
            raise ValueError(f"unknown WebHDFS settings: {', '.join(sorted(unknown))}")
        if "list_page_size" in settings:
            self.list_page_size = int(settings["list_page_size"])
        return {"list_page_size": self.list_page_size}

    def _wrap(self, app: WebHdfsApp, role: str) -> ShapingMiddleware:
        return ShapingMiddleware(
            app,
            self.shaper,
            classify=lambda environ: webhdfs_operation(environ, role),
            error_body=remote_exception_body,
            stats=self.stats,
            control_app=lambda environ, start_response: self.control_app(environ, start_response),
        )

    def start(self) -> WebHdfsServer:
        tls = self.ssl_context
        self._datanode = WSGIServer(
            self.host, self._ports[1], self._wrap(self.datanode_app, "datanode"), ssl_context=tls
        )
        self._namenode = WSGIServer(
            self.host, self._ports[0], self._wrap(self.namenode_app, "namenode"), ssl_context=tls
        )
        self._datanode.start("webhdfs-datanode")
        self._namenode.start("webhdfs-namenode")
        return self

    def stop(self) -> None:
        for server in (self._namenode, self._datanode):
            if server is not None:
                server.stop()
        self._namenode = self._datanode = None

    @property
    def port(self) -> int:
        if self._namenode is None:
            raise RuntimeError("WebHDFS server is not started")
        return self._namenode.port

    @property
    def datanode_port(self) -> int:
        if self._datanode is None:
            raise RuntimeError("WebHDFS server is not started")
        return self._datanode.port

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def datanode_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.datanode_port}"
