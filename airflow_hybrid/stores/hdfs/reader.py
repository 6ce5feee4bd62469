"""Ranged reads of an HDFS file: ``OPEN`` with ``offset``/``length``, following the data-node redirect, resumed
at the current offset after a dropped connection (:class:`~airflow_hybrid.ops.reader.ResumableReader`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import requests

from airflow_hybrid.ops.reader import ResumableReader
from airflow_hybrid.stores.base import FileInfo
from airflow_hybrid.stores.hdfs.client import TRANSPORT_ERRORS, WebHdfsRemoteError

if TYPE_CHECKING:
    from airflow_hybrid.stores.hdfs.store import HdfsStore


class _Body:
    """The body of an ``OPEN`` answer, read from its raw stream; closing it releases the connection."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self.read = response.raw.read

    def close(self) -> None:
        self._response.close()


def open_file(store: HdfsStore, rel: str, offset: int, length: int | None) -> ResumableReader:
    """A seekable stream over ``[offset, offset + length)`` of the file ``rel`` (to its end without ``length``)."""

    def check_file() -> FileInfo:
        info = store.info(rel)
        if info.is_dir:
            raise IsADirectoryError(f"{store.uri(rel)} is a directory")
        return info

    def open_at(position: int, count: int | None) -> tuple[_Body, int | None] | None:
        try:
            response = store._call(
                "GET", rel, "OPEN", params={"offset": position or None, "length": count}, stream=True
            )
        except WebHdfsRemoteError as error:
            # Hadoop refuses OPEN at or past the end of a file (403 IOException "Offset=... out of the
            # range"; EOFException "Cannot seek after EOF" for an empty one); a Python file reads b"".
            if error.exception not in ("IOException", "EOFException") or position < check_file().size:
                raise
            return None
        size = response.headers.get("Content-Length")
        return _Body(response), int(size) if size is not None else None

    if offset >= 0 and length == 0:
        check_file()  # nothing to read, but the file must exist, as for open()
    return ResumableReader(
        open_at,
        name=store.uri(rel),
        dropped=lambda error: isinstance(error, TRANSPORT_ERRORS),
        offset=offset,
        length=length,
        max_attempts=store.max_attempts,
        delay=store._delay,
        size=lambda: check_file().size,
    )
