"""HybridMount: one logical namespace over several stores with Alluxio's union-UFS semantics.

* read / stat: the first member, in ``priority.read`` order, that has the path;
* list: the union of the members' entries, each name once (the higher-priority member wins);
* create / mkdir: written to every ``collection.create`` member, succeeding only if all succeed;
* delete: removed from every member; rename: applied to every member that has the path;
* a logical path never escapes its mount (``..`` is an error; a leading ``/`` is the mount root).

Consistency while data moves. A migration moves a file from member X to member Y by copying it to Y (visible
only when complete: an S3 ``PutObject``/``CompleteMultipartUpload``, an HDFS temporary file renamed into place)
and only then removing it from X; it is in X, or in Y, or in both, at every instant. A reader asking the members
one after another could still miss it: asked Y before the copy and X after the removal. The rules that make
that impossible, for a file moved (in either direction, between any two members) at most once while one
listing or lookup runs:

* **listing**: with read priority ``m1..mn`` the members are listed in the order ``mn..m1, mn..m2`` (2n-1
  listings; for two members: the low-priority one, the high-priority one, the low-priority one again), so for
  every ordered pair (X, Y) some listing of X comes before some listing of Y. A file a listing of X missed was
  removed from X before that listing, so it was already in Y, and the later listing of Y sees it. Each member
  lists a name at one instant, so this holds page by page. Names are merged: the entry of the highest
  read-priority member that listed the name wins, so a file is listed exactly once. Entries of ``m1`` and of
  the last listing are streamed at once; the others wait for the end (memory: the names of that one directory);
* **lookup** (``resolve``, ``info``, ``exists``, ``member_of``): the members are asked in read order; only when
  every one misses are ``m1..m(n-1)`` asked once more (a file moved into a member after it was asked). A hit
  costs what it did; a true miss costs n-1 more requests;
* **reads**: a stream that loses its member (the file removed by a migration, so a read or a reopen after a
  dropped connection finds nothing) looks the file up again and continues at the same offset from the member
  that has it now, provided that copy is the same file: the same size, the same stored checksum when both
  stores report a comparable one, and the same bytes over the last few KiB already read. Otherwise the read
  fails with :class:`FileChangedError` instead of mixing two versions.

A file moved twice (X to Y and back) during one listing can still be missed; migrations move a file once
per policy period, and the stress test (``tests/integration/mount/test_consistent_reads.py``) lets every reader
start a new operation between the two directions.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_hybrid.mount.options import MountSpec, parse_mount_options
from airflow_hybrid.ops.reader import ReadStream, read_full
from airflow_hybrid.stores.base import FileInfo, Store, StoreError, TreeFingerprint, normalize_path
from airflow_hybrid.stores.factory import store_from_uri

if TYPE_CHECKING:
    from airflow_hybrid.cache.manager import CacheManager

log = logging.getLogger(__name__)

StoreFactory = Callable[[str, "str | None", "dict | None"], Store]

#: Bytes already read that a new copy must repeat before a read continues from it.
_OVERLAP = 4096


class FileChangedError(StoreError):
    """A file being read left its member and the copy found elsewhere is not the same file."""


class HybridMount:
    """A union of named member stores under one logical path space."""

    def __init__(
        self,
        spec: MountSpec,
        stores: dict[str, Store] | None = None,
        store_factory: StoreFactory = store_from_uri,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.read_order = list(spec.read_order)
        self.create_members = list(spec.create_members)
        self.members: dict[str, Store] = stores or {
            name: store_factory(member.uri, member.conn_id, member.options) for name, member in spec.members.items()
        }
        self._cache: CacheManager | None = None
        self._cache_loaded = False

    @classmethod
    def from_options(cls, name: str, options: dict[str, Any], **kwargs: Any) -> HybridMount:
        return cls(parse_mount_options(name, options), **kwargs)

    @classmethod
    def from_conn_id(cls, conn_id: str) -> HybridMount:
        """The mount of the ``hybrid_mount`` connection ``conn_id``: shorthand for
        ``HybridMountHook(conn_id).get_mount()`` (the hook builds mounts from connections)."""
        from airflow_hybrid.hooks.hybrid_mount import HybridMountHook  # the hook imports this module

        return HybridMountHook(conn_id).get_mount()

    def __repr__(self) -> str:
        return f"HybridMount({self.name!r}, read={self.read_order}, create={self.create_members})"

    @property
    def options(self) -> dict[str, Any]:
        """Settings other parts read (``cache``, ``catalog_url``)."""
        return self.spec.settings

    @property
    def cache(self) -> CacheManager | None:
        """The mount's cache manager, when the mount configures a ``cache`` section."""
        if not self._cache_loaded:
            self._cache_loaded = True
            if self.options.get("cache"):
                from airflow_hybrid.cache.manager import CacheManager

                self._cache = CacheManager.for_mount(self)
        return self._cache

    # -- resolution -------------------------------------------------------------------------------
    def lookup_sequence(self) -> list[str]:
        """The order members are asked for a path: ``m1..mn``, then ``m1..m(n-1)`` (a second look, made only
        when every member missed: it finds a file moved into a member after that member was asked)."""
        return self.read_order + self.read_order[:-1]

    def resolve(self, path: str) -> tuple[str, FileInfo]:
        """Return ``(member, info)`` of the first member in read priority that has ``path``.

        When every member misses, the members but the last are asked once more (see the module doc).
        """
        rel = normalize_path(path)
        for member in self.lookup_sequence():
            try:
                return member, self.members[member].info(rel)
            except FileNotFoundError:
                continue
            except (StoreError, OSError) as err:
                raise StoreError(f"mount {self.name!r}: member {member!r} failed on {rel!r}: {err}") from err
        raise FileNotFoundError(f"hybrid://{self.name}/{rel} not found in any member ({', '.join(self.read_order)})")

    def info(self, path: str) -> FileInfo:
        """Status of ``path``; with a cache, a fresh cached copy answers without contacting the source."""
        cache = self.cache
        if cache is not None:
            return cache.info(path)
        return self.resolve(path)[1]

    def exists(self, path: str) -> bool:
        try:
            self.resolve(path)
        except FileNotFoundError:
            return False
        return True

    def member_of(self, path: str) -> str:
        return self.resolve(path)[0]

    def physical_uri(self, path: str) -> str:
        """Where ``path`` lives now (the read-priority member that has it), else where it would be created."""
        rel = normalize_path(path)
        try:
            member = self.member_of(rel)
        except FileNotFoundError:
            member = self.create_members[0]
        return self.members[member].uri(rel)

    # -- listing ----------------------------------------------------------------------------------
    def listing_sequence(self) -> list[str]:
        """The order members are listed in: ``mn..m1, mn..m2`` for read priority ``m1..mn`` (module doc)."""
        backwards = self.read_order[::-1]
        return backwards + backwards[:-1]

    def ls(self, path: str) -> Iterator[FileInfo]:
        """Merged listing of directory ``path``: every name once, the higher-priority member's entry.

        Lists the members in :meth:`listing_sequence`, so a file moving between members meanwhile is never
        missed (module doc). Entries of the first read-priority member, and of the last listing, are streamed
        as they come; memory grows only with the names of this one directory.
        """
        return (entry for _, entry in self.ls_members(path))

    def ls_members(self, path: str) -> Iterator[tuple[str, FileInfo]]:
        """:meth:`ls` with the member each entry was listed at: ``(member, entry)``, so a reader can open a listed
        file where it was seen without stating it again (:meth:`open_member` follows it if it moved since)."""
        rel = normalize_path(path)
        rank = {member: i for i, member in enumerate(self.read_order)}
        sequence = self.listing_sequence()
        pending: dict[str, tuple[int, str, FileInfo]] = {}  # name -> (rank, member, entry): the best so far
        done: set[str] = set()  # names already yielded
        found = False
        for step, member in enumerate(sequence):
            level = rank[member]
            final = level == 0 or step == len(sequence) - 1  # nothing listed later can win over these
            try:
                for entry in self.members[member].list(rel):
                    found = True
                    name = entry.name
                    if name in done:
                        continue
                    best = pending.get(name)
                    if best is not None and best[0] < level:
                        continue  # a higher-priority member listed it
                    if final:
                        pending.pop(name, None)
                        done.add(name)
                        yield member, entry
                    else:
                        pending[name] = (level, member, entry)  # the same member's later entry is the fresher one
            except (FileNotFoundError, NotADirectoryError):
                continue
        for _, member, entry in pending.values():
            yield member, entry
        if not found and not any(self.members[m].exists(rel) for m in self.read_order):
            raise FileNotFoundError(f"hybrid://{self.name}/{rel} not found in any member")

    def tree_fingerprint(self, path: str = "", members: Iterable[str] | None = None) -> TreeFingerprint:
        """The members' :meth:`~airflow_hybrid.stores.base.Store.tree_fingerprint` of ``path`` in one: exact only
        if each is, ``files``/``bytes`` summed over the members (a file in two members counts twice). Costs one
        fingerprint per member (``members``, default all, in read order); the cache is not consulted."""
        rel = normalize_path(path)
        names = list(self.read_order if members is None else members)
        parts = []
        for member in names:
            if member not in self.members:
                raise StoreError(f"mount {self.name!r} has no member {member!r} (members: {', '.join(self.read_order)})")
            try:
                parts.append(self.members[member].tree_fingerprint(rel))
            except (StoreError, OSError) as err:
                raise StoreError(f"mount {self.name!r}: member {member!r} failed on {rel!r}: {err}") from err
        return TreeFingerprint(
            ";".join(f"{name}={part.value}" for name, part in zip(names, parts, strict=True)),
            exact=all(part.exact for part in parts),
            files=sum(part.files for part in parts),
            bytes=sum(part.bytes for part in parts),
        )

    def walk_files(self, path: str = "") -> Iterator[FileInfo]:
        """Every file below ``path`` in the merged namespace (directories walked level by level)."""
        stack = [normalize_path(path)]
        while stack:
            current = stack.pop()
            for entry in self.ls(current):
                if entry.is_dir:
                    stack.append(entry.path)
                else:
                    yield entry

    # -- data -------------------------------------------------------------------------------------
    def open_read(self, path: str, offset: int = 0, length: int | None = None) -> BinaryIO:
        """Stream ``path`` from its cache copy when fresh, else from the first member that has it.

        The stream follows the file to another member if a migration removes it while it is read.
        """
        rel = normalize_path(path)
        cache = self.cache
        if cache is not None:  # contacts the source only on a miss or when a freshness check is due
            try:
                return cache.open(rel, offset=offset, length=length)
            except FileChangedError:
                # The version resolved was replaced before a byte was read (a move is followed by the stream
                # itself): open the current one, as the uncached path below does.
                return cache.open(rel, offset=offset, length=length)
        member, info = self.resolve(rel)
        if info.is_dir:
            raise IsADirectoryError(f"hybrid://{self.name}/{rel} is a directory")
        return self.open_member(rel, member, info, offset=offset, length=length, pinned=False)

    def open_member(
        self,
        path: str,
        member: str,
        info: FileInfo,
        offset: int = 0,
        length: int | None = None,
        *,
        pinned: bool = True,
    ) -> BinaryIO:
        """Stream the version ``info`` of ``path`` that ``member`` had, following it to the member that has it
        when a migration removes it from ``member`` before or while it is read (see the module doc).

        :param pinned: the caller relies on ``info`` (e.g. has announced its size), so a copy found elsewhere
            must be the same file even before the first byte; ``False``: any current version may be opened.
        :raises FileChangedError: the file left ``member`` and the copy found is a different file.
        """
        return _FollowingReader(self, normalize_path(path), member, info, offset, length, pinned)

    def write(self, path: str, stream: BinaryIO, size_hint: int | None = None) -> FileInfo:
        """Write ``stream`` to every ``collection.create`` member; all must succeed.

        The first create member receives the stream; further ones are copied from it, so the input is read
        once. When a later member fails, the copies already written are removed and the error names it.
        """
        rel = normalize_path(path)
        first, *others = self.create_members
        info = self.members[first].write(rel, stream, size_hint=size_hint)
        written = [first]
        try:
            for member in others:
                with self.members[first].open_read(rel) as copy:
                    self.members[member].write(rel, copy, size_hint=info.size)
                written.append(member)
        except Exception as err:
            for member in written:
                self.members[member].delete(rel)
            raise StoreError(
                f"mount {self.name!r}: create of {rel!r} failed on member {member!r}: {err}; rolled back {written}"
            ) from err
        self._invalidate(rel)
        return info

    def mkdir(self, path: str) -> None:
        rel = normalize_path(path)
        for member in self.create_members:
            self.members[member].mkdir(rel)
        self._invalidate(rel)

    def delete(self, path: str, recursive: bool = False) -> list[str]:
        """Remove ``path`` from every member that has it; return those members."""
        rel = normalize_path(path)
        if not rel:
            raise ValueError(f"refusing to delete the root of mount {self.name!r}")
        removed = [m for m in self.read_order if self.members[m].delete(rel, recursive=recursive)]
        if not removed:
            raise FileNotFoundError(f"hybrid://{self.name}/{rel} not found in any member")
        self._invalidate(rel)
        return removed

    def rename(self, src: str, dst: str) -> list[str]:
        """Rename ``src`` to ``dst`` in every member that has ``src``; return those members."""
        src_rel, dst_rel = normalize_path(src), normalize_path(dst)
        renamed = []
        for member in self.read_order:
            store = self.members[member]
            if store.exists(src_rel):
                store.rename(src_rel, dst_rel)
                renamed.append(member)
        if not renamed:
            raise FileNotFoundError(f"hybrid://{self.name}/{src_rel} not found in any member")
        self._invalidate(src_rel)
        self._invalidate(dst_rel)
        return renamed

    def _invalidate(self, rel: str) -> None:
        if self.cache is not None:
            self.cache.invalidate(rel)

    def close(self) -> None:
        """Close what the mount owns: its cache manager, if one was built (background loads, tier stores,
        hit counts), then its member stores. A failure is logged and the rest are still closed."""
        parts: list[Any] = [self._cache] if self._cache is not None else []
        parts += self.members.values()
        for part in parts:
            try:
                part.close()
            except Exception:
                log.warning("mount %r: closing %r failed", self.name, part, exc_info=True)

    def __enter__(self) -> HybridMount:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _stored_checksum(info: FileInfo) -> object | None:
    return info.extra.get("checksum") if info.extra else None


class _FollowingReader(ReadStream):
    """A read of one logical file that continues from another member when its member loses the file."""

    def __init__(
        self, mount: HybridMount, rel: str, member: str, info: FileInfo, offset: int, length: int | None, pinned: bool
    ) -> None:
        super().__init__()
        self._mount, self._rel = mount, rel
        #: Where the bytes come from now, and that copy's status.
        self.member, self.info = member, info
        self._pos = offset
        self._end = None if length is None else offset + length
        self._tail = b""  # the last bytes returned (up to _OVERLAP), which a new copy must repeat
        #: How many times the read moved to another member.
        self.follows = 0
        try:
            self._stream: BinaryIO = self._open(member, offset)
        except FileNotFoundError:
            self._stream = self._follow(FileNotFoundError(f"{mount.members[member].uri(rel)} is gone"), pinned)

    def _name(self) -> str:
        return f"hybrid://{self._mount.name}/{self._rel}"

    def _open(self, member: str, offset: int) -> BinaryIO:
        length = None if self._end is None else max(self._end - offset, 0)
        return self._mount.members[member].open_read(self._rel, offset=offset, length=length)

    def _lost(self, error: BaseException) -> bool:
        """Whether ``error`` means the file is no longer at its member (rather than a failing member)."""
        if isinstance(error, FileNotFoundError):
            return True
        try:
            return not self._mount.members[self.member].exists(self._rel)
        except (StoreError, OSError):
            return False

    def _follow(self, error: BaseException, pinned: bool = True) -> BinaryIO:
        """Open the copy of the file that the mount resolves now, at the current offset."""
        old_member, old = self.member, self.info
        try:
            member, info = self._mount.resolve(self._rel)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{self._name()} left member {old_member!r} while read at offset {self._pos} ({error}) "
                "and no member has it now"
            ) from error
        if info.is_dir:
            raise FileChangedError(f"{self._name()} is a directory now (was a file in member {old_member!r})")
        if pinned:
            problem = _differs(old_member, old, member, info)
            if problem:
                raise FileChangedError(
                    f"{self._name()} left member {old_member!r} while read at offset {self._pos}, and the copy "
                    f"in member {member!r} is another file ({problem}); read it again"
                ) from error
        start = self._pos - len(self._tail)
        stream = self._open(member, start)
        if self._tail:
            again = read_full(stream, len(self._tail))
            if again != self._tail:
                stream.close()
                raise FileChangedError(
                    f"{self._name()} left member {old_member!r} while read at offset {self._pos}, and the copy "
                    f"in member {member!r} has other bytes before that offset; read it again"
                ) from error
        log.info("%s left member %r while read at offset %d; continuing from member %r",
                 self._name(), old_member, self._pos, member)
        self.member, self.info = member, info
        self.follows += 1
        return stream

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError(f"read of {self._name()} after close")
        if size is None or size < 0:
            return self.readall()
        for _ in range(2 * len(self._mount.read_order) + 1):
            try:
                data = self._stream.read(size)
            except (StoreError, OSError) as err:
                if not self._lost(err):
                    raise
                with contextlib.suppress(Exception):  # the lost copy's connection, already broken
                    self._stream.close()
                self._stream = self._follow(err)
                continue
            self._pos += len(data)
            self._tail = (self._tail + data)[-_OVERLAP:]
            return data
        raise StoreError(f"{self._name()} kept moving between members while read at offset {self._pos}")

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


def _differs(old_member: str, old: FileInfo, member: str, new: FileInfo) -> str | None:
    """Why ``new`` (at ``member``) is not the file ``old`` was (at ``old_member``), or ``None``."""
    if new.size != old.size:
        return f"{new.size} bytes, was {old.size}"
    old_sum, new_sum = _stored_checksum(old), _stored_checksum(new)
    if (
        old_sum is not None
        and new_sum is not None
        and getattr(old_sum, "algorithm", None) == getattr(new_sum, "algorithm", None)
        and old_sum != new_sum
    ):
        return f"checksum {new_sum.value}, was {old_sum.value}"  # type: ignore[attr-defined]
    if member == old_member and old.etag and new.etag and old.etag != new.etag:
        return f"ETag {new.etag}, was {old.etag}"
    return None
