"""Options of an :class:`~airflow_hybrid.stores.s3.store.S3Store` and S3's limits on multipart uploads."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.values import parse_bool, parse_duration, parse_int, shown
from airflow_hybrid.values import parse_size as _parse_size

MiB = 1024 * 1024
GiB = 1024 * MiB
#: S3's limits for multipart uploads.
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000


def parse_size(value: int | str, option: str) -> int:
    """``8388608``, ``"8MiB"``, ``"8m"`` -> bytes (:func:`airflow_hybrid.values.parse_size`), errors name ``option``."""
    try:
        return _parse_size(value, option)
    except HybridConfigError as err:
        reason = str(err).removeprefix(f"{option}: ")
        raise HybridConfigError(f"S3 option {option}={shown(value)} is not a size (e.g. 8388608, '16MiB'): {reason}") from None


@dataclass(frozen=True)
class S3Options:
    """Tuning of an :class:`S3Store`; every field can be set from the store's ``options`` mapping."""

    #: Size of each multipart part (at least 5 MiB); grown automatically to stay within 10,000 parts.
    part_size: int = 8 * MiB
    #: Parts of one upload in flight at once (memory per upload is about ``part_size * this``).
    upload_concurrency: int = 8
    #: Parts buffered at once across all uploads of this store (e.g. a migration writing many large files in
    #: parallel), the first read of each upload of a known size included: memory stays under about
    #: ``part_size * this``.
    max_buffered_parts: int = 8
    #: Where the parts of a file known to span parts wait for their upload: ``DISK`` (the default), an unnamed
    #: temporary file each in ``$TMPDIR``, so memory holds one chunk per part being read (as Hadoop S3A's
    #: ``fs.s3a.fast.upload.buffer=disk``); or ``MEMORY``, no disk I/O but up to ``part_size`` per part held.
    part_buffer: str = "DISK"
    #: ``FULL_OBJECT`` (CRC32C of the whole object) or ``COMPOSITE`` (CRC32C of the part checksums),
    #: the latter for S3-compatible servers that lack full-object checksums on multipart uploads.
    checksum_type: str = "FULL_OBJECT"
    #: botocore retries (standard mode) for throttling, 5xx and connection errors; also the number of
    #: times a read resumes after its connection dropped.
    max_attempts: int = 5
    #: HTTP connections the client keeps (shared by all threads using this store).
    max_pool_connections: int = 64
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    #: Keys per listing page (at most 1000).
    page_size: int = 1000
    #: Whether the server honours ``If-None-Match: *`` on ``PutObject`` / ``CompleteMultipartUpload`` (AWS
    #: S3 since 2024, MinIO, moto). Off for servers that ignore it: ``write(..., if_absent=True)`` then fails
    #: rather than risk replacing an object, and callers check for an existing object first.
    conditional_writes: bool = True
    #: What sends a ``PutObject`` of a body below a part: ``CLASSIC`` (botocore, as every other call) or ``CRT``,
    #: the AWS Common Runtime's S3 client (:mod:`.crt_put`: about a quarter of botocore's CPU per request, which
    #: pays where the client's CPU bounds a migration; each put waits longer, so many small files go slower; no
    #: proxies, no redirects to another region).
    put_client: str = "CLASSIC"

    @classmethod
    def from_mapping(cls, options: dict[str, Any] | None) -> S3Options:
        """Build from connection or mount options; keys with a dot (Alluxio or Hadoop properties) are ignored."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for raw_key, value in (options or {}).items():
            key = raw_key.replace("-", "_")
            if "." in key:
                continue
            if key not in known:
                raise HybridConfigError(f"unknown S3 store option {raw_key!r}; known options: {', '.join(known)}")
            kind = known[key].type
            if value is None:  # null: the default
                continue
            try:
                if key == "part_size":
                    values[key] = _parse_size(value, raw_key)
                elif kind == "int":
                    values[key] = parse_int(value, raw_key)
                elif kind == "float":
                    values[key] = parse_duration(value, raw_key)
                elif kind == "bool":
                    values[key] = parse_bool(value, raw_key)
                elif isinstance(value, str):
                    values[key] = value.upper()
                else:
                    raise HybridConfigError(f"expected a text, got {type(value).__name__}")
            except HybridConfigError as err:
                reason = str(err).removeprefix(f"{raw_key}: ")
                raise HybridConfigError(f"S3 store option {raw_key}={shown(value)} is invalid: {reason}") from None
        opts = cls(**values)
        opts.validate()
        return opts

    def validate(self) -> None:
        if not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise HybridConfigError(f"S3 option part_size={self.part_size} must be between 5 MiB and 5 GiB")
        if self.upload_concurrency < 1:
            raise HybridConfigError(f"S3 option upload_concurrency={self.upload_concurrency} must be at least 1")
        if self.max_buffered_parts < 1:
            raise HybridConfigError(f"S3 option max_buffered_parts={self.max_buffered_parts} must be at least 1")
        if self.part_buffer not in ("DISK", "MEMORY"):
            raise HybridConfigError(f"S3 option part_buffer={self.part_buffer!r} must be disk or memory")
        if self.put_client not in ("CLASSIC", "CRT"):
            raise HybridConfigError(f"S3 option put_client={self.put_client!r} must be classic or crt")
        if self.checksum_type not in ("FULL_OBJECT", "COMPOSITE"):
            raise HybridConfigError(f"S3 option checksum_type={self.checksum_type!r} must be FULL_OBJECT or COMPOSITE")
        if self.max_attempts < 1:
            raise HybridConfigError(f"S3 option max_attempts={self.max_attempts} must be at least 1")
        if not 1 <= self.page_size <= 1000:
            raise HybridConfigError(f"S3 option page_size={self.page_size} must be between 1 and 1000")
