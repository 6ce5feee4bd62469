"""The ``hybrid://`` fsspec filesystem: a union mount as a path space for any Python engine.

``hybrid://<mount_conn_id>/<path>`` names ``<path>`` in the mount defined by the ``hybrid_mount`` connection
``<mount_conn_id>``. Registered with fsspec (entry point) and with Airflow (provider ``filesystems``), so
``ObjectStoragePath("hybrid://onprem_union/store_sales/")``, pandas, pyarrow and DuckDB (after
``duckdb.register_filesystem(HybridFileSystem())``) read it unchanged before and after a migration.

Status memo. Engines ask for a file's status many times per query (DuckDB calls ``size`` on every read), so a
filesystem instance remembers what ``info`` and ``ls`` returned, as fsspec's listing caches do, within limits
set by the mount:

* within one ``find``/``glob``/``walk``/``du`` call, every path is stated and every directory listed once;
* across calls, only for a mount with a cache, and for at most its ``metadata_sync_interval`` seconds (Alluxio's
  metadata sync interval, which also bounds how long a cached copy is served unchecked); with ``0`` or ``-1``
  nothing is remembered across calls, so listings and stats always reflect the members;
* any change made through this filesystem forgets what it knew of the path, its parent and its children.

Listings themselves are never answered from this memory across calls; the memo only answers ``info``.
A mount whose cache sets ``listing_sync_interval`` (default 0: off) has listings answered from the cache
catalog, shared by every worker, for that many seconds after its members were listed (Alluxio's metadata sync
for directories): files added or removed at a member directly, not through the mount, show up in
``ls``/``glob`` only once the interval is up; changes through the mount are seen at once.
A file opened for reading fixes its version at open: the fresh cached copy (opened once, one hit recorded; the
filesystem remembers it like a status, never past the copy's next freshness check) or the source member's status
-- the one the memo holds from a listing, which records the member each file was listed at, else stated now --
and the memo is updated to what the file serves, so ``size`` and the bytes agree. A file that left the member
since is followed to the member that has it, if it is the same file (:meth:`HybridMount.open_member`). When the memo (e.g. a listing) shows a status that differs from the cached copy's fingerprint -- the
source changed, or a migration moved the file to another member -- the copy is checked against the source at
once instead of waiting for the interval. A glob checks the copies of the files it listed at the members in one
catalog scan (their opens then look nothing up), and files then opened in its order are loaded ahead of their
reader (:mod:`airflow_hybrid.mount.scans`).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import io
import posixpath
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.scans import ScanFile, ScanReadAhead
from airflow_hybrid.stores.base import FileInfo, normalize_path

if TYPE_CHECKING:
    from airflow_hybrid.cache.entry import CachedEntry, SourceFingerprint

#: Airflow's ObjectStoragePath looks these up in the provider's ``filesystems`` modules.
schemes = ["hybrid"]

_PIPE_DEPTH = 4
#: A first read this close to a file's end fetches the whole tail (a Parquet footer is a few KiB).
_TAIL = 64 * 1024
#: Paths a filesystem instance remembers the status of at most (the memo is cleared when full).
_MEMO_LIMIT = 100_000

#: The status memo of the fsspec call in progress (``find``/``glob``/``walk``/``du``): name -> info or listing.
_operation_memo: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "hybrid_operation_memo", default=None
)


def get_fs(conn_id: str | None, storage_options: dict[str, Any] | None = None) -> HybridFileSystem:
    """Airflow entry point. The mount comes from the URL's host, so ``conn_id`` is not needed."""
    return HybridFileSystem(**(storage_options or {}))


class HybridFileSystem(AbstractFileSystem):
    """fsspec filesystem over :class:`~airflow_hybrid.mount.HybridMount` instances, one per connection id."""

    protocol = ("hybrid",)
    root_marker = ""
    #: No process-wide instance cache: each instance builds its mounts from the connections as they are when
    #: it is created, so a connection changed later (or another test's connection of the same id) is never
    #: served from a mount built for an older definition.
    cachable = False

    def __init__(self, mounts: dict[str, HybridMount] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._mounts: dict[str, HybridMount] = dict(mounts or {})
        self._lock = threading.Lock()
        #: name -> (expires at, info dict): statuses remembered across calls (see the module doc).
        self._memo: dict[str, tuple[float, dict[str, Any]]] = {}
        #: name -> (expires at, entry): fresh cached copies opened, so another open needs no catalog lookup.
        self._copies: dict[str, tuple[float, CachedEntry]] = {}
        self._memo_lock = threading.Lock()
        #: The last globs, so files opened in their order are loaded just ahead of their reader (mount/scans.py).
        self._scans = ScanReadAhead()

    # -- paths ------------------------------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("hybrid://"):
            path = path[len("hybrid://") :]
        elif path.startswith("hybrid:"):
            path = path[len("hybrid:") :]
        return path.strip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    def _split(self, path: str) -> tuple[HybridMount, str]:
        stripped = self._strip_protocol(path)
        mount_id, _, rel = stripped.partition("/")
        if not mount_id:
            raise ValueError(f"{path!r}: expected hybrid://<mount_conn_id>/<path>")
        return self.mount(mount_id), normalize_path(rel)

    def mount(self, conn_id: str) -> HybridMount:
        """The mount for connection ``conn_id``, built once per filesystem instance."""
        with self._lock:
            if conn_id not in self._mounts:
                self._mounts[conn_id] = HybridMount.from_conn_id(conn_id)
            return self._mounts[conn_id]

    def unstrip_protocol(self, name: str) -> str:
        return f"hybrid://{self._strip_protocol(name)}"

    # -- status memo ------------------------------------------------------------------------------
    @staticmethod
    def _memo_seconds(mount: HybridMount) -> float:
        """How long a status of ``mount`` may be remembered across calls (0: not at all)."""
        cache = mount.cache
        if cache is None:
            return 0.0
        return max(cache.config.metadata_sync_interval, 0.0)

    @contextlib.contextmanager
    def _operation(self) -> Iterator[dict[str, Any]]:
        """Scope of one fsspec call: each path is stated and listed at most once inside it."""
        memo = _operation_memo.get()
        if memo is not None:
            yield memo
            return
        token = _operation_memo.set({})
        try:
            yield _operation_memo.get()
        finally:
            _operation_memo.reset(token)

    def _recall(self, name: str) -> dict[str, Any] | None:
        memo = _operation_memo.get()
        if memo is not None and ("info", name) in memo:
            return memo["info", name]
        remembered = self._memo.get(name)
        if remembered is not None:
            if remembered[0] > time.monotonic():
                return remembered[1]
            self._memo.pop(name, None)
        return None

    def _remember(self, mount: HybridMount, entries: list[dict[str, Any]]) -> None:
        memo = _operation_memo.get()
        if memo is not None:
            for entry in entries:
                memo["info", entry["name"]] = entry
        seconds = self._memo_seconds(mount)
        if seconds <= 0:
            return
        expires = time.monotonic() + seconds
        with self._memo_lock:
            if len(self._memo) + len(entries) > _MEMO_LIMIT:
                self._memo.clear()
            for entry in entries:
                self._memo[entry["name"]] = (expires, entry)

    def _recall_copy(self, name: str) -> CachedEntry | None:
        remembered = self._copies.get(name)
        if remembered is not None:
            if remembered[0] > time.monotonic():
                return remembered[1]
            self._copies.pop(name, None)
        return None

    def _remember_copy(self, mount: HybridMount, name: str, entry: CachedEntry) -> None:
        """Remember a fresh copy just looked up, no longer than the status memo nor past the copy's next
        freshness check or expiry (so it is never served longer than the catalog would serve it)."""
        seconds = self._memo_seconds(mount)
        if seconds <= 0 or entry.last_synced_at is None:
            return
        now = mount.cache.clock()
        seconds = min(seconds, entry.last_synced_at + mount.cache.config.metadata_sync_interval - now)
        if entry.expires_at is not None:
            seconds = min(seconds, entry.expires_at - now)
        if seconds > 0:
            with self._memo_lock:
                if len(self._copies) >= _MEMO_LIMIT:
                    self._copies.clear()
                self._copies[name] = (time.monotonic() + seconds, entry)

    def _forget(self, mount: HybridMount, rel: str) -> None:
        """Forget ``rel`` (and what lies under it) and its parent's listing after a change through this fs."""
        name = f"{mount.name}/{rel}" if rel else mount.name
        parent = self._parent(name)
        with self._memo_lock:
            for memo in (self._memo, self._copies):
                for key in [k for k in memo if k == name or k.startswith(name + "/")]:
                    del memo[key]
        memo = _operation_memo.get()
        if memo is not None:
            for key in [k for k in memo if k[1] in (name, parent) or k[1].startswith(name + "/")]:
                del memo[key]

    def invalidate_cache(self, path: str | None = None) -> None:
        if path is None:
            with self._memo_lock:
                self._memo.clear()
                self._copies.clear()
        else:
            mount, rel = self._split(path)
            self._forget(mount, rel)
        super().invalidate_cache(path)

    # -- metadata ---------------------------------------------------------------------------------
    def _entry(self, mount: HybridMount, info: FileInfo, member: str | None = None) -> dict[str, Any]:
        """fsspec's info dict of ``info``; ``member``: where it was seen (kept so an open needs no new lookup)."""
        entry = {
            "name": f"{mount.name}/{info.path}" if info.path else mount.name,
            "size": info.size,
            "type": "directory" if info.is_dir else "file",
            "mtime": info.mtime,
            "created": info.mtime,
            "ETag": info.etag,
        }
        return entry if member is None else _Seen(entry, member=member, info=info)

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        mount, rel = self._split(path)
        if not rel:
            return {"name": mount.name, "size": 0, "type": "directory"}
        name = f"{mount.name}/{rel}"
        known = self._recall(name)
        if known is not None:
            return known
        memo = _operation_memo.get()
        if memo is not None and ("ls", name) in memo:  # listed in this call: a directory (or the file itself)
            listing = memo["ls", name]
            if len(listing) == 1 and listing[0]["name"] == name and listing[0]["type"] == "file":
                return listing[0]
            return {"name": name, "size": 0, "type": "directory"}
        entry = self._entry(mount, mount.info(rel))
        self._remember(mount, [entry])
        return entry

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list:
        mount, rel = self._split(path)
        name = f"{mount.name}/{rel}" if rel else mount.name
        memo = _operation_memo.get()
        entries = memo.get(("ls", name)) if memo is not None else None
        if entries is None:
            entries = self._list(mount, rel, path)
            if memo is not None:
                memo["ls", name] = entries
            self._remember(mount, entries)
        return entries if detail else [e["name"] for e in entries]

    def _list(self, mount: HybridMount, rel: str, path: str) -> list[dict[str, Any]]:
        cache = mount.cache
        try:
            if cache is not None and cache.config.listing_sync_interval:
                entries = [self._entry(mount, e) for e in cache.listing(rel, lambda: mount.ls(rel))]
            else:
                entries = [self._entry(mount, e, member) for member, e in mount.ls_members(rel)]
        except FileNotFoundError:
            raise FileNotFoundError(self.unstrip_protocol(path)) from None
        if not entries and rel:
            info = mount.info(rel)
            if not info.is_dir:
                entries = [self._entry(mount, info)]
        entries.sort(key=lambda e: e["name"])
        return entries

    def glob(self, path: str, maxdepth: int | None = None, **kwargs: Any):
        detail = kwargs.pop("detail", False)
        with self._operation():
            found = super().glob(path, maxdepth=maxdepth, detail=True, **kwargs)
        mount, _ = self._split(path)
        if mount.cache is not None:
            # the files listed at the members just now, else those of the catalog's listings
            listed = [entry for entry in found.values() if isinstance(entry, _Seen) and not entry.info.is_dir]
            if listed:
                self._record_scan(mount, path, listed)
                self._remember_fresh_copies(mount, listed)
            elif mount.cache.config.listing_sync_interval:
                self._remember_servable_copies(mount, [entry for entry in found.values() if entry["type"] == "file"])
        return found if detail else list(found)

    def _record_scan(self, mount: HybridMount, pattern: str, listed: list[_Seen]) -> None:
        """Remember a glob's files, where it listed them, for read-ahead (when the mount's cache reads ahead)."""
        config = mount.cache.config
        if config.cache_on_read and config.scan_read_ahead and config.join_running_load_up_to:
            self._scans.record(mount.name, pattern, [ScanFile(e.info.path, e.member, e.info) for e in listed])

    def _remember_fresh_copies(self, mount: HybridMount, listed: list[_Seen]) -> None:
        """Check the cached copies of a glob's files of one directory against the statuses it just listed, all at
        once (:meth:`CacheManager.fresh_listing`: one catalog scan), and remember the fresh ones, so their opens
        need no catalog lookup each; a copy of another version is dropped."""
        cache = mount.cache
        directories = {posixpath.dirname(entry.info.path) for entry in listed}
        if cache.config.metadata_sync_interval <= 0 or len(listed) < 2 or len(directories) != 1:
            return
        synced_at = cache.clock()
        fresh, _ = cache.fresh_listing(directories.pop(), [entry.info for entry in listed])
        for path, copy in fresh.items():
            self._remember_copy(mount, f"{mount.name}/{path}", dataclasses.replace(copy, last_synced_at=synced_at))

    def _remember_servable_copies(self, mount: HybridMount, files: list[dict[str, Any]]) -> None:
        """For a glob's files of one directory from the catalog's listing: remember the copies a lookup would
        serve now that are of the listed versions (:meth:`CacheManager.servable_copies`: one catalog scan), so
        their opens need no lookup each; the others are looked up on open as before."""
        prefix = f"{mount.name}/"
        rels = {entry["name"][len(prefix):]: entry for entry in files if entry["name"].startswith(prefix)}
        directories = {posixpath.dirname(rel) for rel in rels}
        if len(rels) < 2 or len(directories) != 1:
            return
        for rel, copy in mount.cache.servable_copies(directories.pop()).items():
            if (entry := rels.get(rel)) is not None and _same_version(copy.source, entry):
                self._remember_copy(mount, f"{mount.name}/{rel}", copy)

    def _opened(self, mount: HybridMount, rel: str, cold: bool) -> None:
        """A file is opened (``cold``: read from its source): load the next files of its scan if it follows it."""
        cache = mount.cache
        window = cache.config.scan_read_ahead if cache is not None and cold else 0
        ahead = self._scans.opened(mount.name, rel, window)
        if ahead:
            cache.load_ahead((file.path, file.member, file.info) for file in ahead)

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs):
        with self._operation():
            if withdirs:
                # fsspec states the root before walking it; listing it first answers that from the listing
                with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                    self.ls(path)
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)

    def walk(self, path: str, maxdepth: int | None = None, topdown: bool = True, on_error: str = "omit", **kwargs):
        with self._operation():
            yield from super().walk(path, maxdepth=maxdepth, topdown=topdown, on_error=on_error, **kwargs)

    def du(self, path: str, total: bool = True, maxdepth: int | None = None, withdirs: bool = False, **kwargs):
        with self._operation():
            return super().du(path, total=total, maxdepth=maxdepth, withdirs=withdirs, **kwargs)

    def modified(self, path: str):
        import datetime

        return datetime.datetime.fromtimestamp(self.info(path)["mtime"], tz=datetime.timezone.utc)

    # -- mutation ---------------------------------------------------------------------------------
    def rm(self, path: str | list[str], recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in [path] if isinstance(path, str) else path:
            mount, rel = self._split(p)
            self._forget(mount, rel)
            mount.delete(rel, recursive=recursive)

    def rm_file(self, path: str) -> None:
        self.rm(path)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        mount, rel = self._split(path)
        self._forget(mount, rel)
        mount.mkdir(rel)
        if mount.cache is not None:
            mount.cache.forget_listings(rel)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self.mkdir(path)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None, **kwargs) -> None:
        mount1, rel1 = self._split(path1)
        mount2, rel2 = self._split(path2)
        if mount1 is not mount2:
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)
            return
        self._forget(mount1, rel1)
        self._forget(mount2, rel2)
        mount1.rename(rel1, rel2)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src_mount, src_rel = self._split(path1)
        dst_mount, dst_rel = self._split(path2)
        self._forget(dst_mount, dst_rel)
        with src_mount.open_read(src_rel) as stream:
            dst_mount.write(dst_rel, stream)

    # -- data -------------------------------------------------------------------------------------
    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, **kwargs: Any):
        mount, rel = self._split(path)
        if "r" in mode:
            return HybridReadFile(self, path, mount, rel, block_size=block_size, **kwargs)
        if "w" in mode:
            self._forget(mount, rel)
            return HybridWriteFile(self, path, mount, rel, block_size=block_size, **kwargs)
        raise ValueError(f"{path}: mode {mode!r} not supported (use rb or wb)")

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        mount, rel = self._split(path)
        size = mount.info(rel).size
        start = 0 if start is None else (start if start >= 0 else max(size + start, 0))
        end = size if end is None else (end if end >= 0 else max(size + end, 0))
        if end <= start:
            return b""
        with mount.open_read(rel, offset=start, length=end - start) as stream:
            return stream.read()


class HybridReadFile(AbstractBufferedFile):
    """Read file: sequential reads stream over one open ranged request; seeks reopen at the new offset.

    Reads follow what engines ask: a seekable cached copy (a local tier) is read directly, without a buffer; over
    the link, a first read near the end fetches the file's last 64 KiB once (a Parquet footer), and other reads go
    through fsspec's readahead buffer.

    The version is fixed at open. A fresh cached copy is opened once (one hit recorded) and serves every range
    (a seekable tier stream, e.g. a local tier, is seeked; others are reopened at the offset). Otherwise the
    ranges are read (through the cache, when there is one) from the member that had the file at open; a range
    that finds it gone, moved by a migration, follows it to the member that has it now, provided that is the
    same file (:meth:`HybridMount.open_member`).
    """

    def __init__(self, fs: HybridFileSystem, path: str, mount: HybridMount, rel: str, **kwargs: Any) -> None:
        self.mount, self.rel = mount, rel
        self._entry: CachedEntry | None = None
        self._source: tuple[str, FileInfo] | None = None
        self._stream = None
        self._stream_pos = -1
        self._tail: bytes | None = None
        self._tail_fetched = False
        size = self._pin_version(fs)
        fs._opened(mount, rel, cold=self._entry is None)
        #: A seekable copy (a local tier's file) is read directly: no readahead buffer, no copies between.
        self._direct = self._stream if self._entry is not None and _seekable(self._stream) else None
        kwargs.setdefault("cache_type", "none" if self._direct is not None else "readahead")
        block_size = kwargs.pop("block_size", None) or 4 * 1024 * 1024
        super().__init__(fs, path, mode="rb", block_size=block_size, size=size, **kwargs)

    def read(self, length: int = -1) -> bytes:
        direct = self._direct
        if self.closed:
            raise ValueError("I/O operation on closed file.")
        end = self.size if length is None or length < 0 else min(self.loc + length, self.size)
        if end <= self.loc:
            return b""
        if direct is None:
            if self._tail is None and self.loc >= self.size - _TAIL and not self._tail_fetched:
                # a first read in the last _TAIL bytes (a Parquet footer: its length, then the metadata): fetch
                # the tail once, so the footer costs one request and never waits for the file's whole load
                self._tail_fetched = True
                self._tail = self._fetch_range(max(self.size - _TAIL, 0), self.size)
            tail = self._tail
            start = self.size - len(tail) if tail is not None else self.size
            if tail is None or self.loc < start:
                return super().read(length)
            data = tail[self.loc - start : end - start]
            self.loc += len(data)
            return data
        if self._stream_pos != self.loc:
            direct.seek(self.loc)
        data = direct.read(end - self.loc)
        self.loc += len(data)
        self._stream_pos = self.loc
        return data

    def _pin_version(self, fs: HybridFileSystem) -> int:
        """Choose what this file serves; returns its size. The fs memo is updated to match."""
        mount, rel = self.mount, self.rel
        cache = mount.cache
        known = fs._recall(f"{mount.name}/{rel}")
        if cache is None:
            member, info = _where_seen(known) or mount.resolve(rel)
            if info.is_dir:
                raise IsADirectoryError(f"hybrid://{mount.name}/{rel} is a directory")
            self._source = (member, info)
            return info.size
        resolved: list[tuple[str, FileInfo]] = []

        def current() -> FileInfo:
            resolved.append(mount.resolve(rel))
            return resolved[-1][1]

        name = f"{mount.name}/{rel}"
        entry = fs._recall_copy(name) or cache.lookup(rel, current)
        if entry is not None and known is not None and not _same_version(entry.source, known):
            fs._copies.pop(name, None)
            entry = cache.lookup(rel, current, force_sync=True)  # a newer status was seen: check now
        if entry is not None:
            try:
                self._stream, self._stream_pos = cache.open_cached(entry), 0
                self._entry = entry
                fs._remember_copy(mount, name, entry)
                info = FileInfo(path=rel, size=entry.source.size, mtime=entry.source.mtime, etag=entry.source.etag)
            except FileNotFoundError:  # evicted meanwhile: read from the source
                entry = None
                fs._copies.pop(name, None)
        member = None
        if entry is None:
            # the status just checked, else the one this filesystem saw within its memo's lifetime (a listing)
            member, info = resolved[-1] if resolved else _where_seen(known) or mount.resolve(rel)
            if info.is_dir:
                raise IsADirectoryError(f"hybrid://{mount.name}/{rel} is a directory")
            self._source = (member, info)
        fs._remember(mount, [fs._entry(mount, _with_path(info, rel), member)])
        return info.size

    def _open_at(self, start: int):
        cache = self.mount.cache
        if self._entry is not None:
            return cache.reopen_cached(self._entry, offset=start)
        if self._source is not None:
            member, info = self._source
            if cache is None:  # follows the file if a migration moves it (FileChangedError if replaced)
                return self.mount.open_member(self.rel, member, info, offset=start)
            try:
                return cache.open_version(self.rel, member, info, offset=start)
            except FileNotFoundError:
                self._source = None  # in no member any more: resolve again from now on
        return self.mount.open_read(self.rel, offset=start)

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        if start >= end:
            return b""
        if self._stream is None or self._stream_pos != start:
            if self._stream is not None and (
                isinstance(self._stream, io.BufferedReader)  # a local file (a copy joined): the same version
                or (self._entry is not None and _seekable(self._stream))
            ):
                self._stream.seek(start)
            else:
                self._close_stream()
                self._stream = self._open_at(start)
            self._stream_pos = start
        chunks, want = [], end - start
        while want > 0:
            chunk = self._stream.read(want)
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
        data = b"".join(chunks)
        self._stream_pos += len(data)
        return data

    def _close_stream(self) -> None:
        self._direct = None
        if self._stream is not None:
            if self._source is not None and getattr(self._stream, "follows", 0):
                # the read followed the file to another member: open further ranges there
                self._source = (self._stream.member, self._stream.info)
            self._stream.close()
            self._stream = None

    def close(self) -> None:
        self._close_stream()
        super().close()


class _Seen(dict):
    """An info dict that also records where the status was seen: ``member`` and that member's ``info``."""

    __slots__ = ("member", "info")

    def __init__(self, entry: dict[str, Any], *, member: str, info: FileInfo) -> None:
        super().__init__(entry)
        self.member, self.info = member, info


def _where_seen(known: dict[str, Any] | None) -> tuple[str, FileInfo] | None:
    """``(member, info)`` of a remembered status that records where it was seen, else ``None``."""
    if isinstance(known, _Seen) and not known.info.is_dir:
        return known.member, known.info
    return None


def _seekable(stream) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, ValueError):
        return False


def _same_version(fingerprint: SourceFingerprint, known: dict[str, Any]) -> bool:
    return (fingerprint.size, fingerprint.mtime, fingerprint.etag) == (
        known.get("size"),
        known.get("mtime"),
        known.get("ETag"),
    )


def _with_path(info: FileInfo, path: str) -> FileInfo:
    if info.path == path:
        return info
    return FileInfo(path=path, size=info.size, mtime=info.mtime, is_dir=info.is_dir, etag=info.etag)


#: Sent down the pipe by ``discard()``: the reader raises, so the store's atomic write keeps nothing.
_ABORT = object()


class _QueueReader:
    """The read end of a bounded in-memory pipe (at most ``_PIPE_DEPTH`` chunks in flight)."""

    def __init__(self, chunks: queue.Queue, name: str) -> None:
        self._chunks = chunks
        self._name = name
        self._buffer = b""
        self._eof = False

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buffer) < n):
            chunk = self._chunks.get()
            if chunk is _ABORT:
                raise OSError(f"write to {self._name} was discarded")
            if chunk is None:
                self._eof = True
            else:
                self._buffer += chunk
        if n < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def close(self) -> None:
        pass


class HybridWriteFile(AbstractBufferedFile):
    """Write file: blocks are piped to ``HybridMount.write`` running in a thread (streamed, bounded memory)."""

    def __init__(self, fs: HybridFileSystem, path: str, mount: HybridMount, rel: str, **kwargs: Any) -> None:
        block_size = kwargs.pop("block_size", None) or 8 * 1024 * 1024
        super().__init__(fs, path, mode="wb", block_size=block_size, **kwargs)
        self.mount, self.rel = mount, rel
        self._chunks: queue.Queue = queue.Queue(maxsize=_PIPE_DEPTH)
        self._error: BaseException | None = None
        self._writer: threading.Thread | None = None
        self._producer_done = False

    def _run_writer(self) -> None:
        try:
            self.mount.write(self.rel, _QueueReader(self._chunks, f"hybrid://{self.mount.name}/{self.rel}"))
        except BaseException as err:  # surfaced in _upload_chunk / commit
            self._error = err
            while True:  # drain so the producer never blocks forever
                try:
                    if self._chunks.get(timeout=0.1) in (None, _ABORT):
                        break
                except queue.Empty:
                    if self._producer_done:
                        break

    def _initiate_upload(self) -> None:
        self._writer = threading.Thread(target=self._run_writer, name=f"hybrid-write-{self.rel}", daemon=True)
        self._writer.start()

    def _upload_chunk(self, final: bool = False) -> bool:
        if self._error is not None:
            self._producer_done = True
            raise OSError(f"write to hybrid://{self.mount.name}/{self.rel} failed: {self._error}") from self._error
        self.buffer.seek(0)
        data = self.buffer.read()
        if data:
            self._chunks.put(data)
        if final:
            self._chunks.put(None)
            self._producer_done = True
            self._writer.join()
            if self._error is not None:
                raise OSError(
                    f"write to hybrid://{self.mount.name}/{self.rel} failed: {self._error}"
                ) from self._error
        return True

    def discard(self) -> None:
        """Abandon the write: nothing is created (the store's write is atomic and sees an error)."""
        if self._writer is not None and not self._producer_done:
            self._producer_done = True
            self._chunks.put(_ABORT)
            self._writer.join()
        self.closed = True  # abandoned: closing it later must not commit anything
