"""Hits recorded off the read path: a reader hands a hit over and goes on; a background thread writes the
pending hits of the process in one catalog transaction. It gathers them for up to :data:`_LINGER_SECONDS`
first, so the opens of one query (an engine opens every file of a table at once) share one transaction rather
than each taking the catalog's write lock, and the GIL, for its own while the query reads.

The catalog flushes the pending hits before anything that reads them (eviction order, the usage report), so
within a process they are never missed; other processes see them a moment later. Hits still pending when a
process is killed are lost (a task's process ends with ``os._exit``, so the plugin's listener writes them
first): they are statistics and LRU positions, never what decides whether a copy is fresh or safe to serve.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from airflow_hybrid.cache.entry import CachedEntry

log = logging.getLogger(__name__)

#: Seconds the writer thread waits for more hits before it exits (the next hit starts a new one).
_IDLE_SECONDS = 2.0
#: Seconds the writer gathers hits after the first one of a batch, and the batch size that ends that earlier.
_LINGER_SECONDS = 0.5
_LINGER_HITS = 1000

#: ``write(hits)`` stores a batch of ``(entry, time)`` hits in one transaction.
HitWriter = Callable[[Sequence[tuple[CachedEntry, float]]], None]

_recorders: weakref.WeakSet[HitRecorder] = weakref.WeakSet()


class HitRecorder:
    """Batches hits for ``write``; :meth:`flush` writes what is pending before returning."""

    def __init__(self, write: HitWriter) -> None:
        self._write = write
        self._reset()
        _recorders.add(self)
        if hasattr(os, "register_at_fork"):  # the child has no writer thread and must not wait for one
            reset = weakref.WeakMethod(self._reset)  # a handler never unregisters: it must not keep us alive
            os.register_at_fork(after_in_child=lambda: (m := reset()) is not None and m())

    def _reset(self) -> None:
        self._cond = threading.Condition()
        self._pending: list[tuple[CachedEntry, float]] = []
        self._writing = False
        self._thread: threading.Thread | None = None

    def record(self, entry: CachedEntry, now: float) -> None:
        with self._cond:
            self._pending.append((entry, now))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="cache-hits", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def flush(self) -> None:
        """Write the pending hits now (waits for a batch being written by the thread)."""
        while True:
            with self._cond:
                while self._writing:
                    self._cond.wait()
                if not self._pending:
                    return
                batch = self._take()
            self._write_batch(batch)

    def _take(self) -> list[tuple[CachedEntry, float]]:
        batch, self._pending = self._pending, []
        self._writing = True
        return batch

    def _write_batch(self, batch: list[tuple[CachedEntry, float]]) -> None:
        try:
            self._write(batch)
        except Exception as err:  # statistics only: never fail a reader for them
            log.warning("could not record %d cache hits: %s", len(batch), err)
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending or self._writing:
                    if not self._cond.wait(timeout=_IDLE_SECONDS) and not self._pending:
                        self._thread = None
                        return
                deadline = time.monotonic() + _LINGER_SECONDS
                while len(self._pending) < _LINGER_HITS and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(timeout=left)  # each hit recorded wakes it; a flush may take the batch
                if self._writing or not self._pending:
                    continue
                batch = self._take()
            self._write_batch(batch)


@atexit.register
def flush_all() -> None:
    """Write the pending hits of every recorder of this process (at exit; a task runner, which ends with
    ``os._exit``, calls it from the plugin's listener, :mod:`airflow_hybrid.plugins.listener`)."""
    for recorder in list(_recorders):
        recorder.flush()
