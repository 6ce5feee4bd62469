"""ListObjects over a mount: keys in S3 order, each once, a page costing O(page) memory whatever the directory.

A bucket's keys are the mount's logical paths. A listing walks the directories that can hold keys after the
marker, in S3 order (a directory ``x`` sorts as ``x/``, so ``x-1`` < ``x.txt`` < ``x/...`` < ``x0``), one
*directory page* at a time: the first ``batch`` children after the marker, merged across the members by the
union rules (:class:`~airflow_hybrid.mount.union.HybridMount`):

* the members are listed in :meth:`HybridMount.listing_sequence` order (``mn..m1, mn..m2``), so a file that a
  migration moves between two members while the page is made is still seen by one of the listings;
* each listing returns the first ``batch + 1`` children after the marker (``Store.list_sorted``); a listing
  that was cut covers the keys up to its last one only, so the page keeps the keys up to the smallest such
  bound, where every listing is complete, and the next page starts after the last key kept;
* a name is listed once, the highest read-priority member's entry winning; a directory whose name a
  higher-priority member has as a file, already listed before the marker, is left out.

Cost of a page of ``n`` keys: ``2m-1`` listings of ``n + 2`` children per directory visited (``m`` members;
the page, the key telling whether it is truncated, and the one bounding each listing), memory
O(``(2m-1)·n·depth``). Members with a native sorted listing (S3: ``StartAfter``) pay O(n) requests; a local
directory of more than 10,000 entries is read from a sorted snapshot of its names that its first page makes
(O(n) while the directory is unchanged: :mod:`~airflow_hybrid.stores.local_listing`); HDFS over WebHDFS resumes
the namenode's sorted listing after the marker (O(n): :mod:`~airflow_hybrid.stores.hdfs.sorted_listing`);
the others (HDFS over RPC, smaller or just-changed local directories) scan each directory visited once per
listing for each page, keeping only the ``n + 1`` smallest names in a heap (bounded memory, requests proportional to the
directory's size).
Directories with no key left cost their listings without adding keys to the page.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass

from airflow_hybrid.gateway.errors import S3Error
from airflow_hybrid.mount.union import HybridMount
from airflow_hybrid.stores.base import FileInfo, StoreError, child_key, normalize_path


@dataclass(frozen=True)
class Item:
    """A key of a listing: an object (``info``) or, with a delimiter, a common prefix (``info`` is ``None``)."""

    key: str
    info: FileInfo | None

    @property
    def is_prefix(self) -> bool:
        return self.info is None


def encode_token(item: Item) -> str:
    """A continuation token: the last key returned (and whether it was a common prefix), base64 JSON."""
    return base64.urlsafe_b64encode(json.dumps({"k": item.key, "p": item.is_prefix}).encode()).decode()


def decode_token(token: str) -> tuple[str, bool]:
    """``(key, was a common prefix)`` of :func:`encode_token`; ``InvalidArgument`` for anything else."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return str(data["k"]), bool(data["p"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise S3Error("InvalidArgument", "the continuation token provided is incorrect",
                      ArgumentName="continuation-token") from None


def directory_page(mount: HybridMount, directory: str, start_after: str | None, batch: int,
                   name_prefix: str = "") -> tuple[list[FileInfo], bool]:
    """The first ``batch`` children of ``directory`` after ``start_after`` (a child key, module doc), merged
    across members; ``True`` when more may follow the last."""
    rank = {member: i for i, member in enumerate(mount.read_order)}
    best: dict[str, tuple[int, FileInfo]] = {}
    bound: str | None = None
    for member in mount.listing_sequence():
        try:
            children = mount.members[member].list_sorted(directory, start_after, batch + 1, name_prefix)
        except (StoreError, OSError) as err:
            raise S3Error("InternalError", f"member {member!r} failed listing {directory!r}: {err}") from err
        if len(children) > batch:
            last = child_key(children[-1])
            bound = last if bound is None else min(bound, last)
        level = rank[member]
        for entry in children:
            held = best.get(entry.name)
            if held is None or held[0] >= level:  # the same member's later listing is the fresher one
                best[entry.name] = (level, entry)
    merged = sorted((entry for _, entry in best.values()), key=child_key)
    if bound is not None:
        merged = [entry for entry in merged if child_key(entry) <= bound]
    if start_after is not None:
        merged = [entry for entry in merged if not _shadowed(mount, entry, rank, best, start_after)]
    return merged[:batch], len(merged) > batch or bound is not None


def _shadowed(mount: HybridMount, entry: FileInfo, rank: dict[str, int], best: dict, start_after: str) -> bool:
    """A directory ``x`` whose name a higher-priority member has as the file ``x``, listed before the marker
    (``x <= start_after < x/``): the name was listed once already."""
    if not entry.is_dir or not (entry.name <= start_after < f"{entry.name}/"):
        return False
    level = best[entry.name][0]
    for member in mount.read_order[:level]:
        try:
            if not mount.members[member].info(entry.path).is_dir:
                return True
        except FileNotFoundError:
            continue
        except (StoreError, OSError) as err:
            raise S3Error("InternalError", f"member {member!r} failed on {entry.path!r}: {err}") from err
    return False


def iter_keys(mount: HybridMount, prefix: str = "", start_after: str | None = None, *,
              delimiter: str | None = None, after_prefix: bool = False, batch: int = 1000) -> Iterator[Item]:
    """Every key of the bucket that starts with ``prefix`` and sorts after ``start_after``, in S3 order,
    lazily (one directory page at a time). With ``delimiter='/'`` a subdirectory is one common prefix.

    :param after_prefix: ``start_after`` is a common prefix already returned (skip every key below it).
    """
    if delimiter not in (None, "", "/"):
        raise S3Error("InvalidArgument", "the gateway lists with the delimiter '/' only", ArgumentName="delimiter")
    recursive = not delimiter
    directory, slash, name_prefix = prefix.rpartition("/")
    if directory != normalize_path(directory) or (slash and not directory):
        return  # a prefix no logical path can have (``a//b``, ``/a``)
    base = f"{directory}/" if directory else ""
    marker: str | None = None
    if start_after:
        if start_after.startswith(base):
            marker = start_after[len(base):]
            if recursive and marker.endswith("/") and not after_prefix:
                marker += "\x00"  # StartAfter "x/": every key below x is after it
        elif start_after > base:
            return
    yield from _walk(mount, directory, base, name_prefix, marker, recursive, batch)


def _walk(mount: HybridMount, directory: str, base: str, name_prefix: str, marker: str | None,
          recursive: bool, batch: int) -> Iterator[Item]:
    after = marker
    if recursive and after is not None and "/" in after.rstrip("\x00"):
        # The marker is a key below the subdirectory ``head``: finish that subdirectory here, then go on after
        # it. A member's sorted listing need not report the directory holding its StartAfter (moto does not).
        head, _, rest = after.partition("/")
        if head.startswith(name_prefix) and _is_dir(mount, posixpath.join(directory, head)):
            yield from _walk(mount, posixpath.join(directory, head), f"{base}{head}/", "", rest or None,
                             recursive, batch)
        after = f"{head}/"
    while True:
        page, more = directory_page(mount, directory, after, batch, name_prefix)
        for entry in page:
            key = child_key(entry)
            if not entry.is_dir:
                yield Item(base + key, entry)
            elif not recursive:
                yield Item(base + key, None)
            else:
                inner = after[len(key):] if after is not None and after.startswith(key) else None
                yield from _walk(mount, entry.path, base + key, "", inner, recursive, batch)
        if not more or not page:
            return
        after = child_key(page[-1])


def _is_dir(mount: HybridMount, path: str) -> bool:
    """Whether the union shows ``path`` as a directory (a higher-priority member's file of that name hides it)."""
    try:
        return mount.info(path).is_dir
    except (FileNotFoundError, NotADirectoryError):
        return False
    except (StoreError, OSError) as err:
        raise S3Error("InternalError", f"failed on {path!r}: {err}") from err


@dataclass
class ListPage:
    """One ListObjects page: ``items`` (objects and common prefixes) and whether more follow."""

    items: list[Item]
    truncated: bool

    @property
    def contents(self) -> list[Item]:
        return [item for item in self.items if not item.is_prefix]

    @property
    def prefixes(self) -> list[Item]:
        return [item for item in self.items if item.is_prefix]


def list_page(mount: HybridMount, prefix: str, start_after: str | None, max_keys: int, *,
              delimiter: str | None = None, after_prefix: bool = False) -> ListPage:
    """Up to ``max_keys`` keys (and common prefixes) after ``start_after``; looks one key further to tell
    whether the page is truncated."""
    if max_keys <= 0:
        return ListPage([], False)
    items: list[Item] = []
    keys = iter_keys(mount, prefix, start_after, delimiter=delimiter, after_prefix=after_prefix,
                     batch=min(max_keys, 1000) + 1)  # the page and the key telling it is truncated
    truncated = False
    for item in keys:
        if len(items) == max_keys:
            keys.close()
            truncated = True
            break
        items.append(item)
    forget_stale_copies(mount, items)
    return ListPage(items, truncated)


def forget_stale_copies(mount: HybridMount, items: list[Item]) -> None:
    """Drop the cached copies of listed files whose source the listing shows changed (e.g. migrated to another
    member), so a GET right after the listing serves the version it listed, with its ETag, not the copy of the
    previous one that the cache would keep serving until its next freshness check (engines such as DuckDB's
    httpfs refuse a file whose ETag differs between its listing and its reads). One catalog look-up per key,
    no member request."""
    cache = mount.cache
    if cache is None:
        return
    for item in items:
        if item.info is None or item.info.is_dir:
            continue
        entry = cache.lookup(item.key)  # the copy a GET would serve now, without a freshness check
        if entry is not None and not entry.source.matches(item.info):
            cache.lookup(item.key, item.info, force_sync=True)  # the listed status differs: dropped
