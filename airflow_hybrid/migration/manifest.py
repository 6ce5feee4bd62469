"""The file lists (manifests) of the bulk copy engines: the files of a plan batch that still need a copy.

DistCp (``-f``, :mod:`airflow_hybrid.migration.distcp`) and S3DistCp (``--srcPrefixesFile``,
:mod:`airflow_hybrid.migration.s3distcp`) read a list of source URIs, one a line. :func:`write_file_lists`
spools a batch's list per (REMOVE member, STORE member) pair, or per directory, to a store and returns a
:class:`CopyJob` per list. Files whose STORE member already holds an identical copy, or a conflicting
object (never overwritten), are left out: the copiers themselves overwrite whatever is at the destination.
"""

from __future__ import annotations

import logging
import posixpath
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from airflow_hybrid.ops.pool import bounded_map

if TYPE_CHECKING:
    from airflow_hybrid.migration.migrator import Migrator
    from airflow_hybrid.migration.planner import MountLike, PlanEntry
    from airflow_hybrid.stores.base import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopyJob:
    """One file list: files of REMOVE member ``source`` lacking a copy in STORE member ``store``.

    ``src_root``/``dest_root`` are the member roots (S3DistCp's ``--src``/``--dest``), or one directory of
    both (DistCp, which copies listed files by name).
    """

    source: str
    store: str
    src_root: str
    dest_root: str
    manifest_uri: str
    files: int
    bytes: int = 0
    #: Logical path of the first listed file.
    first_path: str = ""


def write_file_lists(
    mount: MountLike,
    migrator: Migrator,
    entries: Iterable[PlanEntry],
    store: Store,
    key_prefix: str,
    *,
    per_directory: bool = False,
    concurrency: int = 8,
    uri: Callable[[str], str] = str,
    orphans_under: str | None = None,
) -> list[CopyJob]:
    """Write the lists of files lacking copies to ``store`` as ``<key_prefix>-<source>-<store>.txt`` (one per
    member pair), or ``...-<n>.txt`` per directory with ``per_directory``; return one :class:`CopyJob` each.

    Entries are checked on ``concurrency`` threads, a bounded window at a time; each list is spooled (to disk past 4 MiB), so a batch of
    any length runs in bounded memory. ``uri`` maps each source URI to the form the copier reads.
    ``orphans_under``: a path below which multipart uploads left open in the STORE members (by a killed
    copier) are aborted for the keys about to be copied.
    """
    groups: dict[tuple[str, str, str], tuple[IO[bytes], list[int], str]] = {}
    orphans = _open_uploads(mount, migrator.policy.store_members, orphans_under)
    checked = bounded_map(migrator.pending_copies, entries, concurrency, ordered=True, name="file-list")
    try:
        for entry, members in checked:
            directory = posixpath.dirname(entry.path) if per_directory else ""
            for member in members:
                if entry.path in orphans.get(member, ()):
                    aborted = mount.members[member].abort_open_uploads(entry.path)
                    log.info("Aborted %d orphaned multipart upload(s) of %s", aborted,
                             mount.members[member].uri(entry.path))
                key = (entry.source, member, directory)
                if key not in groups:
                    spool = tempfile.SpooledTemporaryFile(max_size=4 * 1024**2)  # noqa: SIM115
                    groups[key] = (spool, [0, 0], entry.path)
                spool, counts, _ = groups[key]
                line = uri(mount.members[entry.source].uri(entry.path))
                if "\n" in line:
                    raise ValueError(f"a file list line cannot contain a newline: {line!r}")
                spool.write(line.encode("utf-8") + b"\n")
                counts[0] += 1
                counts[1] += entry.size
        jobs = []
        for index, ((source, member, directory), (spool, (files, size), first)) in enumerate(groups.items()):
            spool.seek(0)
            key = f"{key_prefix}-{source}-{member}" + (f"-{index:05d}" if per_directory else "") + ".txt"
            store.write(key, spool)
            jobs.append(CopyJob(source, member, mount.members[source].uri(directory),
                                mount.members[member].uri(directory), store.uri(key), files, size, first))
        return jobs
    finally:
        checked.close()  # stops the checks still running when a list could not be written
        for spool, _, _ in groups.values():
            spool.close()


def _open_uploads(mount: MountLike, members: Sequence[str], prefix: str | None) -> dict[str, set[str]]:
    if prefix is None:
        return {}
    found: dict[str, set[str]] = {}
    for member in members:
        store = mount.members[member]
        if store.features.multipart_uploads:
            found[member] = {upload.path for upload in store.list_open_uploads(prefix)}
    return found
