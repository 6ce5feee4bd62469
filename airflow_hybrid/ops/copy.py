"""Streaming, verified copies between any two stores (the "operations" layer, independent of Airflow).

One copy (:func:`copy_file`) streams the source into the destination chunk by chunk, computing the
CRC32C of the bytes as they pass, then proves the destination holds exactly those bytes and that the
source did not change meanwhile:

1. length: the destination's size equals the bytes streamed (and the source's size);
2. content: the destination's stored checksum equals our CRC32C (S3's full-object CRC32C, or its
   composite checksum of the parts we uploaded); for a store without a comparable checksum, the
   destination is read back and its CRC32C compared (``verify="auto"``, the default);
3. source: the source's fingerprint (size, mtime, etag) after the copy equals the one before it
   (or the ``expected`` one from a plan), and its own CRC32C where it stores one.

A destination that fails 1 or 2, or was copied from a source that changed, is deleted (it is not a copy
of anything), so a reader preferring the destination never sees it. A source that was *removed* during
the copy is another matter: someone else moved it, and the destination may now be the only copy, so it
is kept and :class:`SourceGoneError` says so. :func:`copy_many` runs copies on a
thread pool fed from a bounded window of the input iterator, so a million-entry plan streams through.
"""

from __future__ import annotations

import binascii
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_hybrid.exceptions import SourceChangedError, SourceGoneError, TransferError, VerificationError
from airflow_hybrid.ops.checksums import CRC32C, CRC32C_COMPOSITE, Crc32c, decode_crc32c, split_composite
from airflow_hybrid.ops.pool import bounded_map
from airflow_hybrid.ops.retry import is_transient
from airflow_hybrid.stores.base import CHUNK_SIZE, Checksum, FileInfo, Store
from airflow_hybrid.values import format_bytes

if TYPE_CHECKING:
    from airflow_hybrid.ops.progress import FileProgress, ProgressTracker

log = logging.getLogger(__name__)

#: ``verify`` modes of :func:`copy_file`.
VERIFY_MODES = ("auto", "checksum", "reread", "size", "none")


@dataclass(frozen=True)
class TransferResult:
    """A verified copy."""

    src_uri: str
    dst_uri: str
    size: int
    #: base64 CRC32C of the bytes copied.
    crc32c: str
    #: How the destination was verified: ``CRC32C``, ``CRC32C-COMPOSITE``, ``reread``, ``size`` or ``none``.
    verified_by: str
    elapsed: float
    source: FileInfo
    destination: FileInfo


@dataclass(frozen=True)
class TransferFailure:
    """A copy that failed, with the reason."""

    src_uri: str
    dst_uri: str
    error: str
    reason: str


@dataclass(frozen=True)
class CopyRequest:
    """One file to copy; ``expected`` is the source's fingerprint when it was planned."""

    src: Store
    src_path: str
    dst: Store
    dst_path: str
    expected: FileInfo | None = None


class _HashingReader:
    """Pass-through reader that feeds every byte into a running CRC32C."""

    def __init__(self, raw: BinaryIO, hasher: Crc32c, on_bytes: Callable[[int], object] | None = None) -> None:
        self._raw = raw
        self._hasher = hasher
        self._on_bytes = on_bytes

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        if data:
            self._hasher.update(data)
            if self._on_bytes is not None:
                self._on_bytes(len(data))
        return data

    def readable(self) -> bool:
        return True


def _verify_mode(verify: bool | str) -> str:
    if verify is True:
        return "auto"
    if verify is False:
        return "none"
    if verify not in VERIFY_MODES:
        raise ValueError(f"verify={verify!r} must be a bool or one of {', '.join(VERIFY_MODES)}")
    return verify


def comparable_crc32c(checksum: Checksum | None) -> int | None:
    """The whole-file CRC32C in ``checksum``, if it is one: S3's ``CRC32C`` (base64), or HDFS's
    ``COMPOSITE-CRC32C`` (``dfs.checksum.combine.mode=COMPOSITE_CRC``; hex or base64)."""
    if checksum is None or checksum.algorithm.upper() not in (CRC32C, "COMPOSITE-CRC32C"):
        return None
    value = checksum.value
    try:
        if len(value) == 8 and not value.endswith("="):  # hex; base64 of 4 bytes ends with "=="
            return int(value, 16)
        return decode_crc32c(value)
    except (ValueError, binascii.Error):
        return None


def read_crc32c(store: Store, path: str) -> Crc32c:
    """CRC32C and length of a stored file, read back in chunks."""
    hasher = Crc32c()
    with store.open_read(path) as stream:
        while chunk := stream.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher


def copy_file(
    src: Store,
    src_path: str,
    dst: Store,
    dst_path: str,
    *,
    verify: bool | str = True,
    expected: FileInfo | None = None,
    remove_bad_copy: bool = True,
    if_absent: bool = False,
    on_bytes: Callable[[int], object] | None = None,
) -> TransferResult:
    """Copy ``src_path`` of ``src`` to ``dst_path`` of ``dst``, streamed, and verify it end to end.

    :param verify: ``True``/``"auto"``: length, then the destination's stored CRC32C when it has one,
        else read the destination back; ``"checksum"``: require a stored CRC32C; ``"reread"``: always
        read back; ``"size"``: length only; ``False``/``"none"``: no check.
    :param expected: the source's status when the copy was planned (saves a status request); a source
        that differs from it (size, mtime, etag) after the copy raises :class:`SourceChangedError`.
    :param remove_bad_copy: delete a destination that failed verification or came from a changing source.
    :param if_absent: create the destination only if nothing is there (a store declaring
        ``features.exclusive_create``, e.g. S3 with conditional writes): :class:`FileExistsError` if something is, and the
        existing object is neither replaced nor deleted.
    :param on_bytes: called with the size of each chunk as it streams (e.g. a
        :class:`~airflow_hybrid.ops.progress.FileProgress`).
    :raises FileNotFoundError: the source does not exist (and no ``expected`` status says it should).
    :raises SourceGoneError: the ``expected`` source no longer exists (nothing was written).
    """
    mode = _verify_mode(verify)
    src_uri, dst_uri = src.uri(src_path), dst.uri(dst_path)
    if src_uri == dst_uri:
        raise ValueError(f"cannot copy {src_uri} onto itself")
    started = time.monotonic()
    where = f"{src_uri} -> {dst_uri}"

    def bad_copy(error: type[TransferError], message: str) -> TransferError:
        if remove_bad_copy:
            try:
                dst.delete(dst_path)
            except Exception:
                log.exception("Could not delete the unverified copy %s", dst_uri)
        return error(f"{where}: {message}" + ("; the copy was deleted" if remove_bad_copy else ""))

    # A planned copy trusts the plan's status; the check after the copy catches any change since.
    before = expected if expected is not None else src.info(src_path)
    if before.is_dir:
        raise IsADirectoryError(f"{src_uri} is a directory, not a file")
    try:
        raw = src.open_read(src_path)
    except FileNotFoundError:
        if expected is not None:
            raise SourceGoneError(f"{where}: the source no longer exists") from None
        raise
    except Exception as err:
        raise TransferError(f"{where}: opening the source failed: {type(err).__name__}: {err}") from err
    hasher = Crc32c()
    condition = {"if_absent": True} if if_absent else {}
    try:
        with raw:
            written = dst.write(dst_path, _HashingReader(raw, hasher, on_bytes), size_hint=before.size, **condition)
    except FileExistsError as err:
        if if_absent:  # someone else's object (or an earlier run's copy): left as it is
            raise
        raise TransferError(f"{where}: {type(err).__name__}: {err}") from err
    except Exception as err:
        if _gone(src, src_path):  # removed while it was read (by another migration): nothing was written
            raise SourceGoneError(f"{where}: the source was removed during the copy ({type(err).__name__}: "
                                  f"{err}); nothing was written") from err
        raise TransferError(f"{where}: {type(err).__name__}: {err}") from err

    # The source must be the one we started from, from the first byte to the last. One that is gone now
    # was removed by someone else (another migration that verified a copy, maybe this very object): the
    # copy is never deleted then, it may be the only one left.
    try:
        after = src.info(src_path)
    except FileNotFoundError:
        raise SourceGoneError(f"{where}: the source was removed during the copy ({hasher.length} of "
                              f"{before.size} bytes read); the copy was kept") from None
    if after.fingerprint() != before.fingerprint() or hasher.length != before.size:
        raise bad_copy(SourceChangedError, f"the source changed during the copy ({_describe(before)} -> "
                                           f"{_describe(after)}, {hasher.length} bytes read)")
    source_crc = comparable_crc32c(after.extra.get("checksum"))
    if source_crc is not None and source_crc != hasher.value:
        raise bad_copy(VerificationError, f"bytes read (CRC32C {hasher.b64}) differ from the source's "
                                          f"stored CRC32C {after.extra['checksum'].value}")

    verified_by = _verify_destination(mode, dst, dst_path, written, hasher, bad_copy)
    return TransferResult(src_uri=src_uri, dst_uri=dst_uri, size=hasher.length, crc32c=hasher.b64,
                          verified_by=verified_by, elapsed=time.monotonic() - started,
                          source=after, destination=written)


def _gone(store: Store, path: str) -> bool:
    try:
        store.info(path)
    except FileNotFoundError:
        return True
    except Exception:  # unknown: not proven gone
        return False
    return False


def _verify_destination(
    mode: str, dst: Store, dst_path: str, written: FileInfo, hasher: Crc32c,
    bad_copy: Callable[[type[TransferError], str], TransferError],
) -> str:
    if mode == "none":
        return "none"
    if written.size != hasher.length:
        raise bad_copy(VerificationError, f"destination holds {written.size} bytes, {hasher.length} were copied")
    if mode == "size":
        return "size"
    if mode != "reread":
        stored = written.extra["checksum"] if "checksum" in written.extra else dst.checksum(dst_path)
        full = comparable_crc32c(stored)
        if full is not None:
            if full != hasher.value:
                raise bad_copy(VerificationError, f"destination CRC32C {stored.value} differs from the "
                                                  f"copied bytes' {hasher.b64}")
            return CRC32C
        if stored is not None and stored.algorithm == CRC32C_COMPOSITE:
            # The store combined its part checksums (each validated by S3 on upload) into ``crc32c``;
            # it must equal ours, and S3's composite must equal the one of those parts.
            if written.extra.get("crc32c") != hasher.b64:
                raise bad_copy(VerificationError, f"bytes uploaded (CRC32C {written.extra.get('crc32c')}) "
                                                  f"differ from the copied bytes' {hasher.b64}")
            ours = written.extra.get("crc32c_composite")
            value, parts = split_composite(stored.value)
            if ours is None or split_composite(ours)[0] != value or parts not in (None, split_composite(ours)[1]):
                raise bad_copy(VerificationError, f"destination composite CRC32C {stored.value} differs "
                                                  f"from the uploaded parts' {ours}")
            return CRC32C_COMPOSITE
        if mode == "checksum":
            raise bad_copy(VerificationError, f"destination exposes no CRC32C ({stored}) and verify='checksum'")
    reread = read_crc32c(dst, dst_path)
    if (reread.length, reread.value) != (hasher.length, hasher.value):
        raise bad_copy(VerificationError, f"destination read back as {reread.length} bytes CRC32C {reread.b64}, "
                                          f"copied {hasher.length} bytes CRC32C {hasher.b64}")
    return "reread"


def _describe(info: FileInfo) -> str:
    etag = f", etag {info.etag}" if info.etag else ""
    return f"{info.size} bytes, mtime {info.mtime:.0f}{etag}"


# -- many files --------------------------------------------------------------------------------------
@dataclass
class TransferSummary:
    """Totals of :func:`copy_many` (JSON-friendly through :meth:`to_dict`, e.g. for XCom)."""

    files: int = 0
    bytes: int = 0
    failed: int = 0
    #: The first ``max_failures_kept`` failures with their reasons.
    failures: list[TransferFailure] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def throughput(self) -> float:
        """Bytes per second."""
        return self.bytes / self.elapsed if self.elapsed > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "files": self.files, "bytes": self.bytes, "failed": self.failed,
            "elapsed_seconds": round(self.elapsed, 3), "throughput_bytes_per_second": round(self.throughput, 1),
            "failures": [vars(f) for f in self.failures],
        }


def _as_request(item: CopyRequest | tuple) -> CopyRequest:
    return item if isinstance(item, CopyRequest) else CopyRequest(*item)


def copy_many(
    pairs: Iterable[CopyRequest | tuple],
    *,
    concurrency: int = 8,
    verify: bool | str = True,
    on_progress: Callable[[TransferResult | TransferFailure], Any] | None = None,
    attempts: int = 1,
    remove_bad_copy: bool = True,
    max_failures_kept: int = 1000,
) -> TransferSummary:
    """Copy every ``CopyRequest`` (or ``(src, src_path, dst, dst_path[, expected])`` tuple) of ``pairs``.

    Copies run on ``concurrency`` threads; at most ``2 * concurrency`` requests are taken from ``pairs``
    ahead of completion, so the input may be a streamed listing of any length. A failed file does not
    stop the others; ``attempts`` > 1 retries transient failures (not a changed or missing source).
    ``on_progress`` is called as each copy completes with its :class:`TransferResult` or
    :class:`TransferFailure`; a :class:`~airflow_hybrid.ops.progress.ProgressTracker` can be passed as is: it
    then also counts the bytes of the files in flight, chunk by chunk, and logs on its timer while the copies
    run (and, when this call started it, the summary's rate is the tracker's).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency={concurrency} must be at least 1")
    _verify_mode(verify)
    summary = TransferSummary()
    started = time.monotonic()
    tracker: ProgressTracker | None = on_progress if hasattr(on_progress, "begin_file") else None  # type: ignore[assignment]
    times_tracker = tracker is not None and not tracker.running

    def run(request: CopyRequest) -> tuple[TransferResult | TransferFailure, FileProgress | None]:
        file = tracker.begin_file() if tracker is not None else None
        for attempt in range(1, attempts + 1):
            if file is not None:
                file.reset()
            try:
                return copy_file(request.src, request.src_path, request.dst, request.dst_path, verify=verify,
                                 expected=request.expected, remove_bad_copy=remove_bad_copy, on_bytes=file), file
            except Exception as err:
                if not is_transient(err) or attempt == attempts:
                    log.warning("Copy failed: %s", err)
                    return TransferFailure(request.src.uri(request.src_path), request.dst.uri(request.dst_path),
                                           type(err).__name__, str(err)), file
                log.info("Retrying (attempt %d of %d) after: %s", attempt + 1, attempts, err)
                time.sleep(min(0.5 * 2 ** (attempt - 1), 10.0))
        raise AssertionError("unreachable")

    with tracker if tracker is not None else nullcontext():
        for _, (outcome, file) in bounded_map(run, map(_as_request, pairs), concurrency, name="transfer"):
            if isinstance(outcome, TransferFailure):
                summary.failed += 1
                if len(summary.failures) < max_failures_kept:
                    summary.failures.append(outcome)
            else:
                summary.files += 1
                summary.bytes += outcome.size
            if on_progress is not None:
                try:
                    if tracker is not None:
                        tracker(outcome, file=file)
                    else:
                        on_progress(outcome)
                except Exception:
                    log.exception("Progress callback failed")
    if times_tracker:
        summary.elapsed = tracker.elapsed  # type: ignore[union-attr]
    else:
        summary.elapsed = time.monotonic() - started
    log.info("Copied %d files (%s) in %.1fs, %s/s; %d failed", summary.files, format_bytes(summary.bytes),
             summary.elapsed, format_bytes(summary.throughput), summary.failed)
    return summary
