"""Progress of a many-file operation: files, bytes, rate and ETA, logged at most every ``interval`` seconds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from airflow_hybrid.ops.copy import TransferFailure, TransferResult
from airflow_hybrid.values import format_bytes, format_duration

log = logging.getLogger(__name__)


class ProgressTracker:
    """Counts files and bytes done and logs ``files, bytes, rate, ETA`` at most every ``interval`` seconds.

    Thread-safe; usable directly as ``copy_many(..., on_progress=tracker)``.
    """

    def __init__(
        self,
        total_files: int | None = None,
        total_bytes: int | None = None,
        *,
        interval: float = 30.0,
        logger: logging.Logger | None = None,
        label: str = "Transfer",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.interval = interval
        self.label = label
        self.files = 0
        self.bytes = 0
        self.failed = 0
        self._log = logger or log
        self._clock = clock
        self._started = clock()
        self._last_logged = self._started
        self._lock = threading.Lock()

    def __call__(self, outcome: TransferResult | TransferFailure) -> None:
        if isinstance(outcome, TransferFailure):
            self.add(failed=1)
        else:
            self.add(files=1, nbytes=outcome.size)

    def add(self, files: int = 0, nbytes: int = 0, failed: int = 0) -> None:
        with self._lock:
            self.files += files
            self.bytes += nbytes
            self.failed += failed
        self.maybe_log()

    @property
    def elapsed(self) -> float:
        return self._clock() - self._started

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        elapsed = self.elapsed
        return self.bytes / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, by bytes when the total is known, else by files; ``None`` when unknown."""
        elapsed = self.elapsed
        if elapsed <= 0:
            return None
        if self.total_bytes and self.bytes:
            return max(self.total_bytes - self.bytes, 0) / (self.bytes / elapsed)
        done = self.files + self.failed
        if self.total_files and done:
            return max(self.total_files - done, 0) / (done / elapsed)
        return None

    def message(self) -> str:
        files = f"{self.files}/{self.total_files}" if self.total_files is not None else str(self.files)
        size = format_bytes(self.bytes)
        if self.total_bytes is not None:
            size += f"/{format_bytes(self.total_bytes)}"
        eta = self.eta
        text = f"{self.label}: {files} files, {size}, {format_bytes(self.rate)}/s"
        if self.failed:
            text += f", {self.failed} failed"
        if eta is not None:
            text += f", ETA {format_duration(eta)}"
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
