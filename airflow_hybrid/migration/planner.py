"""Plan a migration: select the files a policy moves and write them, fingerprinted, to a plan.

The planner streams the listing of each REMOVE member below a logical path (constant memory, however
many files), evaluates the policy's condition on every file and writes the selected ones to a plan
on a store, in batches bounded by a number of files and of bytes, so that a migration can fan out
one batch per task (``.expand()``). XCom carries the plan id and totals, never the file list.

Layout of a plan on its store (a local directory by default; S3 when workers on other hosts run it)::

    <plan_id>/batches/00000.jsonl   one JSON object per file: path, size, mtime, source, etag, ...
    <plan_id>/batches/00001.jsonl
    <plan_id>/manifest.json         policy, mount, path, created_at, totals, per-batch counts

The manifest is written last: a plan without one did not finish planning and cannot be loaded.
Files present in several REMOVE members appear once per member (each entry names its ``source``).
"""

from __future__ import annotations

import io
import json
import logging
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from airflow_hybrid.policy.model import Policy, validate_members
from airflow_hybrid.policy.parser import as_policy
from airflow_hybrid.settings import hybrid_home
from airflow_hybrid.stores.base import CHUNK_SIZE, Checksum, FileInfo, Store, normalize_path

log = logging.getLogger(__name__)

PLAN_FORMAT = 1
MANIFEST_NAME = "manifest.json"
DEFAULT_BATCH_MAX_FILES = 1000
DEFAULT_BATCH_MAX_BYTES = 8 * 1024**3
#: A batch file is kept in memory up to this size while it is written, then spills to a temporary file.
_SPOOL_BYTES = 4 * 1024**2


class MountLike(Protocol):
    """What the planner needs of a mount: named member stores (a :class:`~airflow_hybrid.mount.HybridMount`)."""

    members: dict[str, Store]


class PlanNotFoundError(FileNotFoundError):
    """No complete plan with that id exists on the plan store."""


# -- plan records ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanEntry:
    """One file to migrate, with the fingerprint it had when planned.

    ``stored_in`` lists the STORE members that already held a file of the same length at planning
    time (only when planned with ``probe_stores=True``); the operator re-checks before acting.
    """

    path: str
    size: int
    mtime: float
    source: str
    etag: str | None = None
    checksum: Checksum | None = None
    stored_in: tuple[str, ...] = ()

    def fingerprint(self) -> tuple[int, float, str | None]:
        return (self.size, self.mtime, self.etag)

    def unchanged(self, info: FileInfo) -> bool:
        """Whether ``info`` (the source's current status) still matches the planned fingerprint."""
        return info.fingerprint() == self.fingerprint()

    def to_json(self) -> str:
        record: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            "mtime": self.mtime,
            "source": self.source,
        }
        if self.etag is not None:
            record["etag"] = self.etag
        if self.checksum is not None:
            record["checksum"] = {"algorithm": self.checksum.algorithm, "value": self.checksum.value}
        if self.stored_in:
            record["stored_in"] = list(self.stored_in)
        return json.dumps(record, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str | bytes) -> PlanEntry:
        record = json.loads(line)
        checksum = record.get("checksum")
        return cls(
            path=record["path"],
            size=record["size"],
            mtime=record["mtime"],
            source=record["source"],
            etag=record.get("etag"),
            checksum=Checksum(checksum["algorithm"], checksum["value"]) if checksum else None,
            stored_in=tuple(record.get("stored_in", ())),
        )


@dataclass(frozen=True)
class BatchInfo:
    index: int
    files: int
    bytes: int


@dataclass(frozen=True)
class PlanSummary:
    """What a planning step returns (and pushes to XCom): the plan id and its totals."""

    plan_id: str
    files: int
    bytes: int
    batches: int

    def to_dict(self) -> dict[str, Any]:
        return {"plan_id": self.plan_id, "files": self.files, "bytes": self.bytes, "batches": self.batches}


@dataclass(frozen=True)
class CandidateCount:
    """Result of :func:`count_candidates`; ``complete`` is False when counting stopped at the thresholds."""

    files: int
    bytes: int
    reached: bool
    complete: bool


def batch_key(plan_id: str, index: int) -> str:
    return f"{plan_id}/batches/{index:05d}.jsonl"


@dataclass
class Plan:
    """A plan read back from its store by :func:`load_plan`; entries are streamed, batch by batch."""

    store: Store
    plan_id: str
    manifest: dict[str, Any] = field(repr=False)

    @property
    def policy(self) -> Policy:
        return as_policy(self.manifest["policy"])

    @property
    def mount(self) -> str | None:
        return self.manifest.get("mount")

    @property
    def path(self) -> str:
        return self.manifest["path"]

    @property
    def created_at(self) -> str:
        return self.manifest["created_at"]

    @property
    def batches(self) -> list[BatchInfo]:
        return [BatchInfo(i, files, size) for i, (files, size) in enumerate(self.manifest["batches"])]

    @property
    def summary(self) -> PlanSummary:
        totals = self.manifest["totals"]
        return PlanSummary(self.plan_id, totals["files"], totals["bytes"], totals["batches"])

    def iter_batch(self, index: int) -> Iterator[PlanEntry]:
        """Stream the entries of batch ``index`` (0-based)."""
        count = self.manifest["totals"]["batches"]
        if not 0 <= index < count:
            raise IndexError(
                f"plan {self.plan_id} has {count} batches (0..{count - 1}); there is no batch {index}"
            )
        for line in _iter_lines(self.store, batch_key(self.plan_id, index)):
            yield PlanEntry.from_json(line)

    def iter_entries(self) -> Iterator[PlanEntry]:
        """Stream every entry of the plan, batch after batch."""
        for index in range(self.manifest["totals"]["batches"]):
            yield from self.iter_batch(index)


def _iter_lines(store: Store, key: str) -> Iterator[bytes]:
    """Non-empty lines of a stored file, read chunk by chunk."""
    with store.open_read(key) as stream:
        pending = b""
        while chunk := stream.read(CHUNK_SIZE):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            yield from (line for line in lines if line.strip())
        if pending.strip():
            yield pending


# -- plan store -----------------------------------------------------------------------------------


def default_plan_store() -> Store:
    """The store plans go to: Airflow option ``[hybrid] plan_store`` (a URI; ``plan_store_conn_id`` for
    its connection), else the local directory ``$AIRFLOW_HOME/hybrid/plans``.

    Use a shared store (e.g. ``s3://bucket/plans``) when the tasks that run a plan are on other hosts.
    """
    uri = conn_id = None
    try:
        from airflow.configuration import conf

        uri = conf.get("hybrid", "plan_store", fallback=None)
        conn_id = conf.get("hybrid", "plan_store_conn_id", fallback=None)
    except ImportError:  # pragma: no cover - the planner also works outside Airflow
        pass
    if uri:
        return resolve_plan_store(uri, conn_id)
    from airflow_hybrid.stores.local import LocalStore

    directory = hybrid_home("plans")
    directory.mkdir(parents=True, exist_ok=True)
    return LocalStore(str(directory))


def resolve_plan_store(plan_store: Store | str | None, conn_id: str | None = None) -> Store:
    """A :class:`Store` from a store, a URI (``s3://bucket/plans``, a local directory) or ``None`` (default)."""
    if plan_store is None:
        return default_plan_store()
    if isinstance(plan_store, Store):
        return plan_store
    from airflow_hybrid.stores.factory import store_from_uri

    return store_from_uri(plan_store, conn_id)


def _check_plan_id(plan_id: str) -> str:
    if not plan_id or "/" in plan_id or "\\" in plan_id or plan_id in (".", ".."):
        raise ValueError(
            f"invalid plan id {plan_id!r}: expected one path component such as 'p-20250101T000000Z-ab12cd34'"
        )
    return plan_id


def new_plan_id(policy: Policy, created: datetime) -> str:
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", policy.name or "ufsMigrate")
    return f"{prefix}-{created.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"


# -- selection ------------------------------------------------------------------------------------


def _walk_member(store: Store, path: str) -> Iterator[FileInfo]:
    """``store.walk_files(path)``, empty when ``path`` does not exist on that member."""
    files = store.walk_files(path)
    try:
        first = next(files)
    except StopIteration:
        return
    except FileNotFoundError:
        if store.exists(path):
            raise
        return
    yield first
    yield from files


def _epoch(now: float | datetime | None) -> float:
    """Evaluation time in epoch seconds: ``now`` as given (a number or an aware datetime), or the clock."""
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return now.timestamp()
    return float(now)


def _checked(mount: MountLike, policy: Policy | str) -> Policy:
    policy = as_policy(policy)
    validate_members(policy, mount.members, mount_name=getattr(mount, "name", None))
    return policy


def iter_candidates(
    mount: MountLike, path: str, policy: Policy | str, *, now: float | datetime | None = None
) -> Iterator[tuple[str, FileInfo]]:
    """Stream ``(source member, file)`` for every file below ``path`` on a REMOVE member that the policy selects."""
    policy = _checked(mount, policy)
    now = _epoch(now)
    rel = normalize_path(path)
    for member in policy.remove_members:
        for info in _walk_member(mount.members[member], rel):
            if not info.is_dir and policy.condition.matches(info, now):
                yield member, info


def count_candidates(
    mount: MountLike,
    path: str,
    policy: Policy | str,
    *,
    now: float | datetime | None = None,
    min_files: int | None = None,
    min_bytes: int | None = None,
) -> CandidateCount:
    """Count the files the policy selects, stopping as soon as every threshold given is met.

    ``reached`` is True when every given threshold is met; with no threshold the whole listing is
    counted and ``reached`` means at least one file is selected. This is what a sensor pokes.
    """
    files = total = 0
    for _member, info in iter_candidates(mount, path, policy, now=now):
        files += 1
        total += info.size
        if (min_files is not None or min_bytes is not None) and _reached(files, total, min_files, min_bytes):
            return CandidateCount(files, total, reached=True, complete=False)
    if min_files is None and min_bytes is None:
        return CandidateCount(files, total, reached=files > 0, complete=True)
    return CandidateCount(files, total, reached=_reached(files, total, min_files, min_bytes), complete=True)


def _reached(files: int, total: int, min_files: int | None, min_bytes: int | None) -> bool:
    return (min_files is None or files >= min_files) and (min_bytes is None or total >= min_bytes)


# -- planning -------------------------------------------------------------------------------------


class _BatchWriter:
    """Accumulates entries into bounded batches and writes each one to the plan store when full."""

    def __init__(self, store: Store, plan_id: str, max_files: int, max_bytes: int) -> None:
        self.store = store
        self.plan_id = plan_id
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.batches: list[tuple[int, int]] = []
        self._buffer: tempfile.SpooledTemporaryFile | None = None
        self._files = self._bytes = 0

    def add(self, entry: PlanEntry) -> None:
        if self._files and (self._files >= self.max_files or self._bytes + entry.size > self.max_bytes):
            self.flush()
        if self._buffer is None:
            self._buffer = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115 - closed in flush
        self._buffer.write(entry.to_json().encode("utf-8") + b"\n")
        self._files += 1
        self._bytes += entry.size

    def flush(self) -> None:
        if self._buffer is None:
            return
        index = len(self.batches)
        with self._buffer as buffer:
            buffer.seek(0)
            self.store.write(batch_key(self.plan_id, index), buffer)
        log.info(
            "plan %s: batch %d written (%d files, %d bytes)", self.plan_id, index, self._files, self._bytes
        )
        self.batches.append((self._files, self._bytes))
        self._buffer = None
        self._files = self._bytes = 0

    def discard(self) -> None:
        if self._buffer is not None:
            self._buffer.close()
            self._buffer = None


def plan_migration(
    mount: MountLike,
    path: str,
    policy: Policy | str,
    *,
    plan_store: Store | str | None = None,
    plan_store_conn_id: str | None = None,
    now: float | datetime | None = None,
    batch_max_files: int = DEFAULT_BATCH_MAX_FILES,
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
    probe_stores: bool = False,
    plan_id: str | None = None,
) -> PlanSummary:
    """Select the files ``policy`` moves below logical ``path`` of ``mount`` and write them as a plan.

    :param plan_store: where the plan goes: a store, a URI, or ``None`` for :func:`default_plan_store`.
    :param now: the time conditions are evaluated at (epoch seconds or an aware datetime; default: now).
    :param batch_max_files: most files in one batch.
    :param batch_max_bytes: most bytes in one batch; a single larger file gets a batch of its own.
    :param probe_stores: record, per file, the STORE members already holding a file of the same length
        (one status call per file and STORE member; off by default, the operator checks anyway).
    :return: the plan id and totals.
    """
    if batch_max_files < 1 or batch_max_bytes < 1:
        raise ValueError(
            f"batch_max_files and batch_max_bytes must be positive, got {batch_max_files}, {batch_max_bytes}"
        )
    policy = _checked(mount, policy)
    rel = normalize_path(path)
    now = _epoch(now)
    store = resolve_plan_store(plan_store, plan_store_conn_id)
    created = datetime.now(timezone.utc)
    plan_id = _check_plan_id(plan_id or new_plan_id(policy, created))
    writer = _BatchWriter(store, plan_id, batch_max_files, batch_max_bytes)
    files = total = 0
    try:
        for member, info in iter_candidates(mount, rel, policy, now=now):
            checksum = info.extra.get("checksum")
            entry = PlanEntry(
                path=info.path,
                size=info.size,
                mtime=info.mtime,
                source=member,
                etag=info.etag,
                checksum=checksum if isinstance(checksum, Checksum) else None,
                stored_in=_probe(mount, policy.store_members, info) if probe_stores else (),
            )
            writer.add(entry)
            files += 1
            total += info.size
        writer.flush()
    finally:
        writer.discard()
    manifest = {
        "format": PLAN_FORMAT,
        "plan_id": plan_id,
        "policy": policy.to_text(),
        "mount": getattr(mount, "name", None),
        "path": rel,
        "created_at": created.isoformat(timespec="seconds"),
        "evaluated_at": now,
        "source_members": list(policy.remove_members),
        "store_members": list(policy.store_members),
        "batch_max_files": batch_max_files,
        "batch_max_bytes": batch_max_bytes,
        "totals": {"files": files, "bytes": total, "batches": len(writer.batches)},
        "batches": [list(b) for b in writer.batches],
    }
    store.write(f"{plan_id}/{MANIFEST_NAME}", io.BytesIO(json.dumps(manifest, indent=1).encode("utf-8")))
    log.info(
        "plan %s: %d files, %d bytes in %d batches on %s", plan_id, files, total, len(writer.batches), store
    )
    return PlanSummary(plan_id, files, total, len(writer.batches))


def _probe(mount: MountLike, members: Iterable[str], info: FileInfo) -> tuple[str, ...]:
    held = []
    for member in members:
        try:
            existing = mount.members[member].info(info.path)
        except FileNotFoundError:
            continue
        if not existing.is_dir and existing.size == info.size:
            held.append(member)
    return tuple(held)


def load_plan(plan_store: Store | str | None, plan_id: str, *, plan_store_conn_id: str | None = None) -> Plan:
    """Read the manifest of plan ``plan_id``; raise :class:`PlanNotFoundError` when it is missing or unfinished."""
    store = resolve_plan_store(plan_store, plan_store_conn_id)
    _check_plan_id(plan_id)
    key = f"{plan_id}/{MANIFEST_NAME}"
    try:
        with store.open_read(key) as stream:
            manifest = json.loads(stream.read())
    except FileNotFoundError:
        raise PlanNotFoundError(
            f"no plan {plan_id!r} on {store.uri('')}: {key} is missing (wrong id, or planning did not finish)"
        ) from None
    if manifest.get("format") != PLAN_FORMAT:
        raise ValueError(
            f"plan {plan_id!r} has format {manifest.get('format')!r}; this version reads {PLAN_FORMAT}"
        )
    return Plan(store, plan_id, manifest)


def list_plans(
    plan_store: Store | str | None = None, *, plan_store_conn_id: str | None = None
) -> Iterator[str]:
    """Ids of the complete plans on the plan store."""
    store = resolve_plan_store(plan_store, plan_store_conn_id)
    try:
        entries = store.list("")
        for entry in entries:
            if entry.is_dir and store.exists(f"{entry.name}/{MANIFEST_NAME}"):
                yield entry.name
    except FileNotFoundError:
        return


def delete_plan(
    plan_store: Store | str | None, plan_id: str, *, plan_store_conn_id: str | None = None
) -> bool:
    """Remove a plan (manifest first, so a half-deleted plan is never loadable); False when absent."""
    store = resolve_plan_store(plan_store, plan_store_conn_id)
    _check_plan_id(plan_id)
    store.delete(f"{plan_id}/{MANIFEST_NAME}")
    return store.delete(plan_id, recursive=True)
