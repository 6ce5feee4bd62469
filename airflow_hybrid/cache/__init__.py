"""Tiered cache for hybrid mounts: tiers, a shared SQL catalog, read-through fill, prefetch, pins, eviction.

Public API::

    from airflow_hybrid.cache import CacheConfig, CacheManager

    cache = CacheManager.for_mount(mount)          # or CacheManager(name, CacheConfig.from_options(extras, name))
    stream = cache.open("store_sales/part-0.parquet")
    cache.load(path, member, info, lambda: store.open_read(path), tier="SSD", pin=True, ttl=86400)
    cache.pin(files); cache.unpin(paths); cache.free(paths); cache.evict(); cache.expire()
    print(cache.report().to_text())
    with cache.lease("sales", 3600, "emr-step"):           # copies under sales/ are not deleted meanwhile
        uri = cache.warm_uri("sales")                        # s3://.../lake/sales when every file is warm there
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_hybrid.cache.catalog import Catalog
    from airflow_hybrid.cache.config import CacheConfig, TierConfig, default_catalog_url, parse_size
    from airflow_hybrid.cache.entry import CachedEntry, SourceFingerprint
    from airflow_hybrid.cache.exceptions import (
        CacheCatalogError,
        CacheConfigError,
        CacheError,
        CacheQuotaError,
        UnknownTierError,
    )
    from airflow_hybrid.cache.lease import Lease
    from airflow_hybrid.cache.manager import CacheManager, DropResult, LoadResult, PinResult
    from airflow_hybrid.cache.report import CacheReport, TierReport

#: Where each public name lives: imported on first use, so importing a submodule (``cache.config`` for a DAG's
#: option parsing) does not load the catalog, SQLAlchemy's models and the manager.
_LOCATIONS = {
    "Catalog": "catalog",
    "CacheConfig": "config", "TierConfig": "config", "default_catalog_url": "config", "parse_size": "config",
    "CachedEntry": "entry", "SourceFingerprint": "entry",
    "CacheCatalogError": "exceptions", "CacheConfigError": "exceptions", "CacheError": "exceptions",
    "CacheQuotaError": "exceptions", "UnknownTierError": "exceptions",
    "Lease": "lease",
    "CacheManager": "manager", "DropResult": "manager", "LoadResult": "manager", "PinResult": "manager",
    "CacheReport": "report", "TierReport": "report",
}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CacheCatalogError",
    "CacheConfig",
    "CacheConfigError",
    "CacheError",
    "CacheManager",
    "CacheQuotaError",
    "CacheReport",
    "CachedEntry",
    "Catalog",
    "DropResult",
    "Lease",
    "LoadResult",
    "PinResult",
    "SourceFingerprint",
    "TierConfig",
    "TierReport",
    "UnknownTierError",
    "default_catalog_url",
    "parse_size",
]
