"""The one resumable reader: a byte range of a remote object that reopens where it stopped when its connection drops.

A store gives :class:`ResumableReader` how to open the object at an offset (``open_at``) and which errors mean
the connection dropped (``dropped``); the reader keeps the position, the end of the range, the attempts and
the backoff. A body that ends before the bytes its answer announced is a dropped connection too.
:class:`ReadStream` is the base of every read-only stream here (defined by its ``read``);
:func:`read_full` reads a stream's next ``n`` bytes however short its reads are.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import CHUNK_SIZE, StoreError

log = logging.getLogger(__name__)


class Body(Protocol):
    """What ``open_at`` returns a stream of: an HTTP body read chunk by chunk, then closed."""

    def read(self, size: int, /) -> bytes: ...

    def close(self) -> None: ...


#: ``open_at(offset, length)``: a body of the object's bytes from ``offset`` (``length`` of them, or to the end when
#: ``None``) and how many bytes it holds if the answer says (``Content-Length``); ``None`` if nothing is there
#: (``offset`` at or past the end).
OpenAt = Callable[[int, "int | None"], "tuple[Body, int | None] | None"]


class ReadStream(io.RawIOBase):
    """A read-only raw stream defined by its ``read``: ``readinto`` and ``readall`` go through it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        return b"".join(iter(lambda: self.read(CHUNK_SIZE), b""))


def default_delay(attempt: int) -> float:
    """Seconds to wait before resuming the ``attempt``-th time: 0.2 s doubled per attempt, at most 5 s."""
    return min(0.1 * 2**attempt, 5.0)


class ResumableReader(ReadStream):
    """Stream over ``[offset, offset + length)`` of an object (to its end without ``length``).

    :param open_at: opens the object at an offset (see :data:`OpenAt`); its own errors are not retried here.
    :param name: the object's URI, for messages.
    :param dropped: whether an error raised while reading a body means the connection dropped (then the reader
        reopens at the current offset).
    :param max_attempts: reads of one position, the first included, before a :class:`StoreError`; the count
        starts again once bytes arrive.
    :param delay: seconds to wait before the ``n``-th reopening.
    :param size: the object's current size, for ``seek(..., SEEK_END)``; without it the reader is not seekable.
    :param opened: the first :data:`OpenAt` answer when the caller already opened the object at ``offset``.
    """

    def __init__(
        self,
        open_at: OpenAt,
        *,
        name: str,
        dropped: Callable[[BaseException], bool],
        offset: int = 0,
        length: int | None = None,
        max_attempts: int = 5,
        delay: Callable[[int], float] = default_delay,
        size: Callable[[], int] | None = None,
        opened: tuple[Body, int | None] | None = None,
    ) -> None:
        super().__init__()
        if offset < 0:
            raise HybridConfigError(f"{name}: negative read offset {offset}")
        if length is not None and length < 0:
            raise HybridConfigError(f"{name}: negative read length {length}")
        self.name = name
        self._open_at = open_at
        self._dropped = dropped
        self._max_attempts = max_attempts
        self._delay = delay
        self._size = size
        self._pos = offset
        self._end = None if length is None else offset + length
        self._stream: Body | None = None
        self._left: int | None = None  # bytes the open body still holds, if known
        self._failures = 0
        if opened is not None:
            self._stream, self._left = opened
        else:
            self._open()

    def _open(self) -> None:
        if self._end is not None and self._pos >= self._end:
            self._stream, self._left = None, 0
            return
        opened = self._open_at(self._pos, None if self._end is None else self._end - self._pos)
        self._stream, self._left = opened if opened is not None else (None, 0)

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _resume(self, error: BaseException) -> None:
        self._failures += 1
        self._close_stream()
        if self._failures >= self._max_attempts:
            raise StoreError(
                f"{self.name}: read failed at offset {self._pos} after {self._failures} attempts: {error}"
            ) from error
        log.warning("read of %s interrupted at offset %d (%s); resuming", self.name, self._pos, error)
        time.sleep(self._delay(self._failures))
        self._open()

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("read from a closed file")
        if size is None or size < 0:
            return self.readall()
        while True:
            if self._stream is None:
                if self._left == 0:
                    return b""
                self._open()
                continue
            want = size if self._left is None else min(size, self._left)
            if want == 0:
                return b""
            try:
                data = self._stream.read(want)
            except Exception as error:
                if not self._dropped(error):
                    raise
                self._resume(error)
                continue
            if not data and self._left:
                self._resume(ConnectionError(f"connection closed with {self._left} bytes unread"))
                continue
            self._failures = 0
            self._pos += len(data)
            if self._left is not None:
                self._left -= len(data)
            if not data:
                self._left = 0
            return data

    def seekable(self) -> bool:
        return self._size is not None

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if self._size is None:
            raise io.UnsupportedOperation(f"{self.name}: not seekable")
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            size = self._size()
            offset += size if self._end is None else min(size, self._end)
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        if offset != self._pos:
            self._close_stream()
            self._left = 0 if self._end is not None and offset >= self._end else None
            self._pos = offset
        return self._pos

    def close(self) -> None:
        self._close_stream()
        super().close()


def read_full(stream: BinaryIO, size: int) -> bytes:
    """Read ``size`` bytes from ``stream``, fewer only at end of stream (``read`` may return short)."""
    chunks = []
    missing = size
    while missing > 0:
        chunk = stream.read(missing)
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    if len(chunks) == 1:
        return bytes(chunks[0])
    return b"".join(chunks)
