"""Paged listings (LISTSTATUS_BATCH) of more entries than a page, on both HDFS servers.

Apache Hadoop pages with the lowercase ``startafter`` parameter and ignores ``startAfter`` (answering the
first page again), so a client that sends the wrong name lists forever; both servers must be listed once each.
"""

from __future__ import annotations

import io
import uuid

import pytest

from airflow_hybrid.stores.hdfs import HdfsStore

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
