"""Cache usage report, the counterpart of Alluxio's ``fsadmin report`` for a mount's tiers."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_hybrid.exceptions import HybridError
from airflow_hybrid.values import format_bytes

if TYPE_CHECKING:
    from airflow_hybrid.cache.catalog import Catalog
    from airflow_hybrid.cache.config import CacheConfig, TierConfig
    from airflow_hybrid.cache.lease import Lease


def describe_error(error: BaseException, conn_id: str) -> str:
    """One line saying why the report of mount ``conn_id`` could not be made (no traceback)."""
    if type(error).__name__ == "AirflowNotFoundException":  # the Task SDK's or airflow.exceptions'
        return f"connection {conn_id!r} is not defined"
    text = " ".join(str(error).split()) or "(no message)"
    if len(text) > 500:
        text = f"{text[:500]}..."
    return text if isinstance(error, HybridError) else f"{type(error).__name__}: {text}"


@dataclass(frozen=True)
class MountFailure:
    """A mount whose report could not be made (a missing connection, a bad option, an unreachable catalog)."""

    mount: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"mount": self.mount, "error": self.error}

    def to_text(self) -> str:
        return f"mount {self.mount!r}: ERROR {self.error}"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(ts, tz=datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class TierReport:
    """Usage of one tier. ``used`` counts ready copies and reservations of copies being loaded."""

    alias: str
    uri: str
    capacity: int
    used: int
    pinned_bytes: int
    files: int
    loading: int
    hits: int
    misses: int
    high_watermark: float
    low_watermark: float
    oldest_path: str | None = None
    oldest_created_at: float | None = None

    @property
    def free(self) -> int:
        return max(self.capacity - self.used, 0)

    @property
    def hit_ratio(self) -> float | None:
        """Hits over reads that looked for a copy in this tier (``None`` before any read)."""
        total = self.hits + self.misses
        return self.hits / total if total else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "uri": self.uri,
            "capacity_bytes": self.capacity,
            "used_bytes": self.used,
            "free_bytes": self.free,
            "pinned_bytes": self.pinned_bytes,
            "files": self.files,
            "loading": self.loading,
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": self.hit_ratio,
            "high_watermark": self.high_watermark,
            "low_watermark": self.low_watermark,
            "oldest_entry": None
            if self.oldest_path is None
            else {"path": self.oldest_path, "created_at": _iso(self.oldest_created_at)},
        }


@dataclass(frozen=True)
class CacheReport:
    """Per-tier usage of one mount's cache, and the active leases on its copies."""

    mount: str
    catalog_url: str
    generated_at: float
    tiers: list[TierReport] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)

    @property
    def capacity(self) -> int:
        return sum(t.capacity for t in self.tiers)

    @property
    def used(self) -> int:
        return sum(t.used for t in self.tiers)

    def tier(self, alias: str) -> TierReport:
        for tier in self.tiers:
            if tier.alias.lower() == alias.lower():
                return tier
        raise KeyError(f"no tier {alias!r} in the report of mount {self.mount!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "mount": self.mount,
            "catalog_url": self.catalog_url,
            "generated_at": _iso(self.generated_at),
            "capacity_bytes": self.capacity,
            "used_bytes": self.used,
            "free_bytes": sum(t.free for t in self.tiers),
            "pinned_bytes": sum(t.pinned_bytes for t in self.tiers),
            "files": sum(t.files for t in self.tiers),
            "tiers": [t.to_dict() for t in self.tiers],
            "leases": [
                {"path": lease.path, "holder": lease.holder, "expires_at": _iso(lease.expires_at)}
                for lease in self.leases
            ],
        }

    def to_text(self) -> str:
        """Human-readable report laid out like ``alluxio fsadmin report``."""

        def per_tier(value) -> list[str]:
            return [f"        Tier: {t.alias:<6} Size: {format_bytes(value(t), alluxio=True)}" for t in self.tiers]

        lines = [
            f"Hybrid cache summary for mount {self.mount!r}:",
            f"    Catalog: {self.catalog_url}",
            f"    Report Time: {_iso(self.generated_at)}",
            f"    Total Capacity: {format_bytes(self.capacity, alluxio=True)}",
            *per_tier(lambda t: t.capacity),
            f"    Used Capacity: {format_bytes(self.used, alluxio=True)}",
            *per_tier(lambda t: t.used),
            f"    Free Capacity: {format_bytes(sum(t.free for t in self.tiers), alluxio=True)}",
            f"    Pinned: {format_bytes(sum(t.pinned_bytes for t in self.tiers), alluxio=True)}",
            *per_tier(lambda t: t.pinned_bytes),
            "",
        ]
        for t in self.tiers:
            pct = f"{100 * t.used / t.capacity:.1f}%" if t.capacity else "-"
            ratio = "-" if t.hit_ratio is None else f"{100 * t.hit_ratio:.1f}%"
            oldest = "-" if t.oldest_path is None else f"{t.oldest_path} (cached {_iso(t.oldest_created_at)})"
            lines += [
                f"Tier {t.alias} ({t.uri}):",
                f"    Capacity: {format_bytes(t.capacity, alluxio=True)}   Used: {format_bytes(t.used, alluxio=True)} ({pct})   "
                f"Free: {format_bytes(t.free, alluxio=True)}",
                f"    Pinned: {format_bytes(t.pinned_bytes, alluxio=True)}",
                f"    Files: {t.files}" + (f" ({t.loading} loading)" if t.loading else ""),
                f"    Hit Ratio: {ratio} ({t.hits} hits, {t.misses} misses)",
                f"    Oldest Entry: {oldest}",
                f"    Watermarks: high {t.high_watermark:.0%}, low {t.low_watermark:.0%}",
            ]
        if self.leases:
            lines += ["", f"Leases: {len(self.leases)}"]
            lines += [
                f"    {lease.path or '/'} held by {lease.holder} until {_iso(lease.expires_at)}"
                for lease in self.leases
            ]
        return "\n".join(lines)


def build_report(mount: str, tiers: Iterable[TierConfig], catalog: Catalog, now: float) -> CacheReport:
    """The report of the configured ``tiers`` of ``mount`` from the figures in ``catalog`` (zero for a tier
    the catalog has no row of yet)."""
    usage = {u.alias: u for u in catalog.usage(mount)}
    reports = []
    for cfg in tiers:
        u = usage.get(cfg.alias)
        reports.append(
            TierReport(
                alias=cfg.alias,
                uri=cfg.uri,
                capacity=cfg.quota,
                used=u.reserved if u else 0,
                pinned_bytes=u.pinned_bytes if u else 0,
                files=u.files if u else 0,
                loading=u.loading if u else 0,
                hits=u.hits if u else 0,
                misses=u.misses if u else 0,
                high_watermark=cfg.high_watermark,
                low_watermark=cfg.low_watermark,
                oldest_path=u.oldest_path if u else None,
                oldest_created_at=u.oldest_created_at if u else None,
            )
        )
    leases = catalog.active_leases(mount, now) if catalog.schema_version else []
    return CacheReport(mount, catalog.url, now, reports, leases)


def read_report(mount: str, config: CacheConfig, *, clock: Callable[[], float] = time.time) -> CacheReport:
    """The report of ``mount``'s cache for a reader that must not change anything (the UI page): the catalog
    is opened read-only for this call and closed (no schema created or upgraded, no tier rows synced, no
    recovery), and no tier's store is touched. A catalog that does not exist yet reports empty tiers."""
    from airflow_hybrid.cache.catalog import Catalog

    with Catalog(config.resolved_catalog_url, read_only=True) as catalog:
        return build_report(mount, config.tiers, catalog, clock())
