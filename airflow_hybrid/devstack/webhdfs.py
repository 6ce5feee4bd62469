"""A WebHDFS server (namenode + data node) over a local directory, following the Hadoop REST spec.

Implemented operations: ``GETFILESTATUS``, ``LISTSTATUS``, ``LISTSTATUS_BATCH`` (``startAfter`` paging),
``GETCONTENTSUMMARY``, ``GETFILECHECKSUM`` (HDFS's MD5-of-MD5-of-CRC32C), ``GETHOMEDIRECTORY``,
``GETTRASHROOT``, ``OPEN`` (``offset``/``length``), ``CREATE`` and ``APPEND`` (two-step: the namenode
answers 307 with a data-node URL that takes the body, plain or chunked), ``MKDIRS``, ``RENAME`` (with
``renameoptions=OVERWRITE`` as HDFS ``rename2``), ``DELETE`` (``recursive``), ``SETTIMES``,
``SETPERMISSION``, ``SETOWNER``, ``SETREPLICATION``. Errors are ``RemoteException`` JSON with the
status HDFS uses. Permissions are checked against the owner bits of each file's real mode
(``SETPERMISSION`` changes them), for every user except the configured superuser.

Files are plain files under ``root``; a ``CREATE`` writes a hidden temporary file next to its target
and renames it into place when the body is complete, so readers never see a partial file.
"""

from __future__ import annotations

import bisect
import json
import os
import posixpath
import shutil
import ssl
import stat
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from airflow_hybrid.devstack.shaping import ControlApp, LinkShaper, RequestStats, Shaping, ShapingMiddleware
from airflow_hybrid.devstack.wsgi import FileWrapper, WSGIServer
from airflow_hybrid.stores.hdfs import DEFAULT_BLOCK_SIZE, HdfsFileChecksum

PREFIX = "/webhdfs/v1"
#: Temporary files of in-flight CREATEs; never listed, never addressable.
TMP_PREFIX = ".devstack-tmp-"
DEFAULT_USER = "dr.who"
DEFAULT_PAGE_SIZE = 1000
STREAM_CHUNK = 1024 * 1024

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
_OPS_BY_METHOD = {
    "GET": ("Get", GET_OPS),
    "PUT": ("Put", PUT_OPS),
    "POST": ("Post", POST_OPS),
    "DELETE": ("Delete", DELETE_OPS),
}

_JAVA_CLASSES = {
    "FileNotFoundException": ("java.io.FileNotFoundException", 404),
    "AccessControlException": ("org.apache.hadoop.security.AccessControlException", 403),
    "SecurityException": ("java.lang.SecurityException", 401),
    "IllegalArgumentException": ("java.lang.IllegalArgumentException", 400),
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
}


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


class _Params:
    """Query parameters, names case-insensitive as in HDFS; bad values raise IllegalArgumentException."""

    def __init__(self, query: str) -> None:
        self.values: dict[str, str] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            self.values.setdefault(name.lower(), value)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name.lower(), default)

    def _invalid(self, name: str, value: str, why: str) -> RemoteException:
        return RemoteException(
            "IllegalArgumentException",
            f'Invalid value for webhdfs parameter "{name}": Invalid value: "{value}" {why}',
        )

    def boolean(self, name: str, default: bool) -> bool:
        value = self.get(name)
        if value is None or value == "":
            return default
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise self._invalid(name, value, "is not a boolean (true or false)")

    def long(self, name: str, default: int | None, minimum: int | None = None) -> int | None:
        value = self.get(name)
        if value is None or value == "" or value.lower() == "null":
            return default
        try:
            number = int(value)
        except ValueError:
            raise self._invalid(name, value, "is not a long integer") from None
        if minimum is not None and number < minimum:
            raise self._invalid(name, value, f"should be greater than or equal to {minimum}")
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
            raise self._invalid(
                "permission", value, "does not belong to the domain ^[0-1]?[0-7]?[0-7]?[0-7]$"
            )
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

    def names(self, local: Path) -> list[str]:
        key = str(local)
        before = os.stat(local)
        with self._lock:
            hit = self._entries.get(key)
            if hit and hit[0] == before.st_mtime_ns and hit[1] == before.st_ino:
                self._entries.move_to_end(key)
                return hit[2]
        scan_started = time.time_ns()
        with os.scandir(local) as entries:
            names = sorted(entry.name for entry in entries if not entry.name.startswith(TMP_PREFIX))
        if before.st_mtime_ns < scan_started - 50_000_000:
            with self._lock:
                self._entries[key] = (before.st_mtime_ns, before.st_ino, names)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return names

    def invalidate(self, *locals_: Path) -> None:
        with self._lock:
            for local in locals_:
                self._entries.pop(str(local), None)


class Namespace:
    """The HDFS namespace kept in a local directory, with HDFS's semantics and messages."""

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        block_size: int = DEFAULT_BLOCK_SIZE,
        replication: int = 1,
        owner: str = "hdfs",
        group: str = "supergroup",
        superuser: str | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.block_size = block_size
        self.replication = replication
        self.owner = owner
        self.group = group
        self.superuser = superuser
        self.lock = threading.RLock()  # the namenode's write lock: one namespace mutation at a time
        self.listings = _ListingCache()
        self._leases: set[str] = set()

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

    def file_status(
        self, path: str, missing: str = "File does not exist: {path}"
    ) -> tuple[Path, os.stat_result]:
        local = self.local(path)
        try:
            return local, os.stat(local)
        except (FileNotFoundError, NotADirectoryError):
            raise RemoteException("FileNotFoundException", missing.format(path=path)) from None

    def existing_file(self, path: str) -> tuple[Path, os.stat_result]:
        local, st = self.file_status(path)
        if stat.S_ISDIR(st.st_mode):
            raise RemoteException("FileNotFoundException", f"Path is not a file: {path}")
        return local, st

    def check_parents(self, path: str) -> tuple[str, os.stat_result]:
        """Raise ParentNotDirectoryException if an ancestor is a file; return the nearest existing ancestor."""
        current = "/"
        current_stat = os.stat(self.root)
        for part in [p for p in path.split("/") if p][:-1]:
            candidate = posixpath.join(current, part)
            st = self.stat(candidate)
            if st is None:
                break
            if not stat.S_ISDIR(st.st_mode):
                raise RemoteException("ParentNotDirectoryException", f"{candidate} (is not a directory)")
            current, current_stat = candidate, st
        return current, current_stat

    # -- permissions ------------------------------------------------------------------------------
    def require(self, user: str, path: str, st: os.stat_result, access: str) -> None:
        if user == self.superuser:
            return
        bit = {"READ": stat.S_IRUSR, "WRITE": stat.S_IWUSR, "EXECUTE": stat.S_IXUSR}[access]
        if st.st_mode & bit:
            return
        kind = "d" if stat.S_ISDIR(st.st_mode) else "-"
        raise RemoteException(
            "AccessControlException",
            f'Permission denied: user={user}, access={access}, inode="{path}":{self.owner}:{self.group}:'
            f"{kind}{stat.filemode(st.st_mode)[1:]}",
        )

    def require_parent_write(self, user: str, path: str) -> None:
        ancestor, st = self.check_parents(path)
        self.require(user, ancestor, st, "WRITE")

    # -- status JSON ------------------------------------------------------------------------------
    def status_json(self, suffix: str, st: os.stat_result, local: Path | None = None) -> dict:
        is_dir = stat.S_ISDIR(st.st_mode)
        children = 0
        if is_dir and local is not None:
            try:
                children = len(self.listings.names(local))
            except OSError:
                children = 0
        return {
            "accessTime": 0 if is_dir else st.st_atime_ns // 1_000_000,
            "blockSize": 0 if is_dir else self.block_size,
            "childrenNum": children,
            "fileId": st.st_ino,
            "group": self.group,
            "length": 0 if is_dir else st.st_size,
            "modificationTime": st.st_mtime_ns // 1_000_000,
            "owner": self.owner,
            "pathSuffix": suffix,
            "permission": format(st.st_mode & 0o1777, "o"),
            "replication": 0 if is_dir else self.replication,
            "storagePolicy": 0,
            "type": "DIRECTORY" if is_dir else "FILE",
        }

    def child_statuses(self, local: Path, names: Iterable[str]) -> Iterator[str]:
        """``FileStatus`` JSON text of each child still present (the listing hot path: no dicts)."""
        template = (
            '{"accessTime":%d,"blockSize":%d,"childrenNum":%d,"fileId":%d,"group":'
            + json.dumps(self.group)
            + ',"length":%d,"modificationTime":%d,"owner":'
            + json.dumps(self.owner)
            + ',"pathSuffix":%s,"permission":"%o","replication":%d,"storagePolicy":0,"type":"%s"}'
        )
        base = str(local)
        for name in names:
            child = f"{base}/{name}"
            try:
                st = os.stat(child)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed while listing
            mtime, suffix, mode = st.st_mtime_ns // 1_000_000, json.dumps(name), st.st_mode & 0o1777
            if stat.S_ISDIR(st.st_mode):
                try:
                    children = len(self.listings.names(Path(child)))
                except OSError:
                    children = 0
                yield template % (0, 0, children, st.st_ino, 0, mtime, suffix, mode, 0, "DIRECTORY")
            else:
                atime, size = st.st_atime_ns // 1_000_000, st.st_size
                yield template % (
                    atime,
                    self.block_size,
                    0,
                    st.st_ino,
                    size,
                    mtime,
                    suffix,
                    mode,
                    self.replication,
                    "FILE",
                )

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


def _json(start_response: Callable, payload: Any, status: int = 200) -> list[bytes]:
    body = json.dumps(payload, separators=(",", ":")).encode()
    start_response(
        _status_line(status), [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
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
    def __init__(self, environ: dict) -> None:
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
        self.user = self.params.get("doas") or self.params.get("user.name") or DEFAULT_USER
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
    ) -> None:
        if role not in ("namenode", "datanode"):
            raise ValueError(f"role must be namenode or datanode, not {role!r}")
        self.ns = namespace
        self.role = role
        self.namenode_address = namenode_address
        self.datanode_url = datanode_url
        self.list_page_size = list_page_size
        self.stream_chunk = stream_chunk

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            request = _Request(environ)
            handler = self._handler(request)
            return handler(request, start_response)
        except RemoteException as error:
            body = error.body()
            start_response(
                _status_line(error.status),
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]

    def _handler(self, request: _Request) -> Callable:
        kind, ops = _OPS_BY_METHOD.get(request.method, (None, set()))
        if kind is None:
            raise RemoteException(
                "UnsupportedOperationException", f"HTTP method {request.method} is not supported"
            )
        if not request.op:
            raise RemoteException(
                "IllegalArgumentException", 'Invalid value for webhdfs parameter "op": op is missing'
            )
        if request.op not in ops:
            raise RemoteException(
                "IllegalArgumentException",
                f'Invalid value for webhdfs parameter "op": No enum constant '
                f"org.apache.hadoop.hdfs.web.resources.{kind}OpParam.Op.{request.op}",
            )
        prefix = "dn" if self.role == "datanode" else "nn"
        handler = getattr(self, f"_{prefix}_{request.op.lower()}", None)
        if handler is None:
            where = "data node" if self.role == "datanode" else "namenode"
            raise RemoteException(
                "UnsupportedOperationException",
                f"{request.op} is not supported by the devstack WebHDFS {where}",
            )
        return handler

    # -- namenode: metadata -----------------------------------------------------------------------
    def _nn_getfilestatus(self, request: _Request, start_response: Callable) -> list[bytes]:
        local, st = self.ns.file_status(request.path)
        return _json(start_response, {"FileStatus": self.ns.status_json("", st, local)})

    def _list_target(self, request: _Request) -> tuple[Path, os.stat_result]:
        local, st = self.ns.file_status(request.path, "File {path} does not exist.")
        if stat.S_ISDIR(st.st_mode):
            self.ns.require(request.user, request.path, st, "READ")
        return local, st

    def _nn_liststatus(self, request: _Request, start_response: Callable) -> Iterable[bytes]:
        local, st = self._list_target(request)
        if not stat.S_ISDIR(st.st_mode):
            return _json(start_response, {"FileStatuses": {"FileStatus": [self.ns.status_json("", st)]}})
        names = self.ns.listings.names(local)
        start_response(_status_line(200), [("Content-Type", "application/json")])
        return self._stream_listing(local, names)

    def _stream_listing(self, local: Path, names: list[str]) -> Iterator[bytes]:
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
        local, st = self._list_target(request)
        if not stat.S_ISDIR(st.st_mode):
            statuses, remaining = [json.dumps(self.ns.status_json("", st))], 0
        else:
            names = self.ns.listings.names(local)
            start_after = request.params.get("startafter")
            start = bisect.bisect_right(names, start_after) if start_after else 0
            end = min(len(names), start + self.list_page_size)
            statuses = list(self.ns.child_statuses(local, names[start:end]))
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
        local, st = self.ns.file_status(request.path)
        files = dirs = length = 0
        if stat.S_ISDIR(st.st_mode):
            pending = [local]
            while pending:
                current = pending.pop()
                dirs += 1
                try:
                    with os.scandir(current) as entries:
                        for entry in entries:
                            if entry.name.startswith(TMP_PREFIX):
                                continue
                            if entry.is_dir():
                                pending.append(Path(entry.path))
                            else:
                                files += 1
                                length += entry.stat().st_size
                except FileNotFoundError:
                    continue
        else:
            files, length = 1, st.st_size
        summary = {
            "directoryCount": dirs,
            "ecPolicy": "",
            "fileCount": files,
            "length": length,
            "quota": -1,
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
        self, request: _Request, start_response: Callable, passthrough: tuple[str, ...]
    ) -> list[bytes]:
        query = {"op": request.op, "user.name": request.user, "namenoderpcaddress": self.namenode_address()}
        for name in passthrough:
            value = request.params.get(name)
            if value is not None and value != "":
                query[name] = value
        location = f"{self.datanode_url()}{PREFIX}{quote(request.path, safe='/')}?{urlencode(query)}"
        if request.params.boolean("noredirect", False):
            return _json(start_response, {"Location": location})
        return _empty(start_response, 307, [("Location", location)])

    def _nn_open(self, request: _Request, start_response: Callable) -> list[bytes]:
        request.params.long("offset", 0, minimum=0)
        request.params.long("length", None, minimum=0)
        request.params.long("buffersize", None, minimum=1)
        _, st = self.ns.existing_file(request.path)
        self.ns.require(request.user, request.path, st, "READ")
        return self._redirect(request, start_response, ("offset", "length", "buffersize"))

    def _nn_getfilechecksum(self, request: _Request, start_response: Callable) -> list[bytes]:
        _, st = self.ns.existing_file(request.path)
        self.ns.require(request.user, request.path, st, "READ")
        return self._redirect(request, start_response, ("length",))

    def _nn_create(self, request: _Request, start_response: Callable) -> list[bytes]:
        params = request.params
        overwrite = params.boolean("overwrite", False)
        params.permission(0o644)
        params.long("blocksize", None, minimum=1)
        params.long("replication", None, minimum=1)
        params.long("buffersize", None, minimum=1)
        self._check_create(request.path, overwrite, request.client)
        self.ns.require_parent_write(request.user, request.path)
        return self._redirect(
            request, start_response, ("overwrite", "permission", "blocksize", "replication", "buffersize")
        )

    def _check_create(self, path: str, overwrite: bool, client: str) -> None:
        if path == "/":
            raise RemoteException("FileAlreadyExistsException", "/ already exists as a directory")
        self.ns.check_parents(path)
        st = self.ns.stat(path)
        if st is not None:
            if stat.S_ISDIR(st.st_mode):
                raise RemoteException("FileAlreadyExistsException", f"{path} already exists as a directory")
            if not overwrite:
                raise RemoteException(
                    "FileAlreadyExistsException", f"{path} for client {client} already exists"
                )

    def _nn_append(self, request: _Request, start_response: Callable) -> list[bytes]:
        request.params.long("buffersize", None, minimum=1)
        _, st = self.ns.existing_file(request.path)
        self.ns.require(request.user, request.path, st, "WRITE")
        return self._redirect(request, start_response, ("buffersize",))

    # -- namenode: namespace changes --------------------------------------------------------------
    def _nn_mkdirs(self, request: _Request, start_response: Callable) -> list[bytes]:
        mode = request.params.permission(0o755)
        with self.ns.lock:
            current = "/"
            for part in [p for p in request.path.split("/") if p]:
                current = posixpath.join(current, part)
                st = self.ns.stat(current)
                if st is None:
                    parent = posixpath.dirname(current)
                    self.ns.require(request.user, parent, self.ns.stat(parent), "WRITE")  # type: ignore[arg-type]
                    local = self.ns.local(current)
                    local.mkdir()
                    os.chmod(local, mode)
                    self.ns.listings.invalidate(local.parent)
                elif not stat.S_ISDIR(st.st_mode):
                    if current == request.path:
                        raise RemoteException(
                            "FileAlreadyExistsException", f"Path is not a directory: {current}"
                        )
                    raise RemoteException("ParentNotDirectoryException", f"{current} (is not a directory)")
        return _json(start_response, {"boolean": True})

    def _nn_delete(self, request: _Request, start_response: Callable) -> list[bytes]:
        recursive = request.params.boolean("recursive", False)
        path = request.path
        with self.ns.lock:
            st = self.ns.stat(path)
            if path == "/" or st is None:
                return _json(start_response, {"boolean": False})
            parent = posixpath.dirname(path)
            self.ns.require(request.user, parent, self.ns.stat(parent), "WRITE")  # type: ignore[arg-type]
            local = self.ns.local(path)
            if stat.S_ISDIR(st.st_mode):
                if not recursive and self.ns.listings.names(local):
                    raise RemoteException(
                        "PathIsNotEmptyDirectoryException", f"`{path} is non empty': Directory is not empty"
                    )
                shutil.rmtree(local)
            else:
                local.unlink()
            self.ns.listings.invalidate(local, local.parent)
        return _json(start_response, {"boolean": True})

    def _nn_rename(self, request: _Request, start_response: Callable) -> list[bytes]:
        destination = request.params.get("destination")
        if not destination or not destination.startswith("/"):
            raise RemoteException(
                "IllegalArgumentException",
                f'Invalid value for webhdfs parameter "destination": Invalid value: "{destination}" '
                "does not belong to the domain ^/.*",
            )
        dst = normalize_hdfs_path(destination)
        options = request.params.get("renameoptions")
        with self.ns.lock:
            if options is None:
                return _json(start_response, {"boolean": self._rename(request, request.path, dst)})
            flags = {flag.strip().upper() for flag in options.split(",") if flag.strip()}
            unknown = flags - {"NONE", "OVERWRITE"}
            if unknown:
                raise RemoteException(
                    "IllegalArgumentException",
                    f'Invalid value for webhdfs parameter "renameoptions": {",".join(sorted(unknown))}',
                )
            self._rename2(request, request.path, dst, overwrite="OVERWRITE" in flags)
        return _empty(start_response)

    def _rename(self, request: _Request, src: str, dst: str) -> bool:
        """HDFS ``rename``: false (not an error) when it cannot be done; into ``dst`` when it is a directory."""
        src_stat = self.ns.stat(src)
        if src_stat is None or src == "/":
            return False
        if dst == src:
            return True
        if dst.startswith(src.rstrip("/") + "/"):
            return False
        dst_stat = self.ns.stat(dst)
        if dst_stat is not None:
            if not stat.S_ISDIR(dst_stat.st_mode):
                return False
            dst = posixpath.join(dst, posixpath.basename(src))
            if self.ns.stat(dst) is not None:
                return False
        parent_stat = self.ns.stat(posixpath.dirname(dst))
        if parent_stat is None or not stat.S_ISDIR(parent_stat.st_mode):
            return False
        self._move(request, src, dst)
        return True

    def _rename2(self, request: _Request, src: str, dst: str, overwrite: bool) -> None:
        """HDFS ``rename2`` (``renameoptions``): errors instead of false; ``OVERWRITE`` replaces ``dst``."""
        src_stat = self.ns.stat(src)
        if src_stat is None:
            raise RemoteException("FileNotFoundException", f"rename source {src} is not found.")
        if src == "/" or dst == "/":
            raise RemoteException("IOException", "The root directory cannot be renamed or replaced")
        if dst == src:
            raise RemoteException(
                "FileAlreadyExistsException", f"The source {src} and destination {dst} are the same"
            )
        if dst.startswith(src + "/"):
            raise RemoteException(
                "IOException", f"Rename destination {dst} is a directory or file under source {src}"
            )
        dst_parent = posixpath.dirname(dst)
        parent_stat = self.ns.stat(dst_parent)
        if parent_stat is None:
            raise RemoteException(
                "FileNotFoundException", f"rename destination parent {dst_parent} not found."
            )
        if not stat.S_ISDIR(parent_stat.st_mode):
            raise RemoteException(
                "ParentNotDirectoryException", f"rename destination parent {dst_parent} is a file."
            )
        dst_stat = self.ns.stat(dst)
        if dst_stat is not None:
            if not overwrite:
                raise RemoteException(
                    "FileAlreadyExistsException", f"rename destination {dst} already exists."
                )
            src_dir, dst_dir = stat.S_ISDIR(src_stat.st_mode), stat.S_ISDIR(dst_stat.st_mode)
            if src_dir != dst_dir:
                kind = "directories" if dst_dir else "files"
                raise RemoteException(
                    "IOException", f"Source {src} and destination {dst} must both be {kind}"
                )
            if dst_dir:
                if self.ns.listings.names(self.ns.local(dst)):
                    raise RemoteException("IOException", f"rename destination directory is not empty: {dst}")
                shutil.rmtree(self.ns.local(dst))
        self._move(request, src, dst)

    def _move(self, request: _Request, src: str, dst: str) -> None:
        src_parent, dst_parent = posixpath.dirname(src), posixpath.dirname(dst)
        self.ns.require(request.user, src_parent, self.ns.stat(src_parent), "WRITE")  # type: ignore[arg-type]
        self.ns.require(request.user, dst_parent, self.ns.stat(dst_parent), "WRITE")  # type: ignore[arg-type]
        src_local, dst_local = self.ns.local(src), self.ns.local(dst)
        os.replace(src_local, dst_local)
        self.ns.listings.invalidate(src_local, src_local.parent, dst_local.parent)

    def _nn_settimes(self, request: _Request, start_response: Callable) -> list[bytes]:
        mtime = request.params.long("modificationtime", -1, minimum=-1)
        atime = request.params.long("accesstime", -1, minimum=-1)
        local, st = self.ns.file_status(request.path)
        self.ns.require(request.user, request.path, st, "WRITE")
        os.utime(
            local,
            ns=(
                st.st_atime_ns if atime == -1 else atime * 1_000_000,  # type: ignore[operator]
                st.st_mtime_ns if mtime == -1 else mtime * 1_000_000,  # type: ignore[operator]
            ),
        )
        return _empty(start_response)

    def _nn_setpermission(self, request: _Request, start_response: Callable) -> list[bytes]:
        local, _ = self.ns.file_status(request.path)
        os.chmod(local, request.params.permission(0o755))
        return _empty(start_response)

    def _nn_setowner(self, request: _Request, start_response: Callable) -> list[bytes]:
        self.ns.file_status(request.path)  # ownership is not tracked; the call succeeds as on HDFS
        return _empty(start_response)

    def _nn_setreplication(self, request: _Request, start_response: Callable) -> list[bytes]:
        request.params.long("replication", None, minimum=1)
        _, st = self.ns.file_status(request.path)
        return _json(start_response, {"boolean": not stat.S_ISDIR(st.st_mode)})

    # -- data node ----------------------------------------------------------------------------------
    def _dn_open(self, request: _Request, start_response: Callable) -> Iterable[bytes]:
        offset = request.params.long("offset", 0, minimum=0) or 0
        length = request.params.long("length", None, minimum=0)
        local, st = self.ns.existing_file(request.path)
        if offset > st.st_size:
            raise RemoteException(
                "EOFException", f"Cannot seek after EOF: offset={offset}, length={st.st_size}"
            )
        count = st.st_size - offset if length is None else min(length, st.st_size - offset)
        handle = open(local, "rb")  # noqa: SIM115 - closed by the file wrapper
        start_response(
            _status_line(200), [("Content-Type", "application/octet-stream"), ("Content-Length", str(count))]
        )
        return FileWrapper(handle, self.stream_chunk, offset, count)

    def _dn_getfilechecksum(self, request: _Request, start_response: Callable) -> list[bytes]:
        local, _ = self.ns.existing_file(request.path)
        summer = HdfsFileChecksum(self.ns.block_size)
        limit = request.params.long("length", None, minimum=0)
        with open(local, "rb") as handle:
            while chunk := handle.read(self.stream_chunk if limit is None else min(self.stream_chunk, limit)):
                summer.update(chunk)
                if limit is not None:
                    limit -= len(chunk)
                    if limit <= 0:
                        break
        result = summer.result()
        checksum = {"algorithm": result.algorithm, "bytes": result.value, "length": len(result.value) // 2}
        return _json(start_response, {"FileChecksum": checksum})

    def _dn_create(self, request: _Request, start_response: Callable) -> list[bytes]:
        path = request.path
        overwrite = request.params.boolean("overwrite", False)
        mode = request.params.permission(0o644)
        self._check_create(path, overwrite, request.client)
        local = self.ns.local(path)
        with self.ns.lock:
            self._make_parents(path)
        fd, temp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=local.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := request.body.read(self.stream_chunk):
                    out.write(chunk)
            os.chmod(temp, mode)
            with self.ns.lock:
                self._check_create(path, overwrite, request.client)
                os.replace(temp, local)
                self.ns.listings.invalidate(local.parent)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return _empty(
            start_response, 201, [("Location", f"webhdfs://{self.namenode_address()}{quote(path, safe='/')}")]
        )

    def _make_parents(self, path: str) -> None:
        self.ns.check_parents(path)
        current = self.ns.root
        for part in [p for p in path.split("/") if p][:-1]:
            current = current / part
            if not current.is_dir():
                current.mkdir()
                os.chmod(current, 0o755)
                self.ns.listings.invalidate(current.parent)

    def _dn_append(self, request: _Request, start_response: Callable) -> list[bytes]:
        local, _ = self.ns.existing_file(request.path)
        self.ns.take_lease(request.path, f"client {request.client}")
        try:
            with open(local, "ab") as out:
                while chunk := request.body.read(self.stream_chunk):
                    out.write(chunk)
        finally:
            self.ns.release_lease(request.path)
        return _empty(start_response)


def webhdfs_operation(environ: dict, role: str = "namenode") -> str:
    """Name of the WebHDFS operation of a request (``OPEN``; ``datanode.OPEN`` on the data node)."""
    op = ""
    for part in environ.get("QUERY_STRING", "").split("&"):
        name, _, value = part.partition("=")
        if name.lower() == "op":
            op = value.upper()
            break
    op = op or environ.get("REQUEST_METHOD", "GET")
    return f"datanode.{op}" if role == "datanode" else op


class WebHdfsServer:
    """A namenode and a data node on loopback ports serving ``root`` as the HDFS namespace.

    ``stats`` counts requests per operation (``OPEN`` at the namenode, ``datanode.OPEN`` at the data
    node); ``shaper`` (a :class:`~airflow_hybrid.devstack.shaping.LinkShaper`) adds latency, a bandwidth
    cap and faults to both.
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
        superuser: str | None = None,
        owner: str = "hdfs",
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

    def __enter__(self) -> WebHdfsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

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
