"""Catalog tables (SQLAlchemy Core) and their versioned schema upgrades.

The schema is created and upgraded by the code, never by hand. ``<prefix>schema_version`` holds one row with
the version the database is at; :data:`UPGRADES` lists the steps that bring it from one version to the next,
in order. :func:`upgrade` runs the missing steps in one write transaction (serialised across processes by
``BEGIN IMMEDIATE`` in SQLite and a transaction-level advisory lock in PostgreSQL), so two workers opening a
fresh catalog at once apply each step exactly once.

To change the schema: add a step ``_vN`` at the end of :data:`UPGRADES` (never edit a released step), and
update :func:`build_tables` to describe the resulting tables, which the rest of the code queries.

Versions:

1. ``tiers`` (one row per mount and tier: quota and reserved bytes, hit and miss counters), ``entries``
   (one row per cached file, unique per mount and logical path) and ``trash`` (copies being deleted).
2. ``pins`` (pin intents per logical path with the bytes they hold against the tier's quota, so a file can
   be pinned before it is loaded) and ``entries.last_synced_at`` (when the source fingerprint was last
   verified; back-filled with ``created_at``).
3. ``listings`` (one row per listed directory of a mount with the time its members were listed) and
   ``listing_entries`` (the merged entries of that listing), for ``cache.listing_sync_interval``.
4. ``leases`` (one row per lease: a holder keeps the copies under a logical path from being physically
   deleted until ``expires_at``) and ``trash.path`` (the logical path of a trashed copy, so a purge can tell
   which copies a lease protects; ``NULL`` for rows trashed before).
5. Indexes for catalogs of millions of entries (no query scans a mount's entries): the LRU index becomes
   ``(mount, tier, state, pinned, last_access, id, size)`` (eviction walks unpinned entries in LRU order;
   the report's per-tier counts and sums read the index alone), plus ``(mount, state, expires_at)`` (expiry,
   abandoned loads), ``(mount, state, size)`` (the largest entries), ``(mount, tier, state, created_at)``
   (the oldest entry) and, in PostgreSQL, ``(mount, path COLLATE "C")`` (the entries under a directory,
   a byte-wise range whatever the database's collation).
6. Per-tier counters kept with the rows they count, so the report reads no entry: ``tiers.ready_files``,
   ``ready_bytes``, ``pinned_bytes`` (ready pinned entries), ``loading_files`` and ``pin_bytes`` (the bytes
   of the tier's pins, checked against the quota by every pin); back-filled from the entries and pins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

DEFAULT_TABLE_PREFIX = "hybrid_cache_"
#: Advisory lock key taken while upgrading a PostgreSQL catalog ("hybrd" in ASCII).
_PG_UPGRADE_LOCK = 0x6879627264

# Entry states: a row is created ``loading`` by the one process allowed to fill it (its claim, renewed by
# heartbeats until ``lease_expires_at``) and becomes ``ready`` once the copy is complete and verified. Dropping
# an entry moves it, in one transaction, from ``entries`` to ``trash`` (releasing its reserved bytes); the
# physical copy is deleted afterwards and then the trash row, so a crash in between leaves a trash row that
# the next recovery finishes.
LOADING = "loading"
READY = "ready"


@dataclass(frozen=True)
class Tables:
    """The current schema's tables for one table prefix."""

    metadata: sa.MetaData
    schema_version: sa.Table
    tiers: sa.Table
    entries: sa.Table
    trash: sa.Table
    pins: sa.Table
    listings: sa.Table
    listing_entries: sa.Table
    leases: sa.Table


def _version_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    return sa.Table(f"{prefix}schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))


def _id_column() -> sa.Column:
    """An auto-incremented 64-bit key (``INTEGER`` in SQLite, where only that type aliases the rowid)."""
    return sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True
    )


def _tiers_v1(metadata: sa.MetaData, prefix: str, extra: list[sa.Column] | None = None) -> sa.Table:
    return sa.Table(
        f"{prefix}tiers",
        metadata,
        sa.Column("mount", sa.String(250), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("uri", sa.String(2000), nullable=False),
        sa.Column("quota_bytes", sa.BigInteger, nullable=False),
        # Sum of ``size`` over the tier's loading and ready entries; changed only together with those rows.
        sa.Column("reserved_bytes", sa.BigInteger, nullable=False, default=0),
        sa.Column("hits", sa.BigInteger, nullable=False, default=0),
        sa.Column("misses", sa.BigInteger, nullable=False, default=0),
        sa.Column("updated_at", sa.Float, nullable=False),
        *(extra or []),
    )


#: The tier counters added by version 6, each the aggregate over the tier's rows it is kept equal to.
TIER_COUNTERS = ("ready_files", "ready_bytes", "pinned_bytes", "loading_files", "pin_bytes")


def _tier_counter_columns() -> list[sa.Column]:
    return [sa.Column(name, sa.BigInteger, nullable=False, default=0) for name in TIER_COUNTERS]


def _entries_columns_v1() -> list[sa.Column]:
    return [
        _id_column(),
        sa.Column("mount", sa.String(250), nullable=False),
        sa.Column("path", sa.String(4000), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        # Location of the copy inside the tier's store (see airflow_hybrid.cache.tier for the layout).
        sa.Column("location", sa.String(4000), nullable=False),
        sa.Column("source_member", sa.String(250), nullable=False),
        sa.Column("source_uri", sa.String(4000), nullable=True),
        sa.Column("source_size", sa.BigInteger, nullable=False),
        sa.Column("source_mtime", sa.Float, nullable=False),
        # The source's ETag or checksum when it has one.
        sa.Column("source_etag", sa.String(512), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("pinned", sa.Boolean, nullable=False, default=False),
        sa.Column("ttl", sa.Float, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_access", sa.Float, nullable=False),
        sa.Column("hits", sa.BigInteger, nullable=False, default=0),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("loader_id", sa.String(64), nullable=True),
        sa.Column("lease_expires_at", sa.Float, nullable=True),
    ]


def _entries_table(metadata: sa.MetaData, prefix: str, extra: list[sa.Column], *, v5: bool = False) -> sa.Table:
    """The entries table; with ``v5`` its indexes since version 5 (:func:`_entries_indexes_v5`)."""
    table = sa.Table(
        f"{prefix}entries",
        metadata,
        *_entries_columns_v1(),
        *extra,
        sa.UniqueConstraint("mount", "path", name=f"{prefix}entries_mount_path_uq"),
    )
    if v5:
        _entries_indexes_v5(table, prefix)
    else:
        sa.Index(f"{prefix}entries_lru_ix", table.c.mount, table.c.tier, table.c.state, table.c.last_access)
    return table


def _entries_indexes_v5(table: sa.Table, prefix: str) -> list[sa.Index]:
    """The indexes of ``entries`` since version 5 (attached to ``table``); the byte-wise path index is
    PostgreSQL's only (SQLite compares text byte-wise, so the unique index serves there)."""
    c = table.c
    return [
        sa.Index(f"{prefix}entries_lru2_ix", c.mount, c.tier, c.state, c.pinned, c.last_access, c.id, c.size),
        sa.Index(f"{prefix}entries_expiry_ix", c.mount, c.state, c.expires_at),
        sa.Index(f"{prefix}entries_size_ix", c.mount, c.state, c.size),
        sa.Index(f"{prefix}entries_created_ix", c.mount, c.tier, c.state, c.created_at),
        sa.Index(f"{prefix}entries_path_c_ix", c.mount, c.path.collate("C")).ddl_if(dialect="postgresql"),
    ]


def _trash_table(metadata: sa.MetaData, prefix: str, extra: list[sa.Column] | None = None) -> sa.Table:
    return sa.Table(
        f"{prefix}trash",
        metadata,
        _id_column(),
        sa.Column("mount", sa.String(250), nullable=False),
        sa.Column("tier", sa.String(64), nullable=False),
        sa.Column("location", sa.String(4000), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        *(extra or []),
    )


def _pins_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    return sa.Table(
        f"{prefix}pins",
        metadata,
        sa.Column("mount", sa.String(250), primary_key=True),
        sa.Column("path", sa.String(4000), primary_key=True),
        sa.Column("tier", sa.String(64), nullable=False),
        # Bytes this pin holds against the tier's quota (the file's size when pinned).
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Index(f"{prefix}pins_tier_ix", "mount", "tier"),
    )


def _listings_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    return sa.Table(
        f"{prefix}listings",
        metadata,
        _id_column(),
        sa.Column("mount", sa.String(250), nullable=False),
        # Logical directory ("" = the mount's root).
        sa.Column("path", sa.String(4000), nullable=False),
        # When the members were listed.
        sa.Column("synced_at", sa.Float, nullable=False),
        sa.UniqueConstraint("mount", "path", name=f"{prefix}listings_mount_path_uq"),
    )


def _listing_entries_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    return sa.Table(
        f"{prefix}listing_entries",
        metadata,
        sa.Column(
            "listing_id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            sa.ForeignKey(f"{prefix}listings.id"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(1000), primary_key=True),
        sa.Column("is_dir", sa.Boolean, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime", sa.Float, nullable=False),
        sa.Column("etag", sa.String(512), nullable=True),
    )


def _leases_table(metadata: sa.MetaData, prefix: str) -> sa.Table:
    return sa.Table(
        f"{prefix}leases",
        metadata,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("mount", sa.String(250), nullable=False),
        # Logical file or directory whose copies the lease protects ("" = the whole mount).
        sa.Column("path", sa.String(4000), nullable=False),
        sa.Column("holder", sa.String(250), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Index(f"{prefix}leases_mount_ix", "mount", "expires_at"),
    )


def build_tables(prefix: str = DEFAULT_TABLE_PREFIX) -> Tables:
    """The tables at the latest schema version."""
    metadata = sa.MetaData()
    return Tables(
        metadata=metadata,
        schema_version=_version_table(metadata, prefix),
        tiers=_tiers_v1(metadata, prefix, _tier_counter_columns()),
        entries=_entries_table(
            metadata, prefix, [sa.Column("last_synced_at", sa.Float, nullable=True)], v5=True
        ),
        trash=_trash_table(metadata, prefix, [sa.Column("path", sa.String(4000), nullable=True)]),
        pins=_pins_table(metadata, prefix),
        listings=_listings_table(metadata, prefix),
        listing_entries=_listing_entries_table(metadata, prefix),
        leases=_leases_table(metadata, prefix),
    )


# -- upgrade steps: each brings the schema from version N-1 to N; never edit a released step ---------------
def _v1(conn: Connection, prefix: str) -> None:
    metadata = sa.MetaData()
    _tiers_v1(metadata, prefix)
    _entries_table(metadata, prefix, [])
    _trash_table(metadata, prefix)
    metadata.create_all(conn)


def _v2(conn: Connection, prefix: str) -> None:
    metadata = sa.MetaData()
    _pins_table(metadata, prefix).create(conn)
    double = sa.Float().compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {prefix}entries ADD COLUMN last_synced_at {double}"))
    conn.execute(sa.text(f"UPDATE {prefix}entries SET last_synced_at = created_at"))


def _v3(conn: Connection, prefix: str) -> None:
    metadata = sa.MetaData()
    _listings_table(metadata, prefix)
    _listing_entries_table(metadata, prefix)
    metadata.create_all(conn)


def _v4(conn: Connection, prefix: str) -> None:
    metadata = sa.MetaData()
    _leases_table(metadata, prefix).create(conn)
    text = sa.String(4000).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {prefix}trash ADD COLUMN path {text}"))


def _v5(conn: Connection, prefix: str) -> None:
    conn.execute(sa.text(f"DROP INDEX {prefix}entries_lru_ix"))
    table = sa.Table(f"{prefix}entries", sa.MetaData(), *_entries_columns_v1())
    for index in _entries_indexes_v5(table, prefix):
        if conn.dialect.name == "postgresql" or not index.name.endswith("_path_c_ix"):
            index.create(conn)


def _v6(conn: Connection, prefix: str) -> None:
    bigint = sa.BigInteger().compile(dialect=conn.dialect)
    for name in TIER_COUNTERS:
        conn.execute(sa.text(f"ALTER TABLE {prefix}tiers ADD COLUMN {name} {bigint} NOT NULL DEFAULT 0"))
    tiers = sa.table(f"{prefix}tiers", *(sa.column(n) for n in ("mount", "alias", *TIER_COUNTERS)))
    entries = sa.table(f"{prefix}entries", *(sa.column(n) for n in ("mount", "tier", "state", "size", "pinned")))
    pins = sa.table(f"{prefix}pins", *(sa.column(n) for n in ("mount", "tier", "size")))

    def total(value: sa.ColumnElement, table: sa.TableClause, *where: sa.ColumnElement) -> sa.ScalarSelect:
        return (
            sa.select(sa.func.coalesce(sa.func.sum(value), 0))
            .where(table.c.mount == tiers.c.mount, table.c.tier == tiers.c.alias, *where)
            .scalar_subquery()
        )

    ready, loading = entries.c.state == READY, entries.c.state == LOADING
    conn.execute(
        tiers.update().values(
            ready_files=total(sa.literal(1), entries, ready),
            ready_bytes=total(entries.c.size, entries, ready),
            pinned_bytes=total(entries.c.size, entries, ready, entries.c.pinned == sa.true()),
            loading_files=total(sa.literal(1), entries, loading),
            pin_bytes=total(pins.c.size, pins),
        )
    )


@dataclass(frozen=True)
class Upgrade:
    version: int
    description: str
    apply: Callable[[Connection, str], None]


UPGRADES: tuple[Upgrade, ...] = (
    Upgrade(1, "tiers, entries and trash", _v1),
    Upgrade(2, "pins table; entries.last_synced_at", _v2),
    Upgrade(3, "listings and listing_entries tables", _v3),
    Upgrade(4, "leases table; trash.path", _v4),
    Upgrade(5, "entries indexes for eviction, expiry, the report and directory scans", _v5),
    Upgrade(6, "tier counters: ready files and bytes, pinned bytes, loading files, pin bytes", _v6),
)
LATEST_VERSION = UPGRADES[-1].version


def current_version(conn: Connection, prefix: str = DEFAULT_TABLE_PREFIX) -> int:
    """The schema version of the catalog (0 when it has no tables yet)."""
    if not sa.inspect(conn).has_table(f"{prefix}schema_version"):
        return 0
    table = _version_table(sa.MetaData(), prefix)
    return conn.execute(sa.select(sa.func.max(table.c.version))).scalar() or 0


def upgrade(conn: Connection, prefix: str = DEFAULT_TABLE_PREFIX, target: int | None = None) -> list[int]:
    """Apply the missing upgrade steps up to ``target`` (the latest by default) on ``conn``.

    ``conn`` must be in a write transaction (see :meth:`Catalog.write`); returns the versions applied.
    A catalog at a version newer than this code knows is left untouched and raises.
    """
    from airflow_hybrid.cache.exceptions import CacheCatalogError

    target = LATEST_VERSION if target is None else target
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_UPGRADE_LOCK})
    version = current_version(conn, prefix)
    if version > LATEST_VERSION:
        raise CacheCatalogError(
            f"cache catalog schema is at version {version}, newer than this code supports ({LATEST_VERSION}); "
            "upgrade airflow-hybrid"
        )
    version_table = _version_table(sa.MetaData(), prefix)
    if version == 0:
        version_table.create(conn, checkfirst=True)
        conn.execute(version_table.insert().values(version=0))
    applied = []
    for step in UPGRADES:
        if version < step.version <= target:
            step.apply(conn, prefix)
            conn.execute(version_table.update().values(version=step.version))
            applied.append(step.version)
    return applied
