"""CRC32C, the checksum the project verifies copies with, as S3 computes and reports it.

S3 reports CRC32C base64-encoded (big-endian, 4 bytes). A multipart object carries either a
``FULL_OBJECT`` checksum (the CRC32C of all its bytes) or a ``COMPOSITE`` one: the CRC32C of the
concatenated part checksums, which real S3 shows with a ``-<parts>`` suffix. :class:`Crc32c`
computes the full-object value while bytes stream through; :func:`composite_crc32c` the composite
one from the part checksums. The hardware-accelerated implementation from ``awscrt`` (installed with
``boto3[crt]``) does the work; it also combines two checksums without re-reading the data.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from awscrt import checksums as _crt

#: Algorithm names used in :class:`~airflow_hybrid.stores.base.Checksum`.
CRC32C = "CRC32C"
CRC32C_COMPOSITE = "CRC32C-COMPOSITE"


def crc32c(data: bytes | bytearray | memoryview, previous: int = 0) -> int:
    """CRC32C of ``data``, continuing from ``previous`` (the CRC32C of the bytes before it)."""
    return _crt.crc32c(data, previous)


def encode_crc32c(value: int) -> str:
    """S3's text form of a CRC32C: base64 of the 4 big-endian bytes."""
    return base64.b64encode(value.to_bytes(4, "big")).decode("ascii")


def decode_crc32c(text: str) -> int:
    """Inverse of :func:`encode_crc32c` (a ``-<parts>`` suffix is ignored)."""
    raw = base64.b64decode(text.split("-", 1)[0])
    if len(raw) != 4:
        raise ValueError(f"not a base64 CRC32C: {text!r}")
    return int.from_bytes(raw, "big")


def composite_crc32c(part_checksums: Iterable[int]) -> str:
    """S3's composite checksum of a multipart object: ``<base64 CRC32C of the part checksums>-<parts>``."""
    value = 0
    count = 0
    for part in part_checksums:
        value = _crt.crc32c(part.to_bytes(4, "big"), value)
        count += 1
    return f"{encode_crc32c(value)}-{count}"


def split_composite(text: str) -> tuple[str, int | None]:
    """``("abc=", 3)`` for ``"abc=-3"``; ``("abc=", None)`` when there is no part suffix."""
    value, sep, parts = text.partition("-")
    return value, (int(parts) if sep and parts.isdigit() else None)


class Crc32c:
    """Running CRC32C and byte count of a stream, updated chunk by chunk."""

    __slots__ = ("value", "length")

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self.value = _crt.crc32c(data, self.value)
        self.length += len(data)

    def combine(self, part_value: int, part_length: int) -> None:
        """Append a block whose CRC32C is already known."""
        self.value = _crt.combine_crc32c(self.value, part_value, part_length)
        self.length += part_length

    @property
    def b64(self) -> str:
        return encode_crc32c(self.value)
