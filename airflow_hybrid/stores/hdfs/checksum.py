"""HDFS's default file checksum, ``MD5-of-<n>MD5-of-<bytes>CRC32C``, computed over a byte stream."""

from __future__ import annotations

import hashlib
import re
import struct
import zlib
from typing import BinaryIO

import google_crc32c

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import CHUNK_SIZE, Checksum

DEFAULT_BLOCK_SIZE = 128 * 1024 * 1024
BYTES_PER_CRC = 512
_CRC_FUNCTIONS = {"CRC32C": google_crc32c.value, "CRC32": zlib.crc32}
#: ``FsServerDefaults.checksumType`` (Hadoop's ``DataChecksum.Type`` ids).
CHECKSUM_TYPES = {1: "CRC32", 2: "CRC32C"}
_MD5_OF_CRC = re.compile(r"MD5-of-(\d+)MD5-of-(\d+)(CRC32C?)")


class HdfsFileChecksum:
    """HDFS's default file checksum (``MD5-of-<n>MD5-of-<bytes>CRC32C``) computed over a byte stream.

    HDFS takes a CRC of every ``bytes_per_crc`` chunk (``dfs.bytes-per-checksum``, CRC32C or CRC32 by
    ``dfs.checksum.type``), an MD5 of each block's CRCs, then an MD5 of the block MD5s as held in Java's
    growable buffer (zero-padded to 32, 64, 128... bytes). ``<n>`` is the number of CRCs per block for files
    of more than one block, else 0. The result equals what ``GETFILECHECKSUM`` returns for the same bytes
    written with the same block size (the file's own ``blockSize``) and bytes per CRC, so a copy can be
    verified against HDFS without reading it back. Memory stays constant whatever the length.
    """

    def __init__(
        self, block_size: int = DEFAULT_BLOCK_SIZE, bytes_per_crc: int = BYTES_PER_CRC, crc: str = "CRC32C"
    ) -> None:
        if bytes_per_crc <= 0 or block_size <= 0 or block_size % bytes_per_crc:
            raise HybridConfigError(f"block size {block_size} must be a positive multiple of {bytes_per_crc}")
        if crc not in _CRC_FUNCTIONS:
            raise HybridConfigError(
                f"unsupported HDFS checksum type {crc!r} (expected one of {sorted(_CRC_FUNCTIONS)})"
            )
        self.block_size = block_size
        self.bytes_per_crc = bytes_per_crc
        self.crc = crc
        self.length = 0
        self._crc = _CRC_FUNCTIONS[crc]
        self._pending = b""  # bytes of an incomplete chunk
        self._block_crcs = hashlib.md5()  # noqa: S324 - HDFS's algorithm, not a security use
        self._block_filled = 0
        self._file_md5 = hashlib.md5()  # noqa: S324 - MD5 of the block MD5s, fed as blocks complete
        self._blocks = 0

    @property
    def params(self) -> tuple[int, int, str]:
        """``(block_size, bytes_per_crc, crc)``: what the result depends on besides the bytes."""
        return self.block_size, self.bytes_per_crc, self.crc

    def update(self, data: bytes) -> None:
        if not data:
            return
        self.length += len(data)
        data = self._pending + bytes(data) if self._pending else bytes(data)
        step = self.bytes_per_crc
        crc = self._crc
        pos, end = 0, len(data) - len(data) % step
        while pos < end:
            take = min(end - pos, self.block_size - self._block_filled)
            crcs = [crc(data[o : o + step]) for o in range(pos, pos + take, step)]
            self._block_crcs.update(struct.pack(f">{len(crcs)}I", *crcs))
            self._block_filled += take
            pos += take
            if self._block_filled == self.block_size:
                self._file_md5.update(self._block_crcs.digest())
                self._blocks += 1
                self._block_crcs = hashlib.md5()  # noqa: S324
                self._block_filled = 0
        self._pending = data[end:]

    def result(self) -> Checksum:
        """The checksum as ``GETFILECHECKSUM`` reports it: algorithm name and the hex of its bytes."""
        file_md5, blocks = self._file_md5.copy(), self._blocks
        if self._pending or self._block_filled:
            crcs = self._block_crcs.copy()
            if self._pending:
                crcs.update(struct.pack(">I", self._crc(self._pending)))
            file_md5.update(crcs.digest())
            blocks += 1
        if not blocks:  # an empty file has no block; HDFS answers a fixed "magic" value
            digest = hashlib.md5(bytes(32)).digest()  # noqa: S324
            return Checksum("MD5-of-0MD5-of-0CRC32", (struct.pack(">iq", 0, 0) + digest).hex())
        capacity = 32  # Java's DataOutputBuffer: the whole backing array is hashed, padding included
        while capacity < 16 * blocks:
            capacity *= 2
        file_md5.update(bytes(capacity - 16 * blocks))
        crc_per_block = self.block_size // self.bytes_per_crc if blocks > 1 else 0
        algorithm = f"MD5-of-{crc_per_block}MD5-of-{self.bytes_per_crc}{self.crc}"
        value = struct.pack(">iq", self.bytes_per_crc, crc_per_block) + file_md5.digest()
        return Checksum(algorithm, value.hex())

    @classmethod
    def of_stream(
        cls,
        stream: BinaryIO,
        block_size: int = DEFAULT_BLOCK_SIZE,
        bytes_per_crc: int = BYTES_PER_CRC,
        crc: str = "CRC32C",
    ) -> Checksum:
        summer = cls(block_size, bytes_per_crc, crc)
        while chunk := stream.read(CHUNK_SIZE):
            summer.update(chunk)
        return summer.result()

    @staticmethod
    def params_of(checksum: Checksum) -> tuple[int, str] | None:
        """``(bytes_per_crc, crc)`` of a ``GETFILECHECKSUM`` answer of this kind; ``None`` for another kind
        (e.g. ``COMPOSITE-CRC32C``) or an empty file (whose checksum does not depend on them)."""
        match = _MD5_OF_CRC.fullmatch(checksum.algorithm)
        if not match or match.group(2) == "0":
            return None
        return int(match.group(2)), match.group(3)
