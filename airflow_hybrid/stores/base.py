"""The under-store protocol every member of a mount implements.

Paths handed to a store are *relative* to the store's root (``"store_sales/part-0.parquet"``, ``""`` is
the root itself), always with ``/`` separators and never with ``..``; :func:`normalize_path` enforces it.
Listings are iterators that page through the store, reads are streams, writes consume streams: nothing
ever holds a whole file or a whole listing in memory.
"""

from __future__ import annotations

import hashlib
import heapq
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from airflow_hybrid.exceptions import HybridConfigError, HybridError

#: Chunk size used when streaming between stores.
CHUNK_SIZE = 1024 * 1024


class StoreError(HybridError):
    """A store failed; the message names the store and the path."""


class PathEscapeError(HybridConfigError):
    """A logical path tries to leave its mount or store root."""


class UnsupportedFeatureError(HybridConfigError):
    """A store was asked for an optional feature it does not declare in :attr:`Store.features`."""


@dataclass(frozen=True)
class StoreFeatures:
    """What a store can do beyond the :class:`Store` protocol, declared rather than probed (rclone's ``Features``).

    The defaults are conservative: a store declares only what it does, and callers ask
    :attr:`Store.features` instead of looking for methods or schemes.
    """

    #: ``write(..., if_absent=True)`` is an atomic exclusive create at every size (never replaces a file).
    exclusive_create: bool = False
    #: Files smaller than this are refused by an exclusive create before any data is sent (one request), so
    #: creating them blindly is cheaper than looking first (see :meth:`cheap_exclusive_create`).
    exclusive_create_one_request_below: int = 0
    #: ``list_open_uploads``, ``abort_upload`` and ``abort_open_uploads`` (multipart uploads a killed writer leaves).
    multipart_uploads: bool = False
    #: ``set_times(path, mtime=None, atime=None)``.
    set_times: bool = False
    #: ``rename`` is one atomic operation of the store (otherwise a copy then a delete).
    atomic_rename: bool = False
    #: The algorithm family of the checksums :meth:`Store.checksum` reports, ``None`` when it reports none.
    server_checksum: str | None = None
    #: A missing file costs one request through :meth:`Store.checksum` and more through :meth:`Store.info`
    #: (S3: a ``HeadObject``, where a status also lists the prefix to tell a missing key from a directory).
    checksum_finds_missing_cheaply: bool = False
    #: :meth:`Store.list_sorted` is the store's own sorted, resumable listing (a page costs O(limit) requests);
    #: otherwise it scans the whole directory for each page (O(limit) memory, O(directory) requests).
    sorted_listing: bool = False

    def cheap_exclusive_create(self, size: int) -> bool:
        """Whether ``write(..., if_absent=True)`` of ``size`` bytes is the cheapest way to create a key that is
        usually missing (a larger file is created just as exclusively, but refused only once it was sent)."""
        return self.exclusive_create and size < self.exclusive_create_one_request_below


@dataclass(frozen=True)
class Checksum:
    """A checksum as the store reports it: ``algorithm`` (e.g. ``CRC32C``, ``MD5-of-0MD5-of-512CRC32C``)."""

    algorithm: str
    value: str


@dataclass(frozen=True)
class FileInfo:
    """Status of one entry. ``path`` is relative to the store root (or to the mount, for a mount)."""

    path: str
    size: int
    mtime: float
    is_dir: bool = False
    atime: float | None = None
    etag: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    def fingerprint(self) -> tuple[int, float, str | None]:
        """What identifies this version of the file: length, mtime and etag when the store has one."""
        return (self.size, self.mtime, self.etag)


@dataclass(frozen=True)
class TreeFingerprint:
    """A cheap summary of everything at or below a path: equal values mean no change was seen.

    ``exact``: the value changes whenever any file below changes length, mtime or ETag, or is added or removed
    (a full listing); ``False`` for a summary that can miss some changes (see :meth:`Store.tree_fingerprint`).
    ``files`` and ``bytes`` are what the store counted (hidden temporary files included, where it counts them).
    """

    value: str
    exact: bool
    files: int = 0
    bytes: int = 0

    #: The value of a path that does not exist.
    ABSENT = "absent"

    @classmethod
    def absent(cls) -> TreeFingerprint:
        return cls(cls.ABSENT, exact=True)


class FileSetDigest:
    """An order-independent digest of file statuses (a sum of per-entry hashes), in constant memory."""

    def __init__(self) -> None:
        self._sum = 0
        self.files = 0
        self.bytes = 0

    def add(self, info: FileInfo, *tag: str) -> None:
        entry = repr((*tag, info.path, info.size, info.mtime, info.etag)).encode()
        self._sum = (self._sum + int.from_bytes(hashlib.blake2b(entry, digest_size=16).digest(), "big")) % 2**128
        self.files += 1
        self.bytes += info.size

    def update(self, infos: Iterable[FileInfo], *tag: str) -> FileSetDigest:
        for info in infos:
            self.add(info, *tag)
        return self

    @property
    def value(self) -> str:
        return f"{self.files}:{self.bytes}:{self._sum:032x}"


def child_key(info: FileInfo) -> str:
    """An entry's name as S3 orders it: a directory as ``name/`` (so ``a-b`` < ``a.txt`` < ``a/`` < ``a0``)."""
    return f"{info.name}/" if info.is_dir else info.name


def after_marker(key: str, is_dir: bool, start_after: str | None) -> bool:
    """Whether a child with :func:`child_key` ``key`` comes after ``start_after`` (a child key or a key below
    one) in S3 order: a directory holding ``start_after`` (``start_after`` is ``x/...``) counts as after it."""
    if start_after is None or key > start_after:
        return True
    return is_dir and len(start_after) > len(key) and start_after.startswith(key)


def normalize_path(path: str) -> str:
    """Return ``path`` as a clean relative path, rejecting ``..`` escapes.

    A leading ``/`` means the root of the store or mount, never the host's root.
    """
    if path is None:
        raise PathEscapeError("path is None")
    if "\x00" in path:
        raise PathEscapeError(f"path {path!r} contains a NUL byte")
    parts: list[str] = []
    for part in path.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise PathEscapeError(f"path {path!r} escapes its root with '..'")
        parts.append(part)
    return "/".join(parts)


def join_path(*parts: str) -> str:
    return normalize_path("/".join(p for p in parts if p))


class Store(ABC):
    """One under-filesystem (HDFS, S3, a local directory) rooted at a URI."""

    #: URI scheme this store serves (``hdfs``, ``s3``, ``file``).
    scheme: str = ""

    def __init__(self, root_uri: str) -> None:
        self.root_uri = root_uri.rstrip("/")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root_uri!r})"

    @property
    def features(self) -> StoreFeatures:
        """The optional features this store has (none by default)."""
        return StoreFeatures()

    def uri(self, path: str) -> str:
        """Physical URI of ``path`` (what an engine such as Presto or Spark would read)."""
        path = normalize_path(path)
        return f"{self.root_uri}/{path}" if path else self.root_uri

    # -- metadata ---------------------------------------------------------------------------------
    @abstractmethod
    def info(self, path: str) -> FileInfo:
        """Status of ``path``; raises :class:`FileNotFoundError` when it does not exist."""

    def exists(self, path: str) -> bool:
        try:
            self.info(path)
        except FileNotFoundError:
            return False
        return True

    @abstractmethod
    def list(self, path: str) -> Iterator[FileInfo]:
        """Direct children of directory ``path``, streamed page by page (any order)."""

    def list_children(self, path: str) -> Iterator[FileInfo]:
        """The direct children of directory ``path`` as :meth:`list` gives them, and nothing (no error) when
        ``path`` is missing or is a file: what merging members' listings needs, where a member without the
        directory adds nothing. Stores override it where telling a missing path apart costs requests."""
        rel = normalize_path(path)
        try:
            for entry in self.list(rel):
                if entry.path == rel and not entry.is_dir:
                    return  # ``path`` is a file: list gives the file itself
                yield entry
        except (FileNotFoundError, NotADirectoryError):
            return

    def list_sorted(
        self, path: str, start_after: str | None = None, limit: int = 1000, name_prefix: str = ""
    ) -> list[FileInfo]:
        """Up to ``limit`` children of directory ``path`` in S3 order (:func:`child_key`) that start with
        ``name_prefix`` and come after ``start_after`` (:func:`after_marker`); ``[]`` for a missing directory.

        This default scans the whole directory (:meth:`list`) and keeps the ``limit`` first in a heap: memory
        O(limit), requests O(directory) per call. Stores with a sorted, resumable listing override it and
        declare :attr:`StoreFeatures.sorted_listing`.
        """
        rel = normalize_path(path)

        def wanted() -> Iterator[FileInfo]:
            try:
                for entry in self.list(rel):
                    if posixpath.dirname(entry.path) != rel or not entry.name.startswith(name_prefix):
                        continue  # a file lists as itself
                    if after_marker(child_key(entry), entry.is_dir, start_after):
                        yield entry
            except (FileNotFoundError, NotADirectoryError):
                return

        return heapq.nsmallest(limit, wanted(), key=child_key)

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        """Every file below ``path``, recursively, streamed (depth first, constant memory per level)."""
        stack = [normalize_path(path)]
        while stack:
            current = stack.pop()
            for entry in self.list(current):
                if entry.is_dir:
                    stack.append(entry.path)
                else:
                    yield entry

    def tree_fingerprint(self, path: str = "") -> TreeFingerprint:
        """A fingerprint of everything at or below ``path`` (:class:`TreeFingerprint`), to tell whether it changed.

        By default a full listing (:meth:`walk_files`) digested in constant memory, so it is exact: its cost is
        the listing's (a local directory: one ``scandir`` per directory; S3: one ``ListObjectsV2`` per 1000
        keys, and for a missing prefix the two requests that tell it is missing). Stores with a cheaper summary
        override it (HDFS: two requests whatever the size of the tree). A missing path gives
        :meth:`TreeFingerprint.absent`; an empty directory, the digest of no files.
        """
        rel = normalize_path(path)
        try:
            digest = FileSetDigest().update(self.walk_files(rel))
        except (FileNotFoundError, NotADirectoryError):
            return TreeFingerprint.absent()
        return TreeFingerprint(digest.value, exact=True, files=digest.files, bytes=digest.bytes)

    def checksum(self, path: str) -> Checksum | None:
        """The store's own checksum of the file, or ``None`` when it exposes none."""
        normalize_path(path)  # a path escaping the root is an error here too
        return None

    # -- data -------------------------------------------------------------------------------------
    @abstractmethod
    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A stream over ``length`` bytes (all when ``None``) of ``path`` starting at ``offset``.

        The caller closes it. Raises :class:`FileNotFoundError` when ``path`` does not exist.
        """

    @abstractmethod
    def write(
        self, path: str, stream: BinaryIO, size_hint: int | None = None, *, if_absent: bool = False
    ) -> FileInfo:
        """Write ``stream`` (read until EOF, chunk by chunk) to ``path``, replacing it; return its status.

        Parent directories are created as needed. The new content becomes visible only when
        complete (an interrupted write never leaves a truncated file at ``path``).

        :param if_absent: create ``path`` only if nothing is there (:class:`FileExistsError` otherwise), for
            stores declaring :attr:`StoreFeatures.exclusive_create`; others raise
            :class:`UnsupportedFeatureError` (see :meth:`_refuse_if_absent`).
        """

    def _refuse_if_absent(self, path: str, if_absent: bool) -> None:
        """For stores without exclusive creates: :class:`UnsupportedFeatureError` when ``if_absent`` is asked."""
        if if_absent:
            raise UnsupportedFeatureError(
                f"{self.uri(path)}: write(..., if_absent=True) needs an exclusive create, which "
                f"{type(self).__name__} does not declare (Store.features.exclusive_create)"
            )

    @abstractmethod
    def delete(self, path: str, recursive: bool = False) -> bool:
        """Delete ``path``; return ``False`` when it did not exist."""

    @abstractmethod
    def mkdir(self, path: str) -> None:
        """Create directory ``path`` and its parents (a no-op where directories are implicit)."""

    def rename(self, src: str, dst: str) -> None:
        """Rename ``src`` to ``dst``. Stores without a native rename copy then delete."""
        with self.open_read(src) as stream:
            self.write(dst, stream)
        self.delete(src)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""
