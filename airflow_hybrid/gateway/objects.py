"""Objects of a bucket: one version of a logical file, read through the mount's cache, and its HTTP metadata.

A GET fixes the version it serves when it starts (as ``hybrid://`` does, ``mount/filesystem.py``): the fresh
cached copy when the mount's cache has one (no source request unless a freshness check is due,
``metadata_sync_interval``), else the member that has the file in read priority, read through the cache
(``CacheManager.open_version``: a whole-file read fills the cache while it streams, a ranged one loads the
file alongside) and followed to another member if a migration moves it mid-read.

The ETag is derived from the version's fingerprint (length, modification time and the member's ETag or
checksum), so it is the same in a listing, a HEAD and a GET of one version and changes with the file; a file
that migrates to another member gets a new ETag (its mtime and store ETag change).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO

from airflow_hybrid.gateway.errors import S3Error
from airflow_hybrid.mount.union import HybridMount
from airflow_hybrid.stores.base import Checksum, FileInfo

log = logging.getLogger(__name__)

#: Bytes read from a member or tier per chunk of a GET body; a body of at most this is sent in one message.
READ_CHUNK = 1024 * 1024
#: Threads reading GET bodies ahead of the socket (as many as Starlette's thread pool has tokens).
_READERS = ThreadPoolExecutor(max_workers=40, thread_name_prefix="hybrid-gateway-read")
#: Checksum algorithms of S3's ``x-amz-checksum-*`` headers.
S3_CHECKSUMS = ("CRC32C", "CRC32", "CRC64NVME", "SHA256", "SHA1")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def etag_of(info: FileInfo) -> str:
    """The quoted ETag of one version of a file (module doc)."""
    checksum = info.extra.get("checksum") if info.extra else None
    mark = f"{info.size}:{info.mtime!r}:{info.etag or ''}:{getattr(checksum, 'value', '') or ''}"
    return f'"{hashlib.md5(mark.encode(), usedforsecurity=False).hexdigest()}"'


def checksum_headers(info: FileInfo) -> dict[str, str]:
    """``x-amz-checksum-*`` of a version whose member keeps a checksum S3 clients know (an S3 member's CRC32C,
    whole or composite); nothing for others (HDFS's MD5-of-CRC32C, a local file)."""
    checksum = info.extra.get("checksum") if info.extra else None
    if not isinstance(checksum, Checksum) or not checksum.value:
        return {}
    algorithm, composite = checksum.algorithm.upper(), checksum.algorithm.upper().endswith("-COMPOSITE")
    algorithm = algorithm.removesuffix("-COMPOSITE")
    if algorithm not in S3_CHECKSUMS:
        return {}
    return {f"x-amz-checksum-{algorithm.lower()}": checksum.value,
            "x-amz-checksum-type": "COMPOSITE" if composite else "FULL_OBJECT"}


def http_date(mtime: float) -> str:
    return email.utils.formatdate(int(mtime), usegmt=True)


def iso_date(mtime: float) -> str:
    return datetime.fromtimestamp(int(mtime), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class ObjectVersion:
    """The version of ``path`` a request serves, and how to open it."""

    mount: HybridMount
    path: str
    info: FileInfo
    member: str | None = None
    entry: object | None = None  # the fresh cached copy (a CachedEntry), when it serves the read

    @property
    def etag(self) -> str:
        return etag_of(self.info)

    def open(self, offset: int = 0, length: int | None = None) -> BinaryIO:
        """A stream over the range of this version (module doc)."""
        cache = self.mount.cache
        if self.entry is not None:
            try:
                return cache.open_cached(self.entry, offset, length)
            except FileNotFoundError:  # evicted since the lookup: read the same version at its source
                self.member, source = self.mount.resolve(self.path)
                if source.size != self.info.size:
                    raise S3Error("InternalError", "the object changed while it was opened; retry") from None
                self.info = source
        if cache is not None:
            return cache.open_version(self.path, self.member, self.info, offset=offset, length=length)
        return self.mount.open_member(self.path, self.member, self.info, offset=offset, length=length)


def current_version(mount: HybridMount, path: str) -> ObjectVersion:
    """The version a GET or HEAD of ``path`` serves now; ``NoSuchKey`` when no member has the file."""
    try:
        cache = mount.cache
        if cache is None:
            member, info = mount.resolve(path)
            version = ObjectVersion(mount, path, info, member)
        else:
            resolved: list[tuple[str, FileInfo]] = []

            def source() -> FileInfo:
                resolved.append(mount.resolve(path))
                return resolved[-1][1]

            entry = cache.lookup(path, source)
            if entry is not None:
                fp = entry.source
                version = ObjectVersion(mount, path, FileInfo(path, fp.size, fp.mtime, etag=fp.etag), None, entry)
            else:
                member, info = resolved[-1] if resolved else mount.resolve(path)
                version = ObjectVersion(mount, path, info, member)
    except FileNotFoundError:
        raise S3Error("NoSuchKey", "the specified key does not exist", path) from None
    if version.info.is_dir:
        raise S3Error("NoSuchKey", "the specified key does not exist (it is a directory)", path)
    return version


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end exclusive)`` of a ``Range: bytes=...`` header, ``None`` to serve the whole object (no header,
    or one S3 ignores: another unit, several ranges, bad syntax); ``InvalidRange`` when unsatisfiable."""
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first == "":  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise S3Error("InvalidRange", "the requested range is not satisfiable", ActualObjectSize=str(size))
        return max(size - count, 0), size
    start = int(first)
    end = size if last == "" else min(int(last) + 1, size)
    if last != "" and int(last) < start:
        return None  # RFC 9110: an invalid range spec is ignored
    if start >= size:
        raise S3Error("InvalidRange", "the requested range is not satisfiable", RangeRequested=header,
                      ActualObjectSize=str(size))
    return start, end


def _etags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _matches(header: str, etag: str) -> bool:
    tags = _etags(header)
    return "*" in tags or etag in tags or etag.strip('"') in [t.strip('"') for t in tags]


def _since(header: str) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return parsed.timestamp() if parsed is not None else None


def check_conditions(headers: Mapping[str, str], version: ObjectVersion) -> int | None:
    """``304`` (not modified) or ``None`` to serve; ``PreconditionFailed`` (412) as S3 evaluates
    ``If-Match``, ``If-Unmodified-Since``, ``If-None-Match`` and ``If-Modified-Since``."""
    etag, mtime = version.etag, int(version.info.mtime)
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _matches(if_match, etag):
            raise S3Error("PreconditionFailed", "at least one of the preconditions you specified did not hold",
                          Condition="If-Match")
    else:
        since = _since(headers.get("if-unmodified-since", ""))
        if since is not None and mtime > since:
            raise S3Error("PreconditionFailed", "at least one of the preconditions you specified did not hold",
                          Condition="If-Unmodified-Since")
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return 304 if _matches(if_none_match, etag) else None
    since = _since(headers.get("if-modified-since", ""))
    if since is not None and mtime <= since:
        return 304
    return None


def first_chunk(version: ObjectVersion, offset: int, length: int) -> tuple[bytes, BinaryIO | None]:
    """Open the range and read its first chunk (one read), in the same thread hand-off as the lookup: a body
    that fits in one chunk is whole (the stream is then closed and ``None``), else the stream to go on with."""
    stream = version.open(offset, length)
    try:
        chunk = stream.read(min(READ_CHUNK, length))
    except BaseException:
        stream.close()
        raise
    if not chunk:
        stream.close()
        raise S3Error("InternalError", f"the object ended {length} bytes early")
    if len(chunk) >= length:
        stream.close()
        return chunk, None
    return chunk, stream


async def body_chunks(first: bytes, stream: BinaryIO, length: int) -> AsyncIterator[bytes]:
    """``first`` then the rest of the ``length`` bytes of ``stream``, closing it at the end. The next chunk is
    read in a thread while the current one is sent; a short stream (or one that fails) raises, so the
    connection is cut before the announced Content-Length and a client never takes truncated data for the
    object."""
    loop = asyncio.get_running_loop()
    remaining = length - len(first)
    pending = loop.run_in_executor(_READERS, stream.read, min(READ_CHUNK, remaining)) if remaining > 0 else None
    ended = False
    try:
        yield first
        while pending is not None:
            chunk = await pending
            pending = None
            if not chunk:
                raise S3Error("InternalError", f"the object ended {remaining} bytes early")
            remaining -= len(chunk)
            if remaining > 0:
                pending = loop.run_in_executor(_READERS, stream.read, min(READ_CHUNK, remaining))
            yield chunk
        ended = True
    finally:
        if ended:
            await loop.run_in_executor(_READERS, stream.close)
        elif pending is not None:  # cut short: close once the read in flight returns (never under it)
            pending.add_done_callback(lambda _: _READERS.submit(_close_quietly, stream))
        else:
            _READERS.submit(_close_quietly, stream)


def _close_quietly(stream: BinaryIO) -> None:
    try:
        stream.close()
    except Exception as err:  # noqa: BLE001 - the response is already cut; the close only frees the member
        log.info("closing a GET body cut short failed: %s", err)
