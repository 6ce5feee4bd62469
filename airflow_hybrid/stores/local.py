"""A local directory as a store (tests, cache tiers on /dev/shm or SSD, and small deployments).

Containment: every operation reaches its path from the root one component at a time, opening each directory
relative to the previous one with ``O_NOFOLLOW`` (``openat``), and acts on the last component relative to its
parent's descriptor (``fstatat``/``openat``/``renameat``/``unlinkat`` without following links). A symbolic
link anywhere below the root, whether it points outside or inside, is never followed: a path through one is
refused with :class:`~airflow_hybrid.stores.base.PathEscapeError`, and listings leave links out. Because the
checks are the system calls themselves, a link planted between a check and the use cannot redirect it. The
root itself is resolved once, when the store is built (its own ancestors may be links, e.g. ``/tmp`` on macOS).

Writes go to a temporary file created with ``O_EXCL`` in the target's directory, then renamed over the target
(which replaces a link planted there rather than writing through it). ``file_mode`` and ``dir_mode`` set the
mode (exactly, whatever the umask) of the files and directories the store creates; by default the usual
``0666``/``0777`` less the umask.
Cache tiers use ``0600``/``0700`` (:attr:`~airflow_hybrid.cache.config.CacheConfig.file_mode`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from airflow_hybrid.stores.base import (
    CHUNK_SIZE,
    FileInfo,
    PathEscapeError,
    Store,
    StoreFeatures,
    normalize_path,
)
from airflow_hybrid.stores.local_listing import ListingSettings, SnapshotCache, SortedLister

log = logging.getLogger(__name__)

_UMASK = os.umask(0)
os.umask(_UMASK)

_TMP_PREFIX = ".hybrid-tmp-"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted under the root must not hang; it has no effect on regular files.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class _RangeReader(BinaryIO):
    """File object limited to ``length`` bytes from its current position."""

    def __init__(self, raw: BinaryIO, length: int | None) -> None:
        self._raw = raw
        self._left = length

    def read(self, n: int = -1) -> bytes:
        if self._left is None:
            return self._raw.read(n)
        if self._left <= 0:
            return b""
        n = self._left if n is None or n < 0 else min(n, self._left)
        data = self._raw.read(n)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalStore(Store):
    """Files under a local directory; writes go to a temporary file renamed into place.

    :param file_mode: mode of the files written (exactly, whatever the umask); ``None``: ``0666`` less the umask.
    :param dir_mode: mode of the directories created (exactly); ``None``: ``0777`` less the umask.
    """

    scheme = "file"

    #: :meth:`list_sorted` snapshots the sorted child keys of a directory of more entries than this
    #: (:mod:`~airflow_hybrid.stores.local_listing`), so its later pages cost O(page); smaller ones are scanned.
    listing_snapshot_threshold = 10_000
    #: keys sorted in memory per run of a snapshot's external sort (its memory bound while building).
    listing_snapshot_run = 50_000
    #: runs merged at once (open files while building).
    listing_snapshot_fan_in = 64
    #: one key in this many kept in memory to find a marker in a snapshot.
    listing_snapshot_index_every = 128
    #: snapshots kept per store (least recently used dropped).
    listing_snapshots_kept = 4
    #: a directory whose mtime or ctime is this recent (or later) when its scan starts is not snapshotted (racy).
    listing_racy_seconds = 2.0
    #: where the private snapshot directory is made (``None``: the system's temporary directory).
    listing_snapshot_parent: str | None = None

    def __init__(self, root_uri: str, file_mode: int | None = None, dir_mode: int | None = None) -> None:
        parsed = urlparse(root_uri)
        root = parsed.path if parsed.scheme == "file" else root_uri
        if not root:
            raise ValueError(f"local store needs a directory, got {root_uri!r}")
        self.root = Path(root).resolve()
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        super().__init__(f"file://{self.root}")
        self._lister = SortedLister(
            SnapshotCache(self.listing_snapshots_kept, self.listing_snapshot_parent),
            self._info, self._warn_link, _TMP_PREFIX,
        )

    # -- reaching a path without following links ------------------------------------------------------
    def _escape(self, rel: str, link: str) -> PathEscapeError:
        return PathEscapeError(
            f"{self.uri(rel)}: {self.uri(link)} is a symbolic link; a local store never follows links under its root"
        )

    def _open_root(self, rel: str, create: bool) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError:
            if not create:
                raise FileNotFoundError(f"{self.uri(rel)} does not exist") from None
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR) and self.root.is_symlink():
                raise PathEscapeError(
                    f"{self.uri(rel)}: the store's root {self.root} is now a symbolic link; it is never followed"
                ) from None
            raise
        os.makedirs(self.root, mode=0o777 if self.dir_mode is None else self.dir_mode, exist_ok=True)
        fd = os.open(self.root, _DIR_FLAGS)
        if self.dir_mode is not None:
            os.fchmod(fd, self.dir_mode)  # exactly, whatever the umask
        return fd

    def _open_dir(self, rel: str, parts: list[str], create: bool = False) -> int:
        """Descriptor of the directory ``parts`` (components of ``rel``) below the root; the caller closes it.

        :raises PathEscapeError: a component is a symbolic link.
        :raises FileNotFoundError: a component is missing (and ``create`` is false) or is not a directory.
        """
        fd = self._open_root(rel, create)
        try:
            for i, part in enumerate(parts):
                created = False
                if create:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o777 if self.dir_mode is None else self.dir_mode, dir_fd=fd)
                        created = True
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as err:
                    if err.errno not in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                        raise
                    here = "/".join(parts[: i + 1])
                    if self._is_link(fd, part):
                        raise self._escape(rel, here) from None
                    if create and err.errno == errno.ENOTDIR:
                        raise NotADirectoryError(
                            errno.ENOTDIR, f"{self.uri(here)} is a file, {self.uri(rel)} cannot be below it"
                        ) from None
                    raise FileNotFoundError(f"{self.uri(rel)} does not exist") from None
                os.close(fd)
                fd = child
                if created and self.dir_mode is not None:
                    os.fchmod(fd, self.dir_mode)  # exactly, whatever the umask
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _is_link(dir_fd: int, name: str) -> bool:
        try:
            return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            return False

    @contextlib.contextmanager
    def _parent(self, rel: str, create: bool = False) -> Iterator[tuple[int, str]]:
        """``(descriptor of rel's parent directory, rel's last component)`` for a non-root ``rel``."""
        parts = rel.split("/")
        fd = self._open_dir(rel, parts[:-1], create)
        try:
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _lstat(self, rel: str, dir_fd: int, name: str) -> os.stat_result:
        """Status of ``name`` in ``dir_fd`` (never a link); :class:`FileNotFoundError` when absent."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(f"{self.uri(rel)} does not exist") from None
        if stat.S_ISLNK(st.st_mode):
            raise self._escape(rel, rel)
        return st

    # -- metadata -------------------------------------------------------------------------------------
    def _info(self, rel: str, st: os.stat_result) -> FileInfo:
        is_dir = stat.S_ISDIR(st.st_mode)
        return FileInfo(
            path=rel, size=0 if is_dir else st.st_size, mtime=st.st_mtime, is_dir=is_dir, atime=st.st_atime
        )

    def info(self, path: str) -> FileInfo:
        rel = normalize_path(path)
        if not rel:
            fd = self._open_root(rel, create=False)
            try:
                return self._info(rel, os.fstat(fd))
            finally:
                os.close(fd)
        with self._parent(rel) as (fd, name):
            return self._info(rel, self._lstat(rel, fd, name))

    def list(self, path: str) -> Iterator[FileInfo]:
        rel = normalize_path(path)
        try:
            fd = self._open_dir(rel, rel.split("/") if rel else [])
        except FileNotFoundError:
            if not rel:
                raise
            fd = None
        if fd is None:  # missing, or a file: a file lists as itself
            with self._parent(rel) as (parent, name):
                st = self._lstat(rel, parent, name)
            if not stat.S_ISDIR(st.st_mode):
                yield self._info(rel, st)
                return
            fd = self._open_dir(rel, rel.split("/"))  # a directory created meanwhile
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.name.startswith(_TMP_PREFIX):
                        continue
                    child = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue  # removed while listing
                    if stat.S_ISLNK(st.st_mode):
                        self._warn_link(child)
                        continue
                    yield self._info(child, st)
        finally:
            os.close(fd)

    def _warn_link(self, child: str) -> None:
        log.warning("%s is a symbolic link; left out of the listing (links are never followed)", self.uri(child))

    def list_sorted(
        self, path: str, start_after: str | None = None, limit: int = 1000, name_prefix: str = ""
    ) -> list[FileInfo]:
        """:meth:`Store.list_sorted` without a ``stat`` per entry: a scan of names and types keeps the ``limit``
        first, and only those are ``lstat``-ed; a directory of more than :attr:`listing_snapshot_threshold`
        entries is snapshotted sorted on its first page, so later pages read about ``limit`` keys
        (:mod:`~airflow_hybrid.stores.local_listing`). The same entries as the default, links left out."""
        rel = normalize_path(path)
        try:
            fd = self._open_dir(rel, rel.split("/") if rel else [])
        except (FileNotFoundError, NotADirectoryError):
            return []  # missing, or a file
        try:
            return self._lister.page(fd, rel, start_after, limit, name_prefix, ListingSettings(
                threshold=self.listing_snapshot_threshold, run_size=self.listing_snapshot_run,
                fan_in=self.listing_snapshot_fan_in, index_every=self.listing_snapshot_index_every,
                racy_seconds=self.listing_racy_seconds,
            ))
        finally:
            os.close(fd)

    def close(self) -> None:
        """Remove the listing snapshots (the store stays usable)."""
        self._lister.cache.close()

    @property
    def features(self) -> StoreFeatures:
        """Times and an atomic ``rename(2)``; no exclusive create, no checksums, no multipart uploads."""
        return StoreFeatures(set_times=True, atomic_rename=True)

    def set_times(self, path: str, mtime: float | None = None, atime: float | None = None) -> None:
        """Set the modification and access times (``None`` leaves a time unchanged)."""
        rel = normalize_path(path)
        with self._parent(rel) as (fd, name):
            st = self._lstat(rel, fd, name)
            times = (st.st_atime if atime is None else atime, st.st_mtime if mtime is None else mtime)
            os.utime(name, times, dir_fd=fd, follow_symlinks=False)

    # -- data -----------------------------------------------------------------------------------------
    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        rel = normalize_path(path)
        missing = FileNotFoundError(f"{self.uri(rel)} does not exist or is not a file")
        if not rel:
            raise missing
        try:
            with self._parent(rel) as (dir_fd, name):
                try:
                    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
                except OSError as err:
                    if err.errno == errno.ELOOP or self._is_link(dir_fd, name):
                        raise self._escape(rel, rel) from None
                    if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR):
                        raise missing from None
                    raise
        except FileNotFoundError:
            raise missing from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise missing
            os.set_blocking(fd, True)
            raw = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        raw.raw.name = str(self.root / rel)  # what open(path) would have named it
        if offset:
            raw.seek(offset)
        return _RangeReader(raw, length) if length is not None else raw

    def write(
        self, path: str, stream: BinaryIO, size_hint: int | None = None, *, if_absent: bool = False
    ) -> FileInfo:
        rel = normalize_path(path)
        self._refuse_if_absent(rel, if_absent)
        if not rel:
            raise IsADirectoryError(errno.EISDIR, f"{self.uri(rel)} is the store's root directory")
        mode = 0o666 & ~_UMASK if self.file_mode is None else self.file_mode
        with self._parent(rel, create=True) as (dir_fd, name):
            with contextlib.suppress(FileNotFoundError):
                self._lstat(rel, dir_fd, name)  # refuses a link at the target
            tmp, fd = self._create_temp(dir_fd, mode)
            try:
                with os.fdopen(fd, "wb") as out:
                    os.fchmod(out.fileno(), mode)  # exactly, whatever the umask
                    while chunk := stream.read(CHUNK_SIZE):
                        out.write(chunk)
                    out.flush()
                    written = os.fstat(out.fileno())
                # renameat replaces whatever is at ``name`` (a link planted meanwhile included), never follows it
                os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise
        return self._info(rel, written)

    @staticmethod
    def _create_temp(dir_fd: int, mode: int) -> tuple[str, int]:
        """A new temporary file in ``dir_fd``: ``O_EXCL`` (never an existing file or link), ``mode`` from birth."""
        while True:
            tmp = f"{_TMP_PREFIX}{secrets.token_hex(8)}"
            try:
                return tmp, os.open(tmp, _TMP_FLAGS, mode & 0o777, dir_fd=dir_fd)
            except FileExistsError:
                continue

    def delete(self, path: str, recursive: bool = False) -> bool:
        rel = normalize_path(path)
        if not rel:
            if not self.root.exists():
                return False
            if recursive:
                shutil.rmtree(self.root)
            else:
                self.root.rmdir()
            return True
        try:
            with self._parent(rel) as (fd, name):
                st = self._lstat(rel, fd, name)
                if not stat.S_ISDIR(st.st_mode):
                    os.unlink(name, dir_fd=fd)
                elif recursive:
                    shutil.rmtree(name, dir_fd=fd)  # fd-based: links inside are removed, never followed
                else:
                    os.rmdir(name, dir_fd=fd)
        except FileNotFoundError:
            return False
        return True

    def mkdir(self, path: str) -> None:
        rel = normalize_path(path)
        os.close(self._open_dir(rel, rel.split("/") if rel else [], create=True))

    def rename(self, src: str, dst: str) -> None:
        rel_src, rel_dst = normalize_path(src), normalize_path(dst)
        if not rel_src or not rel_dst:
            raise OSError(
                errno.EINVAL, f"cannot rename {self.uri(rel_src)} to {self.uri(rel_dst)}: the store's root"
            )
        try:
            with self._parent(rel_src) as (src_fd, src_name):
                self._lstat(rel_src, src_fd, src_name)
                with self._parent(rel_dst, create=True) as (dst_fd, dst_name):
                    with contextlib.suppress(FileNotFoundError):
                        self._lstat(rel_dst, dst_fd, dst_name)  # refuses a link at the target
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        except FileNotFoundError:
            raise FileNotFoundError(f"{self.uri(rel_src)} does not exist") from None
