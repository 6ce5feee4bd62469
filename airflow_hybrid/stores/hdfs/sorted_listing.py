"""S3-ordered, resumable pages of an HDFS directory from the namenode's own sorted listing.

The namenode keeps a directory's children sorted by name, compared byte by byte as Java's *signed* bytes
(``DFSUtilClient.compareBytes``), and ``LISTSTATUS_BATCH`` resumes after any name (``startAfter``). S3 orders
keys by unsigned bytes with a directory ``x`` as ``x/`` (:func:`~airflow_hybrid.stores.base.child_key`). For
names in ASCII the two byte orders agree, and only the directories differ: ``x/`` comes after the names
``x<c>...`` with ``c`` below ``/`` (``x-1``, ``x.txt``), which HDFS lists after ``x``. So a page is the
namenode's listing from the marker on, with each directory held back (a small heap) until the names it
precedes in HDFS order have passed, plus the directories *before* the marker in HDFS order that S3 orders
after it: the ones named by a prefix of the marker followed by a character below ``/``, looked up with one
``GETFILESTATUS`` each. A page of ``n`` entries costs ``ceil(n / dfs.ls.limit)`` listing requests and those
look-ups, whatever the directory's size.

Names outside ASCII sort differently in the two orders (HDFS puts ``é`` before ``a``), so a directory where
one is seen falls back to :meth:`Store.list_sorted`'s whole-directory scan, exact in any order, and is
remembered as such by the store.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

from airflow_hybrid.stores.base import FileInfo, child_key


def _marker_start(start_after: str | None) -> str | None:
    start = start_after.rstrip("\x00") if start_after else None
    if start and "/" in start:  # a key below the directory ``x``: no name sorts between ``x/`` and it
        start = start.partition("/")[0] + "/"
    return start or None


def listing_start(start_after: str | None, name_prefix: str) -> str | None:
    """The name to resume the namenode's listing after (``startAfter``); ``None``: from the first child.

    Every child named after it may belong to the page; the ones at or before it that may are
    :func:`held_back_names`."""
    start = _marker_start(start_after)
    if name_prefix and (start is None or start < name_prefix):
        return name_prefix
    return start


def held_back_names(start_after: str | None, name_prefix: str) -> list[str]:
    """The names at or before :func:`listing_start` whose entries may still come after ``start_after`` in S3
    order, to look up one by one: the child named ``name_prefix`` when the listing starts there; else the
    directories named by a prefix of the marker followed by a character below ``/`` (``x`` for ``x-1``:
    ``x/`` > ``x-1``), and the one named by the marker (``x``) or holding it (``x`` for ``x/y``)."""
    start = _marker_start(start_after)
    if name_prefix and (start is None or start < name_prefix):
        return [name_prefix]
    if start is None:
        return []
    head, slash, rest = (start_after or "").partition("/")
    names = [head[:j] for j in range(1, len(head)) if head[j] < "/"]
    if not slash or rest:
        names.append(head)
    return [name for name in names if name.startswith(name_prefix)]


def s3_ordered(streamed: Iterable[FileInfo], held_back: Iterable[FileInfo], limit: int) -> list[FileInfo]:
    """The first ``limit`` entries in S3 order of ``held_back`` and ``streamed`` (names ascending, ASCII).

    An entry is released once a name beyond its key streams by: every later entry's key is at least its name.
    Memory: the page and the directories awaiting release (a chain such as ``x``, ``x-1``, ``x-1-2``)."""
    pending = [(child_key(entry), entry.name, entry) for entry in held_back]
    heapq.heapify(pending)
    page: list[FileInfo] = []
    for entry in streamed:
        while pending and pending[0][0] < entry.name:
            page.append(heapq.heappop(pending)[2])
            if len(page) == limit:
                return page
        heapq.heappush(pending, (child_key(entry), entry.name, entry))
    while pending and len(page) < limit:
        page.append(heapq.heappop(pending)[2])
    return page


def within_prefix(entries: Iterable[FileInfo], name_prefix: str) -> Iterator[FileInfo]:
    """``entries`` (names ascending, after :func:`listing_start`) while their names start with ``name_prefix``:
    such names are contiguous, so the first that does not ends them."""
    for entry in entries:
        if not entry.name.startswith(name_prefix):
            return
        yield entry
