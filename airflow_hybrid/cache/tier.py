"""A cache tier at run time: its configuration, its store, and where copies go inside it.

Layout inside a tier's store (hashed by logical path, one directory per load)::

    <mount>/<h[0:2]>/<h>.<load id>/<file name>

``h`` is the SHA-256 of the logical path and ``load id`` is unique per load. Keeping the file name (and so
its extension) lets an engine read a cached copy directly; hashing keeps directories small and paths short
whatever the logical depth. A new directory per load means deleting an old copy can never touch a newer one
of the same path, and deleting a copy is deleting its directory, which also removes the partial temporary
file an interrupted write leaves behind. Writes go through :meth:`Store.write`, which only makes a file
visible once complete (rename into place on disk, completed multipart upload on S3).

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

from airflow_hybrid.cache.config import TierConfig
from airflow_hybrid.stores.base import FileInfo, Store
from airflow_hybrid.stores.local import LocalStore
from airflow_hybrid.values import cut_utf8

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
#: Longest file name kept in a copy's location, in UTF-8 bytes (file systems and HDFS allow 255 bytes).
_MAX_NAME_BYTES = 180


def copy_location(mount: str, path: str, load_id: str) -> str:
    """Where the copy of logical ``path`` made by load ``load_id`` lives inside a tier."""
    digest = hashlib.sha256(path.encode()).hexdigest()
    name = cut_utf8(posixpath.basename(path) or "data", _MAX_NAME_BYTES, keep="end")  # keeps the extension
    return f"{_UNSAFE.sub('_', mount) or '_'}/{digest[:2]}/{digest}.{load_id}/{name}"


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
        """Delete a copy and whatever an interrupted write left next to it (idempotent)."""
        with contextlib.suppress(FileNotFoundError):
            self.store.delete(posixpath.dirname(location), recursive=True)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
