"""Errors raised by the cache; each message names the mount, tier, path or option at fault."""

from __future__ import annotations

from airflow_hybrid.exceptions import HybridConfigError, HybridError


class CacheError(HybridError):
    """Base class for cache errors."""


class CacheConfigError(CacheError, HybridConfigError):
    """An invalid ``cache`` option; the message starts with the option path (``cache.tiers[1].quota``)."""


class UnknownTierError(CacheError, KeyError):
    """An operation named a tier the mount does not configure; the message lists the configured tiers."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CacheQuotaError(CacheError):
    """A pin or load cannot fit the tier's quota; nothing was changed."""


class CacheCatalogError(CacheError):
    """The catalog database is unusable (e.g. a schema newer than this code)."""
