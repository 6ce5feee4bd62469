"""Request bodies spooled to disk while their checksums and signatures are verified.

An upload (a ``PutObject`` body, a multipart part) is written to a private temporary file as it arrives,
decoded from ``aws-chunked`` when the SDK streams it so, and hashed on the way (MD5 for the ETag and
``Content-MD5``, SHA-256 when the payload is signed, the ``x-amz-checksum-*`` algorithm the client named).
Only a body that passed every check reaches a mount, so a client that disconnects or sends a bad digest leaves
nothing visible; memory holds about one MiB of it at a time whatever the size of the body, and the hashing and
writing run in worker threads.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from awscrt import checksums as crt
from starlette.concurrency import run_in_threadpool

from airflow_hybrid.gateway.errors import S3Error
from airflow_hybrid.gateway.sigv4 import STREAMING, UNSIGNED_PAYLOAD, ChunkedDecoder, Identity

#: Bytes of a body gathered before they are decoded, hashed and written off the event loop.
BATCH = 1024 * 1024
#: S3's flexible checksum algorithms: ``x-amz-checksum-<name>``, base64 of the big-endian value.
ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


class _Crc:
    def __init__(self, fn: Callable[[bytes, int], int], width: int) -> None:
        self._fn, self._width, self.value = fn, width, 0

    def update(self, data: bytes) -> None:
        self.value = self._fn(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(self._width, "big")


def new_checksum(algorithm: str):
    """A hasher with ``update``/``digest`` for one of :data:`ALGORITHMS`."""
    if algorithm == "crc32":
        return _Crc(lambda data, value: zlib.crc32(data, value), 4)
    if algorithm == "crc32c":
        return _Crc(crt.crc32c, 4)
    if algorithm == "crc64nvme":
        return _Crc(crt.crc64nvme, 8)
    return hashlib.new(algorithm)


@dataclass
class Spooled:
    """A verified body on disk: ``path`` (the caller removes it), its size, MD5 and client checksums."""

    path: Path
    size: int
    md5: str
    checksums: dict[str, str] = field(default_factory=dict)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _declared_checksums(headers: Mapping[str, str]) -> dict[str, str | None]:
    """Checksums the client sent as headers, and the one it announces as a trailer (value ``None``)."""
    wanted: dict[str, str | None] = {}
    for algorithm in ALGORITHMS:
        value = headers.get(f"x-amz-checksum-{algorithm}")
        if value:
            wanted[algorithm] = value
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if trailer:
        if not trailer.startswith("x-amz-checksum-") or trailer[15:] not in ALGORITHMS:
            raise S3Error("InvalidRequest", f"unsupported trailer {trailer!r}")
        wanted.setdefault(trailer[15:], None)
    algorithm = headers.get("x-amz-sdk-checksum-algorithm", "").lower()
    if algorithm and algorithm not in ALGORITHMS:
        raise S3Error("InvalidRequest", f"unsupported checksum algorithm {algorithm!r}")
    return wanted


async def spool(body: AsyncIterator[bytes], headers: Mapping[str, str], identity: Identity, directory: Path,
                *, max_size: int | None = None) -> Spooled:
    """Write ``body`` to a new file under ``directory``, decoded and verified (module doc).

    :raises S3Error: ``BadDigest``/``InvalidDigest`` (Content-MD5), ``XAmzContentSHA256Mismatch``,
        ``SignatureDoesNotMatch`` (a chunk), ``IncompleteBody``, ``EntityTooLarge``; the file is removed.
    """
    content_md5 = headers.get("content-md5")
    if content_md5 is not None:
        try:
            if len(base64.b64decode(content_md5, validate=True)) != 16:
                raise ValueError
        except (binascii.Error, ValueError):
            raise S3Error("InvalidDigest", "the Content-MD5 you specified was invalid") from None
    wanted = _declared_checksums(headers)
    hashers = {algorithm: new_checksum(algorithm) for algorithm in wanted}
    md5 = hashlib.md5(usedforsecurity=False)
    sha256 = hashlib.sha256() if identity.payload not in (UNSIGNED_PAYLOAD, *STREAMING) else None
    decoder = ChunkedDecoder(identity) if identity.payload in STREAMING or _aws_chunked(headers) else None
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix="body-", dir=directory)
    path = Path(name)
    size = 0

    def consume(raw: bytes, out) -> int:
        """Decode, hash and write one batch of the body (in a worker thread: the event loop stays free)."""
        written = 0
        if sha256 is not None:
            sha256.update(raw)
        for data in decoder.feed(raw) if decoder is not None else (raw,):
            written += len(data)
            md5.update(data)
            for hasher in hashers.values():
                hasher.update(data)
            out.write(data)
        return written

    try:
        with os.fdopen(fd, "wb") as out:
            batch = bytearray()
            async for raw in body:
                batch += raw
                if len(batch) >= BATCH:
                    size += await run_in_threadpool(consume, bytes(batch), out)
                    batch.clear()
                    if max_size is not None and size > max_size:
                        raise S3Error("EntityTooLarge", f"the body is larger than {max_size} bytes")
            size += await run_in_threadpool(consume, bytes(batch), out)
            if max_size is not None and size > max_size:
                raise S3Error("EntityTooLarge", f"the body is larger than {max_size} bytes")
        if decoder is not None:
            decoder.finish()
            declared = headers.get("x-amz-decoded-content-length")
            if declared is not None and declared.isdigit() and int(declared) != size:
                raise S3Error("IncompleteBody", f"decoded {size} bytes, x-amz-decoded-content-length says {declared}")
        if sha256 is not None and sha256.hexdigest() != identity.payload:
            raise S3Error("XAmzContentSHA256Mismatch", "the provided x-amz-content-sha256 does not match the body")
        if content_md5 is not None and base64.b64encode(md5.digest()).decode() != content_md5:
            raise S3Error("BadDigest", "the Content-MD5 you specified did not match what was received")
        computed = {}
        for algorithm, hasher in hashers.items():
            value = base64.b64encode(hasher.digest()).decode()
            given = wanted[algorithm]
            if given is None and decoder is not None:
                given = decoder.trailers.get(f"x-amz-checksum-{algorithm}")
            if given is None:
                raise S3Error("InvalidRequest", f"the x-amz-checksum-{algorithm} trailer is missing")
            if given != value:
                raise S3Error("BadDigest", f"the {algorithm.upper()} you specified did not match the calculated "
                              "checksum")
            computed[algorithm] = value
        return Spooled(path, size, md5.hexdigest(), computed)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _aws_chunked(headers: Mapping[str, str]) -> bool:
    return "aws-chunked" in headers.get("content-encoding", "").lower()
