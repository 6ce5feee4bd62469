"""Resolve logical mount paths to the physical URIs an external engine (Presto, Trino, Spark on EMR) reads.

Engines outside this process cannot read ``hybrid://``; they need the URI of the store that holds the data
*now*: ``hdfs://namenode:8020/...`` before a migration, ``s3://...`` after it, or the cache's S3 tier while the
data is warm there. URIs are *engine URIs* (:func:`engine_uri`): HDFS qualified with its namenode (or HA
nameservice), which a cluster elsewhere needs, S3 in the engine's scheme (EMRFS ``s3://``, or ``s3a://``).
The rules:

* a **file** resolves to the member that serves it (the first in ``priority.read`` having it; a file moved by a
  migration while it is looked up is found by the mount's second look);
* a **directory** (a table) is walked in every member, in the mount's listing sequence (so a file moving
  meanwhile is never left out), and each file goes to its serving (highest-priority) member. Per serving
  member, in read priority, one :class:`Location`: its whole directory when that directory holds only files
  the member serves, else the exact list of the files it serves (:attr:`Location.file_uris`): the directory
  also holds shadowed copies (an HDFS original of a file already copied to S3, while a migration runs between
  copy and removal) that must not be read twice. Every file is read once, from one member, migrating or not;
* when the mount has a cache whose S3 tier holds a fresh copy of the whole path, that copy wins. The cache
  manager declares it as :meth:`~airflow_hybrid.cache.manager.CacheManager.warm_uri`.

:func:`resolve_physical` needs one location covering the whole path and raises :class:`SplitLocationError`
otherwise.

Template macros: :func:`uri` and :func:`locations`, registered by the provider's plugin under the name
``hybrid`` (``{{ macros.hybrid.uri('onprem_union', '/tpcds/store_sales') }}``), or passed to a DAG with
``user_defined_macros={"hybrid": template_macros()}`` (``{{ hybrid.uri(...) }}``).
"""

from __future__ import annotations

import types
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import FileInfo, normalize_path

if TYPE_CHECKING:
    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.stores.base import Store

#: ``member`` of a :class:`Location` served by the cache's S3 tier.
CACHE_MEMBER = "cache"
#: The schemes an engine may read S3 with: EMRFS (``s3``, EMR's own) or Hadoop's S3A (other Spark deployments).
S3_SCHEMES = ("s3", "s3a")


class SplitLocationError(HybridConfigError):
    """A logical directory is served by several members, so it has no single physical location."""


@dataclass(frozen=True)
class Location:
    """Where (part of) a logical path physically lives: a member (or the cache) and the engine URI there.

    :param files: how many files it serves; ``bytes``: their total size.
    :param file_uris: empty: read the whole file or directory at ``uri``. Non-empty: read exactly these files
        (below ``uri``), since the directory at ``uri`` also holds files that must not be read (shadowed
        copies, or files another member serves).
    """

    member: str
    uri: str
    files: int = 0
    bytes: int = 0
    file_uris: tuple[str, ...] = ()


def check_s3_scheme(s3_scheme: str) -> str:
    """``s3_scheme`` when it is one of :data:`S3_SCHEMES`, else :class:`HybridConfigError`."""
    if s3_scheme not in S3_SCHEMES:
        raise HybridConfigError(f"s3_scheme must be one of {', '.join(S3_SCHEMES)}, got {s3_scheme!r}")
    return s3_scheme


def with_s3_scheme(uri: str, s3_scheme: str = "s3") -> str:
    """``uri`` with an ``s3://``/``s3a://`` scheme rewritten to ``s3_scheme``; other URIs unchanged."""
    scheme, sep, rest = uri.partition("://")
    if sep and scheme.lower() in S3_SCHEMES:
        return f"{check_s3_scheme(s3_scheme)}://{rest}"
    return uri


def engine_uri(store: Store, path: str, *, s3_scheme: str = "s3") -> str:
    """The URI of ``path`` in ``store`` that an engine on another host opens: HDFS namenode-qualified
    (:meth:`HdfsStore.engine_uri <airflow_hybrid.stores.hdfs.store.HdfsStore.engine_uri>`), S3 in
    ``s3_scheme``, anything else as :meth:`Store.uri <airflow_hybrid.stores.base.Store.uri>`."""
    from airflow_hybrid.stores.hdfs.store import HdfsStore

    check_s3_scheme(s3_scheme)
    if isinstance(store, HdfsStore):
        return store.engine_uri(path)
    return with_s3_scheme(store.uri(path), s3_scheme)


def _mount(mount: str | HybridMount) -> HybridMount:
    if isinstance(mount, str):
        from airflow_hybrid.mount import HybridMount

        return HybridMount.from_conn_id(mount)
    return mount


def _warm_uri(mount: HybridMount, rel: str, listing: list[FileInfo], s3_scheme: str) -> str | None:
    """The URI of the cache's copy of ``rel`` (whose served files are ``listing``) that an engine outside this
    process can read, else ``None`` (see :meth:`CacheManager.warm_uri
    <airflow_hybrid.cache.manager.CacheManager.warm_uri>`)."""
    cache = mount.cache
    if cache is None:
        return None
    warm = cache.warm_uri(rel, listing=listing)
    return with_s3_scheme(warm, s3_scheme) if warm else None


def skipped_by_engines(path: str) -> bool:
    """Whether Spark, Hive and Trino skip ``path`` (relative to a table's directory) when they read the
    directory: a name in it starts with ``.`` (``.part-0.crc``) or ``_`` (``_SUCCESS``; not a ``_k=v``
    partition directory)."""
    return any(
        part.startswith(".") or (part.startswith("_") and "=" not in part) for part in path.split("/") if part
    )


def _served(mount: HybridMount, rel: str) -> tuple[dict[str, list[FileInfo]], set[str]]:
    """Walk ``rel`` in every member, in the mount's listing sequence (mn..m1, mn..m2), so a file a migration
    moves meanwhile is seen by at least one walk (see HybridMount's module doc).

    :returns: per member in read priority, the files it serves (its own entries, so its sizes), and the
        members whose directory also holds data files they do not serve (files engines skip do not count).
    """
    rank = {name: i for i, name in enumerate(mount.read_order)}
    best: dict[str, tuple[int, FileInfo]] = {}  # file path -> (rank, entry) of its best member so far
    held: dict[int, set[str]] = {level: set() for level in rank.values()}  # rank -> data files its directory holds
    start = len(rel) + 1 if rel else 0
    for name in mount.listing_sequence():
        level = rank[name]
        try:
            for entry in mount.members[name].walk_files(rel):
                if not skipped_by_engines(entry.path[start:]):
                    held[level].add(entry.path)
                known = best.get(entry.path)
                if known is None or level <= known[0]:  # the same member's later entry is the fresher one
                    best[entry.path] = (level, entry)
        except (FileNotFoundError, NotADirectoryError):  # not on this member (now)
            continue
    served: dict[str, list[FileInfo]] = {name: [] for name in mount.read_order}
    for level, entry in best.values():
        served[mount.read_order[level]].append(entry)
    mixed = {
        name
        for level, name in enumerate(mount.read_order)
        if any(mount.read_order[best[path][0]] != name for path in held[level])
    }
    return served, mixed


def resolve_locations(mount: str | HybridMount, logical_path: str, *, s3_scheme: str = "s3") -> list[Location]:
    """Physical location(s) of ``logical_path``, each file once: one for a file, a directory warm in the cache
    or a directory one member serves; else one per member serving data files of the directory, in read
    priority (a whole directory, or the exact files it serves when its directory also holds others; module
    doc). Files engines skip (:func:`skipped_by_engines`) are neither listed nor counted.

    :param mount: a ``hybrid_mount`` connection id or a :class:`~airflow_hybrid.mount.HybridMount`.
    :param s3_scheme: ``s3`` (EMRFS, EMR's) or ``s3a`` (Hadoop's S3A) for S3 URIs.
    :raises FileNotFoundError: no member has the path.
    :raises HybridConfigError: an unknown ``s3_scheme``.
    """
    check_s3_scheme(s3_scheme)
    mount = _mount(mount)
    rel = normalize_path(logical_path)
    member, info = mount.resolve(rel)
    store = mount.members[member]
    if not info.is_dir:
        warm = _warm_uri(mount, rel, [replace(info, path=rel)], s3_scheme)
        if warm:
            return [Location(CACHE_MEMBER, warm, 1, info.size)]
        return [Location(member, engine_uri(store, rel, s3_scheme=s3_scheme), 1, info.size)]

    served, mixed = _served(mount, rel)
    start = len(rel) + 1 if rel else 0
    data = {
        name: sorted((e for e in files if not skipped_by_engines(e.path[start:])), key=lambda e: e.path)
        for name, files in served.items()
    }
    count = sum(len(files) for files in data.values())
    total = sum(int(e.size) for files in data.values() for e in files)
    warm = _warm_uri(mount, rel, [e for name in mount.read_order for e in served[name]], s3_scheme)
    if warm:
        return [Location(CACHE_MEMBER, warm, count, total)]
    if not count:  # an empty directory, or one of markers only
        return [Location(member, engine_uri(store, rel, s3_scheme=s3_scheme))]
    found = []
    for name in mount.read_order:
        files = data[name]
        if not files:
            continue
        store = mount.members[name]
        file_uris = tuple(engine_uri(store, e.path, s3_scheme=s3_scheme) for e in files) if name in mixed else ()
        size = sum(int(e.size) for e in files)
        found.append(Location(name, engine_uri(store, rel, s3_scheme=s3_scheme), len(files), size, file_uris))
    return found


def resolve_physical(mount: str | HybridMount, logical_path: str) -> str:
    """The one physical URI of ``logical_path`` (a file, or a directory served by a single member).

    :raises SplitLocationError: the directory is served by several members, or its member's directory also
        holds files it must not read (a migration between copy and removal); the message names the members
        and their file counts. Use :func:`resolve_locations` to get each part.
    """
    found = resolve_locations(mount, logical_path)
    if len(found) == 1 and not found[0].file_uris:
        return found[0].uri
    mount_name = mount if isinstance(mount, str) else mount.name
    parts = ", ".join(
        f"{loc.member} ({loc.files} {'listed ' if loc.file_uris else ''}files at {loc.uri})" for loc in found
    )
    what = "is split across members" if len(found) > 1 else "is mixed with files it must not read in"
    raise SplitLocationError(
        f"hybrid://{mount_name}/{normalize_path(logical_path)} {what}: {parts}. "
        "One LOCATION would miss rows; use resolve_locations() (HybridQueryOperator unions them), finish "
        "the migration, or warm the path into the cache's S3 tier."
    )


# -- template macros -------------------------------------------------------------------------------
def uri(mount_conn_id: str, path: str) -> str:
    """Macro ``hybrid.uri``: the physical URI of ``path`` in mount ``mount_conn_id`` (see :func:`resolve_physical`)."""
    return resolve_physical(mount_conn_id, path)


def locations(mount_conn_id: str, path: str) -> list[str]:
    """Macro ``hybrid.locations``: the physical URI(s) of ``path``, each file once: per serving member in read
    priority, its directory, or the URIs of the files it serves when its directory holds others too."""
    return [
        uri for loc in resolve_locations(mount_conn_id, path) for uri in (loc.file_uris or (loc.uri,))
    ]


#: What the provider's plugin registers as its ``macros`` (plugin name ``hybrid``).
MACROS = [uri, locations]


def template_macros() -> types.SimpleNamespace:
    """The macros as one object, for ``DAG(user_defined_macros={"hybrid": template_macros()})``."""
    return types.SimpleNamespace(**{macro.__name__: macro for macro in MACROS})
