"""Leases on the tables a query step reads in place, so warm copies stay while an engine outside this
process (a step on EMR, a user's Spark) reads them.

The lease is taken *before* the tables are resolved: a copy the resolver hands out as warm is then already
covered, so no eviction or free between resolution and the end of the step can delete it (it may still be
dropped from the catalog, never from the tier). A lease outlives a deferral (the records go into the task's
summary) and expires by itself if the task dies, so a crashed step never holds a cache forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from airflow_hybrid.cache.lease import Lease
from airflow_hybrid.query.steps import split_location

if TYPE_CHECKING:
    from airflow_hybrid.mount import HybridMount

log = logging.getLogger(__name__)
_LEASE_FIELDS = [f.name for f in fields(Lease) if not f.name.startswith("_")]


def lease_tables(
    tables: Mapping[str, str] | None,
    mount_of: Callable[[str], HybridMount],
    mount_conn_id: str | None,
    *,
    seconds: float,
    holder: str,
) -> list[dict[str, Any]]:
    """Lease every mount table of ``tables`` (view name -> logical path) in its mount's cache for ``seconds``;
    returns the leases as records (JSON-serialisable, for :func:`release_leases`). Tables given as URIs and
    mounts without a cache need none."""
    records = []
    for path in (tables or {}).values():
        mount_id, rel = split_location(path, mount_conn_id)
        if mount_id is None:
            continue
        cache = mount_of(mount_id).cache
        if cache is None:
            continue
        lease = cache.lease(rel, seconds, holder)
        log.info("Leased %s:%s until %s for %s", mount_id, rel or "/", lease.expires_at, holder)
        records.append({name: getattr(lease, name) for name in _LEASE_FIELDS})
    return records


def release_leases(records: Iterable[Mapping[str, Any]], mount_of: Callable[[str], HybridMount]) -> int:
    """End the leases :func:`lease_tables` took; returns the copies deleted that they had kept."""
    deleted = 0
    for record in records:
        lease = Lease(**{k: record[k] for k in _LEASE_FIELDS})
        cache = mount_of(lease.mount).cache
        if cache is not None:
            deleted += cache.release(lease)
    return deleted
