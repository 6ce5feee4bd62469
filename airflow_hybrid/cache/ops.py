"""The cache's service layer over a mount, independent of Airflow: parallel prefetch, pin, unpin, free.

The Airflow operators (:mod:`airflow_hybrid.operators.cache`) are thin over these functions::

    summary = prefetch(mount, ["tpcds/store_sales/*.parquet"], tier="SSD", pin=True, concurrency=8)
    summary.to_dict()  # {"files": 12, "loaded": 10, "fresh": 2, "busy": 0, "failed": 0, "loaded_bytes": ...}

Paths and globs are expanded against the mount's merged namespace (:mod:`airflow_hybrid.mount.globs`). A glob
matching nothing, or a path that does not exist, is a :class:`~airflow_hybrid.mount.globs.NoMatchError` raised
before anything is changed, since the expansion is done (and spooled to a temporary file, so memory stays flat)
before the first load.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_hybrid.cache.exceptions import CacheConfigError, CacheQuotaError
from airflow_hybrid.cache.manager import LoadResult
from airflow_hybrid.mount.globs import PathPattern, iter_files, parse_patterns
from airflow_hybrid.ops.pool import bounded_map
from airflow_hybrid.ops.progress import FileProgress, ProgressReader, ProgressTracker
from airflow_hybrid.stores.base import FileInfo
from airflow_hybrid.values import format_bytes

if TYPE_CHECKING:
    from airflow_hybrid.cache.manager import CacheManager
    from airflow_hybrid.mount import HybridMount

log = logging.getLogger(__name__)

__all__ = [
    "FileListing", "FreeSummary", "PinSummary", "PrefetchSummary", "free", "listing", "pin", "prefetch",
    "require_cache", "unpin",
]

#: Failures kept (with their reasons) in a summary; the counts are always complete.
MAX_FAILURES_KEPT = 10
_SPOOL_MEMORY = 8 * 1024 * 1024
DEFERRED = "deferred"


class FileListing:
    """Files expanded from patterns, spooled to a temporary file (memory-bounded), with their totals."""

    def __init__(self) -> None:
        self._spool = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY, mode="w+b")  # noqa: SIM115
        self.files = 0
        self.bytes = 0

    def add(self, info: FileInfo) -> None:
        self._spool.write(json.dumps([info.path, info.size, info.mtime, info.etag]).encode() + b"\n")
        self.files += 1
        self.bytes += int(info.size)

    def __iter__(self) -> Iterator[FileInfo]:
        self._spool.seek(0)
        for line in self._spool:
            path, size, mtime, etag = json.loads(line)
            yield FileInfo(path=path, size=size, mtime=mtime, etag=etag)

    def close(self) -> None:
        self._spool.close()


@contextmanager
def listing(mount: HybridMount, patterns: str | Iterable[str]) -> Iterator[FileListing]:
    """Expand ``patterns`` completely (errors surface here, before any change) into a :class:`FileListing`."""
    spool = FileListing()
    try:
        for info in iter_files(mount, parse_patterns(patterns)):
            spool.add(info)
        yield spool
    finally:
        spool.close()


def require_cache(mount: HybridMount) -> CacheManager:
    cache = mount.cache
    if cache is None:
        raise CacheConfigError(
            f"mount {mount.name!r} has no cache: add a 'cache' section with 'tiers' to the extras of its "
            f"hybrid_mount connection"
        )
    return cache


# -- prefetch -------------------------------------------------------------------------------------------
@dataclass
class PrefetchSummary:
    """Outcome of :func:`prefetch`: counts and bytes per outcome (never the file list)."""

    mount: str
    tier: str
    files: int = 0
    bytes: int = 0
    loaded: int = 0
    loaded_bytes: int = 0
    fresh: int = 0
    fresh_bytes: int = 0
    busy: int = 0
    busy_bytes: int = 0
    failed: int = 0
    failed_bytes: int = 0
    pinned: int = 0
    pinned_bytes: int = 0
    #: Seconds of the whole prefetch (listing and pins included).
    elapsed: float = 0.0
    #: Seconds of the loads: the rate is ``loaded_bytes`` over these, the figure the progress lines print.
    transfer_elapsed: float = 0.0
    #: Members the loaded or fresh files come from (for lineage).
    source_members: set[str] = field(default_factory=set)
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Bytes loaded per second of loading."""
        return self.loaded_bytes / self.transfer_elapsed if self.transfer_elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (XCom) summary."""
        return {
            "mount": self.mount,
            "tier": self.tier,
            "files": self.files,
            "bytes": self.bytes,
            "loaded": self.loaded,
            "loaded_bytes": self.loaded_bytes,
            "fresh": self.fresh,
            "fresh_bytes": self.fresh_bytes,
            "busy": self.busy,
            "busy_bytes": self.busy_bytes,
            "failed": self.failed,
            "failed_bytes": self.failed_bytes,
            "pinned": self.pinned,
            "pinned_bytes": self.pinned_bytes,
            "elapsed_seconds": round(self.elapsed, 3),
            "transfer_seconds": round(self.transfer_elapsed, 3),
            "throughput_bytes_per_second": round(self.throughput, 1),
            "failures": list(self.failures),
        }

    def message(self) -> str:
        return (
            f"Prefetch into {self.mount}:{self.tier}: {self.files} files ({format_bytes(self.bytes)}): "
            f"{self.loaded} loaded ({format_bytes(self.loaded_bytes)}), {self.fresh} already fresh, "
            f"{self.busy} being loaded elsewhere, {self.failed} failed"
            + (f", {self.pinned} newly pinned" if self.pinned else "")
            + f" in {self.elapsed:.1f}s (loading {self.transfer_elapsed:.1f}s, {format_bytes(self.throughput)}/s)"
        )


def prefetch(
    mount: HybridMount,
    paths: str | Iterable[str],
    *,
    tier: str | None = None,
    pin: bool = False,
    ttl: float | None = None,
    concurrency: int = 8,
    progress_interval: float = 30.0,
    logger: logging.Logger | None = None,
) -> PrefetchSummary:
    """Load the files ``paths`` name into ``tier`` (default: the mount's default tier), ``concurrency`` at a
    time, skipping files whose cached copy is still fresh (same source fingerprint, not expired).

    Each file is resolved at its read-priority member just before loading, so the copy is of the current
    version. Progress (files, bytes so far with the files being loaded, rate, ETA) is logged every
    ``progress_interval`` seconds, by a timer while files load; the summary's rate is the last line's.

    :param pin: pin every file first, all or nothing (:class:`CacheQuotaError`: nothing pinned, nothing loaded).
    :param ttl: seconds the new copies live (default: the cache's ``default_ttl``).
    :raises NoMatchError: a path does not exist or a glob matches nothing (nothing was changed).
    :raises UnknownTierError: ``tier`` is not configured (the message lists the tiers).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency} must be at least 1")
    logger = logger or log
    cache = require_cache(mount)
    target = cache.tier(tier).alias
    started = time.monotonic()
    summary = PrefetchSummary(mount.name, target)
    with listing(mount, paths) as files:
        summary.files, summary.bytes = files.files, files.bytes
        logger.info("Prefetch into %s:%s: %d files, %s (concurrency %d)", mount.name, target, files.files,
                    format_bytes(files.bytes), concurrency)
        if pin and files.files:
            pinned = cache.pin(iter(files), tier=target)
            summary.pinned, summary.pinned_bytes = pinned.files, pinned.bytes
        tracker = ProgressTracker(files.files, files.bytes, interval=progress_interval, logger=logger,
                                  label=f"Prefetch into {mount.name}:{target}")
        with tracker:
            _load_all(mount, cache, files, target, ttl, concurrency, summary, tracker, logger)
        summary.transfer_elapsed = tracker.elapsed
        tracker.maybe_log(force=True)
    summary.elapsed = time.monotonic() - started
    logger.info("%s", summary.message())
    return summary


def _load_all(
    mount: HybridMount,
    cache: CacheManager,
    files: Iterable[FileInfo],
    tier: str,
    ttl: float | None,
    concurrency: int,
    summary: PrefetchSummary,
    tracker: ProgressTracker,
    logger: logging.Logger,
) -> None:
    quota = cache.tiers[tier].config.quota
    #: Files refused because the tier was full of loads in flight (ours included): retried one at a time.
    deferred = FileListing()

    def load(listed: FileInfo, may_defer: bool = True) -> tuple[str, int, str | None, FileProgress]:
        """``(status, bytes, member or error, its progress)`` of one file."""
        file = tracker.begin_file()  # counts the bytes as the cache reads them from the source
        try:
            member, info = mount.resolve(listed.path)
            store = mount.members[member]
            result = cache.load(
                listed.path, member, info,
                lambda: ProgressReader(mount.open_member(listed.path, member, info), file),  # type: ignore[arg-type]
                tier=tier, ttl=ttl, source_uri=store.uri(listed.path),
            )
        except CacheQuotaError as err:
            if may_defer and listed.size <= quota:
                return DEFERRED, int(listed.size), str(err), file
            reason = f"{type(err).__name__}: {err}"
            logger.warning("Not loaded: %s:%s: %s", mount.name, listed.path, reason)
            return "failed", int(listed.size), reason, file
        except Exception as err:  # one file's failure does not stop the others
            reason = f"{type(err).__name__}: {err}"
            logger.warning("Not loaded: %s:%s: %s", mount.name, listed.path, reason)
            return "failed", int(listed.size), reason, file
        size = result.bytes if result.status == LoadResult.LOADED else int(info.size)
        return result.status, size, member, file

    def finish(listed: FileInfo, outcome: tuple[str, int, str | None, FileProgress]) -> None:
        status, size, detail, file = outcome
        if status == DEFERRED:
            file.reset()  # retried later, counted then
            deferred.add(listed)
            return
        if status != "failed":
            summary.source_members.add(str(detail))
        if status == LoadResult.LOADED:
            summary.loaded += 1
            summary.loaded_bytes += size
        elif status == "failed":
            summary.failed += 1
            summary.failed_bytes += size
            if len(summary.failures) < MAX_FAILURES_KEPT:
                summary.failures.append({"path": listed.path, "error": str(detail)})
        else:  # fresh or busy: no bytes to move; leave them out of the progress totals
            if status == LoadResult.FRESH:
                summary.fresh, summary.fresh_bytes = summary.fresh + 1, summary.fresh_bytes + size
            else:
                summary.busy, summary.busy_bytes = summary.busy + 1, summary.busy_bytes + size
        if status == LoadResult.LOADED:
            tracker.add(files=1, nbytes=size, file=file, planned=int(listed.size))
        elif status == "failed":
            tracker.add(failed=1, file=file, planned=int(listed.size))
        else:
            tracker.exclude(files=1, nbytes=int(listed.size), file=file)

    try:
        for listed, outcome in bounded_map(load, files, concurrency, name="prefetch"):  # results on this thread
            finish(listed, outcome)
        if deferred.files:
            logger.info("Retrying %d files one at a time: the tier was full of loads in flight", deferred.files)
        for listed in deferred:
            finish(listed, load(listed, may_defer=False))
    finally:
        deferred.close()


# -- pins and removal -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PinSummary:
    """Outcome of :func:`pin`: files matched, and those newly pinned with the bytes they hold."""

    mount: str
    tier: str
    files: int
    bytes: int
    pinned: int
    pinned_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (XCom) summary."""
        return {
            "mount": self.mount, "tier": self.tier, "files": self.files, "bytes": self.bytes,
            "pinned": self.pinned, "pinned_bytes": self.pinned_bytes,
        }


def pin(mount: HybridMount, paths: str | Iterable[str], *, tier: str | None = None) -> PinSummary:
    """Pin every file ``paths`` name, all or nothing: eviction never removes their copies.

    A cached file is pinned in its tier; one not cached yet reserves its size in ``tier`` until loaded.

    :raises CacheQuotaError: the pins would exceed a tier's quota; nothing was pinned.
    :raises NoMatchError: a path does not exist or a glob matches nothing.
    """
    cache = require_cache(mount)
    target = cache.tier(tier).alias
    with listing(mount, paths) as files:
        result = cache.pin(iter(files), tier=target)
        return PinSummary(mount.name, target, files.files, files.bytes, result.files, result.bytes)


def _cache_scope(patterns: list[PathPattern]) -> Iterator[tuple[str, Callable[[str], bool] | None]]:
    """``(prefix, match)`` per pattern, to select catalog rows: a plain path is a prefix, a glob a filter."""
    for pattern in patterns:
        yield pattern.static_prefix, (pattern.matches if pattern.is_glob else None)


def unpin(mount: HybridMount, paths: str | Iterable[str]) -> int:
    """Remove the pins on files, directories or globs, matched against the catalog (so pins of files that
    left the source can be removed too). Returns how many pins were removed."""
    cache = require_cache(mount)
    return sum(cache.unpin([prefix], match=match) for prefix, match in _cache_scope(parse_patterns(paths)))


@dataclass(frozen=True)
class FreeSummary:
    """Outcome of :func:`free`."""

    mount: str
    files: int
    bytes: int
    skipped_pinned: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (XCom) summary."""
        return {"mount": self.mount, "files": self.files, "bytes": self.bytes, "skipped_pinned": self.skipped_pinned}


def free(mount: HybridMount, paths: str | Iterable[str], *, force: bool = False) -> FreeSummary:
    """Drop the cached copies of files, directories or globs (matched against the catalog); never the source.

    Pinned copies are kept unless ``force`` (which unpins them too).
    """
    cache = require_cache(mount)
    files = size = skipped = 0
    for prefix, match in _cache_scope(parse_patterns(paths)):
        result = cache.free([prefix], force=force, match=match)
        files, size, skipped = files + result.files, size + result.bytes, skipped + result.skipped_pinned
    return FreeSummary(mount.name, files, size, skipped)
