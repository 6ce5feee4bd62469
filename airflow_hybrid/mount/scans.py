"""Read-ahead over globbed scans: the files a glob returned, loaded into the cache just ahead of their reader.

Engines scan a dataset by globbing it and then opening its files in the glob's order (DuckDB's
``read_parquet('hybrid://m/t/*.parquet')``, pyarrow datasets). When each file's whole-file load starts only as its
reader opens it, the link idles for the namenode and data node round trips between one file's last byte and the
next file's first. A :class:`ScanReadAhead` remembers the last globs of a filesystem and, when a cold file is opened
*in sequence* (the first of its scan, or right after the one before it), names the next files so their loads can
start now (:meth:`airflow_hybrid.cache.CacheManager.load_ahead`): the link stays busy, and each file's ranged
reads join its load rather than fetching bytes twice.

Only sequential opens read ahead, so a reader that skips files (hive partitions pruned by a filter, a ``LIMIT``)
loads at most one window of files it does not read. Thread-safe: engines open files from several threads.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from airflow_hybrid.stores.base import FileInfo

#: Globs remembered per filesystem (the oldest is forgotten first).
SCANS_KEPT = 4
#: Files of one glob remembered at most (a bigger glob reads ahead over its first files only).
SCAN_FILES_KEPT = 100_000


@dataclass(frozen=True)
class ScanFile:
    """A file a glob listed: its path in the mount, and the member and status it was listed with."""

    path: str
    member: str
    info: FileInfo


@dataclass
class _Scan:
    files: list[ScanFile]
    opened: set[int] = field(default_factory=set)
    #: Files before this index were already named for read-ahead.
    named_up_to: int = 0


class ScanReadAhead:
    """The last :data:`SCANS_KEPT` globs of one filesystem, per mount, and the read-ahead their opens call for."""

    def __init__(self) -> None:
        self._scans: OrderedDict[tuple[str, str], _Scan] = OrderedDict()  # (mount, pattern) -> scan
        self._where: dict[tuple[str, str], tuple[_Scan, int]] = {}  # (mount, path) -> (scan, index)
        self._lock = threading.Lock()

    def record(self, mount: str, pattern: str, files: list[ScanFile]) -> None:
        """Remember the files a glob ``pattern`` of ``mount`` returned, in the order returned."""
        scan = _Scan(files[:SCAN_FILES_KEPT])
        with self._lock:
            self._drop((mount, pattern))
            self._scans[mount, pattern] = scan
            for index, file in enumerate(scan.files):
                self._where[mount, file.path] = (scan, index)
            while len(self._scans) > SCANS_KEPT:
                self._drop(next(iter(self._scans)))

    def opened(self, mount: str, path: str, window: int) -> list[ScanFile]:
        """``path`` is being opened: the files to load now (``path`` itself and up to ``window`` after it, none
        named before), when this open continues its scan in order; else ``[]``. A warm file's open passes
        ``window=0``: it only marks the file opened, so the scan's order is still followed."""
        with self._lock:
            where = self._where.get((mount, path))
            if where is None:
                return []
            scan, index = where
            sequential = index == 0 or index - 1 in scan.opened
            scan.opened.add(index)
            if not sequential or window <= 0:
                return []
            start, end = max(index, scan.named_up_to), min(index + window + 1, len(scan.files))
            if start >= end:
                return []
            scan.named_up_to = end
            return scan.files[start:end]

    def _drop(self, key: tuple[str, str]) -> None:
        scan = self._scans.pop(key, None)
        if scan is None:
            return
        for file in scan.files:
            if self._where.get((key[0], file.path), (None,))[0] is scan:
                del self._where[key[0], file.path]
