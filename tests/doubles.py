"""Test doubles shared by the suite: a member store and a source stream that count how they are used, and a
one-member mount as the cache sees it."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable, Iterator

from airflow_hybrid.stores.base import FileInfo
from airflow_hybrid.stores.local import LocalStore


class CountingStore(LocalStore):
    """A local store that counts what is asked of it.

    ``calls``: ``info``, ``list`` and ``open`` calls by op (not the calls a listing makes of the store itself);
    ``yielded``: the files its ``walk_files`` listings have yielded.
    """

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.calls: Counter[str] = Counter()
        self.yielded = 0
        self._inside = False

    def _count(self, op: str) -> None:
        if not self._inside:
            self.calls[op] += 1

    def info(self, path: str) -> FileInfo:
        self._count("info")
        return super().info(path)

    def list(self, path: str) -> Iterator[FileInfo]:
        self._count("list")
        self._inside = True
        try:
            yield from super().list(path)
        finally:
            self._inside = False

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        for info in super().walk_files(path):
            self.yielded += 1
            yield info

    def open_read(self, path: str, offset: int = 0, length: int | None = None):
        self._count("open")
        return super().open_read(path, offset, length)


class CountingReader(io.RawIOBase):
    """A source stream over ``data`` that records how it is read.

    ``bytes_read`` and ``largest_read`` (one ``read``'s most bytes); ``passes``: reads from the start. It can be
    not seekable, fail with ``OSError`` once ``fail_after`` bytes were read, and call ``on_read(bytes_read)``
    before each read.
    """

    def __init__(self, data: bytes, seekable: bool = True, *, fail_after: int | None = None,
                 on_read: Callable[[int], None] | None = None) -> None:
        self._data = io.BytesIO(data)
        self._seekable = seekable
        self.fail_after = fail_after
        self.on_read = on_read
        self.bytes_read = 0
        self.largest_read = 0
        self.passes = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._seekable

    def tell(self) -> int:
        return self._data.tell()

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if not self._seekable:
            raise io.UnsupportedOperation("seek")
        return self._data.seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        if self.fail_after is not None and self.bytes_read >= self.fail_after:
            raise OSError("input stream broke")
        if self.on_read:
            self.on_read(self.bytes_read)
        if self._data.tell() == 0:
            self.passes += 1
        chunk = self._data.read(size)
        self.bytes_read += len(chunk)
        self.largest_read = max(self.largest_read, len(chunk))
        return chunk


class MemberSource:
    """A mount of one member (``hdfs``) as the cache's read-through sees it (:class:`~airflow_hybrid.cache.manager.CacheSource`)."""

    def __init__(self, store: LocalStore, name: str = "lake") -> None:
        self.name = name
        self.members = {"hdfs": store}

    def resolve(self, path: str) -> tuple[str, FileInfo]:
        return "hdfs", self.members["hdfs"].info(path)

    def open_member(self, path: str, member: str, info: FileInfo, offset: int = 0, length: int | None = None):
        return self.members[member].open_read(path, offset=offset, length=length)
