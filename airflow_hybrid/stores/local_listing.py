"""Sorted pages of a local directory's children: :meth:`LocalStore.list_sorted` at O(page) cost.

A page is the ``limit`` first children in S3 order (:func:`~airflow_hybrid.stores.base.child_key`) after a
marker. Two ways to find them, both reading a directory through its descriptor (never following a link):

* **a scan** of the names and their ``d_type`` only (``DirEntry.is_dir/is_symlink``, no ``stat``), keeping the
  ``limit`` smallest wanted keys in a heap: O(directory) time, O(limit) memory;
* **a snapshot** of a big directory's child keys (more than ``threshold``), MinIO's *metacache*: the first scan
  also writes every key to sorted runs of at most ``run_size`` keys, merged (``heapq.merge``, at most
  ``fan_in`` runs at a time) into one spool file of NUL-separated keys, with a sparse index in memory (every
  ``index_every``-th key and its offset). A later page binary-searches the index and reads about ``limit`` keys
  from the spool: O(page) time, O(directory / index_every) memory for the index, O(run_size) while building.

A snapshot holds names only: the kept entries are ``lstat``-ed when a page is made (one vanished meanwhile is
skipped and the page refilled past it, a link is left out with a warning), so sizes and times are always the
present ones. It is used while the directory's identity (``st_dev``, ``st_ino``, ``st_mtime_ns``,
``st_ctime_ns``) is the one seen before and after its scan: creating, removing or renaming an entry sets the
directory's mtime and ctime, and whoever sets the mtime back (``utime``, ``rsync -a``) sets the ctime to now.
Git's *racy index* rule guards coarse timestamps: a directory whose mtime or ctime is within ``racy_seconds``
of the scan's start (or later) could change again within the same timestamp tick, unseen, so it is not
snapshotted (a page over it is a scan); a snapshot kept is thus of a directory last changed at least
``racy_seconds`` before its scan began, and any later change gives it a newer ctime. Snapshots live in a private ``0700``
temporary directory, a few per store (LRU), removed on :meth:`SnapshotCache.close` or when the store goes away.
"""

from __future__ import annotations

import bisect
import contextlib
import heapq
import itertools
import os
import secrets
import shutil
import stat
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from airflow_hybrid.stores.base import FileInfo, after_marker, child_key

#: ``(st_dev, st_ino, st_mtime_ns, st_ctime_ns)`` of a directory: a snapshot is valid while it is unchanged.
Identity = tuple[int, int, int, int]

_SEP = b"\0"  # never in a file name
_WRITE_BUFFER = 64 * 1024
_READ_CHUNK = 16 * 1024  # per run being merged (``fan_in`` at once) and per page read


def identity(st: os.stat_result) -> Identity:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _name(key: str) -> str:
    return key[:-1] if key.endswith("/") else key


def wanted(key: str, start_after: str | None, name_prefix: str) -> bool:
    """Whether the child ``key`` starts with ``name_prefix`` and comes after ``start_after``."""
    return _name(key).startswith(name_prefix) and after_marker(key, key.endswith("/"), start_after)


def lower_bound(start_after: str | None, name_prefix: str) -> str:
    """A key no wanted key is below: the marker, or the directory holding it (``x/`` for ``x/...``)."""
    low = start_after or ""
    cut = low.find("/")
    if 0 <= cut < len(low) - 1:
        low = low[: cut + 1]  # the directory x/ holding the marker x/... comes after it
    return max(low, name_prefix)


def _past_prefix(key: str, name_prefix: str) -> bool:
    """In sorted order, no key at or after ``key`` starts with ``name_prefix``."""
    return key > name_prefix and not key.startswith(name_prefix)


# -- spool files ----------------------------------------------------------------------------------------
def _write_keys(path: str, keys: Iterable[str], index_every: int = 0) -> tuple[int, list[str], list[int]]:
    """Write ``keys`` NUL-separated; ``(count, every index_every-th key, its offset)``."""
    count, offset, index_keys, index_offsets = 0, 0, [], []
    with open(path, "xb", buffering=_WRITE_BUFFER) as out:
        for key in keys:
            data = os.fsencode(key) + _SEP
            if index_every and count % index_every == 0:
                index_keys.append(key)
                index_offsets.append(offset)
            out.write(data)
            offset += len(data)
            count += 1
    return count, index_keys, index_offsets


def _read_keys(stream) -> Iterator[str]:
    """The keys of a spool file from the stream's position on."""
    rest = b""
    while chunk := stream.read(_READ_CHUNK):
        parts = (rest + chunk).split(_SEP)
        rest = parts.pop()
        for part in parts:
            yield os.fsdecode(part)


def _run_keys(path: str) -> Iterator[str]:
    with open(path, "rb", buffering=0) as stream:
        yield from _read_keys(stream)


@dataclass
class Snapshot:
    """One directory's child keys, sorted, in a spool file with a sparse index."""

    identity: Identity
    path: str
    count: int
    index_keys: list[str]
    index_offsets: list[int]

    def open_from(self, low: str) -> Iterator[str]:
        """The keys ``>= low`` in order, from a stream opened now (a later removal of the file is harmless)."""
        stream = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by the generator
        i = bisect.bisect_right(self.index_keys, low) - 1
        stream.seek(self.index_offsets[i] if i >= 0 else 0)

        def keys() -> Iterator[str]:
            with stream:
                for key in _read_keys(stream):
                    if key >= low:
                        yield key

        return keys()


@dataclass
class BuildStats:
    """What the last snapshot build did: keys written, sorted runs spilled, the largest run held in memory."""

    keys: int
    runs: int
    largest_run: int
    merge_passes: int


class SortedSpool:
    """An external sort of keys: runs of at most ``run_size`` keys sorted in memory and written to files in
    ``directory``, merged ``fan_in`` at a time into one spool file."""

    def __init__(self, directory: Callable[[], str], run_size: int, fan_in: int) -> None:
        self._directory = directory
        self.run_size = max(1, run_size)
        self.fan_in = max(2, fan_in)
        self._buffer: list[str] = []
        self._runs: list[str] = []
        self.count = 0
        self.runs_written = 0
        self.largest_run = 0
        self.merge_passes = 0

    def _new_path(self, kind: str) -> str:
        """A new name in the private directory (``_write_keys`` creates it exclusively)."""
        return os.path.join(self._directory(), f"{kind}-{secrets.token_hex(8)}")

    def add(self, key: str) -> None:
        self._buffer.append(key)
        self.count += 1
        if len(self._buffer) >= self.run_size:
            self._spill()

    def _spill(self) -> None:
        self._buffer.sort()
        self.largest_run = max(self.largest_run, len(self._buffer))
        path = self._new_path("run")
        self._runs.append(path)
        _write_keys(path, self._buffer)
        self.runs_written += 1
        self._buffer = []

    def finish(self, ident: Identity, index_every: int) -> Snapshot:
        """The spool file of every key added, sorted, and its index; the runs are removed."""
        try:
            if not self._runs:
                self._buffer.sort()
                self.largest_run = len(self._buffer)
                sources: list[Iterator[str]] = [iter(self._buffer)]
            else:
                if self._buffer:
                    self._spill()
                while len(self._runs) > self.fan_in:  # bounded open files and buffers per merge
                    self.merge_passes += 1
                    group, self._runs = self._runs[: self.fan_in], self._runs[self.fan_in :]
                    merged = self._new_path("run")
                    _write_keys(merged, heapq.merge(*(_run_keys(p) for p in group)))
                    self._runs.append(merged)
                    for p in group:
                        os.unlink(p)
                sources = [_run_keys(p) for p in self._runs]
            path = self._new_path("snapshot")
            self.merge_passes += 1
            count, index_keys, index_offsets = _write_keys(path, heapq.merge(*sources), max(1, index_every))
        finally:
            self.discard()
        return Snapshot(ident, path, count, index_keys, index_offsets)

    def discard(self) -> None:
        self._buffer = []
        for path in self._runs:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self._runs = []


class SnapshotCache:
    """A few :class:`Snapshot` per store (least recently used dropped), in a private temporary directory
    created on first use and removed by :meth:`close` or when the cache is collected."""

    def __init__(self, kept: int = 4, parent: str | None = None) -> None:
        self.kept = kept
        self.parent = parent
        self._lock = threading.Lock()
        self._snapshots: OrderedDict[str, Snapshot] = OrderedDict()
        self._dir: str | None = None
        self._finalizer: weakref.finalize | None = None

    def __getstate__(self) -> dict:  # a copy (pickled store) starts empty: snapshots are this process's files
        return {"kept": self.kept, "parent": self.parent}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["kept"], state["parent"])

    def directory(self) -> str:
        with self._lock:
            if self._dir is None or not os.path.isdir(self._dir):
                self._dir = tempfile.mkdtemp(prefix="hybrid-listing-", dir=self.parent)  # 0700
                if self._finalizer is not None:
                    self._finalizer.detach()
                self._finalizer = weakref.finalize(self, shutil.rmtree, self._dir, True)
            return self._dir

    def open(self, rel: str, ident: Identity, low: str) -> Iterator[str] | None:
        """The keys ``>= low`` of ``rel``'s snapshot if it has identity ``ident``; a stale one is dropped."""
        with self._lock:
            snap = self._snapshots.get(rel)
            if snap is None:
                return None
            if snap.identity != ident:
                self._remove(rel)
                return None
            self._snapshots.move_to_end(rel)
            try:
                return snap.open_from(low)
            except FileNotFoundError:  # the temporary directory was cleaned up under us
                self._remove(rel)
                return None

    def put(self, rel: str, snap: Snapshot) -> None:
        with self._lock:
            if rel in self._snapshots:
                self._remove(rel)
            self._snapshots[rel] = snap
            while len(self._snapshots) > max(0, self.kept):
                self._remove(next(iter(self._snapshots)))

    def _remove(self, rel: str) -> None:
        snap = self._snapshots.pop(rel)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(snap.path)

    def __len__(self) -> int:
        return len(self._snapshots)

    def __contains__(self, rel: str) -> bool:
        return rel in self._snapshots

    def close(self) -> None:
        with self._lock:
            self._snapshots.clear()
            if self._finalizer is not None:
                self._finalizer()
            self._finalizer = self._dir = None


@dataclass
class ListingSettings:
    """When a directory gets a snapshot and how it is built (:class:`~airflow_hybrid.stores.local.LocalStore`
    class attributes)."""

    threshold: int
    run_size: int
    fan_in: int
    index_every: int
    racy_seconds: float


class SortedLister:
    """:meth:`page` of a directory open as a descriptor; ``info(rel, st)`` builds an entry's
    :class:`FileInfo`, ``on_link(rel)`` is told of each link left out, names starting with ``hidden`` are
    never listed."""

    def __init__(self, cache: SnapshotCache, info: Callable[[str, os.stat_result], FileInfo],
                 on_link: Callable[[str], None], hidden: str) -> None:
        self.cache = cache
        self._info = info
        self._on_link = on_link
        self._hidden = hidden
        self.last_build: BuildStats | None = None

    def _scan(self, fd: int, rel: str) -> Iterator[str]:
        """Every listable child key of the directory: names and ``d_type`` only."""
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.name.startswith(self._hidden):
                    continue
                try:
                    if entry.is_symlink():
                        self._on_link(f"{rel}/{entry.name}" if rel else entry.name)
                        continue
                    is_dir = entry.is_dir(follow_symlinks=False)
                except FileNotFoundError:  # d_type unknown and removed meanwhile
                    continue
                yield f"{entry.name}/" if is_dir else entry.name

    def _entry(self, fd: int, rel: str, key: str) -> FileInfo | None:
        """The present status of ``key``'s entry; ``None`` if it vanished or is now a link."""
        name = _name(key)
        child = f"{rel}/{name}" if rel else name
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISLNK(st.st_mode):
            self._on_link(child)
            return None
        return self._info(child, st)

    def page(self, fd: int, rel: str, start_after: str | None, limit: int, name_prefix: str,
             settings: ListingSettings) -> list[FileInfo]:
        """The ``limit`` first children after ``start_after`` starting with ``name_prefix``
        (:meth:`Store.list_sorted <airflow_hybrid.stores.base.Store.list_sorted>`)."""
        if limit <= 0 or "/" in name_prefix:
            return []
        before = os.fstat(fd)
        ident = identity(before)
        low = lower_bound(start_after, name_prefix)
        stream = self.cache.open(rel, ident, low)
        if stream is not None:
            with contextlib.closing(stream):
                keys = (k for k in stream if wanted(k, start_after, name_prefix))
                if name_prefix:
                    keys = itertools.takewhile(lambda k: not _past_prefix(k, name_prefix), keys)
                return self._select(fd, rel, start_after, limit, name_prefix,
                                    lambda _after, want: list(itertools.islice(keys, want)))
        first = self._scan_page(fd, rel, ident, before, start_after, limit, name_prefix, settings)

        def rescan(after: str | None, want: int) -> list[str]:
            return heapq.nsmallest(want, (k for k in self._scan(fd, rel)
                                          if wanted(k, after, name_prefix) and wanted(k, start_after, "")))

        return self._select(fd, rel, start_after, limit, name_prefix, rescan, first)

    def _scan_page(self, fd: int, rel: str, ident: Identity, before: os.stat_result, start_after: str | None,
                   limit: int, name_prefix: str, settings: ListingSettings) -> list[str]:
        """The ``limit`` smallest wanted keys by a scan, which also snapshots a big, settled directory."""
        started = time.time_ns()
        racy = max(before.st_mtime_ns, before.st_ctime_ns) >= started - int(settings.racy_seconds * 1e9)
        spool = None if racy else SortedSpool(self.cache.directory, settings.run_size, settings.fan_in)

        def keys() -> Iterator[str]:
            for key in self._scan(fd, rel):
                if spool is not None:
                    spool.add(key)
                if wanted(key, start_after, name_prefix):
                    yield key

        try:
            found = heapq.nsmallest(limit, keys())
            if spool is not None and spool.count > settings.threshold and identity(os.fstat(fd)) == ident:
                snap = spool.finish(ident, settings.index_every)
                self.cache.put(rel, snap)
                self.last_build = BuildStats(spool.count, spool.runs_written, spool.largest_run,
                                             spool.merge_passes)
        finally:
            if spool is not None:
                spool.discard()
        return found

    def _select(self, fd: int, rel: str, start_after: str | None, limit: int, name_prefix: str,
                more: Callable[[str | None, int], list[str]], first: list[str] | None = None) -> list[FileInfo]:
        """Stat the candidate keys (``first``, then ``more(after, want)``: the ``want`` smallest wanted keys
        after ``after``, sorted) until ``limit`` entries are found or no candidate is left.

        A candidate that vanished or became a link is skipped and the page refilled past the last candidate; one
        whose type changed (its key with it) is kept only where its new key still falls among the candidates."""
        found: dict[str, FileInfo] = {}
        after, want = start_after, limit
        cands = more(after, want) if first is None else first
        while True:
            bound = cands[-1] if len(cands) == want else None  # more may follow: the candidates end here
            for key in cands:
                entry = self._entry(fd, rel, key)
                if entry is None:
                    continue
                now = child_key(entry)
                if now != key and not (wanted(now, start_after, name_prefix) and after_marker(now, entry.is_dir, after)
                                       and (bound is None or now <= bound)):
                    continue
                found[entry.name] = entry
            if bound is None or len(found) >= limit:
                return sorted(found.values(), key=child_key)[:limit]
            after, want = bound, limit - len(found)
            cands = more(after, want)
