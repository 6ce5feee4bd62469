"""CacheManager: one mount's tiered cache -- read-through, prefetch, pin, free, eviction, TTL and report.

Typical read path (what ``HybridMount.open_read`` does through :meth:`CacheManager.open`)::

    entry = cache.lookup(path, lambda: mount.info(path))   # source stat only when a sync is due
    if entry:
        return cache.open_cached(entry)                      # served from the tier
    member, info = mount.resolve(path)
    return cache.fill_while_reading(path, member, info, mount.members[member].open_read(path))

Freshness follows Alluxio's metadata sync: a copy is served only while the source's fingerprint (size, mtime,
ETag/checksum) matches the one recorded at load, checked at most every ``metadata_sync_interval`` seconds
(0 = on every open, -1 = never). A changed or vanished source invalidates the copy; the next read reloads it.

Engines outside this process (Spark or Trino on EMR) read copies in a *shared* tier (``s3://``, ``s3a://``,
``hdfs://``) in place: :meth:`CacheManager.warm_uri` hands out a file's or a whole directory's copy URI only
when it is fresh and complete, and :meth:`CacheManager.lease` keeps those copies from being deleted while
the engine reads them::

    with cache.lease("sales", 3600, holder="emr-step-42"):
        uri = cache.warm_uri("sales", listing)   # s3://bucket/cache/<mount>/sales, or None: read the source
"""

from __future__ import annotations

import logging
import os
import posixpath
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, Protocol

from airflow_hybrid.cache.catalog import Catalog, Claim, PinRequest, TrashItem
from airflow_hybrid.cache.config import CacheConfig
from airflow_hybrid.cache.entry import CachedEntry, SourceFingerprint
from airflow_hybrid.cache.exceptions import CacheConfigError, CacheError, CacheQuotaError
from airflow_hybrid.cache.lease import Lease
from airflow_hybrid.cache.report import CacheReport, build_report
from airflow_hybrid.cache.schema import READY
from airflow_hybrid.cache.tee import CountingReader, FillingReader
from airflow_hybrid.cache.tier import Tier, mirrored_dir
from airflow_hybrid.stores.base import FileInfo, Store, normalize_path
from airflow_hybrid.stores.factory import store_from_uri

log = logging.getLogger(__name__)

#: What a ready copy needs before it is served (:meth:`CacheManager._standing`).
_SERVE, _CHECK, _DROP = "serve", "check", "drop"

#: A source's current status, or a function fetching it (called only when a freshness check is due).
SourceInfo = FileInfo | Callable[[], FileInfo] | None


class CacheSource(Protocol):
    """What the read-through needs from a mount (:class:`~airflow_hybrid.mount.HybridMount` provides it)."""

    name: str
    members: Mapping[str, Store]

    def resolve(self, path: str) -> tuple[str, FileInfo]: ...

    def open_member(
        self, path: str, member: str, info: FileInfo, offset: int = 0, length: int | None = None
    ) -> BinaryIO:
        """A read of the version ``info`` seen at ``member`` that follows the file if a migration moves it."""
        ...


@dataclass(frozen=True)
class LoadResult:
    """Outcome of :meth:`CacheManager.load`: ``loaded``, ``fresh`` (already cached) or ``busy``
    (another worker is loading it right now). ``bytes`` counts bytes copied by this call."""

    path: str
    status: str
    bytes: int = 0
    entry: CachedEntry | None = None

    LOADED = "loaded"
    FRESH = "fresh"
    BUSY = "busy"


@dataclass(frozen=True)
class DropResult:
    """Copies removed by :meth:`~CacheManager.free`, :meth:`~CacheManager.evict` or :meth:`~CacheManager.expire`."""

    files: int = 0
    bytes: int = 0
    skipped_pinned: int = 0


@dataclass(frozen=True)
class PinResult:
    """Files newly pinned by :meth:`CacheManager.pin` and the bytes they hold against tier quotas."""

    files: int
    bytes: int


class CacheManager:
    """The cache of one mount.

    :param mount_name: the mount (its ``hybrid_mount`` connection id); catalog rows are keyed by it.
    :param config: the parsed ``cache`` section (:meth:`CacheConfig.from_options`).
    :param store_factory: builds a tier's store from ``(uri, conn_id, options)``.
    :param catalog: the catalog to use; by default the one at ``config.catalog_url`` (shared per process).
    :param clock: time source (seconds since the epoch); tests inject one.
    :param source: the mount, for :meth:`open`, :meth:`open_version`, :meth:`info` and background loads of ranged misses.
    :param recover: reclaim abandoned loads and finish interrupted deletions on start.
    """

    def __init__(
        self,
        mount_name: str,
        config: CacheConfig,
        store_factory: Callable[..., Store] = store_from_uri,
        *,
        catalog: Catalog | None = None,
        clock: Callable[[], float] = time.time,
        source: CacheSource | None = None,
        recover: bool = True,
        background_loads: int = 2,
    ) -> None:
        if not config.enabled:
            raise CacheConfigError(f"cache.tiers: mount {mount_name!r} configures no cache tiers")
        self.mount_name = mount_name
        self.config = config
        self.clock = clock
        self.source = source
        self.catalog = catalog or Catalog.shared(config.resolved_catalog_url)
        self.tiers: dict[str, Tier] = {t.alias: Tier(t, store_factory) for t in config.tiers}
        self._background_loads = background_loads
        self._executor: ThreadPoolExecutor | None = None
        self._inflight: dict[str, Future] = {}
        self._inflight_lock = threading.Lock()
        if recover:  # one write transaction, then the copies in the trash deleted
            self._purge(self.catalog.start_mount(mount_name, config.tiers, clock()))
        else:
            self.catalog.sync_tiers(mount_name, config.tiers, clock())

    @classmethod
    def for_mount(cls, mount: CacheSource, **kwargs: Any) -> CacheManager:
        """The cache configured in ``mount.options`` (its connection extras), reading through ``mount``."""
        config = CacheConfig.from_options(mount.options, mount.name)  # type: ignore[attr-defined]
        return cls(mount.name, config, source=mount, **kwargs)

    def __repr__(self) -> str:
        return f"CacheManager({self.mount_name!r}, tiers={list(self.tiers)}, catalog={self.catalog.url!r})"

    def tier(self, alias: str | None = None) -> Tier:
        """The tier ``alias`` or the default one; :class:`UnknownTierError` lists the configured tiers."""
        return self.tiers[self.config.tier(alias).alias]

    # -- lookup and reads -----------------------------------------------------------------------------
    def lookup(
        self, path: str, source_info: SourceInfo = None, *, force_sync: bool = False
    ) -> CachedEntry | None:
        """The ready, fresh copy of ``path``, or ``None``.

        When a freshness check is due (see module doc), ``source_info`` gives the source's current status
        (a :class:`FileInfo`, or a function returning it, called only then); a changed or missing source drops
        the copy. A due check without ``source_info`` cannot be made, so the copy is not served. Expired
        (TTL) copies are dropped too.

        :param force_sync: check the source now whatever the interval (the caller has seen a status of the
            source that differs from the copy's fingerprint, e.g. in a listing).
        """
        path = normalize_path(path)
        entry = self.catalog.get(self.mount_name, path)
        if entry is None or entry.state != READY:
            return None
        now = self.clock()
        standing = self._standing(entry, now)
        if standing == _DROP:
            self._drop([entry])
            return None
        if standing == _SERVE and not force_sync:
            return entry
        if source_info is None:
            return None
        try:
            info = source_info() if callable(source_info) else source_info
        except FileNotFoundError:
            log.info("%s:%s vanished from its source; dropping the cached copy", self.mount_name, path)
            self._drop([entry])
            return None
        if not entry.source.matches(info):
            log.info("%s:%s changed at its source; dropping the cached copy", self.mount_name, path)
            self._drop([entry])
            return None
        self.catalog.mark_synced(entry.id, now)
        return entry

    def _standing(self, entry: CachedEntry, now: float) -> str:
        """What a ready copy needs before it is served: :data:`_DROP` (in a tier no longer configured, or
        expired), :data:`_CHECK` (a freshness check against the source is due) or :data:`_SERVE`."""
        if entry.tier not in self.tiers or entry.is_expired(now):
            return _DROP
        return _CHECK if self._sync_due(entry, now) else _SERVE

    def _sync_due(self, entry: CachedEntry, now: float) -> bool:
        interval = self.config.metadata_sync_interval
        if interval < 0:
            return False
        if interval == 0 or entry.last_synced_at is None:
            return True
        return now - entry.last_synced_at >= interval

    def open_cached(self, entry: CachedEntry, offset: int = 0, length: int | None = None) -> BinaryIO:
        """Stream the cached copy (records the access and a hit).

        Raises :class:`FileNotFoundError` if the copy was removed meanwhile (evicted by another worker).
        """
        stream = self.tiers[entry.tier].open(entry.location, offset=offset, length=length)
        self.catalog.record_hit(entry, self.clock())  # written in a batch, off the read path
        return stream

    def reopen_cached(self, entry: CachedEntry, offset: int = 0, length: int | None = None) -> BinaryIO:
        """Another range of a copy already opened by :meth:`open_cached` (no second hit is recorded)."""
        return self.tiers[entry.tier].open(entry.location, offset=offset, length=length)

    def fill_while_reading(
        self,
        path: str,
        source_member: str,
        source_info: FileInfo,
        source_stream: BinaryIO,
        tier: str | None = None,
        *,
        source_uri: str | None = None,
    ) -> BinaryIO:
        """Return a stream over ``source_stream`` that also fills the cache (counts as a miss of the tier).

        When another worker is loading the file, or the tier has no room, ``source_stream`` itself is returned
        and nothing is cached. The entry becomes ready only when the reader reaches the end and the copy's
        length matches ``source_info.size``; closing early abandons the copy.
        """
        path = normalize_path(path)
        target = self.tier(tier)
        self.catalog.record_miss(self.mount_name, target.alias)
        claim = self._claim(path, source_member, source_info, target, self.config.default_ttl, source_uri)
        if claim.status != Claim.CLAIMED:
            log.debug(
                "not caching %s:%s while reading (%s %s)", self.mount_name, path, claim.status, claim.reason
            )
            return source_stream
        entry = claim.entry
        assert entry is not None and entry.loader_id is not None

        def done(ok: bool, seen: int, written: FileInfo | None, reason: str) -> None:
            if (
                ok
                and written is not None
                and self.catalog.complete(entry.id, entry.loader_id, written.size, self.clock())
            ):
                log.debug("cached %s:%s in %s (%d bytes)", self.mount_name, path, target.alias, written.size)
                return
            log.info("cache fill of %s:%s abandoned: %s", self.mount_name, path, reason or "claim lost")
            self._abandon(entry)

        return FillingReader(
            source_stream,
            lambda pipe: target.write(entry.location, pipe, size_hint=source_info.size),
            source_info.size,
            done,
            self._heartbeat(entry),
            name=f"{self.mount_name}:{path}",
        )

    def info(self, path: str) -> FileInfo:
        """Status of ``path`` as the source last had it when a fresh copy is cached, else from the source.

        Lets a reader size a file (e.g. fsspec's ``AbstractBufferedFile``) without contacting the source on a
        warm read; follows the same ``metadata_sync_interval`` rule as :meth:`lookup`.
        """
        source = self._require_source()
        path = normalize_path(path)
        entry = self.lookup(path, lambda: source.resolve(path)[1])
        if entry is None:
            return source.resolve(path)[1]
        fp = entry.source
        return FileInfo(path=path, size=fp.size, mtime=fp.mtime, etag=fp.etag)

    def open(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """Read-through over :attr:`source`: the fresh cached copy, else the source (filling the cache).

        The source is contacted only on a miss or when a freshness check is due.
        """
        source = self._require_source()
        path = normalize_path(path)
        resolved: list[tuple[str, FileInfo]] = []

        def current() -> FileInfo:
            resolved.append(source.resolve(path))
            return resolved[-1][1]

        def where() -> tuple[str, FileInfo]:
            member, info = resolved[-1] if resolved else source.resolve(path)
            if info.is_dir:
                raise IsADirectoryError(f"hybrid://{self.mount_name}/{path} is a directory")
            return member, info

        return self._serve(path, self.lookup(path, current), where, offset, length)

    def open_version(
        self, path: str, member: str, info: FileInfo, offset: int = 0, length: int | None = None
    ) -> BinaryIO:
        """A range of the version ``info`` of ``path``, seen at ``member`` when a reader opened it: from the
        cached copy when that holds this version, else read through from ``member``.

        Unlike :meth:`open`, ``info`` may be older than the source, so a copy of another version is left
        alone (neither served nor dropped: freshness checks with a current status decide about it).
        """
        path = normalize_path(path)
        entry = self.catalog.get(self.mount_name, path)
        if entry is not None and entry.state == READY and not entry.source.matches(info):
            return self._open_source(path, member, info, offset, length)
        usable = (
            entry is not None
            and entry.state == READY
            and entry.tier in self.tiers
            and not entry.is_expired(self.clock())
        )
        return self._serve(path, entry if usable else None, lambda: (member, info), offset, length)

    def _serve(
        self,
        path: str,
        entry: CachedEntry | None,
        where: Callable[[], tuple[str, FileInfo]],
        offset: int,
        length: int | None,
    ) -> BinaryIO:
        """The one read path: the copy ``entry`` when given and still there, else a miss of the version
        ``where()`` returns (``(member, info)``), read from the source and filling the cache."""
        if entry is not None:
            try:
                return self.open_cached(entry, offset, length)
            except FileNotFoundError:
                pass  # evicted between lookup and open: read from the source
        member, info = where()
        return self._open_miss(path, member, info, offset, length)

    def _open_source(
        self, path: str, member: str, info: FileInfo, offset: int = 0, length: int | None = None
    ) -> BinaryIO:
        """Read ``path`` at ``member`` (the version ``info``) through the mount's ``open_member``, so the read
        follows the file if a migration removes it from ``member`` meanwhile."""
        return self._require_source().open_member(path, member, info, offset=offset, length=length)

    def _open_miss(self, path: str, member: str, info: FileInfo, offset: int, length: int | None) -> BinaryIO:
        store = self._require_source().members[member]
        if info.size <= self.config.join_running_load_up_to:
            joined = self._join_running_load(path, info, offset, length)
            if joined is not None:
                return joined
        whole = offset == 0 and (length is None or length >= info.size)
        if self.config.cache_on_read and whole:
            return self.fill_while_reading(
                path, member, info, self._open_source(path, member, info), source_uri=store.uri(path)
            )
        self.catalog.record_miss(self.mount_name, self.tier().alias)
        if self.config.cache_on_read:
            # A ranged read (e.g. a Parquet footer) cannot fill the whole copy; load it alongside instead.
            self._load_in_background(path, member, info, store)
        return self._open_source(path, member, info, offset, length)

    def _join_running_load(self, path: str, info: FileInfo, offset: int, length: int | None) -> BinaryIO | None:
        """Wait for this process's load of ``path`` (running, or queued behind others: its bytes are coming over the
        link anyway, so reading the range meanwhile would fetch it twice) and read the range from its copy
        (``None`` when no load is under way, or it did not produce a copy of version ``info``)."""
        with self._inflight_lock:
            running = self._inflight.get(path)
        if running is None:
            return None
        try:
            running.exception()  # waits; a failed load leaves the reader to the source
        except CancelledError:  # the cache was closed meanwhile
            return None
        entry = self.catalog.get(self.mount_name, path)
        if entry is None or entry.state != READY or not entry.source.matches(info):
            return None
        try:
            return self.open_cached(entry, offset, length)
        except FileNotFoundError:
            return None

    def _require_source(self) -> CacheSource:
        if self.source is None:
            raise CacheError(f"cache of mount {self.mount_name!r} has no source mount to read through")
        return self.source

    # -- loading (prefetch) ---------------------------------------------------------------------------
    def load(
        self,
        path: str,
        source_member: str,
        source_info: FileInfo,
        open_source: Callable[[], BinaryIO],
        tier: str | None = None,
        pin: bool = False,
        ttl: float | None = None,
        *,
        source_uri: str | None = None,
    ) -> LoadResult:
        """Copy ``path`` into ``tier`` unless a fresh copy exists (``fresh``) or another worker is loading it
        (``busy``). ``open_source()`` is called only once this call owns the load.

        :param pin: pin the file first (:class:`CacheQuotaError` when pins would exceed the quota; nothing changes).
        :param ttl: seconds the copy lives (default: ``default_ttl``).
        :raises CacheQuotaError: the file cannot fit the tier even after eviction; nothing changed.
        """
        path = normalize_path(path)
        target = self.tier(tier)
        newly_pinned = pin and self.pin([_with_path(source_info, path)], tier=target.alias).files > 0
        try:
            ttl = self.config.default_ttl if ttl is None else ttl
            for _ in range(3):
                claim = self._claim(path, source_member, source_info, target, ttl, source_uri)
                if claim.status == Claim.CLAIMED:
                    return self._copy(claim.entry, open_source, source_info)
                if claim.status == Claim.BUSY:
                    return LoadResult(path, LoadResult.BUSY, entry=claim.entry)
                if claim.status == Claim.NO_SPACE:
                    raise CacheQuotaError(f"cannot cache {self.mount_name}:{path}: {claim.reason}")
                entry = claim.entry
                if entry.source.matches(source_info) and not entry.is_expired(self.clock()):
                    return LoadResult(path, LoadResult.FRESH, entry=entry)
                self._drop([entry])  # stale copy: replace it
            raise CacheError(f"could not load {self.mount_name}:{path}: its cache entry keeps changing")
        except CacheQuotaError:
            if newly_pinned:
                self.catalog.unpin_paths(self.mount_name, [path])
            raise

    def _copy(self, entry: CachedEntry, open_source: Callable[[], BinaryIO], info: FileInfo) -> LoadResult:
        tier = self.tiers[entry.tier]
        try:
            with closing(open_source()) as source:
                counter = CountingReader(source, self._heartbeat(entry))
                written = tier.write(entry.location, counter, size_hint=info.size)  # type: ignore[arg-type]
            if not counter.count == written.size == info.size:
                raise CacheError(
                    f"copy of {self.mount_name}:{entry.path} is incomplete: read {counter.count} bytes, "
                    f"wrote {written.size}, source announced {info.size}"
                )
        except BaseException:
            self._abandon(entry)
            raise
        done = self.catalog.complete(entry.id, entry.loader_id, written.size, self.clock())
        if done is None:
            tier.delete_copy(entry.location)
            raise CacheError(
                f"load of {self.mount_name}:{entry.path} lost its claim (invalidated or reclaimed)"
            )
        return LoadResult(entry.path, LoadResult.LOADED, written.size, done)

    def _load_in_background(self, path: str, member: str, info: FileInfo, store: Store) -> None:
        with self._inflight_lock:
            if path in self._inflight:
                return
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._background_loads, thread_name_prefix="cache-load")
            future = self._executor.submit(
                self.load, path, member, info, lambda: self._open_source(path, member, info),
                source_uri=store.uri(path),
            )
            self._inflight[path] = future

        def finished(f: Future) -> None:
            with self._inflight_lock:
                self._inflight.pop(path, None)
            if f.exception() is not None:
                log.info("background load of %s:%s failed: %s", self.mount_name, path, f.exception())

        future.add_done_callback(finished)

    def load_ahead(self, files: Iterable[tuple[str, str, FileInfo]]) -> int:
        """Start background loads of ``files`` (``(path, member, info)``: the next files a scan will read, as
        :class:`~airflow_hybrid.mount.scans.ScanReadAhead` names them), so the link stays busy and their readers
        join the loads. Only files a ranged read would wait for (``join_running_load_up_to``) are loaded; those
        loading already, or with a fresh copy of version ``info``, are skipped. Returns the loads started."""
        if not self.config.cache_on_read:
            return 0
        source, started, now = self._require_source(), 0, self.clock()
        for path, member, info in files:
            if info.is_dir or info.size > self.config.join_running_load_up_to:
                continue
            path = normalize_path(path)
            with self._inflight_lock:
                if path in self._inflight:
                    continue
            entry = self.catalog.get(self.mount_name, path)
            if entry is not None and entry.state == READY and entry.source.matches(info) and not entry.is_expired(now):
                continue
            self._load_in_background(path, member, info, source.members[member])
            started += 1
        return started

    def wait_for_background_loads(self) -> None:
        """Block until the loads started by ranged misses have finished."""
        while True:
            with self._inflight_lock:
                futures = list(self._inflight.values())
            if not futures:
                return
            for future in futures:
                future.exception()

    # -- copies engines read in place (shared tiers) ----------------------------------------------------
    def warm_uri(self, path: str, listing: Iterable[FileInfo] | None = None) -> str | None:
        """The URI of a copy of ``path`` that an engine outside this process (Spark, Trino) can read in place
        of the source, or ``None`` when there is none fresh. A stale copy is never handed out.

        * A file: its ready copy in a shared tier (:attr:`Tier.shared`), fresh by the rule of :meth:`lookup`
          (the source is asked through :attr:`source` when a check is due; a changed or vanished source drops
          the copy).
        * A directory: ``listing`` is the caller's current view of every file under it (logical paths, with
          current size, mtime and ETag, e.g. the resolver's merged listing); without it the source is walked
          (:attr:`source` ``.walk_files``), or ``None`` is returned when it offers no listing. The listing is
          a fresh status of the source: copies whose fingerprint differs from it, or of files it no longer
          holds, are dropped; the others are marked synced. The directory is warm when every listed file
          has a ready, fresh, unexpired copy in the same shared tier, all in the mirrored layout, and that
          tier's listing of the directory holds exactly those copies (an extra object, say a copy waiting in
          the trash for a lease to end, would add rows to an engine's read). Then the URI of the tier's
          directory is returned.

        To keep the copies from being deleted while an engine reads them, take a :meth:`lease` on ``path``
        *before* calling this, and release it once the engine is done.
        """
        path = normalize_path(path)
        if listing is None:
            if (entry := self.catalog.get(self.mount_name, path)) is not None and entry.state == READY:
                return self._warm_file(path, None)
            listing = self._walk_source(path)
            if listing is None:
                return None
        files = [_with_path(f, normalize_path(f.path)) for f in listing if not f.is_dir]
        if len(files) == 1 and files[0].path == path:
            return self._warm_file(path, files[0])
        return self._warm_dir(path, files)

    def warm_uris(self, listing: Iterable[FileInfo]) -> dict[str, str]:
        """Logical path -> copy URI of the listed files that have a fresh copy in a shared tier (any layout).

        ``listing`` is a fresh status of the source, as for :meth:`warm_uri`: copies that differ from it are
        dropped, the others marked synced; copies of files it does not list are left alone. One paged catalog
        scan below the listed files' common directory.
        """
        wanted = {f.path: f for f in (_with_path(i, normalize_path(i.path)) for i in listing) if not f.is_dir}
        if not wanted:
            return {}
        if len(wanted) == 1:
            common = next(iter(wanted))
        else:
            common = posixpath.commonpath([posixpath.dirname(p) for p in wanted])
        fresh = self._fresh_copies(common, wanted, complete=False)
        return {
            path: self.tiers[entry.tier].copy_uri(entry.location)
            for path, entry in fresh.items()
            if self.tiers[entry.tier].shared
        }

    def fresh_listing(
        self, directory: str, listing: Iterable[FileInfo], *, match: Callable[[str], bool] | None = None
    ) -> tuple[dict[str, CachedEntry], list[str]]:
        """The copies this process may read in place of the listed files of ``directory``, checked against
        one listing of it (a batched freshness check: one catalog scan, no source request).

        ``listing`` is a fresh status of the files directly in ``directory`` (logical paths), as for
        :meth:`warm_uris`: copies whose fingerprint differs from it are dropped (never served), the fresh
        ones are marked synced. Returns ``(fresh, unlisted)``: logical path -> ready, fresh, unexpired copy in
        any tier (local or shared), and the logical paths of ready copies of files directly in ``directory``
        (and satisfying ``match``) that the listing does not hold -- a file deleted, or one that a listing
        made in a single pass over the members may have missed while it moved; those copies are left alone.
        """
        directory = normalize_path(directory)
        wanted = {f.path: f for f in (_with_path(i, normalize_path(i.path)) for i in listing) if not f.is_dir}
        fresh = self._fresh_copies(directory, wanted, complete=False, unlisted=(unlisted := []))
        return fresh, [
            path
            for path in unlisted
            if posixpath.dirname(path) == directory and (match is None or match(path))
        ]

    def servable_copies(self, directory: str) -> dict[str, CachedEntry]:
        """The ready copies of files directly in ``directory`` that :meth:`lookup` would serve now without
        asking the source (in a configured tier, unexpired, not due for a freshness check), by logical path:
        one catalog scan where a lookup per file would make one each. Nothing is dropped or marked; a copy not
        returned is left to :meth:`lookup`."""
        directory = normalize_path(directory)
        now = self.clock()
        return {
            entry.path: entry
            for entry in self.catalog.iter_entries(self.mount_name, directory, state=READY)
            if posixpath.dirname(entry.path) == directory and self._standing(entry, now) == _SERVE
        }

    def copy_path(self, entry: CachedEntry) -> str | None:
        """The local file system path of ``entry``'s copy when its tier is a local directory and the copy is a
        regular file inside it (no symbolic link on the way), else ``None``: what an engine in this process
        (DuckDB) opens natively. Take a :meth:`lease` covering the file first, so it stays while read."""
        tier = self.tiers.get(entry.tier)
        if tier is None or tier.shared:
            return None
        root = getattr(tier.store, "root", None)
        if root is None:
            return None
        root = str(root)
        path = os.path.join(root, *entry.location.split("/"))
        try:
            real = os.path.realpath(path)
            if real != path or not os.path.isfile(path):
                return None  # a link planted in the tier, or the copy is gone
        except OSError:
            return None
        return path

    def _fresh_copies(
        self,
        prefix: str,
        wanted: Mapping[str, FileInfo],
        *,
        complete: bool,
        unlisted: list[str] | None = None,
    ) -> dict[str, CachedEntry]:
        """The ready copies under ``prefix`` that match ``wanted`` (a fresh source status, by logical path),
        after dropping those that are stale: expired, in a tier no longer configured, of another version, and
        (when ``wanted`` is ``complete``, every file under ``prefix``) of files the source no longer has.
        Marks the fresh ones synced."""
        now = self.clock()
        stale: list[CachedEntry] = []
        fresh: dict[str, CachedEntry] = {}
        for entry in self.catalog.iter_entries(self.mount_name, prefix, state=READY):
            info = wanted.get(entry.path)
            if info is None and not complete:
                if unlisted is not None:
                    unlisted.append(entry.path)
                continue
            if entry.tier not in self.tiers or entry.is_expired(now) or info is None or not entry.source.matches(info):
                stale.append(entry)
            else:
                fresh[entry.path] = entry
        if stale:
            log.info("%d cached copies under %s:%s are stale; dropping them", len(stale), self.mount_name, prefix)
            self._drop(stale)
        if fresh:
            self.catalog.mark_synced_many((e.id for e in fresh.values()), now)
        return fresh

    def _warm_file(self, path: str, info: FileInfo | None) -> str | None:
        if info is not None:
            entry = self.lookup(path, info, force_sync=True)
        elif self.source is not None:
            source = self.source
            entry = self.lookup(path, lambda: source.resolve(path)[1])
        else:
            entry = self.lookup(path)
        if entry is None or not self.tiers[entry.tier].shared:
            return None
        return self.tiers[entry.tier].copy_uri(entry.location)

    def _walk_source(self, path: str) -> list[FileInfo] | None:
        walk = getattr(self.source, "walk_files", None)
        if walk is None:
            return None
        try:
            return list(walk(path))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _warm_dir(self, path: str, files: list[FileInfo]) -> str | None:
        prefix = f"{path}/" if path else ""
        wanted = {f.path: f for f in files if f.path.startswith(prefix)}
        if not wanted or len(wanted) != len(files):
            return None  # nothing to read, or files outside the directory: not this directory's view
        fresh = self._fresh_copies(path, wanted, complete=True)
        if len(fresh) != len(wanted):
            return None
        tiers = {e.tier for e in fresh.values()}
        if len(tiers) != 1:
            return None
        tier = self.tiers[tiers.pop()]
        if not all(tier.is_mirrored(self.mount_name, e.path, e.location) for e in fresh.values()):
            return None
        directory = mirrored_dir(self.mount_name, path)
        expected = {e.location for e in fresh.values()}
        seen = 0
        try:
            for item in tier.store.walk_files(directory):
                if item.path not in expected:
                    log.info("%s holds %s, which is no fresh copy: not warm", tier.copy_uri(directory), item.path)
                    return None
                seen += 1
        except FileNotFoundError:
            return None
        return tier.copy_uri(directory) if seen == len(expected) else None

    # -- leases -------------------------------------------------------------------------------------
    def lease(self, path: str, seconds: float, holder: str) -> Lease:
        """Keep the copies under ``path`` (a file or a directory; ``""`` = the whole mount) from being
        physically deleted for ``seconds``, by any worker of the catalog.

        Eviction skips leased copies; :meth:`free`, :meth:`invalidate` and stale drops still remove their
        entries (so they are never served again), but their files stay in the trash until the lease ends, and
        :meth:`release` or the next :meth:`recover` deletes them. An expired lease protects nothing.

        :param holder: who holds it (e.g. ``"<dag>/<task>/<run>"``), for the report and the logs.
        """
        if seconds <= 0:
            raise CacheConfigError(f"lease of {self.mount_name}:{path}: seconds={seconds!r} must be positive")
        now = self.clock()
        lease = self.catalog.add_lease(
            self.mount_name, normalize_path(path), holder, uuid.uuid4().hex, now, now + seconds
        )
        return replace(lease, _release=self.release)

    def renew(self, lease: Lease, seconds: float) -> Lease:
        """Extend ``lease`` to ``seconds`` from now; :class:`CacheError` when it is gone (released or expired
        and forgotten by :meth:`recover`)."""
        expires_at = self.clock() + seconds
        if not self.catalog.renew_lease(lease.id, expires_at):
            raise CacheError(f"lease {lease.id} on {self.mount_name}:{lease.path} ({lease.holder}) is gone")
        return replace(lease, expires_at=expires_at)

    def release(self, lease: Lease) -> int:
        """End ``lease`` and delete the trashed copies it was keeping (unless another lease keeps them);
        returns how many were deleted. Releasing twice is harmless."""
        self.catalog.remove_lease(lease.id)
        waiting = [
            item
            for item in self.catalog.trash_items(self.mount_name)
            if item.path is not None and lease.covers(item.path)
        ]
        return self._purge(waiting)

    def leases(self) -> list[Lease]:
        """The active leases of this mount (every worker's)."""
        return self.catalog.active_leases(self.mount_name, self.clock())

    # -- pins ---------------------------------------------------------------------------------------
    def pin(self, files: Iterable[str | FileInfo], tier: str | None = None) -> PinResult:
        """Pin files so eviction never removes their copies; all or nothing.

        A cached file is pinned in its tier. A file not cached yet must be given as a :class:`FileInfo` (its
        ``path`` logical): its size is held against ``tier``'s quota until it is loaded (by :meth:`load`).
        :raises CacheQuotaError: the pinned bytes would exceed a tier's quota; nothing was pinned.
        """
        default = self.tier(tier).alias
        requests = (
            PinRequest(normalize_path(f))
            if isinstance(f, str)
            else PinRequest(normalize_path(f.path), int(f.size), default)
            for f in files
        )
        configs = {alias: t.config for alias, t in self.tiers.items()}
        count, size = self.catalog.pin(self.mount_name, requests, configs, default, self.clock())
        return PinResult(count, size)

    def unpin(self, paths: Iterable[str], *, match: Callable[[str], bool] | None = None) -> int:
        """Remove pins on files or directories (``""`` = everything); returns how many were removed.

        :param match: only pins whose logical path satisfies it (e.g. a glob below a directory).
        """
        removed = 0
        for prefix in paths:
            prefix = normalize_path(prefix)
            if match is None:
                removed += self.catalog.unpin(self.mount_name, prefix)
                continue
            batch: list[str] = []
            for path in self.catalog.iter_pinned_paths(self.mount_name, prefix):  # paged: safe to unpin meanwhile
                if match(path):
                    batch.append(path)
                if len(batch) >= 500:
                    removed, batch = removed + self.catalog.unpin_paths(self.mount_name, batch), []
            if batch:
                removed += self.catalog.unpin_paths(self.mount_name, batch)
        return removed

    # -- removal ------------------------------------------------------------------------------------
    def free(
        self, paths: Iterable[str], force: bool = False, *, match: Callable[[str], bool] | None = None
    ) -> DropResult:
        """Drop the cached copies of files or directories (never the source).

        Pinned copies are kept (and counted in ``skipped_pinned``) unless ``force``, which also unpins them.

        :param match: only copies whose logical path satisfies it (e.g. a glob below a directory).
        """
        files = size = skipped = 0
        for prefix in paths:
            prefix = normalize_path(prefix)
            batch: list[CachedEntry] = []
            for entry in self.catalog.iter_entries(self.mount_name, prefix, state=READY):
                if match is not None and not match(entry.path):
                    continue
                if entry.pinned and not force:
                    skipped += 1
                    continue
                batch.append(entry)
                if len(batch) >= 500:
                    result = self._drop(batch)
                    files, size, batch = files + result.files, size + result.bytes, []
            result = self._drop(batch)
            files, size = files + result.files, size + result.bytes
            if force:
                self.unpin([prefix], match=match)
        return DropResult(files, size, skipped)

    def listing(self, path: str, list_members: Callable[[], Iterable[FileInfo]]) -> list[FileInfo]:
        """The merged listing of directory ``path``: the one stored in the catalog while
        ``listing_sync_interval`` allows, else ``list_members()`` (stored for the next caller when not empty).

        With the default interval 0 the members are always listed and nothing is stored.
        """
        path = normalize_path(path)
        interval = self.config.listing_sync_interval
        if interval:
            synced_after = None if interval < 0 else self.clock() - interval
            stored = self.catalog.listing(self.mount_name, path, synced_after)
            if stored is not None:
                return stored
        listed_at = self.clock()
        entries = list(list_members())
        if interval and entries:
            self.catalog.store_listing(self.mount_name, path, entries, listed_at)
        return entries

    def forget_listings(self, path: str) -> None:
        """Forget stored listings made stale by a change of ``path`` (its parent's, its own, those below)."""
        self.catalog.forget_listings(self.mount_name, normalize_path(path))

    def invalidate(self, path: str) -> DropResult:
        """Forget copies of ``path`` (a file or a directory) after it changed through the mount, and the
        stored listings the change makes stale.

        Copies being loaded are abandoned too; pins stay, so a reload is pinned again.
        """
        self.forget_listings(path)
        files = size = 0
        batch: list[CachedEntry] = []
        for entry in self.catalog.iter_entries(self.mount_name, normalize_path(path)):
            batch.append(entry)
            if len(batch) >= 500:
                result, batch = self._drop(batch, include_loading=True), []
                files, size = files + result.files, size + result.bytes
        result = self._drop(batch, include_loading=True)
        return DropResult(files + result.files, size + result.bytes)

    def evict(self, tier: str | None = None, force: bool = False) -> DropResult:
        """Evict in the given tier (all tiers when ``None``) when past the high watermark (or ``force``):
        TTL-expired copies first, then least recently used unpinned ones, until under the low watermark."""
        targets = [self.tier(tier)] if tier is not None else list(self.tiers.values())
        trash: list[TrashItem] = []
        for target in targets:
            trash += self.catalog.evict(self.mount_name, target.config, self.clock(), force=force)
        return self._purge_counted(trash)

    def expire(self) -> DropResult:
        """Drop every copy whose TTL has passed (pinned ones too, with their pins: a TTL bounds a pin)."""
        return self._purge_counted(self.catalog.expire(self.mount_name, self.clock()))

    def recover(self) -> int:
        """Reclaim loads whose worker died (lease expired) and finish interrupted deletions.

        Returns the number of copies cleaned up.
        """
        now = self.clock()
        self.catalog.reclaim_expired(self.mount_name, now)
        self.catalog.forget_expired_leases(self.mount_name, now)
        return self._purge(self.catalog.trash_items(self.mount_name))

    def entries(self, prefix: str = "") -> Iterator[CachedEntry]:
        """Catalog entries under ``prefix`` (streamed)."""
        return self.catalog.iter_entries(self.mount_name, normalize_path(prefix))

    # -- report -------------------------------------------------------------------------------------
    def report(self) -> CacheReport:
        """Per-tier capacity, usage, pinned bytes, file count, hit ratio and oldest entry."""
        return build_report(self.mount_name, (t.config for t in self.tiers.values()), self.catalog, self.clock())

    def close(self) -> None:
        self.catalog.hits.flush()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        for tier in self.tiers.values():
            tier.close()

    # -- internals ----------------------------------------------------------------------------------
    def _claim(
        self, path: str, member: str, info: FileInfo, tier: Tier, ttl: float | None, source_uri: str | None
    ) -> Claim:
        load_id = uuid.uuid4().hex
        now = self.clock()
        claim = self.catalog.claim(
            self.mount_name,
            path,
            tier=tier.config,
            location=tier.copy_location(self.mount_name, path, load_id),
            size=int(info.size),
            source_member=member,
            source_uri=source_uri,
            source=SourceFingerprint.of(info),
            loader_id=load_id,
            lease_until=now + self.config.load_lease,
            now=now,
            ttl=ttl,
        )
        self._purge(claim.trash)
        return claim

    def _heartbeat(self, entry: CachedEntry) -> Callable[[], bool]:
        """Renews the entry's lease every third of the lease period while bytes flow."""
        lease = self.config.load_lease
        due = [self.clock() + lease / 3]

        def beat() -> bool:
            now = self.clock()
            if now < due[0]:
                return True
            due[0] = now + lease / 3
            return self.catalog.heartbeat(entry.id, entry.loader_id, now + lease)

        return beat

    def _abandon(self, entry: CachedEntry) -> None:
        item = self.catalog.abandon(entry.id, entry.loader_id, self.clock())
        self.tiers[entry.tier].delete_copy(entry.location)  # our own load directory, whoever owns the row now
        if item is not None:
            self.catalog.forget_trash([item.id])

    def _drop(self, entries: list[CachedEntry], include_loading: bool = False) -> DropResult:
        if not entries:
            return DropResult()
        ids = [e.id for e in entries]
        return self._purge_counted(
            self.catalog.drop(self.mount_name, ids, self.clock(), include_loading=include_loading)
        )

    def _purge_counted(self, trash: list[TrashItem]) -> DropResult:
        self._purge(trash)
        return DropResult(len(trash), sum(t.size for t in trash))

    def _purge(self, trash: Iterable[TrashItem]) -> int:
        """Delete the physical copies of trash items, then their trash rows; copies under an active lease
        stay in the trash (deleted by :meth:`release` or a later :meth:`recover`)."""
        trash = list(trash)
        if not trash:
            return 0
        leases = self.catalog.active_leases(self.mount_name, self.clock())
        done = []
        for item in trash:
            tier = self.tiers.get(item.tier)
            if tier is None:
                continue  # a tier no longer configured here; another manager that has it will clean it
            if item.path is not None and any(lease.covers(item.path) for lease in leases):
                log.debug("keeping %s in tier %s while it is leased", item.location, item.tier)
                continue
            try:
                tier.delete_copy(item.location)
            except Exception as err:  # kept in the trash; retried by the next recover()
                log.warning("could not delete cached copy %s in tier %s: %s", item.location, item.tier, err)
                continue
            done.append(item.id)
        if done:
            self.catalog.forget_trash(done)
        return len(done)


def _with_path(info: FileInfo, path: str) -> FileInfo:
    if info.path == path:
        return info
    return FileInfo(
        path=path, size=info.size, mtime=info.mtime, is_dir=info.is_dir, atime=info.atime, etag=info.etag
    )
