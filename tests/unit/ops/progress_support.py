"""Test doubles for progress: a timer the test drives, a source that streams only when released, a clock."""

from __future__ import annotations

import logging
import re
import threading

from airflow_hybrid.stores.local import LocalStore

#: How long a test waits for another thread to reach a state before failing (never a timing assertion).
DEADLINE = 10.0


class ManualTicker:
    """A :class:`~airflow_hybrid.ops.progress.Ticker` driven by the test: :meth:`tick` lets the tracker's timer
    thread run once (as if its interval had passed) and returns once the thread has logged and waits again."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._ticks = 0  # ticks issued
        self._taken = 0  # ticks the timer thread took
        self._handled = 0  # ticks handled (the thread came back to wait)
        self._stopped = False

    def wait(self, timeout: float) -> bool:
        with self._cond:
            self._handled = self._taken
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._stopped or self._ticks > self._taken)
            if self._stopped:
                return True
            self._taken += 1
            return False

    def tick(self) -> None:
        with self._cond:
            self._ticks += 1
            target = self._ticks
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._handled >= target or self._stopped, timeout=DEADLINE):
                raise AssertionError("the progress timer thread did not take the tick")

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()


class Clock:
    """A clock the test sets."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class GatedStream:
    """``data`` in reads of at most ``chunk`` bytes; the second read blocks until :meth:`release`, so exactly one
    chunk has streamed when :attr:`blocked` is set."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self._data = data
        self._chunk = chunk
        self._pos = 0
        self.blocked = threading.Event()
        self._gate = threading.Event()
        self.closed = False

    def read(self, size: int | None = -1) -> bytes:
        if self._pos >= len(self._data):
            return b""
        if self._pos > 0 and not self._gate.is_set():
            self.blocked.set()
            if not self._gate.wait(DEADLINE):
                raise TimeoutError("the test never released the source")
        n = self._chunk if size is None or size < 0 else min(size, self._chunk)
        data = self._data[self._pos:self._pos + n]
        self._pos += len(data)
        return data

    def release(self) -> None:
        self._gate.set()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> GatedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Lines(logging.Handler):
    """Collects the messages of a logger; :meth:`wait_for` blocks until one matches (or fails at the deadline)."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self._cond = threading.Condition()
        self.logger = logger
        logger.setLevel(logging.INFO)
        logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        with self._cond:
            self.messages.append(record.getMessage())
            self._cond.notify_all()

    def wait_for(self, pattern: str) -> str:
        regex = re.compile(pattern)
        with self._cond:
            found: list[str] = []

            def matched() -> bool:
                found[:] = [m for m in self.messages if regex.search(m)]
                return bool(found)

            if not self._cond.wait_for(matched, timeout=DEADLINE):
                raise AssertionError(f"no line matching {pattern!r} in {self.messages}")
            return found[0]

    def close(self) -> None:
        self.logger.removeHandler(self)
        super().close()


def progress_threads() -> list[threading.Thread]:
    """The progress timer threads alive."""
    return [t for t in threading.enumerate() if t.name.startswith("progress: ")]


def rate_of(line: str) -> str:
    """The ``<rate>/s`` figure of a progress or summary line."""
    rates = re.findall(r"(\d+(?:\.\d+)? [KMGT]?i?B)/s", line)
    assert len(rates) == 1, f"one rate expected in {line!r}"
    return rates[0]


class GatedSource(LocalStore):
    """A local store whose files stream through :class:`GatedStream` (files of one chunk never block)."""

    def __init__(self, root_uri: str, chunk: int) -> None:
        super().__init__(root_uri)
        self.chunk = chunk
        self.streams: dict[str, GatedStream] = {}
        self._released = False
        self._cond = threading.Condition()

    def open_read(self, path, offset=0, length=None):
        with super().open_read(path, offset, length) as raw:
            stream = GatedStream(raw.read(), self.chunk)
        with self._cond:
            if self._released:
                stream.release()
            self.streams[path] = stream
            self._cond.notify_all()
        return stream

    def blocked(self, path: str) -> GatedStream:
        """``path``'s stream once its first chunk was read and the next read waits."""
        with self._cond:
            if not self._cond.wait_for(lambda: path in self.streams, timeout=DEADLINE):
                raise AssertionError(f"{path} was never opened")
            stream = self.streams[path]
        if not stream.blocked.wait(DEADLINE):
            raise AssertionError(f"{path} was opened but not read past its first chunk")
        return stream

    def release_all(self) -> None:
        with self._cond:
            self._released = True
            for stream in self.streams.values():
                stream.release()
