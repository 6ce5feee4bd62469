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


def test_listing_more_than_a_page_yields_every_entry_once_in_order(airflow_connections, hdfs_server):
    if hdfs_server.kind == "devstack":
        hdfs_server.configure(list_page_size=100)
    store = HdfsStore(f"hdfs:///tmp/listing-{uuid.uuid4().hex[:8]}")
    names = [f"part-{i:04d}" for i in range(250)]
    try:
        for name in names:
            store.write(f"d/{name}", io.BytesIO(b""))
        listed = [info.path for info in store.list("d")]
        assert listed == [f"d/{name}" for name in names]
        assert sorted(info.path for info in store.walk_files("")) == [f"d/{name}" for name in names]
    finally:
        store.delete("", recursive=True)
        if hdfs_server.kind == "devstack":
            hdfs_server.configure(list_page_size=1000)
        store.close()


def test_a_page_that_does_not_advance_is_an_error_not_an_endless_listing(airflow_connections, monkeypatch):
    """A server that ignores ``startafter`` answers the first page again: the store stops with an error."""
    store = HdfsStore(f"hdfs:///tmp/listing-{uuid.uuid4().hex[:8]}")
    first = ([{"pathSuffix": "a", "type": "FILE"}, {"pathSuffix": "b", "type": "FILE"}], 2)
    monkeypatch.setattr(store, "_list_page", lambda rel, start_after: first)
    listed = []
    with pytest.raises(StoreError, match="did not advance"):
        listed.extend(info.path for info in store.list("d"))
    assert listed == ["d/a", "d/b"]
