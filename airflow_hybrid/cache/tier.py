"""A cache tier at run time: its configuration, its store, and where copies go inside it.

Layout inside a local tier's store (hashed by logical path, one directory per load)::

    <mount>/<h[0:2]>/<h>.<load id>/<file name>

``h`` is the SHA-256 of the logical path and ``load id`` is unique per load. Keeping the file name (and so
its extension) lets an engine read a cached copy directly; hashing keeps directories small and paths short
whatever the logical depth. A new directory per load means deleting an old copy can never touch a newer one
of the same path, and deleting a copy is deleting its directory, which also removes the partial temporary
file an interrupted write leaves behind. Writes go through :meth:`Store.write`, which only makes a file
visible once complete (rename into place on disk, completed multipart upload on S3).

A *shared* tier (an object store or HDFS: ``s3://``, ``s3a://``, ``hdfs://``) can be read by engines outside
this process (Spark or Trino on EMR), so its copies mirror the logical tree, and a warm directory is one
directory an engine can read (see :meth:`CacheManager.warm_uri`)::

    <mount>/<logical dir>/<load id>-<file name>

The load id prefix keeps copies unique per load (deleting an old copy never touches a newer one of the same
path) and never starts with ``_`` or ``.``, names that Spark, Hive and Trino skip; the copy of a file engines
skip at the source (``_SUCCESS``, ``.part-0.crc``) keeps that first character, so they skip the copy too. Deleting such a copy deletes
that one file, and any multipart upload still open for it (S3 uploads are invisible until complete; HDFS
writes go to a hidden ``.hybrid-tmp-*`` name that the writer removes when it fails). An entry keeps the
``location`` stored at load, so copies made in the hashed layout stay readable and deletable.

A local tier is contained and private: its store never follows a symbolic link under the tier's root (a link
planted there is refused, so a fill cannot write through it into another directory, and a read cannot serve a
file from outside), and copies are created with the cache's ``file_mode`` (``0600`` by default, temporary
files included, also on ``/dev/shm``) in directories created ``0700``.
"""

from __future__ import annotations

import contextlib
import hashlib
import posixpath
import re
from functools import cached_property
from typing import BinaryIO
from urllib.parse import urlparse

from airflow_hybrid.cache.config import TierConfig
from airflow_hybrid.stores.base import FileInfo, Store
from airflow_hybrid.stores.local import LocalStore
from airflow_hybrid.values import cut_utf8

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: URI schemes of tiers that engines outside this process can read.
SHARED_SCHEMES = frozenset({"s3", "s3a", "hdfs", "webhdfs"})
_LOAD_ID = re.compile(r"[_.]?[0-9a-f]{32}-")
#: First characters of names Spark, Hive and Trino skip in a directory (``_SUCCESS``, ``.crc`` files).
_HIDDEN = ("_", ".")
_HASHED = re.compile(r"[^/]+/[0-9a-f]{2}/[0-9a-f]{64}\.[^/]+/[^/]+")
#: Longest file name kept in a copy's location, in UTF-8 bytes (file systems and HDFS allow 255 bytes).
_MAX_NAME_BYTES = 180


def copy_location(mount: str, path: str, load_id: str) -> str:
    """Where the copy of logical ``path`` made by load ``load_id`` lives inside a tier."""
    digest = hashlib.sha256(path.encode()).hexdigest()
    name = cut_utf8(posixpath.basename(path) or "data", _MAX_NAME_BYTES, keep="end")  # keeps the extension
    return f"{_UNSAFE.sub('_', mount) or '_'}/{digest[:2]}/{digest}.{load_id}/{name}"


def mirrored_dir(mount: str, logical_dir: str) -> str:
    """The directory of a shared tier holding the copies of the files directly in ``logical_dir``."""
    mount_dir = _UNSAFE.sub("_", mount) or "_"
    return f"{mount_dir}/{logical_dir}" if logical_dir else mount_dir


def mirrored_location(mount: str, path: str, load_id: str) -> str:
    """Where the copy of logical ``path`` made by load ``load_id`` lives inside a shared tier."""
    name = cut_utf8(posixpath.basename(path) or "data", _MAX_NAME_BYTES, keep="end")
    hidden = name[0] if name.startswith(_HIDDEN) else ""  # engines skip it at the source: skip the copy too
    return f"{mirrored_dir(mount, posixpath.dirname(path))}/{hidden}{load_id}-{name}"


def dir_mode(file_mode: int) -> int:
    """Mode of a tier's directories for copies of ``file_mode``: ``0700``, plus search where others may read."""
    return 0o700 | file_mode | (file_mode & 0o044) >> 2


class Tier:
    """One configured tier; its store is built on first use."""

    def __init__(self, config: TierConfig, store_factory) -> None:
        self.config = config
        self._store_factory = store_factory

    def __repr__(self) -> str:
        return f"Tier({self.alias!r}, {self.config.uri!r})"

    @property
    def alias(self) -> str:
        return self.config.alias

    @property
    def shared(self) -> bool:
        """Whether engines outside this process can read the copies (an object store or HDFS)."""
        return urlparse(self.config.uri).scheme.lower() in SHARED_SCHEMES

    def copy_location(self, mount: str, path: str, load_id: str) -> str:
        """Where a new copy of logical ``path`` goes: mirrored in a shared tier, hashed in a local one."""
        if self.shared:
            return mirrored_location(mount, path, load_id)
        return copy_location(mount, path, load_id)

    def is_mirrored(self, mount: str, path: str, location: str) -> bool:
        """Whether ``location`` is a copy of ``path`` in the mirrored layout (engines read it in place)."""
        directory, _, name = location.rpartition("/")
        return (
            self.shared
            and directory == mirrored_dir(mount, posixpath.dirname(path))
            and _LOAD_ID.match(name) is not None
        )

    def copy_uri(self, location: str) -> str:
        """The URI an engine reads the copy at ``location`` (or a directory of copies) by."""
        return self.store.uri(location)

    @cached_property
    def store(self) -> Store:
        store = self._store_factory(self.config.uri, self.config.conn_id, self.config.options or None)
        if isinstance(store, LocalStore):
            store.file_mode, store.dir_mode = self.config.file_mode, dir_mode(self.config.file_mode)
        return store

    def open(self, location: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        return self.store.open_read(location, offset=offset, length=length)

    def write(self, location: str, stream: BinaryIO, size_hint: int | None = None) -> FileInfo:
        return self.store.write(location, stream, size_hint=size_hint)

    def delete_copy(self, location: str) -> None:
        """Delete a copy and whatever an interrupted write left for it (idempotent).

        In the hashed layout that is the copy's own load directory; in the mirrored one the copy alone (its
        directory holds other copies), and any multipart upload still open for it.
        """
        if _HASHED.fullmatch(location):  # <mount>/<h2>/<h>.<load id>/<name>: the load's own directory
            with contextlib.suppress(FileNotFoundError):
                self.store.delete(posixpath.dirname(location), recursive=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.store.delete(location)
        abort_open_uploads = getattr(self.store, "abort_open_uploads", None)
        if self.store.features.multipart_uploads and abort_open_uploads is not None:
            abort_open_uploads(location)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
