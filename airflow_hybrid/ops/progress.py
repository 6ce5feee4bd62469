"""Progress of a many-file operation: files, bytes, one rate and an ETA, logged on a timer and as files finish.

Bytes count as they stream (a file in flight counts in bytes, not yet in files), so a large file shows
progress before it completes::

    with ProgressTracker(files, size, interval=30, logger=log, label="Prefetch") as tracker:
        file = tracker.begin_file()           # on the worker: one per file
        stream = ProgressReader(raw, file)    # or call file(nbytes) per chunk
        ...
        tracker.add(files=1, nbytes=size, file=file)  # once the file is done (its streamed bytes are replaced)

The line: ``<label>: <files done>/<total> files, <bytes so far>/<total bytes>, <rate>/s[, N failed], ETA h:mm:ss``.
The rate is the only one: bytes moved so far over the wall time of the transfer (from :meth:`~ProgressTracker.start`
to :meth:`~ProgressTracker.stop`, which freezes it), so a summary taking :attr:`~ProgressTracker.elapsed`
prints the same figure as the last progress line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import BinaryIO, Protocol

from airflow_hybrid.ops.copy import TransferFailure, TransferResult
from airflow_hybrid.values import format_bytes

log = logging.getLogger(__name__)


class Ticker(Protocol):
    """What the timer thread waits on between progress lines."""

    def wait(self, timeout: float) -> bool:
        """Block until ``timeout`` seconds passed (``False``) or :meth:`stop` was called (``True``)."""

    def stop(self) -> None:
        """Wake the waiting thread for good."""


class EventTicker:
    """The default :class:`Ticker`: a :class:`threading.Event` waited on with a timeout (no polling)."""

    def __init__(self) -> None:
        self._stopped = threading.Event()

    def wait(self, timeout: float) -> bool:
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        self._stopped.set()


class FileProgress:
    """One file in flight: call it with the size of each chunk moved; those bytes count until the file is
    finished (``tracker.add(..., file=...)``), which replaces them with the file's final count."""

    __slots__ = ("_tracker", "bytes", "finished")

    def __init__(self, tracker: ProgressTracker) -> None:
        self._tracker = tracker
        self.bytes = 0
        self.finished = False

    def __call__(self, nbytes: int) -> None:
        self._tracker._stream(self, nbytes)

    def reset(self) -> None:
        """Forget the bytes moved so far (a retry starts the file over)."""
        self._tracker._stream(self, -self.bytes)


class ProgressReader:
    """Pass-through stream reporting the size of every chunk read to ``on_bytes``."""

    def __init__(self, raw: BinaryIO, on_bytes: Callable[[int], object]) -> None:
        self._raw = raw
        self._on_bytes = on_bytes

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read() if size is None or size < 0 else self._raw.read(size)
        if data:
            self._on_bytes(len(data))
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> ProgressReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def format_eta(seconds: float) -> str:
    """``h:mm:ss``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ProgressTracker:
    """Counts files and bytes (files in flight included) and logs ``files, bytes, rate, ETA``.

    A line is logged when a file finishes and ``interval`` seconds passed since the last line, and, while the
    tracker runs (:meth:`start`/:meth:`stop`, or ``with tracker:``), by a timer thread every ``interval``
    seconds whether or not a file finished. Thread-safe; usable directly as ``copy_many(..., on_progress=tracker)``.

    :param ticker: what the timer waits on (default: a new :class:`EventTicker` per start; tests pass their own).
    """

    def __init__(
        self,
        total_files: int | None = None,
        total_bytes: int | None = None,
        *,
        interval: float = 30.0,
        logger: logging.Logger | logging.LoggerAdapter | None = None,
        label: str = "Transfer",
        clock: Callable[[], float] = time.monotonic,
        ticker: Ticker | None = None,
    ) -> None:
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.interval = interval
        self.label = label
        #: Files done, their bytes, and files failed.
        self.files = 0
        self.bytes = 0
        self.failed = 0
        #: Bytes of the files in flight.
        self.in_flight = 0
        self._log = logger or log
        self._clock = clock
        self._ticker = ticker
        self._started = clock()
        self._stopped_at: float | None = None
        self._last_logged = self._started
        self._lock = threading.Lock()
        self._runs = 0
        self._thread: threading.Thread | None = None
        self._running_ticker: Ticker | None = None

    # -- counting ---------------------------------------------------------------------------------------
    def __call__(self, outcome: TransferResult | TransferFailure, file: FileProgress | None = None) -> None:
        if isinstance(outcome, TransferFailure):
            self.add(failed=1, file=file)
        else:
            self.add(files=1, nbytes=outcome.size, file=file)

    def begin_file(self) -> FileProgress:
        """A handle counting the bytes of one file as they stream."""
        return FileProgress(self)

    def _stream(self, file: FileProgress, nbytes: int) -> None:
        with self._lock:
            if not file.finished:
                file.bytes += nbytes
                self.in_flight += nbytes

    def add(
        self, files: int = 0, nbytes: int = 0, failed: int = 0, *, file: FileProgress | None = None,
        planned: int | None = None,
    ) -> None:
        """Count finished files: ``files`` done moving ``nbytes``, ``failed`` failed.

        :param file: the finished file's handle: the bytes it streamed stop counting (``nbytes`` replaces them).
        :param planned: the bytes the file had in ``total_bytes``: the total is corrected by the difference
            (a failed file leaves it, a file that grew or shrank since it was listed adjusts it).
        """
        with self._lock:
            self._finish(file)
            self.files += files
            self.bytes += nbytes
            self.failed += failed
            if planned is not None and self.total_bytes is not None:
                self.total_bytes = max(self.total_bytes + nbytes - planned, 0)
        self.maybe_log()

    def exclude(self, files: int = 0, nbytes: int = 0, *, file: FileProgress | None = None) -> None:
        """Leave files with nothing to move (already there, another run's) out of the totals."""
        with self._lock:
            self._finish(file)
            if self.total_files is not None:
                self.total_files = max(self.total_files - files, 0)
            if self.total_bytes is not None:
                self.total_bytes = max(self.total_bytes - nbytes, 0)
        self.maybe_log()

    def _finish(self, file: FileProgress | None) -> None:
        if file is not None and not file.finished:
            self.in_flight -= file.bytes
            file.finished = True

    # -- figures ----------------------------------------------------------------------------------------
    @property
    def bytes_so_far(self) -> int:
        """Bytes of the files done and of those in flight."""
        return self.bytes + self.in_flight

    @property
    def elapsed(self) -> float:
        """Seconds of the transfer: since :meth:`start` (or creation), until :meth:`stop`."""
        end = self._stopped_at if self._stopped_at is not None else self._clock()
        return end - self._started

    @property
    def rate(self) -> float:
        """Bytes per second so far (files in flight included)."""
        return _rate(self.bytes_so_far, self.elapsed)

    @property
    def eta(self) -> float | None:
        """Seconds left, by bytes when the total is known, else by files; ``None`` when unknown."""
        with self._lock:
            return _eta(self._figures())

    def _figures(self) -> tuple[int, int, int, int | None, int | None, float]:
        return (self.files, self.failed, self.bytes + self.in_flight, self.total_files, self.total_bytes,
                self.elapsed)

    def message(self) -> str:
        with self._lock:
            figures = self._figures()
        files, failed, moved, total_files, total_bytes, elapsed = figures
        count = f"{files}/{total_files}" if total_files is not None else str(files)
        size = format_bytes(moved)
        if total_bytes is not None:
            size += f"/{format_bytes(total_bytes)}"
        text = f"{self.label}: {count} files, {size}, {format_bytes(_rate(moved, elapsed))}/s"
        if failed:
            text += f", {failed} failed"
        eta = _eta(figures)
        if eta is not None:
            text += f", ETA {format_eta(eta)}"
        return text

    def maybe_log(self, force: bool = False) -> str | None:
        """Log the progress line if ``interval`` seconds passed since the last one (or ``force``)."""
        with self._lock:
            now = self._clock()
            if not force and now - self._last_logged < self.interval:
                return None
            self._last_logged = now
        text = self.message()
        self._log.info("%s", text)
        return text

    # -- the timer --------------------------------------------------------------------------------------
    def start(self) -> ProgressTracker:
        """The transfer starts now (the clock of :attr:`elapsed` restarts) and, with ``interval`` > 0, a daemon
        thread logs the line every ``interval`` seconds until :meth:`stop`. Nested starts count: only the
        outermost start and stop act."""
        with self._lock:
            self._runs += 1
            if self._runs > 1:
                return self
            self._started = self._last_logged = self._clock()
            self._stopped_at = None
            if self.interval > 0:
                self._running_ticker = self._ticker or EventTicker()
                self._thread = threading.Thread(target=self._tick, args=(self._running_ticker,),
                                                name=f"progress: {self.label}", daemon=True)
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the timer thread (joined before returning) and freeze :attr:`elapsed`."""
        with self._lock:
            if self._runs == 0:
                return
            self._runs -= 1
            if self._runs:
                return
            self._stopped_at = self._clock()
            thread, ticker = self._thread, self._running_ticker
            self._thread = self._running_ticker = None
        if thread is not None and ticker is not None:
            ticker.stop()
            thread.join()

    @property
    def running(self) -> bool:
        return self._runs > 0

    def __enter__(self) -> ProgressTracker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _tick(self, ticker: Ticker) -> None:
        while not ticker.wait(self._due_in()):
            try:
                self.maybe_log()
            except Exception:  # a broken logger must not end the progress lines, nor the operation
                log.exception("Could not log the progress of %s", self.label)

    def _due_in(self) -> float:
        """Seconds until the next line is due (a line logged as a file finished postpones it)."""
        with self._lock:
            return max(self.interval - (self._clock() - self._last_logged), 0.0)


def _rate(nbytes: int, elapsed: float) -> float:
    return nbytes / elapsed if elapsed > 0 else 0.0


def _eta(figures: tuple[int, int, int, int | None, int | None, float]) -> float | None:
    files, failed, moved, total_files, total_bytes, elapsed = figures
    if elapsed <= 0:
        return None
    if total_bytes and moved:
        return max(total_bytes - moved, 0) / (moved / elapsed)
    done = files + failed
    if total_files and done:
        return max(total_files - done, 0) / (done / elapsed)
    return None
