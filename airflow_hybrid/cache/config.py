"""The ``cache`` section of a ``hybrid_mount`` connection: tiers, catalog, freshness and TTL settings.

Example (connection extras)::

    {"cache": {
        "tiers": [
            {"alias": "MEM", "uri": "file:///dev/shm/hybrid", "quota": "2GB",
             "high_watermark": 0.95, "low_watermark": 0.7},
            {"alias": "SSD", "uri": "file:///mnt/ssd/hybrid", "quota": "200GB"},
            {"alias": "S3", "uri": "s3://bucket/cache", "conn_id": "aws_default", "quota": "5TB"}],
        "catalog_url": null,
        "cache_on_read": true,
        "metadata_sync_interval": 60,
        "listing_sync_interval": 0,
        "default_ttl": null,
        "file_mode": "0600"}}

Sizes, durations and booleans follow :mod:`airflow_hybrid.values` (Alluxio's grammar): a size is a number of
bytes or a number with a unit ``B``, ``K``/``KB``/``KiB`` ... ``P``/``PB``/``PiB`` (case-insensitive, powers of
1024 as in Alluxio); a duration is seconds or a number with ``ms``, ``s``, ``m``/``min``, ``h``, ``d``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_hybrid.cache.exceptions import CacheConfigError, UnknownTierError
from airflow_hybrid.mount.options import check_uri
from airflow_hybrid.settings import hybrid_home
from airflow_hybrid.values import parse_bool, parse_fraction, parse_int, shown
from airflow_hybrid.values import parse_duration as _parse_duration
from airflow_hybrid.values import parse_size as _parse_size

DEFAULT_HIGH_WATERMARK = 0.95
DEFAULT_LOW_WATERMARK = 0.7
DEFAULT_METADATA_SYNC_INTERVAL = 60.0
DEFAULT_LOAD_LEASE = 60.0
DEFAULT_JOIN_RUNNING_LOAD_UP_TO = 0  # off: a reader never waits for a copy (opt in per mount)
DEFAULT_SCAN_READ_AHEAD = 4  # files; only for files a reader joins the load of (join_running_load_up_to)
DEFAULT_FILE_MODE = 0o600  # cached copies readable by their owner only (also on /dev/shm)

_TIER_KEYS = {"alias", "uri", "quota", "high_watermark", "low_watermark", "conn_id", "options"}
_CACHE_KEYS = {
    "tiers",
    "catalog_url",
    "cache_on_read",
    "metadata_sync_interval",
    "default_ttl",
    "default_tier",
    "load_lease",
    "listing_sync_interval",
    "join_running_load_up_to",
    "scan_read_ahead",
    "file_mode",
}


def parse_size(value: Any, option: str, what: str = "size") -> int:
    """Bytes from ``value`` (``1073741824``, ``"1GB"``, ``"512 MiB"``); errors name ``option``."""
    return _parse_size(value, option, what=what, error=CacheConfigError)


def parse_duration(value: Any, option: str, allow_negative_one: bool = False) -> float | None:
    """Seconds from ``value`` (``60``, ``"5m"``, ``"1h"``); ``None`` stays ``None``; ``-1`` if allowed."""
    if value is None:
        return None
    return _parse_duration(value, option, allow_never=allow_negative_one, error=CacheConfigError)


def parse_file_mode(value: Any, option: str) -> int:
    """A file mode from an octal string (``"0600"``, ``"640"``, ``"0o640"``) or an int (``0o600`` = 384).

    The owner must be able to read and write; nobody else may write (a copy others can change could serve a
    wrong answer); no special bits.
    """
    if isinstance(value, str) and re.fullmatch(r"\s*(0o?)?[0-7]{1,4}\s*", value, re.IGNORECASE):
        mode = int(value.strip().lower().removeprefix("0o") or "0", 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        raise CacheConfigError(
            f'{option}: expected an octal file mode such as "0600" or "0640", got {shown(value)}'
        )
    if not 0 <= mode <= 0o777:
        raise CacheConfigError(f"{option}: {shown(value)} is not a file mode between 0000 and 0777 (octal)")
    if mode & 0o600 != 0o600:
        raise CacheConfigError(f"{option}: {shown(value)} ({mode:04o}) must let the owner read and write (0600)")
    if mode & 0o022:
        raise CacheConfigError(
            f"{option}: {shown(value)} ({mode:04o}) lets others change cached copies; drop the write bits"
        )
    return mode


def _check_object(raw: Any, option: str, expected: str, keys: set[str]) -> None:
    """``raw`` must be a mapping of ``keys`` only (``expected`` says what it should hold)."""
    if not isinstance(raw, Mapping):
        raise CacheConfigError(f"{option}: expected an object with {expected}, got {shown(raw)}")
    unknown = set(raw) - keys
    if unknown:
        raise CacheConfigError(
            f"{option}: unknown keys {sorted(map(str, unknown))} (expected {', '.join(sorted(keys))})"
        )


def default_catalog_url() -> str:
    """SQLite file ``$AIRFLOW_HOME/hybrid/catalog.db`` (``AIRFLOW_HOME`` defaults to ``~/airflow``)."""
    return f"sqlite:///{hybrid_home('catalog.db')}"


@dataclass(frozen=True)
class TierConfig:
    """One cache tier: a store location with a quota and eviction watermarks."""

    alias: str
    uri: str
    quota: int
    high_watermark: float = DEFAULT_HIGH_WATERMARK
    low_watermark: float = DEFAULT_LOW_WATERMARK
    conn_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    #: Mode of the copies a local tier writes (the cache's ``file_mode``); its directories get ``0700`` plus
    #: the search bits matching the file's read bits.
    file_mode: int = DEFAULT_FILE_MODE

    @property
    def high_bytes(self) -> int:
        """Usage above which eviction starts."""
        return int(self.quota * self.high_watermark)

    @property
    def low_bytes(self) -> int:
        """Usage eviction brings the tier back under."""
        return int(self.quota * self.low_watermark)

    @classmethod
    def from_dict(cls, raw: Any, option: str) -> TierConfig:
        _check_object(raw, option, "alias, uri and quota", _TIER_KEYS)
        alias = raw.get("alias")
        if not isinstance(alias, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", alias):
            raise CacheConfigError(f"{option}.alias: expected a name such as MEM, SSD or S3, got {shown(alias)}")
        uri = raw.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            raise CacheConfigError(f"{option}.uri: missing (every tier needs a store location)")
        check_uri(uri.strip(), f"{option}.uri", what="tier", error=CacheConfigError)
        if "quota" not in raw or raw["quota"] is None:
            raise CacheConfigError(f"{option}.quota: missing (e.g. 2GB)")
        quota = parse_size(raw["quota"], f"{option}.quota", "quota")
        if quota == 0:
            raise CacheConfigError(f"{option}.quota: must be positive, got {shown(raw['quota'])}")
        high = parse_fraction(
            raw.get("high_watermark", DEFAULT_HIGH_WATERMARK), f"{option}.high_watermark", error=CacheConfigError
        )
        low = parse_fraction(
            raw.get("low_watermark", DEFAULT_LOW_WATERMARK), f"{option}.low_watermark", error=CacheConfigError
        )
        if not 0 < low < high <= 1:
            raise CacheConfigError(
                f"{option}: watermarks out of order: need 0 < low_watermark ({low}) < high_watermark ({high}) <= 1"
            )
        conn_id = raw.get("conn_id")
        if conn_id is not None and not isinstance(conn_id, str):
            raise CacheConfigError(f"{option}.conn_id: expected a connection id, got {shown(conn_id)}")
        options = raw.get("options") or {}
        if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
            raise CacheConfigError(f"{option}.options: expected an object, got {shown(options)}")
        return cls(alias, uri.strip(), quota, high, low, conn_id, dict(options))


@dataclass(frozen=True)
class CacheConfig:
    """A mount's cache settings. ``tiers`` is empty when the mount has no cache."""

    mount_name: str
    tiers: tuple[TierConfig, ...] = ()
    catalog_url: str | None = None
    cache_on_read: bool = True
    #: Seconds between source fingerprint checks of a cached copy: 0 = every open, -1 = never.
    metadata_sync_interval: float = DEFAULT_METADATA_SYNC_INTERVAL
    #: Seconds a directory listing read through ``hybrid://`` is answered from the catalog before the members
    #: are listed again: 0 = always list the members (default), -1 = only changes made through the mount
    #: refresh it. Files added or removed at a member directly appear within this interval (Alluxio's rule).
    listing_sync_interval: float = 0.0
    #: A read missing a file whose whole-file load is already running (or queued) in this process waits for that
    #: load (then reads the copy) instead of fetching the same bytes over the link again, for files up to this
    #: many bytes; larger files are read from the source meanwhile. 0 = never wait.
    join_running_load_up_to: int = DEFAULT_JOIN_RUNNING_LOAD_UP_TO
    #: A cold file opened in the order of a ``hybrid://`` glob (an engine scanning a dataset) starts the whole-file
    #: loads of itself and of up to this many files after it, so the link never idles between files; only files
    #: up to ``join_running_load_up_to`` (whose readers wait for the load) are read ahead. 0 = off.
    scan_read_ahead: int = DEFAULT_SCAN_READ_AHEAD
    #: TTL given to new entries when a load names none; ``None`` = no expiry.
    default_ttl: float | None = None
    #: Tier that reads fill and loads target when none is named; the first tier by default.
    default_tier: str | None = None
    #: Seconds a loader's claim stays valid without a heartbeat (crash recovery).
    load_lease: float = DEFAULT_LOAD_LEASE
    #: Mode of cached copies in local tiers (and of their temporary files); see :func:`parse_file_mode`.
    file_mode: int = DEFAULT_FILE_MODE

    @property
    def enabled(self) -> bool:
        return bool(self.tiers)

    @property
    def aliases(self) -> list[str]:
        return [tier.alias for tier in self.tiers]

    @property
    def resolved_catalog_url(self) -> str:
        return self.catalog_url or default_catalog_url()

    def tier(self, alias: str | None = None) -> TierConfig:
        """The tier called ``alias`` (case-insensitive), or the default tier when ``None``."""
        if not self.tiers:
            raise UnknownTierError(f"mount {self.mount_name!r} has no cache tiers configured")
        if alias is None:
            alias = self.default_tier or self.tiers[0].alias
        for tier in self.tiers:
            if tier.alias.lower() == str(alias).lower():
                return tier
        raise UnknownTierError(
            f"unknown cache tier {alias!r} for mount {self.mount_name!r}; configured tiers: {', '.join(self.aliases)}"
        )

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None, mount_name: str) -> CacheConfig:
        """Parse the ``cache`` section of a mount's options (the connection extras).

        ``catalog_url`` may also sit at the top level of ``options``. A mount without a ``cache`` section
        gets a disabled config (no tiers).

        :raises CacheConfigError: naming the option path, e.g. ``cache.tiers[1].quota: negative quota -5``.
        """
        options = dict(options or {})
        raw = options.get("cache")
        if isinstance(raw, str):
            try:
                raw = json.loads(raw) if raw.strip() else None
            except (ValueError, RecursionError) as err:
                raise CacheConfigError(f"cache: not valid JSON: {err}") from None
        top_catalog = options.get("catalog_url")
        if top_catalog is not None and not isinstance(top_catalog, str):
            raise CacheConfigError(f"catalog_url: expected a SQLAlchemy URL, got {shown(top_catalog)}")
        if raw is None:
            return cls(mount_name, catalog_url=top_catalog or None)
        _check_object(raw, "cache", "'tiers'", _CACHE_KEYS)

        tiers_raw = raw.get("tiers")
        if not isinstance(tiers_raw, (list, tuple)) or not tiers_raw:
            raise CacheConfigError(f"cache.tiers: expected a non-empty list of tiers, got {shown(tiers_raw)}")
        tiers = tuple(TierConfig.from_dict(t, f"cache.tiers[{i}]") for i, t in enumerate(tiers_raw))
        seen: dict[str, int] = {}
        for i, tier in enumerate(tiers):
            key = tier.alias.lower()
            if key in seen:
                raise CacheConfigError(
                    f"cache.tiers[{i}].alias: {tier.alias!r} already used by cache.tiers[{seen[key]}]"
                )
            seen[key] = i

        catalog_url = raw.get("catalog_url") or top_catalog or None
        if catalog_url is not None and not isinstance(catalog_url, str):
            raise CacheConfigError(f"cache.catalog_url: expected a SQLAlchemy URL, got {shown(catalog_url)}")
        cache_on_read = parse_bool(raw.get("cache_on_read", True), "cache.cache_on_read", error=CacheConfigError)
        interval = parse_duration(
            raw.get("metadata_sync_interval", DEFAULT_METADATA_SYNC_INTERVAL),
            "cache.metadata_sync_interval",
            allow_negative_one=True,
        )
        listing_interval = parse_duration(
            raw.get("listing_sync_interval", 0), "cache.listing_sync_interval", allow_negative_one=True
        )
        join_up_to = parse_size(
            raw.get("join_running_load_up_to", DEFAULT_JOIN_RUNNING_LOAD_UP_TO), "cache.join_running_load_up_to"
        )
        read_ahead = parse_int(
            raw.get("scan_read_ahead", DEFAULT_SCAN_READ_AHEAD), "cache.scan_read_ahead", minimum=0,
            maximum=10_000, error=CacheConfigError,
        )
        default_ttl = parse_duration(raw.get("default_ttl"), "cache.default_ttl")
        if default_ttl == 0:
            raise CacheConfigError("cache.default_ttl: must be positive (null for no expiry)")
        lease = parse_duration(raw.get("load_lease", DEFAULT_LOAD_LEASE), "cache.load_lease")
        if not lease:
            raise CacheConfigError("cache.load_lease: must be positive")
        file_mode = parse_file_mode(raw.get("file_mode", DEFAULT_FILE_MODE), "cache.file_mode")
        tiers = tuple(replace(tier, file_mode=file_mode) for tier in tiers)
        config = cls(
            mount_name=mount_name,
            tiers=tiers,
            catalog_url=catalog_url,
            cache_on_read=cache_on_read,
            metadata_sync_interval=DEFAULT_METADATA_SYNC_INTERVAL if interval is None else interval,
            listing_sync_interval=listing_interval or 0.0,
            join_running_load_up_to=join_up_to,
            scan_read_ahead=read_ahead,
            default_ttl=default_ttl,
            load_lease=lease,
            file_mode=file_mode,
        )
        default_tier = raw.get("default_tier")
        if default_tier is not None:
            if not isinstance(default_tier, str):
                raise CacheConfigError(f"cache.default_tier: expected a tier alias, got {shown(default_tier)}")
            try:
                default_tier = config.tier(default_tier).alias
            except UnknownTierError as err:
                raise CacheConfigError(f"cache.default_tier: {err}") from None
            config = cls(**{**config.__dict__, "default_tier": default_tier})
        return config
