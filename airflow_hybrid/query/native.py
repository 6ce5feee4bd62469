"""Where the embedded engine reads each file of a ``hybrid://`` table from, decided when the query starts.

A table of a mount with a cache is resolved file by file, and DuckDB gets the list of what to read
(``read_parquet(['/ssd/hybrid/lake/ab/ab...parquet', 'hybrid://lake/t/part-2.parquet'])``):

* a file with a fresh copy in a **local** tier (a directory): the copy's path, read natively by DuckDB;
* a file with a fresh copy in a shared **S3** tier, or listed at an **S3 member**: ``s3://bucket/key``, read by
  DuckDB's httpfs with a secret from the store's Airflow connection (:mod:`airflow_hybrid.query.duckdb_s3`,
  which also checks afterwards that DuckDB read the versions listed here); only when the planner is given an
  :class:`~airflow_hybrid.query.duckdb_s3.HttpfsAccess` that accepts the store;
* any other file (cold on HDFS, or on a store httpfs cannot reach): ``hybrid://<mount>/<path>``, read through
  the Python bridge (:class:`~airflow_hybrid.mount.filesystem.HybridFileSystem`), which reads through the cache
  and fills it.

Before anything is resolved, a :class:`~airflow_hybrid.cache.lease.Lease` is taken on the table's directory
and kept (renewed) until the query ends, so no eviction, ``free`` or stale drop by any worker deletes a copy
the query was handed while it reads it (see :meth:`CacheManager.lease`).

Freshness is the cache's own rule, batched: the table's directory is listed once and the listing is compared
with the catalog in one scan (:meth:`CacheManager.fresh_listing`): a copy whose source's size, mtime or ETag
differ is dropped and the file read from its source. By default the listing costs one request per member (each
member's directory listed once, lowest read priority first, so a file a migration moves to a higher-priority
member meanwhile is still seen); with the cache's ``listing_sync_interval`` the listing stored in the catalog
answers while it is recent enough: a warm query then sends no request at all (and, not knowing the member a
cold file was listed at, reads it through the bridge). A single pass can miss a file
moving the other way (to a lower-priority member) while it runs; a ready copy the listing does not hold shows
that, and the table is then listed again with the mount's full listing sequence.

With ``speculate`` (what :class:`~airflow_hybrid.query.duckdb_engine.DuckDBQuery` asks by default), a table whose
files the catalog holds as ready copies in a local tier is planned from the catalog alone, no source request,
and the query starts at once over those copies while the freshness check above runs in a thread beside it.
:meth:`TablePlanner.confirm` then waits for the check: when it plans the very same sources (the same fresh copies
of the same files) the result stands, as if the check had run first (the copies are leased and never change in
place); when it does not (a file added, removed, rewritten or moved, a copy dropped), the query runs again over
the checked plan, and an error over the unconfirmed copies is not the answer either. A warm query then costs
the query plus what of the check's round trips it does not cover, instead of both in turn.

Only simple table forms are planned: a directory (its ``*.parquet`` files), one file, or a glob in the last
path component. Anything else (globs in directories, ``**``, Hive partition directories ``k=v``), a mount
without a cache, or a path with no matching file, is read through the bridge as before.
"""

from __future__ import annotations

import fnmatch
import logging
import posixpath
import re
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_hybrid.paths import hybrid_url, is_hybrid_url, split_hybrid_url
from airflow_hybrid.stores.base import FileInfo

if TYPE_CHECKING:
    from airflow_hybrid.cache.entry import CachedEntry
    from airflow_hybrid.cache.lease import Lease
    from airflow_hybrid.cache.manager import CacheManager
    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.mount.filesystem import HybridFileSystem
    from airflow_hybrid.query.duckdb_s3 import HttpfsAccess, S3Target

log = logging.getLogger(__name__)

_GLOB_CHARS = re.compile(r"[*?\[]")
#: Seconds a query's lease lasts unless renewed (renewed every third of it while the query runs).
DEFAULT_LEASE_SECONDS = 300.0


@dataclass
class TablePlan:
    """What one table reads: ``sources`` (local paths, ``s3://`` and ``hybrid://`` URLs, one per file), the
    files DuckDB's httpfs reads (``s3_targets``, with the versions listed) and counts."""

    name: str
    url: str
    sources: list[str]
    local: int = 0
    bridged: int = 0
    httpfs: int = 0
    s3_targets: list[S3Target] = field(default_factory=list)
    lease: Lease | None = None
    #: the freshness check fell back to the mount's full listing (a copy the first listing did not hold)
    relisted: bool = False
    #: planned from the catalog alone, its freshness check run while the query ran (:meth:`TablePlanner.confirm`)
    speculative: bool = False
    check: Future | None = field(default=None, repr=False, compare=False)

    def summary(self) -> dict[str, int]:
        return {"files": len(self.sources), "local": self.local, "httpfs": self.httpfs, "bridge": self.bridged}


def split_table_path(rel: str) -> tuple[str, str] | None:
    """``(directory, name pattern)`` of a table path: a directory (``*.parquet`` in it), a ``.parquet`` file,
    or a glob in the last component; ``None`` for anything else (a glob in a directory, Hive partitions)."""
    directory, base = posixpath.split(rel)
    if _GLOB_CHARS.search(rel):
        if _GLOB_CHARS.search(directory) or "**" in base:
            return None
        pattern = base
    elif rel.endswith(".parquet"):
        pattern = _escape_glob(base)
    else:
        directory, pattern = rel, "*.parquet"
    if "=" in directory:  # Hive partition directories: DuckDB derives columns from the logical path
        return None
    return directory, pattern


def _escape_glob(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def list_once(mount: HybridMount, directory: str) -> list[tuple[str, FileInfo]] | None:
    """Each member's listing of ``directory`` once (one request per member and 1,000 entries), lowest read
    priority first, merged by read priority: ``(member, entry)`` per name; ``None`` when no member lists any."""
    rank = {member: i for i, member in enumerate(mount.read_order)}
    best: dict[str, tuple[int, str, FileInfo]] = {}
    found = False
    for member in reversed(mount.read_order):
        for entry in mount.members[member].list_children(directory):
            found = True
            known = best.get(entry.name)
            if known is None or rank[member] <= known[0]:
                best[entry.name] = (rank[member], member, entry)
    if not found:
        return None
    return [(member, entry) for _, member, entry in best.values()]


class TablePlanner:
    """Plans the tables of one query (see the module doc); :meth:`close` ends the leases.

    :param s3: hands S3 files to DuckDB's httpfs (``None``: every file not in a local tier through the bridge).
    """

    def __init__(
        self,
        fs: HybridFileSystem,
        holder: str,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        s3: HttpfsAccess | None = None,
    ) -> None:
        self.fs = fs
        self.s3 = s3
        self.holder = holder
        self.lease_seconds = float(lease_seconds)
        self.plans: list[TablePlan] = []
        self._leases: list[tuple[CacheManager, Lease]] = []
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._checker: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def plan(self, name: str, url: str, *, speculate: bool = False) -> TablePlan | None:
        """The plan of table ``name`` at ``url``, or ``None``: read ``url`` through the bridge as it is.

        :param speculate: when every file the catalog holds of the table has a ready local copy, plan from
            the catalog alone and run the freshness check (the members' listings) while the query runs; the
            caller then asks :meth:`confirm` whether the result stands (module doc).
        """
        if not is_hybrid_url(url):
            return None
        mount_name, rel = split_hybrid_url(url)
        split = split_table_path(rel)
        if split is None:
            return None
        mount = self.fs.mount(mount_name)
        cache = mount.cache
        if cache is None:
            return None
        directory, pattern = split
        lease = self._lease(cache, directory)  # before anything is resolved: what we are handed stays
        if speculate and not cache.config.listing_sync_interval:
            guess = self._from_catalog(name, url, cache, directory, pattern)
            if guess is not None:
                guess.lease = lease
                guess.check = self._checks().submit(self._resolve, name, url, mount, cache, directory, pattern)
                self.plans.append(guess)
                return guess
        plan = self._resolve(name, url, mount, cache, directory, pattern)
        if plan is None:
            self._end(cache, lease)
            return None
        plan.lease = lease
        self.plans.append(plan)
        return plan

    def confirm(self, plan: TablePlan) -> tuple[bool, TablePlan | None]:
        """Whether the query's result over ``plan`` stands: ``(True, plan)`` for a plan that was not
        speculative or whose freshness check planned the very same sources (the same fresh copies of the same
        files); else ``(False, checked)``, the plan to run the query again with (``None``: read the table's
        URL through the bridge). Waits for the check."""
        if plan.check is None:
            return True, plan
        checked, plan.check = plan.check.result(), None
        if checked is not None and checked.sources == plan.sources:
            plan.relisted = checked.relisted
            log.info("Table %s: the freshness check confirmed its %d cached copies", plan.name, plan.local)
            return True, plan
        log.info("Table %s changed since the catalog's copies were planned (%s); the query runs again",
                 plan.name, "no longer planned" if checked is None else f"{len(checked.sources)} files now")
        if checked is not None:
            checked.lease = plan.lease
            self.plans.append(checked)
        return False, checked

    def _from_catalog(
        self, name: str, url: str, cache: CacheManager, directory: str, pattern: str
    ) -> TablePlan | None:
        """The plan the catalog alone gives, without a source request: the ready local copies of the files of
        ``directory`` it holds (``None`` unless there is one at least). A file the catalog does not know, or a
        copy gone stale, shows in the check (:meth:`confirm`)."""
        from airflow_hybrid.cache.schema import READY

        now = cache.clock()
        sources: list[tuple[str, str]] = []
        for entry in cache.catalog.iter_entries(cache.mount_name, directory, state=READY):
            if posixpath.dirname(entry.path) != directory or not fnmatch.fnmatchcase(
                posixpath.basename(entry.path), pattern
            ):
                continue
            if entry.is_expired(now):
                return None
            local = cache.copy_path(entry)
            if local is None:
                return None
            sources.append((entry.path, local))
        if not sources:
            return None
        sources.sort()
        return TablePlan(name, url, [local for _, local in sources], local=len(sources), speculative=True)

    def _checks(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._checker is None:
                self._checker = ThreadPoolExecutor(2, thread_name_prefix="hybrid-query-check")
            return self._checker

    def _resolve(
        self, name: str, url: str, mount: HybridMount, cache: CacheManager, directory: str, pattern: str
    ) -> TablePlan | None:
        def match(path: str) -> bool:
            return fnmatch.fnmatchcase(posixpath.basename(path), pattern)

        relisted = False
        if cache.config.listing_sync_interval:
            listed = self._stored_listing(mount, cache, directory)
        else:
            listed = list_once(mount, directory)
        if listed is None:
            return None
        files = _matching(listed, match)
        fresh, unlisted = cache.fresh_listing(directory, [info for _, info in files], match=match)
        if unlisted and not cache.config.listing_sync_interval:
            # a copy the single pass did not list: deleted, or moved to a lower-priority member meanwhile
            listed, relisted = _full_listing(mount, directory), True
            if listed is None:
                return None
            files = _matching(listed, match)
            fresh, _ = cache.fresh_listing(directory, [info for _, info in files], match=match)
        if not files:
            return None
        plan = TablePlan(name, url, [], relisted=relisted)
        cold: list[FileInfo] = []
        for member, info in files:
            entry = fresh.get(info.path)
            local = cache.copy_path(entry) if entry is not None else None
            target = None if local is not None else self._s3_target(mount, cache, member, info, entry)
            if local is not None:
                plan.sources.append(local)
                plan.local += 1
            elif target is not None:
                plan.sources.append(target.uri)
                plan.s3_targets.append(target)
                plan.httpfs += 1
            else:
                plan.sources.append(hybrid_url(mount.name, info.path))
                plan.bridged += 1
                cold.append(info)
        if cold:  # the bridge answers DuckDB's size calls from this listing instead of asking the source
            self.fs._remember(mount, [self.fs._entry(mount, info) for info in cold])
        log.info(
            "Table %s <- %s: %d files, %d from local cache copies, %d from S3 by httpfs, %d through hybrid://%s",
            name, url, len(plan.sources), plan.local, plan.httpfs, plan.bridged,
            " (listed again)" if relisted else "",
        )
        return plan

    def _s3_target(
        self, mount: HybridMount, cache: CacheManager, member: str, info: FileInfo, entry: CachedEntry | None
    ) -> S3Target | None:
        """Where httpfs reads ``info`` from: its fresh copy in a shared S3 tier (a location written once, so no
        ETag to check), else the S3 member it was listed at (with the listed ETag); ``None``: the bridge."""
        if self.s3 is None:
            return None
        if entry is not None:
            tier = cache.tiers.get(entry.tier)
            if tier is not None and tier.shared:
                target = self.s3.target(tier.store, entry.location, entry.size, None, info.path)
                if target is not None:
                    return target
        if not member or not info.etag:  # unknown member (a stored listing), or nothing to check the read by
            return None
        return self.s3.target(mount.members[member], info.path, info.size, info.etag, info.path)

    @staticmethod
    def _stored_listing(mount: HybridMount, cache: CacheManager, directory: str) -> list[tuple[str, FileInfo]] | None:
        try:
            infos = cache.listing(directory, lambda: mount.ls(directory))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return [("", info) for info in infos] if infos else None

    # -- leases ---------------------------------------------------------------------------------------
    def _lease(self, cache: CacheManager, path: str) -> Lease:
        lease = cache.lease(path, self.lease_seconds, self.holder)
        with self._lock:
            self._leases.append((cache, lease))
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew, name="hybrid-query-leases", daemon=True)
                self._renewer.start()
        return lease

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._lock:
                held = list(enumerate(self._leases))
            for i, (cache, lease) in held:
                try:
                    renewed = cache.renew(lease, self.lease_seconds)
                except Exception as err:  # the query goes on; eviction may now take what it reads
                    log.warning("could not renew lease %s on %s:%s: %s", lease.id, lease.mount, lease.path, err)
                    continue
                with self._lock:
                    if i < len(self._leases) and self._leases[i][1].id == lease.id:
                        self._leases[i] = (cache, renewed)

    def _end(self, cache: CacheManager, lease: Lease) -> None:
        with self._lock:
            self._leases = [(c, held) for c, held in self._leases if held.id != lease.id]
        cache.release(lease)

    @property
    def leases(self) -> list[Lease]:
        with self._lock:
            return [lease for _, lease in self._leases]

    def close(self) -> int:
        """Release every lease (the copies they kept from deletion are deleted now); returns how many."""
        if self._checker is not None:
            self._checker.shutdown(wait=True)  # a check still running holds the catalog and the members
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        with self._lock:
            held, self._leases = self._leases, []
        deleted = 0
        for cache, lease in held:
            try:
                deleted += cache.release(lease)
            except Exception as err:  # an unreleased lease expires by itself
                log.warning("could not release lease %s on %s:%s: %s", lease.id, lease.mount, lease.path, err)
        return deleted


def _matching(listed: Iterable[tuple[str, FileInfo]], match) -> list[tuple[str, FileInfo]]:
    return sorted(
        ((member, info) for member, info in listed if not info.is_dir and match(info.path)),
        key=lambda item: item[1].path,
    )


def _full_listing(mount: HybridMount, directory: str) -> list[tuple[str, FileInfo]] | None:
    try:
        return list(mount.ls_members(directory))
    except (FileNotFoundError, NotADirectoryError):
        return None

