"""What the catalog knows about one cached file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_hybrid.stores.base import FileInfo


@dataclass(frozen=True)
class SourceFingerprint:
    """Identifies one version of a source file: length, mtime, and the ETag or checksum when known."""

    size: int
    mtime: float
    etag: str | None = None

    @classmethod
    def of(cls, info: FileInfo) -> SourceFingerprint:
        return cls(int(info.size), float(info.mtime), info.etag)

    def matches(self, info: FileInfo) -> bool:
        return self == SourceFingerprint.of(info)


@dataclass(frozen=True)
class CachedEntry:
    """One row of the catalog: a copy of ``path`` (logical, relative to the mount) in a tier."""

    id: int
    mount: str
    path: str
    tier: str
    #: Where the copy is inside the tier's store.
    location: str
    source_member: str
    source_uri: str | None
    source: SourceFingerprint
    size: int
    pinned: bool
    ttl: float | None
    expires_at: float | None
    created_at: float
    last_access: float
    last_synced_at: float | None
    hits: int
    state: str
    loader_id: str | None
    lease_expires_at: float | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CachedEntry:
        return cls(
            id=row["id"],
            mount=row["mount"],
            path=row["path"],
            tier=row["tier"],
            location=row["location"],
            source_member=row["source_member"],
            source_uri=row["source_uri"],
            source=SourceFingerprint(row["source_size"], row["source_mtime"], row["source_etag"]),
            size=row["size"],
            pinned=bool(row["pinned"]),
            ttl=row["ttl"],
            expires_at=row["expires_at"],
            created_at=row["created_at"],
            last_access=row["last_access"],
            last_synced_at=row["last_synced_at"],
            hits=row["hits"],
            state=row["state"],
            loader_id=row["loader_id"],
            lease_expires_at=row["lease_expires_at"],
        )

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now
