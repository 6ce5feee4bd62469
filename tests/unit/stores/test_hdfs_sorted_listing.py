"""S3-ordered pages from an HDFS-ordered listing (:mod:`airflow_hybrid.stores.hdfs.sorted_listing`), checked
against the definition: every child whose key comes after the marker (``after_marker``), sorted by
``child_key``, first ``limit``. The namenode is simulated by its two operations the store uses: the names after
``startAfter`` in name order, and a status per name."""

from __future__ import annotations

import heapq

from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_hybrid.stores.base import FileInfo, after_marker, child_key
from airflow_hybrid.stores.hdfs.sorted_listing import (
    held_back_names,
    listing_start,
    s3_ordered,
    within_prefix,
)

# Characters on both sides of "/" in ASCII, where HDFS order and S3 order of directories part.
NAMES = st.text(alphabet="a-.0\x01 ~", min_size=1, max_size=5).filter(lambda name: name not in (".", ".."))


def namenode_page(children: dict[str, bool], start_after: str | None, limit: int, prefix: str) -> list[str]:
    """What the store builds from the namenode: held-back look-ups plus the listing after the start."""
    start = listing_start(start_after, prefix)
    streamed = [FileInfo(path=f"d/{name}", size=0, mtime=0, is_dir=children[name])
                for name in sorted(children) if start is None or name > start]
    held = [FileInfo(path=f"d/{name}", size=0, mtime=0, is_dir=children[name])
            for name in held_back_names(start_after, prefix) if name in children]
    held = [entry for entry in held if after_marker(child_key(entry), entry.is_dir, start_after)]
    return [child_key(entry) for entry in s3_ordered(within_prefix(streamed, prefix), held, limit)]


def definition(children: dict[str, bool], start_after: str | None, limit: int, prefix: str) -> list[str]:
    keys = [(f"{name}/" if is_dir else name, is_dir) for name, is_dir in children.items()]
    wanted = [key for key, is_dir in keys
              if key.startswith(prefix) and after_marker(key, is_dir, start_after)]
    return heapq.nsmallest(limit, wanted)


@settings(max_examples=400, deadline=None)
@given(children=st.dictionaries(NAMES, st.booleans(), max_size=14), marker=st.one_of(st.none(), NAMES),
       below=st.sampled_from(["", "/", "/\x00", "/x", "/-"]), limit=st.integers(1, 6),
       prefix=st.sampled_from(["", "a", "a-", "a.", "-", "0"]))
def test_a_page_is_the_first_children_after_the_marker_in_s3_order(children, marker, below, limit, prefix):
    start_after = None if marker is None else marker + below
    assert namenode_page(children, start_after, limit, prefix) == definition(children, start_after, limit, prefix)


@settings(max_examples=150, deadline=None)
@given(children=st.dictionaries(NAMES, st.booleans(), min_size=1, max_size=14), size=st.integers(1, 4))
def test_paging_by_the_last_key_lists_every_child_once_in_s3_order(children, size):
    keys, marker = [], None
    while True:
        page = namenode_page(children, marker, size, "")
        keys += page
        if len(page) < size:
            break
        marker = page[-1]
    assert keys == sorted(f"{n}/" if d else n for n, d in children.items())


def test_directories_before_the_marker_that_s3_orders_after_it_are_looked_up():
    # "x" and "x-1" precede "x-1.txt" in HDFS order, but "x/" and "x-1/" follow it in S3 order.
    assert held_back_names("x-1.txt", "") == ["x", "x-1", "x-1.txt"]
    assert held_back_names("x/y", "") == ["x"]  # the directory holding the marker
    assert held_back_names("x/", "") == []  # "x/" itself: every key below x comes after it, not x itself
    assert held_back_names("x/\x00", "") == ["x"]
    assert held_back_names("abc", "b") == ["b"]  # the listing starts at the name prefix
    assert listing_start("x/y", "") == "x/"
    assert listing_start("abc", "b") == "b"
    assert listing_start(None, "") is None


def test_a_directory_is_held_back_until_the_names_it_precedes_in_hdfs_order_have_passed():
    names = [("x", True), ("x-1", False), ("x.txt", False), ("x0", False)]
    streamed = [FileInfo(path=n, size=0, mtime=0, is_dir=d) for n, d in names]
    assert [child_key(e) for e in s3_ordered(streamed, [], 10)] == ["x-1", "x.txt", "x/", "x0"]
    assert [child_key(e) for e in s3_ordered(streamed, [], 3)] == ["x-1", "x.txt", "x/"]
