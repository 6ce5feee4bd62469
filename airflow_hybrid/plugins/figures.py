"""The figures the "Hybrid lake" page shows, read without writing and without listing any store.

A mount's cache figures come from its catalog (:func:`~airflow_hybrid.cache.report.build_report` over a
read-only :class:`~airflow_hybrid.cache.catalog.Catalog`, plus its largest and pinned entries); a policy's
from the migration state (:func:`~airflow_hybrid.migration.status.policy_status_rows` with
``count_pending=False``). No member store is built or contacted: only the connection's options are parsed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from airflow_hybrid.cache.report import build_report, describe_error
from airflow_hybrid.redact import redact_url

#: Entries shown per list (largest, pinned).
TOP_ENTRIES = 10

#: Decides whether the caller may see a connection (a mount) or a DAG (a policy's); everything by default.
Allowed = Callable[[str], bool]


def _everything(_: str) -> bool:
    return True


def mount_conn_ids() -> list[str]:
    """Every ``hybrid_mount`` connection id in the metadata database, sorted."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(Connection.conn_id).filter(Connection.conn_type == "hybrid_mount").all()
    return sorted(conn_id for (conn_id,) in rows)


def mounts_overview(may_read: Allowed = _everything) -> list[dict[str, Any]]:
    """Every ``hybrid_mount`` connection ``may_read`` allows: members, read order, create targets, the cache
    (``None`` when the mount has none) or the ``error`` that kept it from being read."""
    return [mount_figures(conn_id) for conn_id in mount_conn_ids() if may_read(conn_id)]


def mount_figures(conn_id: str) -> dict[str, Any]:
    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

    row: dict[str, Any] = {"conn_id": conn_id, "members": [], "read_order": [], "create_members": [],
                           "cache": None, "error": None}
    try:
        spec = HybridMountHook(conn_id).spec
        row["members"] = [
            {"name": name, "uri": redact_url(member.uri), "scheme": member.scheme,
             "read_rank": spec.read_order.index(name) + 1 if name in spec.read_order else None,
             "create": name in spec.create_members}
            for name, member in spec.members.items()
        ]
        row["read_order"], row["create_members"] = list(spec.read_order), list(spec.create_members)
        if spec.settings.get("cache"):
            row["cache"] = cache_figures(spec.name, spec.settings)
    except Exception as err:  # shown on the page, never a 500 for one bad connection
        row["error"] = describe_error(err, conn_id)
    return row


def cache_figures(mount: str, settings: dict[str, Any], *, top: int = TOP_ENTRIES,
                  clock: Callable[[], float] = time.time) -> dict[str, Any]:
    """The cache report of ``mount`` (:meth:`CacheReport.to_dict`) with ``largest`` and ``pinned``: its
    ``top`` largest ready entries and pinned entries (``{path, tier, size, hits, pinned, created_at}``), all
    from one read-only catalog, opened for this call and closed."""
    from airflow_hybrid.cache.catalog import Catalog
    from airflow_hybrid.cache.config import CacheConfig

    config = CacheConfig.from_options(settings, mount)
    with Catalog(config.resolved_catalog_url, read_only=True) as catalog:
        figures = build_report(mount, config.tiers, catalog, clock()).to_dict()
        figures["largest"] = _entries(catalog, mount, top, pinned_only=False)
        figures["pinned"] = _entries(catalog, mount, top, pinned_only=True)
    return figures


def _entries(catalog: Any, mount: str, limit: int, *, pinned_only: bool) -> list[dict[str, Any]]:
    from airflow_hybrid.cache.schema import READY

    if not catalog.schema_version:  # no catalog yet
        return []
    entries = catalog.t.entries
    query = sa.select(entries.c.path, entries.c.tier, entries.c.size, entries.c.hits, entries.c.pinned,
                      entries.c.created_at).where(entries.c.mount == mount, entries.c.state == READY)
    if pinned_only:
        query = query.where(entries.c.pinned == sa.true())
    query = query.order_by(entries.c.size.desc(), entries.c.path).limit(limit)
    with catalog.read() as conn:
        return [
            {"path": path, "tier": tier, "size": int(size), "hits": int(hits or 0), "pinned": bool(pinned),
             "created_at": created_at}
            for path, tier, size, hits, pinned, created_at in conn.execute(query)
        ]


def policies_overview(policies_path: str | None = None, may_read: Allowed = _everything) -> list[dict[str, Any]]:
    """The status rows of the declared policies whose mount ``may_read`` allows, from the migration state
    only (pending as of each policy's last plan; nothing is listed)."""
    from airflow_hybrid.migration.status import policy_status_rows

    rows = policy_status_rows(policies_path, count_pending=False)
    return [row for row in rows if row["mount"] is None or may_read(row["mount"])]
