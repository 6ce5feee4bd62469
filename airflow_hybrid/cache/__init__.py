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
