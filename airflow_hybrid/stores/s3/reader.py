"""Ranged reads of an S3 object: ``GetObject`` with ``Range``, resumed at the current offset with ``If-Match`` on
the first answer's ETag when the connection drops (:class:`~airflow_hybrid.ops.reader.ResumableReader`)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, BinaryIO

from botocore.exceptions import BotoCoreError, ClientError

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.ops.reader import ResumableReader
from airflow_hybrid.stores.base import StoreError

if TYPE_CHECKING:
    from airflow_hybrid.stores.s3.store import S3Store

#: Errors of a body being read that mean its connection dropped.
_DROPPED = (BotoCoreError, ConnectionError, TimeoutError)


def _byte_range(offset: int, length: int | None) -> str | None:
    if not offset and length is None:
        return None
    return f"bytes={offset}-{offset + length - 1}" if length is not None else f"bytes={offset}-"


def open_object(store: S3Store, rel: str, offset: int, length: int | None) -> BinaryIO:
    """A stream over ``[offset, offset + length)`` of the object at ``rel`` (to its end without ``length``)."""
    key = store._key(rel)
    if offset < 0 or (length is not None and length < 0):
        raise HybridConfigError(f"invalid range offset={offset} length={length} for {store.uri(rel)}")
    if length == 0:
        store._head(key)
        return io.BytesIO(b"")
    try:
        first = store._get_object(key, _byte_range(offset, length))
    except StoreError as err:
        if isinstance(err.__cause__, ClientError) and err.__cause__.response["Error"]["Code"] == "InvalidRange":
            return io.BytesIO(b"")  # offset at or past the end, as a local file reads
        raise
    except FileNotFoundError:
        if rel and store._has_children(store._dir_prefix(rel)):
            raise IsADirectoryError(f"{store.uri(rel)} is a directory") from None
        raise
    match = {"IfMatch": first["ETag"]} if first.get("ETag") else {}

    def open_at(position: int, count: int | None) -> tuple[Any, int]:
        response = store._get_object(key, _byte_range(position, count), **match)
        return response["Body"], int(response["ContentLength"])

    return ResumableReader(  # type: ignore[return-value]
        open_at,
        name=store.s3_uri(key),
        dropped=lambda error: isinstance(error, _DROPPED),
        offset=offset,
        length=length,
        max_attempts=store.options.max_attempts,
        opened=(first["Body"], int(first["ContentLength"])),
    )
