"""HybridMount: one logical namespace over several stores with Alluxio's union-UFS semantics.

* read / stat: the first member, in ``priority.read`` order, that has the path;
* list: the union of the members' entries, each name once (the higher-priority member wins);
* create / mkdir: written to every ``collection.create`` member, succeeding only if all succeed;
* delete: removed from every member; rename: applied to every member that has the path;
* a logical path never escapes its mount (``..`` is an error; a leading ``/`` is the mount root).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from airflow_hybrid.mount_options import MountSpec, parse_mount_options
from airflow_hybrid.stores.base import FileInfo, Store, StoreError, normalize_path
from airflow_hybrid.stores.factory import store_from_uri

if TYPE_CHECKING:
    from airflow_hybrid.cache.manager import CacheManager

log = logging.getLogger(__name__)

StoreFactory = Callable[[str, "str | None", "dict | None"], Store]


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
        """Build the mount described by the ``hybrid_mount`` connection ``conn_id``."""
        from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

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
    def resolve(self, path: str) -> tuple[str, FileInfo]:
        """Return ``(member, info)`` of the first member in read priority that has ``path``."""
        rel = normalize_path(path)
        for member in self.read_order:
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
    def ls(self, path: str) -> Iterator[FileInfo]:
        """Merged listing of directory ``path``: every name once, the higher-priority member's entry.

        Streams each member's pages; memory grows only with the names of this one directory.
        """
        rel = normalize_path(path)
        seen: set[str] = set()
        found = False
        for member in self.read_order:
            try:
                entries = self.members[member].list(rel)
                for entry in entries:
                    found = True
                    if entry.name in seen:
                        continue
                    seen.add(entry.name)
                    yield entry
            except FileNotFoundError:
                continue
            except NotADirectoryError:
                continue
        if not found and not any(self.members[m].exists(rel) for m in self.read_order):
            raise FileNotFoundError(f"hybrid://{self.name}/{rel} not found in any member")

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
        """Stream ``path`` from its cache copy when fresh, else from the first member that has it."""
        rel = normalize_path(path)
        cache = self.cache
        if cache is not None:  # contacts the source only on a miss or when a freshness check is due
            try:
                return cache.open(rel, offset=offset, length=length)
            except FileNotFoundError:  # moved between resolving and opening (a migration): resolve again
                return cache.open(rel, offset=offset, length=length)
        member, info = self.resolve(rel)
        if info.is_dir:
            raise IsADirectoryError(f"hybrid://{self.name}/{rel} is a directory")
        try:
            return self.members[member].open_read(rel, offset=offset, length=length)
        except FileNotFoundError:
            # A migration removed it from ``member`` after we resolved it (it was copied to a member first,
            # which the new resolution finds): readers of the logical path never break.
            member, _ = self.resolve(rel)
            return self.members[member].open_read(rel, offset=offset, length=length)

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
        for store in self.members.values():
            store.close()
