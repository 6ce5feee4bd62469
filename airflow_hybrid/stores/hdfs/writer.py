"""Writes to HDFS: a two-step ``CREATE`` streamed to a hidden temporary name beside the target, checked with
``GETFILECHECKSUM`` against :class:`.HdfsFileChecksum` when ``verify_checksum`` is on, then renamed over it.

A data node that refuses a file (permission, parent, quota, safe mode) is told from a dropped connection, even
when a reset loses its answer (the same ``CREATE`` is probed again without a body); a retriable failure repeats
the whole write when the source can be rewound. Nothing is left behind: a failed temporary file is deleted.
"""

from __future__ import annotations

import logging
import posixpath
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_hybrid.stores.base import FileInfo, StoreError, normalize_path
from airflow_hybrid.stores.hdfs.checksum import (
    BYTES_PER_CRC,
    CHECKSUM_TYPES,
    DEFAULT_BLOCK_SIZE,
    HdfsFileChecksum,
)
from airflow_hybrid.stores.hdfs.client import RETRIABLE_REMOTE, TRANSPORT_ERRORS, WebHdfsRemoteError, describe

if TYPE_CHECKING:
    from airflow_hybrid.stores.hdfs.store import HdfsStore

log = logging.getLogger(__name__)

#: Prefix of the temporary files a write creates next to its target (hidden from listings).
HDFS_TMP_PREFIX = ".hybrid-tmp-"
#: HDFS's limit on one path component (``dfs.namenode.fs-limits.max-component-length``), in UTF-8 bytes.
MAX_NAME_BYTES = 255
#: Data-node answers to ``CREATE`` given before the file exists (nothing to remove after them).
_CREATE_REFUSALS = RETRIABLE_REMOTE | {
    "AccessControlException",
    "FileAlreadyExistsException",
    "ParentNotDirectoryException",
    "NSQuotaExceededException",
    "PathComponentTooLongException",
    "InvalidPathException",
}


def _temp_name(name: str) -> str:
    """``.hybrid-tmp-<uuid>-<name>``, cut to HDFS's 255-byte name limit without splitting a character."""
    raw = f"{HDFS_TMP_PREFIX}{uuid.uuid4().hex}-{name}".encode()
    return raw[:MAX_NAME_BYTES].decode("utf-8", "ignore")


def _rewind_point(stream: Any) -> int | None:
    """The position ``stream`` can be rewound to for another attempt; ``None`` if it cannot seek."""
    try:
        return stream.tell() if stream.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


class _DataNodeFailure(Exception):
    """The data-node step of ``CREATE`` failed with ``error`` (internal to :meth:`HdfsStore.write`)."""

    def __init__(self, error: Exception, *, retriable: bool, maybe_created: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.retriable = retriable
        self.maybe_created = maybe_created


def write_file(store: HdfsStore, path: str, stream: BinaryIO, *, if_absent: bool = False) -> FileInfo:
    """:meth:`HdfsStore.write <airflow_hybrid.stores.hdfs.store.HdfsStore.write>`."""
    rel = normalize_path(path)
    store._refuse_if_absent(rel, if_absent)
    if not rel:
        raise IsADirectoryError(f"{store.uri(rel)} is the store root, not a file")
    target = store._abs(rel)
    parent, name = posixpath.split(target)
    start = _rewind_point(stream)
    attempt = 0
    while True:
        attempt += 1
        temp = posixpath.join(parent, _temp_name(name))
        try:
            summer = _upload(store, rel, temp, stream)
        except _DataNodeFailure as failure:
            if failure.maybe_created:
                store._discard(temp)
            if not failure.retriable:
                raise failure.error from failure.error.__cause__
            if start is None or attempt >= store.max_attempts:
                why = (
                    f"after {attempt} attempts"
                    if start is not None
                    else "not retried: the source stream cannot be rewound"
                )
                raise StoreError(
                    f"{store.uri(rel)}: WebHDFS CREATE {temp} failed at the data node ({why}); "
                    f"last error: {describe(failure.error)}"
                ) from failure.error
            log.warning(
                "WebHDFS CREATE %s failed at the data node (%s); retry %d of %d",
                temp,
                describe(failure.error),
                attempt,
                store.max_attempts - 1,
            )
            store._backoff(attempt)
            stream.seek(start)
            continue
        except BaseException:
            store._discard(temp)
            raise
        try:
            if summer is not None:
                _verify_written(store, rel, temp, summer, stream, start)
            store._rename_over(temp, target, rel)
        except BaseException:
            store._discard(temp)
            raise
        return store.info(rel)


def _upload(store: HdfsStore, rel: str, temp: str, stream: BinaryIO) -> HdfsFileChecksum | None:
    """Both steps of ``CREATE`` for ``temp``; the checksum of what was sent, when verifying.

    :raises _DataNodeFailure: the data node refused the file or the connection to it failed.
    """
    opts = store.options
    redirect = store._call(
        "PUT",
        rel,
        "CREATE",
        hdfs_path=temp,
        params={
            "overwrite": "false",
            "replication": opts.get("replication"),
            "blocksize": opts.get("blocksize"),
            "permission": opts.get("permission"),
        },
        allow_redirects=False,
    )
    location = redirect.headers.get("Location")
    if redirect.status_code == 200 and not location:  # noredirect-style answer
        location = redirect.json().get("Location")
    redirect.close()
    if not location:
        raise StoreError(
            f"{store.uri(rel)}: WebHDFS CREATE answered {redirect.status_code} without a data-node location"
        )
    summer = HdfsFileChecksum(*_file_layout(store)) if store.verify_checksum else None
    source_errors: list[Exception] = []

    def body() -> Iterator[bytes]:
        while True:
            try:
                chunk = stream.read(store.chunk_size)
            except Exception as error:  # noqa: BLE001 - re-raised by _upload
                # End the body instead of dropping the connection: a Hadoop data node goes on to create
                # the file regardless, maybe after a DELETE of it; once it has answered, the DELETE works.
                source_errors.append(error)
                return
            if not chunk:
                return
            if summer is not None:
                summer.update(chunk)
            yield chunk

    try:
        response = store._datanode_put(location, body())
    except TRANSPORT_ERRORS as error:
        if source_errors:  # the source failed, not the data node
            raise source_errors[0] from None
        # A data node that refuses a file answers and closes the connection, maybe while the body is
        # still being sent; urllib3 reads that answer after a broken pipe, but a reset can lose it.
        refusal = _probe_create(store, location, rel, temp)
        if refusal is None:
            raise _DataNodeFailure(
                StoreError(f"{store.uri(rel)}: upload of {temp} to the data node failed: {error}"),
                retriable=True,
                maybe_created=True,
            ) from error
        remote = refusal
    else:
        if source_errors:  # the data node stored what was read before the source failed: not a file
            response.close()
            raise source_errors[0]
        if response.status_code < 400:
            response.close()
            return summer
        remote = store._remote_error(response, rel, "CREATE", temp)
    retriable = remote.exception in RETRIABLE_REMOTE
    raise _DataNodeFailure(
        remote if retriable else store._builtin_error(remote),
        retriable=retriable,
        maybe_created=remote.exception not in _CREATE_REFUSALS,
    )


def _probe_create(store: HdfsStore, location: str, rel: str, temp: str) -> WebHdfsRemoteError | None:
    """After a failed upload, the data node's answer to the same ``CREATE`` without a body: it repeats a
    refusal (permission, parent, safe mode, quota). ``None`` if it accepts or cannot be reached, or
    finds the file there (the failed upload had created it: the connection failed, not the create)."""
    try:
        response = store._datanode_put(location, b"")
    except TRANSPORT_ERRORS:
        return None
    if response.status_code < 400:
        response.close()
        return None
    error = store._remote_error(response, rel, "CREATE", temp)
    if error.exception in ("FileAlreadyExistsException", "AlreadyBeingCreatedException"):
        return None
    return error


def _file_layout(store: HdfsStore) -> tuple[int, int, str]:
    """Block size, bytes per CRC and CRC type that new files get, for :class:`HdfsFileChecksum`: the
    ``blocksize`` option, else the namenode's ``GETSERVERDEFAULTS``, else HDFS's defaults (128 MiB, 512,
    CRC32C); corrected by what a verified upload found."""
    if store._layout is None:
        defaults = store._server_defaults()
        store._layout = (
            int(defaults.get("blockSize") or DEFAULT_BLOCK_SIZE),
            int(defaults.get("bytesPerChecksum") or BYTES_PER_CRC),
            CHECKSUM_TYPES.get(defaults.get("checksumType"), "CRC32C"),
        )
    block_size, bytes_per_crc, crc = store._layout
    return int(store.options.get("blocksize") or block_size), bytes_per_crc, crc


def _verify_written(store: HdfsStore, rel: str, temp: str, summer: HdfsFileChecksum, stream: BinaryIO, start: int | None
) -> None:
    """HDFS's checksum of ``temp`` against the one of the bytes sent, both for the file's own block size
    and bytes per CRC (if they are not the ones assumed, the source is read again from ``start``)."""
    status = store._call("GET", rel, "GETFILESTATUS", hdfs_path=temp).json()["FileStatus"]
    actual = store._file_checksum(rel, temp)
    found = HdfsFileChecksum.params_of(actual)
    if found is None and summer.length:
        raise StoreError(
            f"{store.uri(rel)}: cannot verify the upload: HDFS answered a {actual.algorithm} checksum, "
            "not MD5-of-MD5-of-CRC (dfs.checksum.combine.mode=MD5MD5CRC)"
        )
    layout = (int(status.get("blockSize") or summer.block_size), *(found or summer.params[1:]))
    if layout != summer.params:
        store._layout = layout if not store.options.get("blocksize") else (store._layout[0], *layout[1:])
        if start is None:
            raise StoreError(
                f"{store.uri(rel)}: cannot verify the upload: HDFS stored it in {layout[0]}-byte blocks "
                f"with a {layout[2]} per {layout[1]} bytes, not the {summer.block_size}-byte blocks and "
                f"{summer.crc} per {summer.bytes_per_crc} bytes assumed, and the source cannot be re-read"
            )
        log.info(
            "%s: HDFS stored %s as %s (not %s); re-reading the source",
            store.root_uri,
            temp,
            layout,
            summer.params,
        )
        length, summer = summer.length, HdfsFileChecksum(*layout)
        stream.seek(start)
        while length and (chunk := stream.read(min(store.chunk_size, length))):
            summer.update(chunk)
            length -= len(chunk)
    expected = summer.result()
    if actual != expected:
        raise StoreError(
            f"{store.uri(rel)}: checksum mismatch after upload: sent {expected.algorithm}:{expected.value}, "
            f"HDFS has {actual.algorithm}:{actual.value}"
        )
