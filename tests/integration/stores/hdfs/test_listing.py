"""Paged listings (LISTSTATUS_BATCH) of more entries than a page, on both HDFS servers.

Apache Hadoop pages with the lowercase ``startafter`` parameter and ignores ``startAfter`` (answering the
first page again), so a client that sends the wrong name lists forever; both servers must be listed once each.
"""

from __future__ import annotations

import io
import uuid

import pytest

from airflow_hybrid.stores.base import StoreError
from airflow_hybrid.stores.hdfs.store import HdfsStore

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]


@pytest.fixture
def paged_store(airflow_connections, hdfs_server):
    """An HDFS store under a fresh directory, on a server paging listings by 100 entries (Hadoop's fixture sets
    ``dfs.ls.limit`` 100; the devstack is told so for the test); removed afterwards."""
    if hdfs_server.kind == "devstack":
        hdfs_server.configure(list_page_size=100)
    store = HdfsStore(f"hdfs:///tmp/listing-{uuid.uuid4().hex[:8]}")
    try:
        yield store
    finally:
        store.delete("", recursive=True)
        if hdfs_server.kind == "devstack":
            hdfs_server.configure(list_page_size=1000)
        store.close()


def test_listing_more_than_a_page_yields_every_entry_once_in_order(paged_store):
    store = paged_store
    names = [f"part-{i:04d}" for i in range(250)]
    for name in names:
        store.write(f"d/{name}", io.BytesIO(b""))
    listed = [info.path for info in store.list("d")]
    assert listed == [f"d/{name}" for name in names]
    assert sorted(info.path for info in store.walk_files("")) == [f"d/{name}" for name in names]


def test_a_page_that_does_not_advance_is_an_error_not_an_endless_listing(airflow_connections, monkeypatch):
    """A server that ignores ``startafter`` answers the first page again: the store stops with an error."""
    store = HdfsStore(f"hdfs:///tmp/listing-{uuid.uuid4().hex[:8]}")
    first = ([{"pathSuffix": "a", "type": "FILE"}, {"pathSuffix": "b", "type": "FILE"}], 2)
    monkeypatch.setattr(store, "_list_page", lambda rel, start_after: first)
    listed = []
    with pytest.raises(StoreError, match="did not advance"):
        listed.extend(info.path for info in store.list("d"))
    assert listed == ["d/a", "d/b"]


# Names on both sides of "/" (directories "x" and "x-1" sort before "x-1.txt" in HDFS, after it in S3).
TRICKY = {"x": True, "x-1": True, "x-1.txt": False, "x.txt": False, "x0": False, "a b": False, "y": True,
          "y-": False, "z~": False, "part-0000": False, "part-0000.crc": False, "part": True}


def _tricky_directory(store: HdfsStore, extra: int = 0) -> None:
    for name, is_dir in TRICKY.items():
        store.write(f"d/{name}/inner" if is_dir else f"d/{name}", io.BytesIO(b"1"))
    for i in range(extra):
        store.write(f"d/m-{i:04d}", io.BytesIO(b""))


def _keys(entries) -> list[str]:
    return [f"{e.name}/" if e.is_dir else e.name for e in entries]


def test_sorted_pages_equal_the_whole_directory_scan_for_every_marker(paged_store):
    """``list_sorted`` from the namenode's listing gives exactly what sorting the whole directory gives
    (``Store.list_sorted``), for markers that are keys, directories, keys below directories and prefixes."""
    from airflow_hybrid.stores.base import Store

    store = paged_store
    _tricky_directory(store, extra=150)
    everything = _keys(Store.list_sorted(store, "d", None, 10_000))
    assert everything == sorted(everything) and len(everything) == len(TRICKY) + 150
    markers = [None, *everything, "x/inner", "x/\x00", "x-1/", "w", "m-0099.", "~"]
    for marker in markers:
        for limit, prefix in ((1, ""), (3, ""), (120, ""), (5, "x"), (2, "part"), (200, "m-")):
            got = _keys(store.list_sorted("d", marker, limit, prefix))
            assert got == _keys(Store.list_sorted(store, "d", marker, limit, prefix)), (marker, limit, prefix)
    assert store.list_sorted("missing") == [] and store.list_sorted("d/x.txt") == []


def test_a_sorted_page_costs_o_page_requests_whatever_the_directory(paged_store):
    """A page of 10 from the middle of 300 files costs one listing page and the marker's look-ups, not a
    scan (the namenode pages 100 entries)."""
    from tests.client_requests import RequestLog

    store = paged_store
    for i in range(300):
        store.write(f"d/m-{i:04d}", io.BytesIO(b""))
    with RequestLog() as log:
        page = store.list_sorted("d", "m-0149", 10)
    assert [e.name for e in page] == [f"m-{i:04d}" for i in range(150, 160)]
    counts = log.counts("webhdfs")
    # look-ups of "m" (a prefix of the marker followed by "-") and "m-0149" (as a directory); one page
    assert counts == {"webhdfs.LISTSTATUS_BATCH": 1, "webhdfs.GETFILESTATUS": 2}, counts


def test_names_outside_ascii_are_listed_in_s3_order_by_a_whole_scan(paged_store):
    """The namenode orders names as signed bytes (``é`` before ``a``); S3 as unsigned (``é`` after ``z``). A
    directory where such a name shows is scanned whole, so its pages are still in S3 order, each key once."""
    store = paged_store
    names = ["a", "b", "z", "é", "aé", "a-é", "日本"]
    for name in names:
        store.write(f"d/{name}", io.BytesIO(b"1"))
    assert [e.name for e in store.list("d")][:1] != ["a"]  # the namenode's own order: not S3's
    keys, marker = [], None
    while page := store.list_sorted("d", marker, 2):
        keys += [e.name for e in page]
        marker = page[-1].name
    assert keys == sorted(names)
