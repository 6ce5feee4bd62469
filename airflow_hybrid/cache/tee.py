"""Streams that copy into a cache tier while data flows: the read-through tee and the loader's counter.

:class:`FillingReader` hands the reader each chunk as soon as it arrives from the source and, at the same
time, feeds it to the tier store's :meth:`~airflow_hybrid.stores.base.Store.write` running in a background
thread through a bounded in-memory pipe (a few chunks; a slow tier slows the reader rather than filling
memory). The reader never waits for a whole copy. The fill succeeds only when the reader reached the end of
the source and the copy holds exactly the expected bytes; anything else (closed early, source longer or
shorter than announced, the tier failing) aborts the fill, and the store discards the partial write.

The fill completes as soon as the reader has taken the announced size and the source confirms its end, even
if the reader keeps the stream open: engines reading through fsspec (DuckDB) keep file handles until garbage
collection, and a fill waiting for ``close`` would hold the file's load claim all that time, so ranged reads
of the same file could not load it either.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable
from typing import BinaryIO

from airflow_hybrid.ops.reader import ReadStream
from airflow_hybrid.stores.base import FileInfo

log = logging.getLogger(__name__)

_PIPE_DEPTH = 8


class FillAborted(Exception):
    """Raised inside the tier write when the fill is abandoned."""


_EOF = object()


class _Pipe:
    """The read end handed to the tier store's ``write``; the tee pushes chunks into it."""

    def __init__(self, depth: int = _PIPE_DEPTH) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._pending: collections.deque[memoryview] = collections.deque()
        self._ended = False

    # producer side
    def put(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def end(self) -> None:
        self._queue.put(_EOF)

    def abort(self, reason: str) -> None:
        self._queue.put(FillAborted(reason))

    # consumer side (the writer thread)
    def read(self, n: int = -1) -> bytes:
        if not self._pending and not self._ended:
            item = self._queue.get()
            if item is _EOF:
                self._ended = True
            elif isinstance(item, FillAborted):
                self._ended = True
                raise item
            else:
                self._pending.append(memoryview(item))
        if not self._pending:
            return b""
        head = self._pending[0]
        if n is None or n < 0 or n >= len(head):
            self._pending.popleft()
            return bytes(head)
        self._pending[0] = head[n:]
        return bytes(head[:n])

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Consume until the producer's end marker, so a producer never blocks on a dead consumer."""
        self._pending.clear()
        while not self._ended:
            item = self._queue.get()
            if item is _EOF or isinstance(item, FillAborted):
                self._ended = True


#: Called once when a fill ends: ``(ok, bytes_seen, written_info_or_None, reason)``.
FillDone = Callable[[bool, int, "FileInfo | None", str], None]


class FillingReader(ReadStream):
    """A read-only stream over ``source`` that writes what is read to a cache tier.

    :param source: the source stream (closed by :meth:`close`).
    :param write: ``write(stream) -> FileInfo`` storing a stream at the copy's location.
    :param expected_size: the source's size; the copy must hold exactly this many bytes.
    :param on_done: receives the outcome once (see :data:`FillDone`); it completes or abandons the entry.
    :param heartbeat: called as bytes flow; returning ``False`` (the claim was lost) aborts the fill.
    """

    def __init__(
        self,
        source: BinaryIO,
        write: Callable[[BinaryIO], FileInfo],
        expected_size: int,
        on_done: FillDone,
        heartbeat: Callable[[], bool] = lambda: True,
        name: str = "",
    ) -> None:
        super().__init__()
        self._source = source
        self._expected = expected_size
        self._on_done = on_done
        self._heartbeat = heartbeat
        self.name = name
        self._seen = 0
        #: A byte read past the announced size while confirming the end; handed to the reader next.
        self._pending = b""
        self._filling = True
        self._written: FileInfo | None = None
        self._error: BaseException | None = None
        self._pipe = _Pipe()
        self._writer = threading.Thread(
            target=self._write, args=(write,), name=f"cache-fill {name}", daemon=True
        )
        self._writer.start()

    def _write(self, write: Callable[[BinaryIO], FileInfo]) -> None:
        try:
            self._written = write(self._pipe)  # type: ignore[arg-type]
        except BaseException as err:  # reported through on_done
            self._error = err
        finally:
            self._pipe.drain()

    # -- reading --------------------------------------------------------------------------------------
    def read(self, n: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        if self._pending and n != 0:
            data, self._pending = self._pending, b""
            if n is None or n < 0:
                data += self._source.read()
            elif n > len(data):
                data += self._source.read(n - len(data))
            self._seen += len(data)
            return data
        data = self._source.read() if n is None or n < 0 else self._source.read(n)
        if data:
            self._seen += len(data)
            if self._filling:
                self._feed(bytes(data))
                if self._filling and self._seen == self._expected:
                    self._confirm_end()
        elif self._filling and n != 0:
            self._finish()
        return data

    def _confirm_end(self) -> None:
        """The reader has the announced size: complete the fill now if the source ends there too."""
        extra = self._source.read(1)
        if extra:
            self._pending = extra
            self._abort("source is longer than its announced size")
        else:
            self._finish()


    @property
    def filling(self) -> bool:
        """Whether this stream is still copying into the cache."""
        return self._filling

    def _feed(self, data: bytes) -> None:
        if self._error is not None:
            self._abort(f"tier write failed: {self._error}")
        elif self._seen > self._expected:
            self._abort(f"source is longer than its announced {self._expected} bytes")
        elif not self._heartbeat():
            self._abort("claim lost (lease expired and reclaimed, or entry invalidated)")
        else:
            self._pipe.put(data)

    def _finish(self) -> None:
        self._filling = False
        self._pipe.end()
        self._writer.join()
        written = self._written
        if self._error is not None:
            self._report(False, None, f"tier write failed: {self._error}")
        elif self._seen != self._expected:
            self._report(False, written, f"read {self._seen} bytes, source announced {self._expected}")
        elif written is None or written.size != self._seen:
            size = None if written is None else written.size
            self._report(False, written, f"copy holds {size} bytes, {self._seen} were read")
        else:
            self._report(True, written, "")

    def _abort(self, reason: str) -> None:
        if not self._filling:
            return
        self._filling = False
        self._pipe.abort(reason)
        self._writer.join()
        self._report(False, None, reason)

    def _report(self, ok: bool, written: FileInfo | None, reason: str) -> None:
        try:
            self._on_done(ok, self._seen, written, reason)
        except Exception:  # the reader keeps its bytes whatever happens to the cache
            log.exception("cache fill of %s: recording the outcome failed", self.name)

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._filling:
                if self._seen == self._expected and self._error is None:
                    # The reader stopped right at the announced size: confirm the source ends there too.
                    if self._source.read(1):
                        self._abort("source is longer than its announced size")
                    else:
                        self._finish()
                else:
                    self._abort(f"reader closed after {self._seen} of {self._expected} bytes")
        finally:
            try:
                self._source.close()
            finally:
                super().close()


class CountingReader(ReadStream):
    """Pass-through stream counting bytes and calling ``heartbeat`` (``False`` aborts with :class:`FillAborted`)."""

    def __init__(self, source: BinaryIO, heartbeat: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self._source = source
        self._heartbeat = heartbeat
        self.count = 0

    def read(self, n: int | None = -1) -> bytes:
        data = self._source.read() if n is None or n < 0 else self._source.read(n)
        self.count += len(data)
        if data and not self._heartbeat():
            raise FillAborted("claim lost (lease expired and reclaimed, or entry invalidated)")
        return data

