"""Resolve logical mount paths to the physical URIs an external engine (Presto, Trino, Spark on EMR) reads.

Engines outside this process cannot read ``hybrid://``; they need the URI of the store that holds the data
*now*: ``hdfs://...`` before a migration, ``s3://...`` after it, or the cache's S3 tier while the data is
warm there. The rules:

* a **file** resolves to the member that serves it (the first in ``priority.read`` having it; a file moved by a
  migration while it is looked up is found by the mount's second look);
* a **directory** (a table) resolves to one URI when a single member serves all of its files -- lower
  priority members may still hold shadowed copies (e.g. HDFS originals of files already migrated to S3),
  which an engine reading the winning member's directory never sees;
* a directory whose files are served by **several** members (e.g. older files on S3, newer on HDFS, the
  steady state of an age-based migration policy) has no single ``LOCATION``: :func:`resolve_physical`
  raises :class:`SplitLocationError`, and :func:`resolve_locations` returns one location per member, in read
  priority, for an engine to union (``HybridQueryOperator`` does). Such a union is only exact when the
  members' directories are disjoint; while a file is held by two of them (a migration between its copy and
  its removal) a directory-level union would count it twice, so that is an error too, naming the file. The
  members are walked in the mount's listing sequence, so a file moving meanwhile is never left out;
* when the mount has a cache whose S3 tier holds a fresh copy of the whole path, that copy wins. The cache
  manager declares it as :meth:`~airflow_hybrid.cache.manager.CacheManager.warm_uri`.

Template macros: :func:`uri` and :func:`locations`, registered by the provider's plugin under the name
``hybrid`` (``{{ macros.hybrid.uri('onprem_union', '/tpcds/store_sales') }}``), or passed to a DAG with
``user_defined_macros={"hybrid": template_macros()}`` (``{{ hybrid.uri(...) }}``).
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.stores.base import normalize_path

if TYPE_CHECKING:
    from airflow_hybrid.mount import HybridMount

#: ``member`` of a :class:`Location` served by the cache's S3 tier.
CACHE_MEMBER = "cache"
_EXAMPLES_IN_ERRORS = 3


class SplitLocationError(HybridConfigError):
    """A logical directory is served by several members, so it has no single physical location."""


@dataclass(frozen=True)
class Location:
    """Where (part of) a logical path physically lives: a member (or the cache) and the URI there."""

    member: str
    uri: str
    files: int = 0
    bytes: int = 0


def _mount(mount: str | HybridMount) -> HybridMount:
    if isinstance(mount, str):
        from airflow_hybrid.mount import HybridMount

        return HybridMount.from_conn_id(mount)
    return mount


def _warm_uri(mount: HybridMount, rel: str) -> str | None:
    """The URI of the cache's copy of ``rel`` that an engine outside this process can read, else ``None``
    (see :meth:`CacheManager.warm_uri <airflow_hybrid.cache.manager.CacheManager.warm_uri>`)."""
    cache = mount.cache
    return cache.warm_uri(rel) if cache is not None else None


def resolve_locations(mount: str | HybridMount, logical_path: str) -> list[Location]:
    """Physical location(s) of ``logical_path``: one for a file or a single-member directory, else one per
    member serving part of the directory, in read priority.

    :param mount: a ``hybrid_mount`` connection id or a :class:`~airflow_hybrid.mount.HybridMount`.
    :raises FileNotFoundError: no member has the path.
    :raises SplitLocationError: the directory's files are in several members and some file is in more than
        one of them (a migration in flight), so no union of directories reads each file once.
    """
    mount = _mount(mount)
    rel = normalize_path(logical_path)
    member, info = mount.resolve(rel)
    warm = _warm_uri(mount, rel)
    if warm:
        return [Location(CACHE_MEMBER, warm)]
    if not info.is_dir:
        return [Location(member, mount.members[member].uri(rel), 1, info.size)]

    # The members are walked in the mount's listing sequence (mn..m1, mn..m2), so a file a migration moves
    # meanwhile is seen by at least one walk (see HybridMount's module doc). Per file: a mask of the members
    # that listed it, and the size its best (highest-priority) member listed; one entry per file of this path.
    rank = {name: i for i, name in enumerate(mount.read_order)}
    seen: dict[str, list[int]] = {}  # file path -> [mask of members, best rank, size there]
    for name in mount.listing_sequence():
        level = rank[name]
        try:
            for entry in mount.members[name].walk_files(rel):
                known = seen.get(entry.path)
                if known is None:
                    seen[entry.path] = [1 << level, level, int(entry.size)]
                    continue
                known[0] |= 1 << level
                if level <= known[1]:
                    known[1], known[2] = level, int(entry.size)
        except FileNotFoundError:  # not on this member (now)
            continue
    counts = {name: [0, 0] for name in mount.read_order}
    shadowed: dict[str, list[str]] = {name: [] for name in mount.read_order}
    for path, (mask, best, size) in seen.items():
        owner = mount.read_order[best]
        counts[owner][0] += 1
        counts[owner][1] += size
        for level, name in enumerate(mount.read_order):
            if level != best and mask & (1 << level):
                shadowed[name].append(path)
    seen.clear()
    serving = [name for name in mount.read_order if counts[name][0]]
    if not serving:  # an empty directory
        return [Location(member, mount.members[member].uri(rel))]
    if len(serving) > 1:
        doubled = [(name, shadowed[name]) for name in serving if shadowed[name]]
        if doubled:
            name, paths = doubled[0]
            examples = ", ".join(paths[:_EXAMPLES_IN_ERRORS])
            raise SplitLocationError(
                f"hybrid://{mount.name}/{rel} is split across members {', '.join(serving)} and member {name!r} "
                f"also holds {len(paths)} file(s) served by a higher-priority member (e.g. {examples}); "
                "reading its directory would count them twice. Retry when the migration has removed them."
            )
    return [Location(name, mount.members[name].uri(rel), *counts[name]) for name in serving]


def resolve_physical(mount: str | HybridMount, logical_path: str) -> str:
    """The one physical URI of ``logical_path`` (a file, or a directory served by a single member).

    :raises SplitLocationError: the directory is served by several members; the message names them and
        their file counts. Use :func:`resolve_locations` to get each part.
    """
    found = resolve_locations(mount, logical_path)
    if len(found) == 1:
        return found[0].uri
    mount_name = mount if isinstance(mount, str) else mount.name
    parts = ", ".join(f"{loc.member} ({loc.files} files at {loc.uri})" for loc in found)
    raise SplitLocationError(
        f"hybrid://{mount_name}/{normalize_path(logical_path)} is split across members: {parts}. "
        "One LOCATION would miss rows; use resolve_locations() (HybridQueryOperator unions them), finish "
        "the migration, or warm the path into the cache's S3 tier."
    )


# -- template macros -------------------------------------------------------------------------------
def uri(mount_conn_id: str, path: str) -> str:
    """Macro ``hybrid.uri``: the physical URI of ``path`` in mount ``mount_conn_id`` (see :func:`resolve_physical`)."""
    return resolve_physical(mount_conn_id, path)


def locations(mount_conn_id: str, path: str) -> list[str]:
    """Macro ``hybrid.locations``: the physical URI(s) of ``path``, one per serving member, in read priority."""
    return [loc.uri for loc in resolve_locations(mount_conn_id, path)]


#: What the provider's plugin registers as its ``macros`` (plugin name ``hybrid``).
MACROS = [uri, locations]


def template_macros() -> types.SimpleNamespace:
    """The macros as one object, for ``DAG(user_defined_macros={"hybrid": template_macros()})``."""
    return types.SimpleNamespace(**{macro.__name__: macro for macro in MACROS})
