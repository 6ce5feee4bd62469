"""Migrate planned files: copy -> verify -> re-check the source -> remove, idempotent and crash-safe.

The unit of work is one :class:`~airflow_hybrid.migration.planner.PlanEntry` (a file of a REMOVE member, with
the fingerprint it had when planned). :meth:`Migrator.migrate_file` moves it:

1. for every STORE member, in order, a copy is made unless the member already holds one:

   * a file every STORE member can create exclusively (S3 with conditional writes, below the multipart
     threshold) is streamed straight from the plan into an ``If-None-Match: *`` write: no status of the
     source first (the one after the copy compares it with the plan) and no look at the destination
     first. Only when the write is refused because an object is there is it inspected, as below;
   * otherwise the source's status is compared with the plan first (a source that is gone, or no longer
     the planned file, is never removed), then the member is inspected: no object at the path:
     orphaned multipart uploads of that key (left by a killed run) are aborted and the file is streamed
     into the member; an identical object (same length and CRC32C): nothing is copied (a run that
     crashed between copy and removal left it); a different object: a conflict. It is never overwritten
     and the file is reported as failed;

   every copy is verified end to end (length, CRC32C computed while streaming against the member's
   stored checksum, source unchanged; see :func:`~airflow_hybrid.ops.copy.copy_file`);

2. once every STORE member holds a verified copy, the source's status (taken right after the last copy)
   must still be the planned file, and only then is the file removed from its REMOVE member.

A small file thus costs five requests: the source's ``OPEN`` (name node and data node), one
``PutObject``, one source status and the ``DELETE``.

Every step is safe to repeat, so a re-run of the same plan after a crash at any point converges: files
already moved are recognised (the source is gone and every STORE member holds a copy of the planned
size) and counted as skipped. Transient errors (S3 5xx, dropped connections) are retried with backoff.

**Concurrent migrations** (a manual run overlapping the scheduled one, ``max_active_runs > 1``, a retry
while the first attempt still runs, many workers) never lose or corrupt a file, by two rules:

* *claims* (:class:`~airflow_hybrid.migration.claims.MigrationClaims`, a lease per file in the migration
  state database, renewed while the run works): a file another live run holds is left to it and reported
  as ``claimed``, not as a failure; a killed run's leases expire, and the run that takes one over first
  aborts the multipart uploads the dead run left open for that key;
* *never delete what may be the only copy*, which holds even without claims (a lease lost to a stalled
  worker, runs that do not share a database): a destination object is deleted only by the run that
  created it, exclusively where the store can (``If-None-Match: *``), and only while the source still
  exists (a copy of a source that changed meanwhile, or one that failed verification). A source that is
  gone once a copy is complete was removed by a run that had verified a copy (possibly this one): the
  copy is kept, and the file counts as skipped when every STORE member holds its planned bytes. The
  source is removed only after every STORE member holds a verified copy and the source is still the
  planned file; a source another run removed first is not an error.

:class:`Migrator.run` drives a stream of entries through a thread pool with a bounded window, so a plan
batch of any length runs in constant memory, and reports a :class:`MigrationSummary`.

Limits worth knowing: WebHDFS has no conditional delete, so a write to the source landing between the
final fingerprint check and the delete (a window of one request) is lost with the source; HDFS files are
written once in practice. A copy in a STORE member shadows the source for readers that prefer that
member, which is why copies of a source that changed are deleted straight away; on the exclusive-create
path a source changed since the plan is noticed only after its copy, so such a copy exists briefly too.
A conditional ``PutObject`` or ``CompleteMultipartUpload`` whose answer was lost and that botocore retried
is recognised by the S3 store as its own (size, ETag, time) and counts as written.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_hybrid.exceptions import HybridError, SourceChangedError, SourceGoneError, TransferError
from airflow_hybrid.migration.planner import MountLike, PlanEntry
from airflow_hybrid.ops.copy import comparable_crc32c, copy_file, read_crc32c
from airflow_hybrid.ops.pool import bounded_map
from airflow_hybrid.ops.progress import FileProgress, ProgressTracker
from airflow_hybrid.ops.retry import is_transient
from airflow_hybrid.policy.model import Policy
from airflow_hybrid.stores.base import FileInfo, Store
from airflow_hybrid.values import format_bytes

if TYPE_CHECKING:
    from airflow_hybrid.migration.claims import MigrationClaims

log = logging.getLogger(__name__)

#: Outcomes of one file.
#: Copied to every STORE member (at least one copy made by this run) and removed from its source.
MOVED = "moved"
#: Nothing copied: every STORE member already held an identical copy (or the file was moved before).
SKIPPED = "skipped"
#: The source changed or vanished: not removed, by design.
KEPT = "kept"
#: An error or a conflict: not removed.
FAILED = "failed"
#: Another live run holds the file's claim: left to it, nothing done.
CLAIMED = "claimed"
OUTCOMES = (MOVED, SKIPPED, KEPT, FAILED, CLAIMED)
#: Files claimed (and released) per transaction of the claims database: a few per second of small files.
CLAIM_BATCH = 64

class MigrationConflict(HybridError):
    """A STORE member holds a different object at the path; it is left untouched."""


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one planned file."""

    path: str
    source: str
    status: str
    size: int
    #: Bytes written to STORE members by this attempt (0 when every copy already existed).
    copied_bytes: int = 0
    reason: str | None = None
    #: Attempts made (1 unless transient errors were retried).
    attempts: int = 1

    @property
    def done(self) -> bool:
        """The file is where the policy wants it: copies verified, source removed."""
        return self.status in (MOVED, SKIPPED)


@dataclass
class MigrationSummary:
    """Totals of a migration run; :meth:`to_dict` is what the operator pushes to XCom."""

    files: int = 0
    moved: int = 0
    skipped: int = 0
    kept: int = 0
    failed: int = 0
    #: Files left to other runs that held their claims.
    claimed: int = 0
    #: Bytes written to STORE members.
    bytes: int = 0
    #: Size of the files now migrated (moved or skipped).
    migrated_bytes: int = 0
    elapsed: float = 0.0
    #: The first ``max_failures_kept`` files that were kept or failed, with the reason.
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        """Bytes written per second."""
        return self.bytes / self.elapsed if self.elapsed > 0 else 0.0

    def add(self, outcome: FileOutcome, max_failures_kept: int) -> None:
        self.files += 1
        self.bytes += outcome.copied_bytes
        if outcome.status == MOVED:
            self.moved += 1
        elif outcome.status == SKIPPED:
            self.skipped += 1
        elif outcome.status == KEPT:
            self.kept += 1
        elif outcome.status == CLAIMED:
            self.claimed += 1
            return
        else:
            self.failed += 1
        if outcome.done:
            self.migrated_bytes += outcome.size
        elif len(self.failures) < max_failures_kept:
            self.failures.append(
                {"path": outcome.path, "status": outcome.status, "reason": outcome.reason or ""}
            )

    def merge(self, other: MigrationSummary, max_failures_kept: int) -> None:
        for name in ("files", "moved", "skipped", "kept", "failed", "claimed", "bytes", "migrated_bytes"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.elapsed += other.elapsed
        self.failures.extend(other.failures[: max(0, max_failures_kept - len(self.failures))])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (XCom) summary."""
        return {
            "files": self.files,
            "moved": self.moved,
            "skipped": self.skipped,
            "kept": self.kept,
            "failed": self.failed,
            "claimed": self.claimed,
            "bytes": self.bytes,
            "migrated_bytes": self.migrated_bytes,
            "elapsed_seconds": round(self.elapsed, 3),
            "throughput_bytes_per_second": round(self.throughput, 1),
            "failures": list(self.failures),
        }


class Migrator:
    """Moves planned files of ``mount`` from the policy's REMOVE member(s) to its STORE member(s).

    :param mount: the union mount (its ``members`` are used).
    :param policy: the policy the plan was made with (names the STORE members).
    :param copy: write missing copies (``False``: only verify copies another engine wrote, e.g. S3DistCp,
        and remove the sources whose copies verify; those files count as moved, their bytes as written).
    :param verify: how a fresh copy is verified (see :func:`~airflow_hybrid.ops.copy.copy_file`).
    :param attempts: attempts per file for transient errors.
    :param retry_delay: first backoff in seconds, doubled per attempt (capped at 30 s).
    :param claims: per-file leases shared with concurrent runs (see the module's docstring); ``None`` works
        alone, still never deleting a possible only copy.
    """

    def __init__(
        self,
        mount: MountLike,
        policy: Policy,
        *,
        copy: bool = True,
        verify: bool | str = "auto",
        attempts: int = 3,
        retry_delay: float = 1.0,
        claims: MigrationClaims | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError(f"attempts={attempts} must be at least 1")
        both = set(policy.store_members) & set(policy.remove_members)
        if both:
            raise ValueError(
                f"policy {policy.to_text()!r}: member(s) {sorted(both)} are both STORE and REMOVE"
            )
        if not policy.store_members:
            raise ValueError(f"policy {policy.to_text()!r} has no STORE member: removing would lose data")
        self.mount = mount
        self.policy = policy
        self.copy = copy
        self.verify = verify
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.claims = claims
        #: Per STORE member, the paths with an open multipart upload when :meth:`run` started (``None``:
        #: not listed, so every key is checked before it is written).
        self._orphans: dict[str, set[str]] | None = None

    # -- one file -------------------------------------------------------------------------------------
    def migrate_file(self, entry: PlanEntry, progress: FileProgress | None = None) -> FileOutcome:
        """Move one file; never raises for a per-file problem (the outcome says what happened).

        :param progress: counts the bytes written as they stream (reset when an attempt is retried).
        """
        for attempt in range(1, self.attempts + 1):
            if progress is not None:
                progress.reset()
            try:
                status, copied, reason = self._migrate_once(entry, progress)
                return FileOutcome(entry.path, entry.source, status, entry.size, copied, reason, attempt)
            except MigrationConflict as err:
                return FileOutcome(entry.path, entry.source, FAILED, entry.size, 0, str(err), attempt)
            except SourceChangedError as err:
                return FileOutcome(entry.path, entry.source, KEPT, entry.size, 0, f"{err}; kept", attempt)
            except Exception as err:
                transient = is_transient(err)
                if not transient or attempt == self.attempts:
                    log.warning("Migration of %s failed (attempt %d): %s", entry.path, attempt, err)
                    reason = f"{type(err).__name__}: {err}"
                    if transient:
                        reason += f" (after {attempt} attempts)"
                    return FileOutcome(entry.path, entry.source, FAILED, entry.size, 0, reason, attempt)
                delay = min(self.retry_delay * 2 ** (attempt - 1), 30.0)
                log.info(
                    "Retrying %s in %.1fs (attempt %d of %d) after: %s",
                    entry.path,
                    delay,
                    attempt + 1,
                    self.attempts,
                    err,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _migrate_once(self, entry: PlanEntry, progress: FileProgress | None = None) -> tuple[str, int, str | None]:
        try:
            return self._move(entry, progress)
        except FileNotFoundError:  # the source vanished while it was read: another run moved it, or it is lost
            if _stat(self.mount.members[entry.source], entry.path) is not None:
                raise
            return self._source_gone(entry)

    def _move(self, entry: PlanEntry, progress: FileProgress | None = None) -> tuple[str, int, str | None]:
        src = self.mount.members[entry.source]
        path = entry.path
        # Where every STORE member can create the key exclusively (S3 conditional writes), the copy starts
        # straight from the plan: no status of the source first (the one after the copy catches any change
        # since the plan) and no look at the destination first (a key that exists refuses the write, and
        # only then is it inspected). Otherwise the source and each destination are inspected first.
        current: FileInfo | None = None
        if not self._create_exclusively(entry):
            current = _stat(src, path)
            problem = self._source_problem(entry, current)
            if problem is not None:
                return problem
        planned = FileInfo(path=path, size=entry.size, mtime=entry.mtime, etag=entry.etag,
                           extra={"checksum": entry.checksum} if entry.checksum is not None else {})

        copied = 0
        written: list[Store] = []
        after: FileInfo | None = None  # the source's status right after the last copy, when fresh
        for member in self.policy.store_members:
            dst = self.mount.members[member]
            if current is None:
                self._abort_orphans(member, dst, path)
                try:
                    result = copy_file(src, path, dst, path, verify=self.verify, expected=planned, if_absent=True,
                                       on_bytes=progress)
                except (FileExistsError, SourceGoneError) as err:
                    # An object is there (inspected below, against the source as it is now), or the source
                    # could not be opened. Copies already made are of the planned file: kept if the source
                    # is gone, deleted if it changed.
                    current = _stat(src, path)
                    problem = self._source_problem(entry, current, copied)
                    if problem is not None:
                        if current is not None:
                            self._discard(written, path)
                        return problem
                    if isinstance(err, SourceGoneError):  # there after all: a transient failure, retried
                        raise TransferError(f"{src.uri(path)} could not be opened though it exists") from err
                except SourceChangedError as err:  # copy_file deleted the copy it made (the source still exists)
                    self._discard(written, path)
                    return KEPT, copied, f"{err}; kept"
                else:
                    copied += result.size
                    written.append(dst)
                    after = result.source  # copy_file stat'ed the source once the copy was complete
                    continue
            if self._holds_identical(src, dst, path, current):
                after = None
                if not self.copy:  # verifying a bulk copier's work: the copy it made is this run's
                    copied += current.size
                    written.append(dst)
                continue
            if not self.copy:
                return (
                    FAILED,
                    copied,
                    f"{dst.uri(path)} holds no copy (the bulk copy did not produce one); kept",
                )
            self._abort_orphans(member, dst, path)
            exclusive = dst.features.exclusive_create
            try:
                result = copy_file(src, path, dst, path, verify=self.verify, expected=current, if_absent=exclusive,
                                   on_bytes=progress)
            except FileExistsError:  # another run's copy landed since the look above: never replaced
                if self._holds_identical(src, dst, path, current):  # else a MigrationConflict
                    after = None
                    continue
                raise
            except SourceGoneError:  # removed by another run meanwhile: every copy is kept
                return self._source_gone(entry, copied)
            except SourceChangedError as err:  # copy_file deleted the copy it made
                self._discard(written, path)
                return KEPT, copied, f"{err}; kept"
            copied += result.size
            written.append(dst)
            after = result.source  # copy_file stat'ed the source once the copy was complete

        # Every STORE member holds a verified copy; the source must still be the planned file.
        if after is None:
            after = _stat(src, path)
        if after is None:  # another run removed it once it held verified copies (these, maybe)
            return self._source_gone(entry, copied)
        if not entry.unchanged(after):
            self._discard(written, path)
            return (
                KEPT,
                copied,
                f"{src.uri(path)} changed after it was copied ({_describe_entry(entry)} -> "
                f"{_describe(after)}); kept, the copies made were deleted",
            )
        if not src.delete(path):  # another run removed it first, after verifying the same copies
            return SKIPPED, copied, "the source was removed by another run once every copy was verified"
        return (MOVED if written else SKIPPED), copied, None

    def _create_exclusively(self, entry: PlanEntry) -> bool:
        """Whether every STORE member can take this file with an exclusive create (see :meth:`_migrate_once`)."""
        if not self.copy:
            return False
        return all(self.mount.members[member].features.cheap_exclusive_create(entry.size)
                   for member in self.policy.store_members)

    def _source_problem(
        self, entry: PlanEntry, current: FileInfo | None, copied: int = 0
    ) -> tuple[str, int, str | None] | None:
        """The outcome when the source is gone, a directory or not the planned file; ``None`` when it is."""
        src = self.mount.members[entry.source]
        if current is None:
            return self._source_gone(entry, copied)
        if current.is_dir:
            return FAILED, 0, f"{src.uri(entry.path)} is now a directory"
        if not entry.unchanged(current):
            return (
                KEPT,
                0,
                f"{src.uri(entry.path)} changed since it was planned ({_describe_entry(entry)} -> "
                f"{_describe(current)}); kept",
            )
        return None

    def _abort_orphans(self, member: str, dst: Store, path: str) -> None:
        """Abort multipart uploads of ``path`` a killed run left open (they would otherwise stay forever)."""
        if not dst.features.multipart_uploads or (
            self._orphans is not None and path not in self._orphans.get(member, ())
        ):
            return
        aborted = dst.abort_open_uploads(path)
        if aborted:
            log.info("Aborted %d orphaned multipart upload(s) of %s", aborted, dst.uri(path))

    def _list_orphans(self, prefix: str) -> dict[str, set[str]]:
        orphans: dict[str, set[str]] = {}
        for member in self.policy.store_members:
            store = self.mount.members[member]
            if store.features.multipart_uploads:
                orphans[member] = {upload.path for upload in store.list_open_uploads(prefix)}
        return orphans

    def _source_gone(self, entry: PlanEntry, copied: int = 0) -> tuple[str, int, str | None]:
        """The source no longer exists: moved (by another or an earlier run) if every STORE member holds it.

        Nothing is deleted here: a copy in a STORE member may be the only one left.
        """
        src = self.mount.members[entry.source]
        for member in self.policy.store_members:
            dst = self.mount.members[member]
            existing = _stat(dst, entry.path)
            if existing is None or existing.is_dir or existing.size != entry.size:
                return (
                    FAILED,
                    copied,
                    f"{src.uri(entry.path)} no longer exists and {dst.uri(entry.path)} holds "
                    f"no copy of its planned {entry.size} bytes",
                )
            planned = comparable_crc32c(entry.checksum)
            stored = comparable_crc32c(existing.extra.get("checksum"))
            if planned is not None and stored is not None and planned != stored:
                return (
                    FAILED,
                    copied,
                    f"{src.uri(entry.path)} no longer exists and {dst.uri(entry.path)} holds a "
                    "different object",
                )
        return SKIPPED, copied, "already moved: the source is gone and every STORE member holds its copy"

    def _holds_identical(self, src: Store, dst: Store, path: str, source: FileInfo) -> bool:
        """Whether ``dst`` holds exactly the source's bytes; raise :class:`MigrationConflict` if it holds others."""
        existing = _stored_stat(dst, path)
        if existing is None:
            return False
        where = dst.uri(path)
        if existing.is_dir:
            raise MigrationConflict(f"{where} is a directory; {src.uri(path)} not moved")
        if existing.size != source.size:
            raise MigrationConflict(
                f"{where} already holds a different object ({existing.size} bytes, the "
                f"source has {source.size}); not overwritten, {src.uri(path)} kept"
            )
        src_crc = comparable_crc32c(source.extra.get("checksum"))
        if src_crc is None:
            hashed = read_crc32c(src, path)
            if hashed.length != source.size:
                raise SourceChangedError(f"{src.uri(path)} changed while it was read")
            src_crc = hashed.value
        stored = existing.extra.get("checksum") if "checksum" in existing.extra else dst.checksum(path)
        dst_crc = comparable_crc32c(stored)
        if dst_crc is None:
            dst_crc = read_crc32c(dst, path).value
        if dst_crc != src_crc:
            raise MigrationConflict(
                f"{where} already holds a different object of the same size (CRC32C "
                f"differs); not overwritten, {src.uri(path)} kept"
            )
        return True

    @staticmethod
    def _discard(written: list[Store], path: str) -> None:
        for dst in written:
            try:
                dst.delete(path)
            except Exception:
                log.exception("Could not delete the copy %s of a changed source", dst.uri(path))

    def pending_copies(self, entry: PlanEntry) -> list[str]:
        """STORE members that hold no copy of ``entry`` yet (for a bulk copier's manifest).

        Members holding an identical copy are left out, and so are all members when one of them holds a
        conflicting object or the source is no longer the planned file: those need no copy.
        """
        src = self.mount.members[entry.source]
        current = _stat(src, entry.path)
        if current is None or current.is_dir or not entry.unchanged(current):
            return []
        missing = []
        for member in self.policy.store_members:
            try:
                if not self._holds_identical(src, self.mount.members[member], entry.path, current):
                    missing.append(member)
            except (MigrationConflict, SourceChangedError):
                return []
        return missing

    # -- many files -----------------------------------------------------------------------------------
    def run(
        self,
        entries: Iterable[PlanEntry],
        *,
        concurrency: int = 8,
        on_outcome: Callable[[FileOutcome], Any] | None = None,
        progress: ProgressTracker | None = None,
        max_failures_kept: int = 20,
        prefix: str | None = None,
    ) -> MigrationSummary:
        """Migrate every entry on ``concurrency`` threads; at most ``2 * concurrency`` are in flight.

        ``on_outcome`` is called from the calling thread, in completion order. ``progress`` counts the bytes
        written to STORE members as they stream (a file counts once per STORE member, so its ``total_bytes``
        is the planned bytes times the STORE members), and logs on its timer while the files migrate; when
        this call starts it, the summary's ``elapsed`` is the tracker's, so both print the same rate. With
        :attr:`claims`, entries are claimed :data:`CLAIM_BATCH` at a time (one transaction per batch), the claims are
        renewed every third of the lease while the run works, and released as files finish.

        :param prefix: a path every entry is below (the plan's path): the open multipart uploads under it
            are listed once, and only keys having one are cleaned before they are written, instead of one
            listing per file. Uploads started after the listing belong to concurrent writers and are
            spared. With claims, the keys of every expired lease of the mount (runs that were killed) have
            their open uploads aborted first.
        """
        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency} must be at least 1")
        if self.claims is not None:
            self._sweep_expired_claims()
        self._orphans = self._list_orphans(prefix) if prefix is not None else None
        summary = MigrationSummary()
        started = time.monotonic()
        window = 2 * concurrency
        released: list[str] = []

        copies = len(self.policy.store_members)

        def work(entry: PlanEntry) -> tuple[FileOutcome, FileProgress | None]:
            file = progress.begin_file() if progress is not None else None
            return self.migrate_file(entry, file), file

        def finish(outcome: FileOutcome, file: FileProgress | None) -> None:
            record(outcome, file)
            if outcome.status != CLAIMED:
                released.append(outcome.path)
                if len(released) >= claim_batch:
                    self._release(released)

        def record(outcome: FileOutcome, file: FileProgress | None = None) -> None:
            summary.add(outcome, max_failures_kept)
            if progress is not None and outcome.status == CLAIMED:  # another run's: out of the totals
                progress.exclude(files=1, nbytes=outcome.size * copies, file=file)
            elif progress is not None:
                progress.add(files=1 if outcome.done else 0, nbytes=outcome.copied_bytes,
                             failed=0 if outcome.done else 1, file=file, planned=outcome.size * copies)
            if on_outcome is not None:
                on_outcome(outcome)

        # Claimed a batch at a time, from the calling thread, as the pool takes entries; released in batches.
        claim_batch = max(window, CLAIM_BATCH)
        mine = (entry for batch in _windows(entries, claim_batch) for entry in self._claim(batch, record))
        times_progress = progress is not None and not progress.running
        with _LeaseKeeper(self.claims), progress if progress is not None else nullcontext():
            try:
                with closing(bounded_map(work, mine, concurrency, window=window, name="migrate")) as done:
                    for _, (outcome, file) in done:
                        finish(outcome, file)
            finally:
                self._release(released)
        summary.elapsed = progress.elapsed if times_progress else time.monotonic() - started  # type: ignore[union-attr]
        claimed = f", {summary.claimed} left to runs that hold them" if summary.claimed else ""
        log.info(
            "Migrated %d of %d files (%s written in %.1fs, %s/s): %d moved, %d skipped, %d kept, %d failed%s",
            summary.moved + summary.skipped,
            summary.files,
            format_bytes(summary.bytes),
            summary.elapsed,
            format_bytes(summary.throughput),
            summary.moved,
            summary.skipped,
            summary.kept,
            summary.failed,
            claimed,
        )
        return summary

    # -- claims ---------------------------------------------------------------------------------------
    def _claim(self, batch: list[PlanEntry], record: Callable[[FileOutcome], None]) -> list[PlanEntry]:
        """The entries of ``batch`` this run now owns; the others are recorded as ``claimed``."""
        if self.claims is None:
            return batch
        result = self.claims.claim([entry.path for entry in batch])
        for path in result.taken_over:  # its last owner died mid-file: its uploads of the key are orphans
            try:
                self._abort_all_uploads(path)
            except Exception:  # the key's uploads listed at the start are still aborted before it is written
                log.exception("Could not abort the uploads a dead run left for %s", path)
        mine = []
        for entry in batch:
            if entry.path in result.claimed:
                mine.append(entry)
                continue
            holder = result.held.get(entry.path)
            who = f"{holder.owner} (lease until {holder.expires_at:%H:%M:%S} UTC)" if holder else "another run"
            record(FileOutcome(entry.path, entry.source, CLAIMED, entry.size, 0, f"being migrated by {who}"))
        return mine

    def _release(self, paths: list[str]) -> None:
        if self.claims is not None and paths:
            try:
                self.claims.release(paths)
            except Exception:  # the leases then expire on their own
                log.exception("Could not release %d migration claims", len(paths))
        paths.clear()

    def _sweep_expired_claims(self) -> None:
        """Abort the open uploads of keys whose claim was abandoned anywhere in the mount (runs killed
        mid-file, whatever their policy or path), then drop those claims."""
        assert self.claims is not None
        cleaned = []
        for claim in self.claims.abandoned():
            try:
                self._abort_all_uploads(claim.path)
            except Exception:  # the claim stays, so a later run tries again
                log.exception("Could not abort the uploads a dead run left for %s", claim.path)
                continue
            cleaned.append(claim)
        if cleaned:
            self.claims.forget(cleaned)
            log.info("Cleaned up after %d claims of runs that died mid-file", len(cleaned))

    def _abort_all_uploads(self, path: str) -> None:
        for dst in self.mount.members.values():  # the dead run's policy may have stored elsewhere
            if dst.features.multipart_uploads:
                aborted = dst.abort_open_uploads(path)
                if aborted:
                    log.info("Aborted %d multipart upload(s) of %s left by a run that died", aborted, dst.uri(path))


class _LeaseKeeper:
    """Renews a run's claims every third of their lease on a daemon thread, while the run lasts."""

    def __init__(self, claims: MigrationClaims | None) -> None:
        self.claims = claims
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _LeaseKeeper:
        if self.claims is not None:
            self._thread = threading.Thread(target=self._beat, name="migrate-claims", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        assert self.claims is not None
        while not self._stop.wait(self.claims.lease / 3):
            try:
                self.claims.renew()
            except Exception:  # a lost lease costs duplicate work at worst, never a file
                log.exception("Could not renew the migration claims of %s", self.claims.owner)


def _windows(entries: Iterable[PlanEntry], size: int) -> Iterator[list[PlanEntry]]:
    batch: list[PlanEntry] = []
    for entry in entries:
        batch.append(entry)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _stat(store: Store, path: str) -> FileInfo | None:
    try:
        return store.info(path)
    except FileNotFoundError:
        return None


def _stored_stat(store: Store, path: str) -> FileInfo | None:
    """:func:`_stat` for a STORE member, where the path is usually missing. Where a store declares
    ``checksum_finds_missing_cheaply`` (S3) a missing key then costs one request: the checksum (a HEAD) fails first, where a status would also list the prefix
    to tell a missing key from a directory; an existing key gets its full status."""
    if store.features.checksum_finds_missing_cheaply:
        try:
            store.checksum(path)
        except FileNotFoundError:
            return None
    return _stat(store, path)


def _describe(info: FileInfo) -> str:
    etag = f", etag {info.etag}" if info.etag else ""
    return f"{info.size} bytes, mtime {info.mtime:.0f}{etag}"


def _describe_entry(entry: PlanEntry) -> str:
    etag = f", etag {entry.etag}" if entry.etag else ""
    return f"{entry.size} bytes, mtime {entry.mtime:.0f}{etag}"
