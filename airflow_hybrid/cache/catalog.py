"""The cache catalog: which files are cached where, shared by every worker through one SQL database.

Every state change is one short transaction that first locks the mount's tier rows (``SELECT ... FOR UPDATE``
in PostgreSQL, in alias order; ``BEGIN IMMEDIATE`` in SQLite, which serialises writers), then entries, pins
and trash, always in that order, so concurrent workers never deadlock and always agree:

* a file is claimed for loading by inserting its ``loading`` row (unique per mount and path) -- exactly one
  worker wins; the others see it ``busy`` and read from the source without caching;
* space is reserved in the same transaction (``tiers.reserved_bytes``, the sum of the tier's loading and
  ready entries), after evicting if needed, and refused when it would pass the quota;
* a row is counted exactly once: reserved bytes change only together with the insert, resize or removal
  of its entry row;
* a loader that dies leaves a ``loading`` row whose lease expires; it is never served, and the next claim of
  the path or :meth:`Catalog.reclaim_expired` moves it to the trash so its partial copy gets deleted.

The catalog stores no bytes and never touches a store: callers delete the physical copies of the
:class:`TrashItem` objects returned to them, then call :meth:`Catalog.forget_trash`.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from airflow_hybrid.cache.config import TierConfig
from airflow_hybrid.cache.entry import CachedEntry, SourceFingerprint
from airflow_hybrid.cache.exceptions import CacheCatalogError, CacheError, CacheQuotaError
from airflow_hybrid.cache.hits import HitRecorder
from airflow_hybrid.cache.lease import Lease
from airflow_hybrid.cache.schema import (
    DEFAULT_TABLE_PREFIX,
    LATEST_VERSION,
    LOADING,
    READY,
    Tables,
    build_tables,
    current_version,
    upgrade,
)
from airflow_hybrid.stores.base import FileInfo

log = logging.getLogger(__name__)
T = TypeVar("T")

_BATCH = 500


def create_catalog_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL mode, a busy timeout and ``BEGIN IMMEDIATE`` writes.

    :param read_only: the database refuses writes: SQLite files are opened ``mode=ro`` (never created),
        PostgreSQL transactions are ``READ ONLY``.
    """
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        options = {"postgresql_readonly": True} if read_only else {}
        return sa.create_engine(parsed, pool_pre_ping=True, execution_options=options)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in url
    kwargs: dict = {"connect_args": {"timeout": 60, "check_same_thread": False}}
    if in_memory:
        kwargs["poolclass"] = sa.pool.StaticPool
    elif read_only:
        path = database.removeprefix("file:") if parsed.query.get("uri") else database
        target = urllib.parse.quote(str(Path(path).expanduser().resolve()))
        parsed = parsed.set(database=f"file:{target}", query={**parsed.query, "mode": "ro", "uri": "true"})
    elif not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # transactions are begun by _on_begin below
        cursor = dbapi_connection.cursor()
        if not in_memory and not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        if not read_only:
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("hybrid_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


@dataclass(frozen=True)
class TrashItem:
    """A physical copy to delete: ``location`` inside tier ``tier`` of mount ``mount`` (``size`` bytes when
    known: set when the entry was just trashed, 0 when read back from the trash table), the copy of logical
    ``path`` (``None`` for rows trashed before schema version 4), which leases on it keep from deletion."""

    id: int
    mount: str
    tier: str
    location: str
    size: int = 0
    path: str | None = None


@dataclass(frozen=True)
class Claim:
    """Outcome of :meth:`Catalog.claim`.

    ``status`` is ``claimed`` (the caller owns the new ``loading`` ``entry`` and must complete or abandon it),
    ``exists`` (``entry`` is a ready copy), ``busy`` (another worker is loading it) or ``no_space`` (nothing
    changed; ``reason`` says why). ``trash`` lists copies the caller must delete (evicted or reclaimed).
    """

    status: str
    entry: CachedEntry | None = None
    trash: tuple[TrashItem, ...] = ()
    reason: str = ""

    CLAIMED = "claimed"
    EXISTS = "exists"
    BUSY = "busy"
    NO_SPACE = "no_space"


@dataclass(frozen=True)
class PinRequest:
    """Pin ``path``; ``size`` and ``tier`` are needed only when the file is not cached yet."""

    path: str
    size: int | None = None
    tier: str | None = None


@dataclass(frozen=True)
class TierUsage:
    """Raw per-tier figures from the catalog (see :mod:`airflow_hybrid.cache.report`)."""

    alias: str
    uri: str
    quota: int
    reserved: int
    hits: int
    misses: int
    files: int
    ready_bytes: int
    loading: int
    pinned_bytes: int
    pin_intent_bytes: int
    oldest_path: str | None
    oldest_created_at: float | None


class _NoSpace(Exception):
    pass


class Catalog:
    """The catalog tables in one database (any SQLAlchemy URL), created and upgraded on first use.

    :param url: SQLAlchemy URL, e.g. ``sqlite:////var/lib/airflow/hybrid/catalog.db`` or
        ``postgresql+psycopg2://user@host/db``.
    :param table_prefix: prefix of the table names (to share a database with other applications).
    :param read_only: for reports: the database is opened read-only (see :func:`create_catalog_engine`) and
        neither created nor upgraded; every write raises :class:`CacheCatalogError`.
    """

    _shared: dict[tuple[str, str], Catalog] = {}
    _shared_lock = threading.Lock()

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = DEFAULT_TABLE_PREFIX,
        engine: Engine | None = None,
        read_only: bool = False,
    ) -> None:
        self.read_only = read_only
        self.engine = engine or create_catalog_engine(url, read_only=read_only)
        self.url = self.engine.url.render_as_string(hide_password=True)
        self.table_prefix = table_prefix
        self.t: Tables = build_tables(table_prefix)
        if hasattr(os, "register_at_fork"):  # a forked worker must not reuse the parent's connections
            engine_ref = weakref.ref(self.engine)
            os.register_at_fork(after_in_child=lambda: (e := engine_ref()) is not None and e.dispose(close=False))
        #: Hits recorded off the read path (:meth:`record_hit`), written in batches.
        self.hits = HitRecorder(self.touch_many)
        if read_only:
            self.schema_version = self._stored_version()
            return
        with self.write() as conn:
            applied = upgrade(conn, table_prefix)
        self.schema_version = LATEST_VERSION
        if applied:
            log.info("cache catalog %s upgraded to schema version %s", self.url, applied[-1])

    def _stored_version(self) -> int:
        """The schema version found by a read-only catalog: 0 when there is no catalog yet (nothing to
        report); any other version than this code's is refused, since the tables it queries may differ."""
        try:
            with self.read() as conn:
                version = current_version(conn, self.table_prefix)
        except sa.exc.OperationalError as err:
            if self.engine.dialect.name == "sqlite" and "unable to open database file" in str(err):
                return 0  # mode=ro never creates the file
            raise
        if version not in (0, LATEST_VERSION):
            raise CacheCatalogError(
                f"cache catalog {self.url} is at schema version {version}, this code reads version "
                f"{LATEST_VERSION}; open it for writing once (any cache operation does) to upgrade it"
            )
        return version

    @classmethod
    def shared(cls, url: str, table_prefix: str = DEFAULT_TABLE_PREFIX) -> Catalog:
        """One catalog (and engine) per URL and prefix in this process."""
        key = (url, table_prefix)
        with cls._shared_lock:
            if key not in cls._shared:
                cls._shared[key] = cls(url, table_prefix=table_prefix)
            return cls._shared[key]

    def dispose(self) -> None:
        self.hits.flush()
        self.engine.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    # -- transactions -------------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: ``BEGIN IMMEDIATE`` in SQLite (one writer at a time)."""
        if self.read_only:
            raise CacheCatalogError(f"cache catalog {self.url} is open read-only")
        with self.engine.connect() as conn:
            conn.execution_options(hybrid_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def _lock_tiers(self, conn: Connection, mount: str) -> dict[str, sa.Row]:
        tiers = self.t.tiers
        stmt = sa.select(tiers).where(tiers.c.mount == mount).order_by(tiers.c.alias).with_for_update()
        return {row.alias: row for row in conn.execute(stmt)}

    def _add_counts(self, conn: Connection, mount: str, tier: str, **deltas: int) -> None:
        """Add ``deltas`` to counters of the tier row (``reserved_bytes`` and :data:`TIER_COUNTERS`), which
        change only together with the rows they count (tiers must be locked)."""
        changes = {name: delta for name, delta in deltas.items() if delta}
        if changes:
            tiers = self.t.tiers
            conn.execute(
                tiers.update()
                .where(tiers.c.mount == mount, tiers.c.alias == tier)
                .values({name: tiers.c[name] + delta for name, delta in changes.items()})
            )

    def _entry_counts(self, row: sa.Row | CachedEntry, sign: int) -> dict[str, int]:
        """The counters entry ``row`` adds to its tier (``sign`` 1) or takes from it (``sign`` -1)."""
        if row.state == READY:
            pinned = row.size if row.pinned else 0
            return {"reserved_bytes": sign * row.size, "ready_files": sign, "ready_bytes": sign * row.size,
                    "pinned_bytes": sign * pinned}
        return {"reserved_bytes": sign * row.size, "loading_files": sign}

    def _pinned_sums(self, conn: Connection, table: sa.Table, *where: sa.ColumnElement) -> dict[str, int]:
        """Bytes per tier of the rows of ``table`` (``pins``, or ready ``entries``) matching ``where``."""
        return {
            tier: int(size)
            for tier, size in conn.execute(
                sa.select(table.c.tier, sa.func.coalesce(sa.func.sum(table.c.size), 0))
                .where(*where)
                .group_by(table.c.tier)
            )
        }

    def _trash(self, conn: Connection, row: sa.Row | CachedEntry, now: float) -> TrashItem:
        """Move an entry row to the trash and release its reserved bytes (tiers must be locked)."""
        trash, entries = self.t.trash, self.t.entries
        result = conn.execute(
            trash.insert().values(
                mount=row.mount, tier=row.tier, location=row.location, path=row.path, created_at=now
            )
        )
        if conn.execute(entries.delete().where(entries.c.id == row.id)).rowcount == 1:
            self._add_counts(conn, row.mount, row.tier, **self._entry_counts(row, -1))
        return TrashItem(result.inserted_primary_key[0], row.mount, row.tier, row.location, row.size, row.path)

    def _trash_many(self, conn: Connection, rows: Sequence[sa.Row], now: float) -> list[TrashItem]:
        """:meth:`_trash` for a page of rows in a few statements: one insert of their trash rows, one delete,
        one counter update per tier (tiers must be locked). Rows already gone are skipped."""
        if len(rows) < 2 or not conn.dialect.insert_executemany_returning_sort_by_parameter_order:
            return [self._trash(conn, row, now) for row in rows]
        trash, entries = self.t.trash, self.t.entries
        present = set(conn.execute(sa.select(entries.c.id).where(entries.c.id.in_([r.id for r in rows]))).scalars())
        rows = [row for row in rows if row.id in present]
        if not rows:
            return []
        ids = conn.execute(
            trash.insert().returning(trash.c.id, sort_by_parameter_order=True),
            [
                {"mount": r.mount, "tier": r.tier, "location": r.location, "path": r.path, "created_at": now}
                for r in rows
            ],
        ).scalars().all()
        conn.execute(entries.delete().where(entries.c.id.in_([r.id for r in rows])))
        deltas: dict[tuple[str, str], dict[str, int]] = {}
        for row in rows:
            total = deltas.setdefault((row.mount, row.tier), {})
            for name, delta in self._entry_counts(row, -1).items():
                total[name] = total.get(name, 0) + delta
        for (mount, tier), total in sorted(deltas.items()):
            self._add_counts(conn, mount, tier, **total)
        return [
            TrashItem(i, r.mount, r.tier, r.location, r.size, r.path) for i, r in zip(ids, rows, strict=True)
        ]

    def _bytewise(self, column: sa.ColumnElement) -> sa.ColumnElement:
        """``column`` compared byte-wise: ``COLLATE "C"`` in PostgreSQL (whatever the database's collation;
        the entries' path index is on that expression), as is in SQLite (text compares byte-wise there)."""
        return column.collate("C") if self.engine.dialect.name == "postgresql" else column

    def _under(self, column: sa.ColumnElement, prefix: str) -> sa.ColumnElement:
        """``column`` is ``prefix`` or a path below it: one index range, ``[prefix, prefix + "0")`` byte-wise
        (``"0"`` follows ``"/"``), without the siblings sorting inside it (``prefix-old``, ``prefix.bak``)."""
        if not prefix:
            return sa.true()
        key = self._bytewise(column)
        return sa.and_(key >= prefix, key < prefix + "0", sa.or_(key == prefix, key >= prefix + "/"))

    # -- tiers --------------------------------------------------------------------------------------
    def sync_tiers(self, mount: str, tiers: Sequence[TierConfig], now: float) -> None:
        """Create or update the tier rows of ``mount`` (quota and URI follow the configuration)."""
        self._syncing_tier_rows(mount, lambda: self._sync_tiers(mount, tiers, now))

    def start_mount(self, mount: str, tiers: Sequence[TierConfig], now: float) -> list[TrashItem]:
        """What a cache manager does on start, in one write transaction: :meth:`sync_tiers`, then
        :meth:`reclaim_expired` and :meth:`forget_expired_leases`; returns :meth:`trash_items` (the copies
        to delete, those just reclaimed included)."""
        return self._syncing_tier_rows(mount, lambda: self._start_mount(mount, tiers, now))

    def _syncing_tier_rows(self, mount: str, transaction: Callable[[], T]) -> T:
        """Run ``transaction``, which syncs the tier rows of ``mount``, and once more if it lost a race.

        Workers starting at once on a new catalog may both insert a row (``FOR UPDATE`` locks no row that
        does not exist yet): the one that loses the race finds the row the other inserted and syncs again.
        """
        try:
            return transaction()
        except sa.exc.IntegrityError:
            log.debug("tier rows of mount %r created by another worker meanwhile; syncing again", mount)
            return transaction()

    def _start_mount(self, mount: str, tiers: Sequence[TierConfig], now: float) -> list[TrashItem]:
        with self.write() as conn:
            self._sync_tier_rows(conn, mount, tiers, now)
            self._reclaim_expired(conn, mount, now)
            self._forget_expired_leases(conn, mount, now)
            return self._trash_items(conn, mount)

    def _sync_tiers(self, mount: str, tiers: Sequence[TierConfig], now: float) -> None:
        with self.write() as conn:
            self._sync_tier_rows(conn, mount, tiers, now)

    def _sync_tier_rows(self, conn: Connection, mount: str, tiers: Sequence[TierConfig], now: float) -> None:
        """Create or update the tier rows of ``mount``, which stay locked for the rest of the transaction."""
        table = self.t.tiers
        existing = self._lock_tiers(conn, mount)
        for tier in tiers:
            row = existing.get(tier.alias)
            if row is None:
                conn.execute(
                    table.insert().values(
                        mount=mount,
                        alias=tier.alias,
                        uri=tier.uri,
                        quota_bytes=tier.quota,
                        reserved_bytes=0,
                        hits=0,
                        misses=0,
                        updated_at=now,
                    )
                )
            elif row.quota_bytes != tier.quota or row.uri != tier.uri:
                conn.execute(
                    table.update()
                    .where(table.c.mount == mount, table.c.alias == tier.alias)
                    .values(quota_bytes=tier.quota, uri=tier.uri, updated_at=now)
                )

    def record_miss(self, mount: str, tier: str) -> None:
        tiers = self.t.tiers
        with self.write() as conn:
            conn.execute(
                tiers.update()
                .where(tiers.c.mount == mount, tiers.c.alias == tier)
                .values(misses=tiers.c.misses + 1)
            )

    def touch(self, entry: CachedEntry, now: float) -> None:
        """Record a hit on ``entry`` (LRU position and counters)."""
        tiers, entries = self.t.tiers, self.t.entries
        with self.write() as conn:
            conn.execute(
                tiers.update()
                .where(tiers.c.mount == entry.mount, tiers.c.alias == entry.tier)
                .values(hits=tiers.c.hits + 1)
            )
            conn.execute(
                entries.update()
                .where(entries.c.id == entry.id)
                .values(hits=entries.c.hits + 1, last_access=now)
            )

    def record_hit(self, entry: CachedEntry, now: float) -> None:
        """Like :meth:`touch`, written a moment later in a batch (see :mod:`airflow_hybrid.cache.hits`).

        An in-memory SQLite catalog (one connection for all threads) records it at once instead.
        """
        if isinstance(self.engine.pool, sa.pool.StaticPool):
            self.touch(entry, now)
        else:
            self.hits.record(entry, now)

    def touch_many(self, hits: Sequence[tuple[CachedEntry, float]]) -> None:
        """Record hits in one transaction: per tier and per entry counters, and each entry's last access."""
        tiers, entries = self.t.tiers, self.t.entries
        per_tier: dict[tuple[str, str], int] = {}
        per_entry: dict[int, list] = {}
        for entry, now in hits:
            per_tier[entry.mount, entry.tier] = per_tier.get((entry.mount, entry.tier), 0) + 1
            count, last = per_entry.get(entry.id, (0, now))
            per_entry[entry.id] = [count + 1, max(last, now)]
        if not per_entry:
            return
        with self.write() as conn:
            conn.execute(
                tiers.update()
                .where(tiers.c.mount == sa.bindparam("b_mount"), tiers.c.alias == sa.bindparam("b_tier"))
                .values(hits=tiers.c.hits + sa.bindparam("b_n")),
                [{"b_mount": m, "b_tier": t, "b_n": n} for (m, t), n in sorted(per_tier.items())],
            )
            at = sa.bindparam("b_at")
            conn.execute(
                entries.update()
                .where(entries.c.id == sa.bindparam("b_id"))
                .values(
                    hits=entries.c.hits + sa.bindparam("b_n"),
                    last_access=sa.case((entries.c.last_access < at, at), else_=entries.c.last_access),
                ),
                [{"b_id": i, "b_n": n, "b_at": last} for i, (n, last) in sorted(per_entry.items())],
            )

    # -- entries ------------------------------------------------------------------------------------
    def get(self, mount: str, path: str) -> CachedEntry | None:
        entries = self.t.entries
        with self.read() as conn:
            row = conn.execute(
                sa.select(entries).where(entries.c.mount == mount, entries.c.path == path)
            ).first()
        return CachedEntry.from_row(row._mapping) if row else None

    def iter_entries(self, mount: str, prefix: str = "", state: str | None = None) -> Iterator[CachedEntry]:
        """Entries of ``mount`` under ``prefix`` (a file or directory; ``""`` = all), paged by path (byte-wise,
        along the path index: a page reads only its own rows)."""
        entries = self.t.entries
        key = self._bytewise(entries.c.path)
        last: str | None = None
        while True:
            stmt = (
                sa.select(entries)
                .where(entries.c.mount == mount, self._under(entries.c.path, prefix))
                .order_by(key)
                .limit(_BATCH)
            )
            if last is not None:
                stmt = stmt.where(key > last)
            if state:
                stmt = stmt.where(entries.c.state == state)
            with self.read() as conn:
                rows = conn.execute(stmt).all()
            for row in rows:
                yield CachedEntry.from_row(row._mapping)
            if len(rows) < _BATCH:
                return
            last = rows[-1].path

    def claim(
        self,
        mount: str,
        path: str,
        *,
        tier: TierConfig,
        location: str,
        size: int,
        source_member: str,
        source_uri: str | None,
        source: SourceFingerprint,
        loader_id: str,
        lease_until: float,
        now: float,
        ttl: float | None = None,
    ) -> Claim:
        """Atomically claim ``path`` for loading into ``tier``, reserving ``size`` bytes (evicting if needed).

        Eviction starts when the tier would pass its high watermark and frees TTL-expired, then least recently
        used unpinned entries until the tier plus this file is under the low watermark (or nothing is left to
        evict), at most a page of them (500) beyond what the file needs to fit the quota: the claim's
        transaction stays short however large the tier, and the next claims (or :meth:`evict`) go on. The claim is refused (``no_space``, nothing changed) when the file still does not fit the quota.
        """
        self.hits.flush()  # eviction order depends on them
        entries, pins = self.t.entries, self.t.pins
        try:
            with self.write() as conn:
                tiers = self._lock_tiers(conn, mount)
                tier_row = tiers.get(tier.alias)
                if tier_row is None:
                    raise CacheError(
                        f"tier {tier.alias!r} of mount {mount!r} is not in the catalog (sync_tiers first)"
                    )
                trashed: list[TrashItem] = []
                row = conn.execute(
                    sa.select(entries)
                    .where(entries.c.mount == mount, entries.c.path == path)
                    .with_for_update()
                ).first()
                if row is not None:
                    if row.state == READY:
                        return Claim(Claim.EXISTS, CachedEntry.from_row(row._mapping))
                    if row.lease_expires_at is not None and row.lease_expires_at > now:
                        return Claim(Claim.BUSY, CachedEntry.from_row(row._mapping))
                    log.info("reclaiming %s:%s, abandoned by loader %s", mount, path, row.loader_id)
                    trashed.append(self._trash(conn, row, now))
                if size > tier.quota:
                    raise _NoSpace(f"{size} bytes do not fit tier {tier.alias!r} (quota {tier.quota} bytes)")
                used = tier_row.reserved_bytes
                if row is not None and row.tier == tier.alias:
                    used -= row.size
                if used + size > tier.high_bytes:
                    victims = self._evict(
                        conn,
                        mount,
                        tier.alias,
                        now,
                        used,
                        lambda u: u + size <= tier.low_bytes,
                        limit=_BATCH,
                        fits=lambda u: u + size <= tier.quota,
                    )
                    trashed.extend(item for item, _ in victims)
                    used -= sum(freed for _, freed in victims)
                if used + size > tier.quota:
                    raise _NoSpace(
                        f"tier {tier.alias!r} is full: {used} of {tier.quota} bytes used by pinned or loading "
                        f"entries, {size} more needed"
                    )
                pinned = (
                    conn.execute(
                        sa.select(pins.c.path).where(pins.c.mount == mount, pins.c.path == path)
                    ).first()
                    is not None
                )
                result = conn.execute(
                    entries.insert().values(
                        mount=mount,
                        path=path,
                        tier=tier.alias,
                        location=location,
                        source_member=source_member,
                        source_uri=source_uri,
                        source_size=source.size,
                        source_mtime=source.mtime,
                        source_etag=source.etag,
                        size=size,
                        pinned=pinned,
                        ttl=ttl,
                        expires_at=None if ttl is None else now + ttl,
                        created_at=now,
                        last_access=now,
                        last_synced_at=now,
                        hits=0,
                        state=LOADING,
                        loader_id=loader_id,
                        lease_expires_at=lease_until,
                    )
                )
                self._add_counts(conn, mount, tier.alias, reserved_bytes=size, loading_files=1)
                entry_id = result.inserted_primary_key[0]
                new = conn.execute(sa.select(entries).where(entries.c.id == entry_id)).one()
                return Claim(Claim.CLAIMED, CachedEntry.from_row(new._mapping), tuple(trashed))
        except _NoSpace as err:
            return Claim(Claim.NO_SPACE, reason=str(err))
        except sa.exc.IntegrityError:  # another mount-level writer won the race on (mount, path)
            return Claim(Claim.BUSY)

    def heartbeat(self, entry_id: int, loader_id: str, lease_until: float) -> bool:
        """Extend a loader's lease; ``False`` when the claim was lost (reclaimed or invalidated)."""
        entries = self.t.entries
        with self.write() as conn:
            result = conn.execute(
                entries.update()
                .where(entries.c.id == entry_id, entries.c.loader_id == loader_id, entries.c.state == LOADING)
                .values(lease_expires_at=lease_until)
            )
        return result.rowcount == 1

    def complete(self, entry_id: int, loader_id: str, size: int, now: float) -> CachedEntry | None:
        """Mark a loaded entry ``ready`` with its verified ``size``; ``None`` when the claim was lost."""
        entries, pins = self.t.entries, self.t.pins
        with self.write() as conn:
            row = self._locked_claim(conn, entry_id, loader_id)
            if row is None:
                return None
            pinned = (
                conn.execute(
                    sa.select(pins.c.path).where(pins.c.mount == row.mount, pins.c.path == row.path)
                ).first()
                is not None
            )
            self._add_counts(
                conn,
                row.mount,
                row.tier,
                reserved_bytes=size - row.size,
                loading_files=-1,
                ready_files=1,
                ready_bytes=size,
                pinned_bytes=size if pinned else 0,
            )
            conn.execute(
                entries.update()
                .where(entries.c.id == entry_id)
                .values(
                    state=READY,
                    size=size,
                    pinned=pinned,
                    lease_expires_at=None,
                    last_access=now,
                    last_synced_at=now,
                )
            )
            new = conn.execute(sa.select(entries).where(entries.c.id == entry_id)).one()
        return CachedEntry.from_row(new._mapping)

    def abandon(self, entry_id: int, loader_id: str, now: float) -> TrashItem | None:
        """Give up a claim: the entry goes to the trash. ``None`` when the claim was already lost."""
        with self.write() as conn:
            row = self._locked_claim(conn, entry_id, loader_id)
            return None if row is None else self._trash(conn, row, now)

    def _locked_claim(self, conn: Connection, entry_id: int, loader_id: str) -> sa.Row | None:
        """The ``loading`` row ``entry_id`` if ``loader_id`` still owns it, read after locking its tiers."""
        entries = self.t.entries
        mount = conn.execute(sa.select(entries.c.mount).where(entries.c.id == entry_id)).scalar()
        if mount is None:
            return None
        self._lock_tiers(conn, mount)
        row = conn.execute(sa.select(entries).where(entries.c.id == entry_id).with_for_update()).first()
        if row is None or row.loader_id != loader_id or row.state != LOADING:
            return None
        return row

    def mark_synced(self, entry_id: int, now: float) -> None:
        self.mark_synced_many([entry_id], now)

    def mark_synced_many(self, entry_ids: Iterable[int], now: float) -> None:
        """Record that the source fingerprints of these entries were verified at ``now``."""
        entries = self.t.entries
        ids = list(entry_ids)
        for start in range(0, len(ids), _BATCH):
            with self.write() as conn:
                conn.execute(
                    entries.update()
                    .where(entries.c.id.in_(ids[start : start + _BATCH]))
                    .values(last_synced_at=now)
                )

    def drop(
        self, mount: str, entry_ids: Iterable[int], now: float, *, include_loading: bool = False
    ) -> list[TrashItem]:
        """Move the given entries (ready ones, and loading ones when asked) to the trash."""
        entries = self.t.entries
        ids = list(entry_ids)
        states = (READY, LOADING) if include_loading else (READY,)
        trashed: list[TrashItem] = []
        for start in range(0, len(ids), _BATCH):
            with self.write() as conn:
                self._lock_tiers(conn, mount)
                rows = conn.execute(
                    sa.select(entries).where(
                        entries.c.mount == mount,
                        entries.c.id.in_(ids[start : start + _BATCH]),
                        entries.c.state.in_(states),
                    )
                ).all()
                trashed += self._trash_many(conn, rows, now)
        return trashed

    def evict(self, mount: str, tier: TierConfig, now: float, *, force: bool = False) -> list[TrashItem]:
        """When ``tier`` is past its high watermark (or ``force``), free entries until under the low watermark."""
        self.hits.flush()
        trashed: list[TrashItem] = []
        while True:  # one bounded batch per transaction: other writers get their turn in between
            with self.write() as conn:
                tier_row = self._lock_tiers(conn, mount).get(tier.alias)
                if tier_row is None:
                    break
                used = tier_row.reserved_bytes
                if not trashed and used <= tier.high_bytes and not force:
                    break
                victims = self._evict(
                    conn, mount, tier.alias, now, used, lambda u: u <= tier.low_bytes, limit=_BATCH
                )
            trashed.extend(item for item, _ in victims)
            if len(victims) < _BATCH:
                break
        return trashed

    def _evict(self, conn, mount, alias, now, used, done, limit=None, fits=None) -> list[tuple[TrashItem, int]]:
        """Trash victims in eviction order until ``done(used)``, or ``limit`` of them once ``fits(used)`` (when
        given): TTL-expired first, then LRU unpinned; each a page read along an index (expiry, then LRU),
        never a sort of the tier."""
        entries = self.t.entries
        ready = (entries.c.mount == mount, entries.c.state == READY, ~self._leased(mount, now))
        expired = (
            sa.select(entries)
            .where(*ready, entries.c.expires_at <= now, entries.c.tier == alias)
            .order_by(entries.c.last_access, entries.c.id)
            .limit(_BATCH)
        )
        lru = (
            sa.select(entries)
            .where(*ready, entries.c.tier == alias, entries.c.pinned == sa.false())
            .order_by(entries.c.last_access, entries.c.id)
            .limit(_BATCH)
        )
        victims: list[tuple[TrashItem, int]] = []
        page: list[sa.Row] = []

        def more() -> bool:
            if done(used):
                return False
            if limit is None or len(victims) + len(page) < limit:
                return True
            return fits is not None and not fits(used)

        for stmt in (expired, lru):
            while more():
                rows = conn.execute(stmt).all()
                page = []
                for row in rows:
                    if not more():
                        break
                    page.append(row)
                    used -= row.size
                victims += [(item, item.size) for item in self._trash_many(conn, page, now)]
                if len(rows) < _BATCH:
                    break
        if victims:
            log.info("evicting %d entries from tier %s of mount %s", len(victims), alias, mount)
        return victims

    def expire(self, mount: str, now: float) -> list[TrashItem]:
        """Trash every entry whose TTL has passed (pinned ones too: the TTL bounds the pin) and its pin."""
        self.hits.flush()
        entries, pins = self.t.entries, self.t.pins
        trashed: list[TrashItem] = []
        while True:
            with self.write() as conn:
                self._lock_tiers(conn, mount)
                rows = conn.execute(
                    sa.select(entries)
                    .where(
                        entries.c.mount == mount,
                        entries.c.state == READY,
                        entries.c.expires_at.is_not(None),
                        entries.c.expires_at <= now,
                    )
                    .limit(_BATCH)
                ).all()
                trashed += self._trash_many(conn, rows, now)
                paths = (pins.c.mount == mount, pins.c.path.in_([row.path for row in rows]))
                for tier, size in self._pinned_sums(conn, pins, *paths).items():
                    self._add_counts(conn, mount, tier, pin_bytes=-size)
                conn.execute(pins.delete().where(*paths))
            if len(rows) < _BATCH:
                return trashed

    def reclaim_expired(self, mount: str, now: float) -> list[TrashItem]:
        """Trash ``loading`` entries whose loader's lease has expired (a crashed or stuck worker)."""
        with self.write() as conn:
            self._lock_tiers(conn, mount)
            return self._reclaim_expired(conn, mount, now)

    def _reclaim_expired(self, conn: Connection, mount: str, now: float) -> list[TrashItem]:
        entries = self.t.entries
        rows = conn.execute(
            sa.select(entries).where(
                entries.c.mount == mount,
                entries.c.state == LOADING,
                sa.or_(entries.c.lease_expires_at.is_(None), entries.c.lease_expires_at <= now),
            )
        ).all()
        return self._trash_many(conn, rows, now)

    def trash_items(self, mount: str) -> list[TrashItem]:
        with self.read() as conn:
            return self._trash_items(conn, mount)

    def _trash_items(self, conn: Connection, mount: str) -> list[TrashItem]:
        trash = self.t.trash
        rows = conn.execute(sa.select(trash).where(trash.c.mount == mount).order_by(trash.c.id)).all()
        return [TrashItem(r.id, r.mount, r.tier, r.location, path=r.path) for r in rows]

    def forget_trash(self, ids: Iterable[int]) -> None:
        """Delete trash rows whose physical copies are gone."""
        trash = self.t.trash
        ids = list(ids)
        for start in range(0, len(ids), _BATCH):
            with self.write() as conn:
                conn.execute(trash.delete().where(trash.c.id.in_(ids[start : start + _BATCH])))

    # -- leases -------------------------------------------------------------------------------------
    def _leased(self, mount: str, now: float) -> sa.ColumnElement:
        """``EXISTS`` an active lease of ``mount`` covering the entry row at hand (a correlated subquery)."""
        entries, leases = self.t.entries, self.t.leases
        below = sa.func.substr(entries.c.path, 1, sa.func.length(leases.c.path) + 1) == leases.c.path + "/"
        return (
            sa.select(leases.c.id)
            .where(
                leases.c.mount == mount,
                leases.c.expires_at > now,
                sa.or_(leases.c.path == "", leases.c.path == entries.c.path, below),
            )
            .correlate(entries)
            .exists()
        )

    def add_lease(self, mount: str, path: str, holder: str, lease_id: str, now: float, expires_at: float) -> Lease:
        """Store a lease on the copies under ``path`` (a file, a directory, ``""`` = the whole mount)."""
        leases = self.t.leases
        with self.write() as conn:
            conn.execute(
                leases.insert().values(
                    id=lease_id, mount=mount, path=path, holder=holder, created_at=now, expires_at=expires_at
                )
            )
        return Lease(lease_id, mount, path, holder, expires_at)

    def renew_lease(self, lease_id: str, expires_at: float) -> bool:
        """Move a lease's end to ``expires_at``; ``False`` when it is gone (released, or forgotten expired)."""
        leases = self.t.leases
        with self.write() as conn:
            result = conn.execute(leases.update().where(leases.c.id == lease_id).values(expires_at=expires_at))
        return result.rowcount == 1

    def remove_lease(self, lease_id: str) -> bool:
        leases = self.t.leases
        with self.write() as conn:
            return conn.execute(leases.delete().where(leases.c.id == lease_id)).rowcount == 1

    def active_leases(self, mount: str, now: float) -> list[Lease]:
        """The leases of ``mount`` not expired at ``now``."""
        leases = self.t.leases
        with self.read() as conn:
            rows = conn.execute(
                sa.select(leases).where(leases.c.mount == mount, leases.c.expires_at > now).order_by(leases.c.id)
            ).all()
        return [Lease(r.id, r.mount, r.path, r.holder, r.expires_at) for r in rows]

    def forget_expired_leases(self, mount: str, now: float) -> int:
        with self.write() as conn:
            return self._forget_expired_leases(conn, mount, now)

    def _forget_expired_leases(self, conn: Connection, mount: str, now: float) -> int:
        leases = self.t.leases
        return conn.execute(leases.delete().where(leases.c.mount == mount, leases.c.expires_at <= now)).rowcount

    # -- pins ---------------------------------------------------------------------------------------
    def pin(
        self,
        mount: str,
        requests: Iterable[PinRequest],
        tiers: dict[str, TierConfig],
        default_tier: str,
        now: float,
    ) -> tuple[int, int]:
        """Pin paths atomically; returns ``(newly pinned files, their bytes)``.

        A cached file is pinned where it is; an uncached one (its ``size`` given) is pinned into its requested
        tier, ahead of loading. Every tier's pinned bytes must stay within its quota, or
        :class:`CacheQuotaError` is raised and nothing changes.
        """
        entries, pins = self.t.entries, self.t.pins
        added: dict[str, int] = {}
        count = 0
        with self.write() as conn:
            tier_rows = self._lock_tiers(conn, mount)
            for request in requests:
                if conn.execute(
                    sa.select(pins.c.path).where(pins.c.mount == mount, pins.c.path == request.path)
                ).first():
                    continue
                row = conn.execute(
                    sa.select(entries.c.id, entries.c.tier, entries.c.size, entries.c.state, entries.c.pinned).where(
                        entries.c.mount == mount, entries.c.path == request.path
                    )
                ).first()
                if row is not None:
                    tier, size = row.tier, row.size
                    conn.execute(entries.update().where(entries.c.id == row.id).values(pinned=True))
                    if row.state == READY and not row.pinned:
                        self._add_counts(conn, mount, tier, pinned_bytes=size)
                elif request.size is None:
                    raise CacheError(
                        f"cannot pin {mount}:{request.path}: not cached, and no size given to reserve"
                    )
                else:
                    tier, size = request.tier or default_tier, int(request.size)
                conn.execute(
                    pins.insert().values(mount=mount, path=request.path, tier=tier, size=size, created_at=now)
                )
                added[tier] = added.get(tier, 0) + size
                count += 1
            for alias, extra in added.items():
                self._add_counts(conn, mount, alias, pin_bytes=extra)
                if alias in tier_rows:
                    pinned = tier_rows[alias].pin_bytes + extra
                else:  # no tier row to count them in
                    pinned = self._pinned_sums(conn, pins, pins.c.mount == mount, pins.c.tier == alias).get(alias, 0)
                quota = tiers[alias].quota if alias in tiers else 0
                if pinned > quota:
                    raise CacheQuotaError(
                        f"cannot pin {extra} more bytes in tier {alias!r} of mount {mount!r}: pinned data would "
                        f"total {pinned} bytes, over the tier's quota of {quota} bytes; nothing was pinned"
                    )
        return count, sum(added.values())

    def unpin(self, mount: str, prefix: str) -> int:
        """Remove the pins on ``prefix`` (a file, a directory, or ``""`` for all); returns how many."""
        entries, pins = self.t.entries, self.t.pins
        with self.write() as conn:
            self._lock_tiers(conn, mount)
            self._forget_pins(
                conn,
                mount,
                (pins.c.mount == mount, self._under(pins.c.path, prefix)),
                (entries.c.mount == mount, entries.c.pinned == sa.true(), self._under(entries.c.path, prefix)),
            )
            removed = conn.execute(
                pins.delete().where(pins.c.mount == mount, self._under(pins.c.path, prefix))
            )
            conn.execute(
                entries.update()
                .where(
                    entries.c.mount == mount,
                    entries.c.pinned == sa.true(),
                    self._under(entries.c.path, prefix),
                )
                .values(pinned=False)
            )
        return removed.rowcount

    def _forget_pins(self, conn: Connection, mount: str, pin_rows: tuple, entry_rows: tuple) -> None:
        """Take the pins matching ``pin_rows`` and the pinned entries matching ``entry_rows`` (about to be
        deleted and unpinned) from their tiers' counters."""
        entries, pins = self.t.entries, self.t.pins
        for tier, size in self._pinned_sums(conn, pins, *pin_rows).items():
            self._add_counts(conn, mount, tier, pin_bytes=-size)
        for tier, size in self._pinned_sums(conn, entries, *entry_rows, entries.c.state == READY).items():
            self._add_counts(conn, mount, tier, pinned_bytes=-size)

    def unpin_paths(self, mount: str, paths: Sequence[str]) -> int:
        """Remove the pins on exactly ``paths``; returns how many there were."""
        entries, pins = self.t.entries, self.t.pins
        with self.write() as conn:
            self._lock_tiers(conn, mount)
            self._forget_pins(
                conn,
                mount,
                (pins.c.mount == mount, pins.c.path.in_(paths)),
                (entries.c.mount == mount, entries.c.pinned == sa.true(), entries.c.path.in_(paths)),
            )
            removed = conn.execute(pins.delete().where(pins.c.mount == mount, pins.c.path.in_(paths)))
            conn.execute(
                entries.update()
                .where(entries.c.mount == mount, entries.c.path.in_(paths))
                .values(pinned=False)
            )
        return removed.rowcount

    def iter_pinned_paths(self, mount: str, prefix: str = "") -> Iterator[str]:
        """Pinned logical paths of ``mount`` under ``prefix`` (cached or not yet loaded), paged by path."""
        pins = self.t.pins
        last = None
        while True:
            stmt = (
                sa.select(pins.c.path)
                .where(pins.c.mount == mount, self._under(pins.c.path, prefix))
                .order_by(pins.c.path)
                .limit(_BATCH)
            )
            if last is not None:
                stmt = stmt.where(pins.c.path > last)
            with self.read() as conn:
                paths = list(conn.execute(stmt).scalars())
            yield from paths
            if len(paths) < _BATCH:
                return
            last = paths[-1]

    # -- listings -----------------------------------------------------------------------------------
    def listing(self, mount: str, path: str, synced_after: float | None) -> list[FileInfo] | None:
        """The stored listing of directory ``path`` if its members were listed after ``synced_after``
        (``None``: whenever), else ``None``. Entries are sorted by name; their paths are logical."""
        listings, items = self.t.listings, self.t.listing_entries
        with self.read() as conn:
            row = conn.execute(
                sa.select(listings.c.id, listings.c.synced_at).where(
                    listings.c.mount == mount, listings.c.path == path
                )
            ).first()
            if row is None or (synced_after is not None and row.synced_at <= synced_after):
                return None
            rows = conn.execute(
                sa.select(items).where(items.c.listing_id == row.id).order_by(items.c.name)
            ).all()
        prefix = f"{path}/" if path else ""
        return [
            FileInfo(path=prefix + r.name, size=r.size, mtime=r.mtime, is_dir=bool(r.is_dir), etag=r.etag)
            for r in rows
        ]

    def store_listing(self, mount: str, path: str, entries: Sequence[FileInfo], synced_at: float) -> None:
        """Replace the stored listing of directory ``path`` with ``entries`` (listed at ``synced_at``)."""
        listings, items = self.t.listings, self.t.listing_entries
        with self.write() as conn:
            self._lock_tiers(conn, mount)  # serialises writers of the mount (see the module doc)
            self._delete_listings(conn, listings.c.mount == mount, listings.c.path == path)
            listing_id = conn.execute(
                listings.insert().values(mount=mount, path=path, synced_at=synced_at)
            ).inserted_primary_key[0]
            rows = [
                {
                    "listing_id": listing_id,
                    "name": e.name,
                    "is_dir": bool(e.is_dir),
                    "size": int(e.size),
                    "mtime": float(e.mtime),
                    "etag": e.etag,
                }
                for e in entries
            ]
            for start in range(0, len(rows), _BATCH):
                conn.execute(items.insert(), rows[start : start + _BATCH])

    def forget_listings(self, mount: str, path: str) -> None:
        """Forget the stored listings that a change of ``path`` makes stale: its parent's, its own and those
        of the directories under it."""
        listings = self.t.listings
        parent = path.rpartition("/")[0]
        with self.write() as conn:
            self._lock_tiers(conn, mount)
            stale = sa.or_(listings.c.path == parent, self._under(listings.c.path, path))
            self._delete_listings(conn, listings.c.mount == mount, stale)

    def _delete_listings(self, conn: Connection, *where: sa.ColumnElement) -> None:
        listings, items = self.t.listings, self.t.listing_entries
        ids = list(conn.execute(sa.select(listings.c.id).where(*where)).scalars())
        for start in range(0, len(ids), _BATCH):
            batch = ids[start : start + _BATCH]
            conn.execute(items.delete().where(items.c.listing_id.in_(batch)))
            conn.execute(listings.delete().where(listings.c.id.in_(batch)))

    # -- reporting ----------------------------------------------------------------------------------
    def usage(self, mount: str) -> list[TierUsage]:
        """Per-tier figures of ``mount`` (none when the catalog has no tables yet): the tier rows' counters,
        and each tier's oldest entry along the creation index (no entry is counted here)."""
        if self.schema_version == 0:
            return []
        self.hits.flush()
        tiers, entries = self.t.tiers, self.t.entries
        result = []
        with self.read() as conn:
            for tier in conn.execute(sa.select(tiers).where(tiers.c.mount == mount).order_by(tiers.c.alias)).all():
                oldest = conn.execute(
                    sa.select(entries.c.path, entries.c.created_at)
                    .where(entries.c.mount == mount, entries.c.tier == tier.alias, entries.c.state == READY)
                    .order_by(entries.c.created_at, entries.c.id)
                    .limit(1)
                ).first()
                result.append(
                    TierUsage(
                        alias=tier.alias,
                        uri=tier.uri,
                        quota=tier.quota_bytes,
                        reserved=tier.reserved_bytes,
                        hits=tier.hits,
                        misses=tier.misses,
                        files=tier.ready_files,
                        ready_bytes=tier.ready_bytes,
                        loading=tier.loading_files,
                        pinned_bytes=tier.pinned_bytes,
                        pin_intent_bytes=tier.pin_bytes,
                        oldest_path=oldest.path if oldest else None,
                        oldest_created_at=oldest.created_at if oldest else None,
                    )
                )
        return result
