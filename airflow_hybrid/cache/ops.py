"""Cache operations over a mount, independent of Airflow: path/glob expansion, parallel prefetch, pin, unpin, free.

The Airflow operators (:mod:`airflow_hybrid.operators.cache`) are thin over these functions::

    summary = prefetch(mount, ["tpcds/store_sales/*.parquet"], tier="SSD", pin=True, concurrency=8)
    summary.as_dict()  # {"files": 12, "loaded": 10, "fresh": 2, "busy": 0, "failed": 0, "loaded_bytes": ...}

Paths are logical (relative to the mount; a leading ``/`` is the mount root, ``..`` is refused). A path naming
a directory means every file below it. A glob is matched segment by segment against the merged namespace:
``*`` and ``?`` never cross a ``/``, ``[...]`` is a character class, ``**`` spans any number of directories,
and a directory a glob matches means every file below it. A glob matching nothing, or a path that does not
exist, is a :class:`NoMatchError` naming the pattern and the mount -- raised before anything is changed,
since the expansion is done (and spooled to a temporary file, so memory stays flat) before the first load.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_hybrid.cache.exceptions import CacheConfigError, CacheError, CacheQuotaError
from airflow_hybrid.cache.manager import LoadResult
from airflow_hybrid.errors import HybridConfigError
from airflow_hybrid.stores.base import FileInfo, normalize_path
from airflow_hybrid.transfer import ProgressTracker, format_bytes

if TYPE_CHECKING:
    from airflow_hybrid.cache.manager import CacheManager
    from airflow_hybrid.mount import HybridMount

log = logging.getLogger(__name__)

GLOB_CHARS = frozenset("*?[")
#: Failures kept (with their reasons) in a summary; the counts are always complete.
MAX_FAILURES_KEPT = 10
_SPOOL_MEMORY = 8 * 1024 * 1024
DEFERRED = "deferred"


class NoMatchError(FileNotFoundError):
    """A path or glob names no file in the mount."""


# -- patterns -------------------------------------------------------------------------------------------
def _class_end(pattern: str, i: int) -> int | None:
    """Index of the ``]`` closing the character class opened at ``pattern[i]``, or ``None`` (a literal ``[``)."""
    j, n = i + 1, len(pattern)
    if j < n and pattern[j] in "!^":
        j += 1
    if j < n and pattern[j] == "]":
        j += 1
    while j < n and pattern[j] != "]":
        j += 1
    return j if j < n else None


def _class_regex(body: str) -> str:
    body = body.replace("\\", "\\\\")
    if body[:1] in ("!", "^"):
        body = "^" + body[1:]
    return f"[{body}]"


def check_glob(pattern: str) -> None:
    """:raises HybridConfigError: a character class of ``pattern`` is invalid (e.g. the range ``[2-0]``);
    the message names the pattern and the class's column (1-based) in it."""
    i = 0
    while i < len(pattern):
        if pattern.startswith("[", i) and (end := _class_end(pattern, i)) is not None:
            try:
                re.compile(_class_regex(pattern[i + 1 : end]))
            except re.error as err:
                raise HybridConfigError(
                    f"glob {pattern!r}: invalid character class {pattern[i : end + 1]!r} at column {i + 1} "
                    f"({err.msg})"
                ) from None
            i = end
        i += 1


def _translate(pattern: str) -> str:
    """Regex source for a glob: ``*``/``?`` stay within a segment, ``**`` spans directories, ``[...]``."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if i < n and pattern[i] == "/":
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = _class_end(pattern, i)
            if j is None:  # no closing bracket: a literal "["
                out.append(re.escape(c))
            else:
                out.append(_class_regex(pattern[i + 1 : j]))
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class PathPattern:
    """One path or glob, normalized to a logical path of the mount."""

    text: str
    path: str

    @classmethod
    def parse(cls, text: str) -> PathPattern:
        """:raises PathEscapeError: the pattern leaves the mount (``..``).
        :raises HybridConfigError: an invalid character class (see :func:`check_glob`)."""
        if not isinstance(text, str):
            raise TypeError(f"expected a path or glob string, got {text!r}")
        check_glob(text)
        return cls(text, normalize_path(text))

    @property
    def is_glob(self) -> bool:
        return any(c in GLOB_CHARS for c in self.path)

    @property
    def segments(self) -> list[str]:
        return self.path.split("/") if self.path else []

    @property
    def static_prefix(self) -> str:
        """The directory above the first segment with a wildcard (the path itself for a plain path)."""
        if not self.is_glob:
            return self.path
        static = []
        for segment in self.segments:
            if any(c in GLOB_CHARS for c in segment):
                break
            static.append(segment)
        return "/".join(static)

    @functools.cached_property
    def _regex(self) -> re.Pattern[str]:
        return re.compile(_translate(self.path))

    def matches(self, path: str) -> bool:
        """Whether logical ``path`` is matched: by the glob, or lies at or below the plain path."""
        path = normalize_path(path)
        if not self.is_glob:
            return not self.path or path == self.path or path.startswith(self.path + "/")
        if self._regex.fullmatch(path):
            return True
        # a directory matched by the glob stands for every file below it
        parts = path.split("/")
        return any(self._regex.fullmatch("/".join(parts[:i])) for i in range(1, len(parts)))


def _as_list(paths: Any) -> list:
    items = [paths] if isinstance(paths, (str, PathPattern)) else list(paths)
    if not items:
        raise ValueError("no paths given: expected a path or glob under the mount, or a list of them")
    return items


def parse_patterns(paths: str | Iterable[str]) -> list[PathPattern]:
    """Patterns from one path/glob or a list of them; an empty list is an error."""
    return [PathPattern.parse(p) for p in _as_list(paths)]


def _expand_one(mount: HybridMount, pattern: PathPattern) -> Iterator[FileInfo]:
    if not pattern.is_glob:
        if pattern.path:
            try:
                _, info = mount.resolve(pattern.path)
            except FileNotFoundError:
                raise NoMatchError(
                    f"{pattern.text!r}: no such file or directory in mount {mount.name!r} "
                    f"(members {', '.join(mount.read_order)})"
                ) from None
            if not info.is_dir:
                yield info
                return
        yield from mount.walk_files(pattern.path)
        return
    segments = pattern.segments
    fixed = len(pattern.static_prefix.split("/")) if pattern.static_prefix else 0
    if "**" in pattern.path:
        try:
            for info in mount.walk_files(pattern.static_prefix):
                if pattern.matches(info.path):
                    yield info
        except FileNotFoundError:
            return
        return
    frontier = [pattern.static_prefix]
    for depth in range(fixed, len(segments)):
        segment = re.compile(_translate(segments[depth]))
        last = depth == len(segments) - 1
        next_frontier: list[str] = []
        for directory in frontier:
            try:
                for entry in mount.ls(directory):
                    if not segment.fullmatch(entry.name):
                        continue
                    if not last:
                        if entry.is_dir:
                            next_frontier.append(entry.path)
                    elif entry.is_dir:
                        yield from mount.walk_files(entry.path)
                    else:
                        yield entry
            except (FileNotFoundError, NotADirectoryError):
                continue
        frontier = next_frontier


def iter_files(mount: HybridMount, patterns: str | Iterable[str] | Sequence[PathPattern]) -> Iterator[FileInfo]:
    """Every file the patterns name in the merged namespace, each once (listing order).

    A pattern matching nothing raises :class:`NoMatchError` once the earlier patterns' files were yielded;
    an existing empty directory is not an error. With several patterns, the paths seen are remembered to
    skip duplicates (memory grows with the number of files; a single pattern never repeats a file).
    """
    parsed = [p if isinstance(p, PathPattern) else PathPattern.parse(p) for p in _as_list(patterns)]
    seen: set[str] | None = set() if len(parsed) > 1 else None
    for pattern in parsed:
        matched = False
        for info in _expand_one(mount, pattern):
            matched = True
            if seen is not None:
                if info.path in seen:
                    continue
                seen.add(info.path)
            yield info
        if not matched and pattern.is_glob:
            where = f" below {pattern.static_prefix!r}" if pattern.static_prefix else ""
            raise NoMatchError(f"glob {pattern.text!r} matches no file in mount {mount.name!r}{where}")


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
    elapsed: float = 0.0
    #: Members the loaded or fresh files come from (for lineage).
    source_members: set[str] = field(default_factory=set)
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Bytes loaded per second."""
        return self.loaded_bytes / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
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
            "throughput_bytes_per_second": round(self.throughput, 1),
            "failures": list(self.failures),
        }

    def message(self) -> str:
        return (
            f"Prefetch into {self.mount}:{self.tier}: {self.files} files ({format_bytes(self.bytes)}): "
            f"{self.loaded} loaded ({format_bytes(self.loaded_bytes)}), {self.fresh} already fresh, "
            f"{self.busy} being loaded elsewhere, {self.failed} failed"
            + (f", {self.pinned} newly pinned" if self.pinned else "")
            + f" in {self.elapsed:.1f}s ({format_bytes(self.throughput)}/s)"
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
    version. Progress (files, bytes, rate, ETA) is logged every ``progress_interval`` seconds.

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
        _load_all(mount, cache, files, target, ttl, concurrency, summary, tracker, logger)
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
    lock = threading.Lock()
    window = threading.BoundedSemaphore(2 * concurrency)
    quota = cache.tiers[tier].config.quota
    #: Files refused because the tier was full of loads in flight (ours included): retried one at a time.
    deferred = FileListing()

    def load(listed: FileInfo, may_defer: bool = True) -> tuple[str, int, str | None]:
        """``(status, bytes, member or error)`` of one file."""
        try:
            member, info = mount.resolve(listed.path)
            store = mount.members[member]
            result = cache.load(
                listed.path, member, info, lambda: mount.open_member(listed.path, member, info), tier=tier,
                ttl=ttl, source_uri=store.uri(listed.path),
            )
        except CacheQuotaError as err:
            if may_defer and listed.size <= quota:
                return DEFERRED, int(listed.size), str(err)
            reason = f"{type(err).__name__}: {err}"
            logger.warning("Not loaded: %s:%s: %s", mount.name, listed.path, reason)
            return "failed", int(listed.size), reason
        except Exception as err:  # one file's failure does not stop the others
            reason = f"{type(err).__name__}: {err}"
            logger.warning("Not loaded: %s:%s: %s", mount.name, listed.path, reason)
            return "failed", int(listed.size), reason
        size = result.bytes if result.status == LoadResult.LOADED else int(info.size)
        return result.status, size, member

    def finish(listed: FileInfo, outcome: tuple[str, int, str | None]) -> None:
        status, size, detail = outcome
        with lock:
            if status == DEFERRED:
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
                tracker.total_files -= 1  # type: ignore[operator]
                tracker.total_bytes = max(tracker.total_bytes - int(listed.size), 0)  # type: ignore[operator]
        if status == LoadResult.LOADED:
            tracker.add(files=1, nbytes=size)
        elif status == "failed":
            tracker.add(failed=1)
        else:
            tracker.maybe_log()

    def task(listed: FileInfo) -> None:
        try:
            finish(listed, load(listed))
        finally:
            window.release()

    try:
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="prefetch") as pool:
            try:
                for listed in files:
                    window.acquire()
                    pool.submit(task, listed)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if deferred.files:
            logger.info("Retrying %d files one at a time: the tier was full of loads in flight", deferred.files)
        for listed in deferred:
            finish(listed, load(listed, may_defer=False))
    finally:
        deferred.close()
    tracker.maybe_log(force=True)


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

    def as_dict(self) -> dict[str, Any]:
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

    def as_dict(self) -> dict[str, Any]:
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


def close_mount(mount: HybridMount) -> None:
    """Close the mount's cache (its background loads and tier stores) and member stores; errors are logged."""
    try:
        cache = mount.cache
    except CacheError:
        cache = None  # never built (an invalid configuration, reported where it was first used)
    try:
        if cache is not None:
            cache.close()
    except Exception:
        log.warning("closing the cache of %r failed", mount, exc_info=True)
    try:
        mount.close()
    except Exception:
        log.warning("closing %r failed", mount, exc_info=True)
