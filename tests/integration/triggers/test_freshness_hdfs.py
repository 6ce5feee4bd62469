"""HDFS's tree fingerprint and HybridChangeTrigger on real servers: Apache Hadoop 3.5 and the devstack (the module
is marked ``hdfs_servers``: each test runs once on each), S3 on the devstack's S3 server.

Requests are counted as they reach the server (the devstack's own counters) or as this process sends them
(Apache Hadoop; :func:`tests.client_requests.hdfs_requests`), S3's as this process sends them.
"""

from __future__ import annotations

import io
import uuid
from collections import Counter

import pytest

from airflow_hybrid.stores.hdfs.store import HdfsStore
from airflow_hybrid.triggers.freshness import HybridChangeTrigger
from tests.client_requests import RequestLog, hdfs_requests
from tests.unit.triggers.test_freshness import FakeStateStore, run_trigger

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]

MOUNT = "onprem_union"


@pytest.fixture
def hdfs(airflow_connections):
    store = HdfsStore(f"hdfs:///tmp/fingerprint-{uuid.uuid4().hex[:8]}")
    yield store
    store.delete("", recursive=True)
    store.close()


def put(store, path: str, data: bytes) -> None:
    store.write(path, io.BytesIO(data))


def delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}


def test_a_directory_fingerprint_is_two_requests_whatever_the_number_of_files(hdfs, hdfs_server):
    put(hdfs, "t/part-0", b"x")
    with hdfs_requests(hdfs_server) as requests:
        before = requests()
        small = hdfs.tree_fingerprint("t")
        cost_small = delta(before, requests())
        for d in range(4):
            for i in range(10):
                put(hdfs, f"t/d={d}/part-{i}", b"y" * i)
        before = requests()
        large = hdfs.tree_fingerprint("t")
        cost_large = delta(before, requests())
    assert cost_small == cost_large == {"GETFILESTATUS": 1, "GETCONTENTSUMMARY": 1}
    assert (small.files, small.bytes, small.exact) == (1, 1, False)
    assert (large.files, large.bytes) == (41, 1 + 4 * 45)
    assert hdfs.tree_fingerprint("missing").value == "absent"
    assert hdfs.tree_fingerprint("t/part-0").exact  # a file: its own status


def test_what_the_hdfs_summary_sees_and_what_it_misses(hdfs):
    """Seen: files added, removed or resized anywhere below, a same-length rewrite directly in the directory
    (the store's rename over the file, or HDFS's own overwriting CREATE). Missed: a same-length rewrite inside a
    subdirectory (HDFS changes that subdirectory's mtime only), which the trigger's rescan catches."""
    put(hdfs, "t/part-0", b"a" * 10)
    put(hdfs, "t/sub/part-1", b"b" * 10)
    seen = [hdfs.tree_fingerprint("t").value]

    def changed() -> bool:
        seen.append(hdfs.tree_fingerprint("t").value)
        return seen[-1] != seen[-2]

    put(hdfs, "t/sub/part-2", b"c")
    assert changed(), "a file added in a subdirectory"
    hdfs.delete("t/sub/part-2")
    assert changed(), "a file removed from a subdirectory"
    put(hdfs, "t/sub/part-1", b"b" * 11)
    assert changed(), "a file resized in a subdirectory"
    put(hdfs, "t/part-0", b"A" * 10)
    assert changed(), "a same-length rewrite in the directory (temporary file renamed over it)"
    hdfs.client.write(hdfs._abs("t/part-0"), data=b"Z" * 10, overwrite=True)
    assert changed(), "a same-length rewrite in the directory (HDFS's overwriting CREATE)"
    put(hdfs, "t/sub/part-1", b"B" * 11)
    assert not changed(), "the documented limit: a same-length rewrite below a subdirectory is not seen"


def test_the_trigger_on_the_union_costs_the_same_requests_each_unchanged_poll(union_lake, hdfs_server):
    """Per unchanged poll: HDFS 2 requests (GETFILESTATUS + GETCONTENTSUMMARY), S3 one ListObjectsV2 page."""
    root = f"watch-{uuid.uuid4().hex[:8]}"
    hdfs_store, s3_store = union_lake.members["hdfs"], union_lake.members["s3"]
    for i in range(30):
        put(hdfs_store, f"{root}/sales/day={i % 3}/part-{i}.parquet", b"h" * i)
    put(s3_store, f"{root}/sales/part-s3.parquet", b"s" * 7)
    costs: list[Counter[str]] = []
    try:
        with hdfs_requests(hdfs_server) as hdfs_counts, RequestLog() as s3_log:
            last = [Counter(), Counter()]

            def snapshot() -> None:
                now = [Counter(hdfs_counts()), Counter(s3_log.counts("s3"))]
                costs.append((now[0] - last[0]) + (now[1] - last[1]))
                last[:] = now

            trigger = HybridChangeTrigger(MOUNT, f"/{root}/sales/**.parquet", poll_interval=1)
            events = run_trigger(trigger, [None, None, None,
                                           lambda: put(s3_store, f"{root}/sales/part-new.parquet", b"n"), None],
                                 FakeStateStore(), on_sleep=snapshot)
    finally:
        union_lake.delete(root, recursive=True)
    baseline, *unchanged, after_change, _ = costs
    assert unchanged == [{"GETFILESTATUS": 1, "GETCONTENTSUMMARY": 1, "s3.GET": 1}] * 3, costs
    assert baseline["LISTSTATUS_BATCH"] >= 4  # the baseline listed the matched files once (4 directories)
    assert after_change["LISTSTATUS_BATCH"] >= 4
    assert [(e["files"], e["previous_files"], e["bytes"] - e["previous_bytes"]) for e in events] == [(32, 31, 1)]


def test_the_rescan_catches_a_same_length_rewrite_below_a_subdirectory(union_lake):
    root = f"watch-{uuid.uuid4().hex[:8]}"
    hdfs_store = union_lake.members["hdfs"]
    put(hdfs_store, f"{root}/sales/day=1/part-0.parquet", b"a" * 50)
    clock = [10_000.0]
    trigger = HybridChangeTrigger(MOUNT, f"/{root}/sales", poll_interval=60, rescan_interval=600, members=["hdfs"])
    trigger.clock = lambda: clock[0]
    rewrite = lambda: put(hdfs_store, f"{root}/sales/day=1/part-0.parquet", b"b" * 50)  # noqa: E731
    try:
        events = run_trigger(trigger, [rewrite] + [None] * 10, FakeStateStore(), clock=clock)
    finally:
        union_lake.delete(root, recursive=True)
    assert [e["detected_at"] for e in events] == ["1970-01-01T02:56:40+00:00"]  # t=10600: the first rescan
