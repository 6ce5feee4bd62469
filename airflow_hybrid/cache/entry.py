"""What the catalog knows about one cached file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
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
        """The entry of a row of the ``entries`` table (whose columns bear the field names)."""
        values = {f.name: row[f.name] for f in fields(cls) if f.name != "source"}
        values["pinned"] = bool(values["pinned"])
        return cls(**values, source=SourceFingerprint(row["source_size"], row["source_mtime"], row["source_etag"]))

    def is_expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now
