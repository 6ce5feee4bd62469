"""Cache operators and the cache_ops layer over a mount of local directories (real stores, real catalog).

The mount is resolved from an ``AIRFLOW_CONN_*`` connection, as in production; operators are executed directly
(the DAG-run path is in tests/e2e/test_cache_dag.py, the devstack path in tests/integration).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading

import pytest
from airflow.exceptions import AirflowException
from airflow.sdk import Asset
from airflow.sdk.exceptions import AirflowTaskTimeout

from airflow_hybrid.cache import CacheQuotaError
from airflow_hybrid.cache import ops as cache_ops
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.globs import NoMatchError, PathPattern, iter_files, parse_patterns
from airflow_hybrid.operators.cache import (
    HybridCacheReportOperator,
    HybridFreeOperator,
    HybridPinOperator,
    HybridPrefetchOperator,
    HybridUnpinOperator,
)
from airflow_hybrid.stores.base import PathEscapeError
from airflow_hybrid.values import format_bytes
from tests.mounts import local_mount_extra
from tests.unit.ops.progress_support import DEADLINE, GatedStream, Lines, progress_threads, rate_of

KiB = 1024
FILES = {  # logical path -> (member, size)
    "t/a.parquet": ("hot", 3 * KiB),
    "t/a.csv": ("hot", 100),
    "t/sub/b.parquet": ("cold", 5 * KiB),
    "t/sub/deep/c.parquet": ("cold", 7 * KiB),
    "u/d.parquet": ("cold", 2 * KiB),
}


@pytest.fixture
def tiered_lake(tmp_path, monkeypatch):
    """Members ``hot`` and ``cold`` (local directories, read priority hot,cold), tiers MEM (64 KiB), SSD (6 KiB)."""
    data: dict[str, bytes] = {}
    for path, (member, size) in FILES.items():
        target = tmp_path / member / path
        target.parent.mkdir(parents=True, exist_ok=True)
        data[path] = os.urandom(size)
        target.write_bytes(data[path])
    (tmp_path / "cold" / "t" / "empty").mkdir()
    (tmp_path / "cold" / "t" / "a.parquet").write_bytes(b"shadowed by hot")
    extra = local_mount_extra(tmp_path, "hot,cold", "hot", {"MEM": "64KB", "SSD": "6KB"}, metadata_sync_interval=0)
    monkeypatch.setenv("AIRFLOW_CONN_LAKE", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    nocache = {k: v for k, v in extra.items() if k != "cache"}
    monkeypatch.setenv("AIRFLOW_CONN_NOCACHE", json.dumps({"conn_type": "hybrid_mount", "extra": nocache}))
    badcache = {**nocache, "cache": {"tiers": [{"alias": "MEM", "uri": f"file://{tmp_path}/m", "quota": "-5MB"}]}}
    monkeypatch.setenv("AIRFLOW_CONN_BADCACHE", json.dumps({"conn_type": "hybrid_mount", "extra": badcache}))
    return tmp_path, data


@pytest.fixture
def mount(tiered_lake):
    mount = HybridMount.from_conn_id("lake")
    yield mount
    mount.close()


def paths(mount, patterns) -> list[str]:
    return sorted(info.path for info in iter_files(mount, patterns))


def cached(mount) -> dict[str, tuple[str, bool]]:
    """Ready copies: path -> (tier, pinned)."""
    return {e.path: (e.tier, e.pinned) for e in mount.cache.entries() if e.state == "ready"}


def copy_bytes(mount, path: str) -> bytes:
    """The bytes of the cached copy of ``path`` (read from its tier, not through the cache)."""
    entry = mount.cache.catalog.get("lake", path)
    with mount.cache.tiers[entry.tier].open(entry.location) as stream:
        return stream.read()


# -- path and glob expansion ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("t/*.parquet", ["t/a.parquet"]),  # * never crosses a /
        ("/t/**/*.parquet", ["t/a.parquet", "t/sub/b.parquet", "t/sub/deep/c.parquet"]),  # ** spans directories
        ("t/s?b/*", ["t/sub/b.parquet", "t/sub/deep/c.parquet"]),  # a matched directory means all below it
        ("t/[ab].*", ["t/a.csv", "t/a.parquet"]),
        ("t/[!a].*", []),  # (asserted separately: a glob matching nothing is an error)
        ("*/d.parquet", ["u/d.parquet"]),
        ("t/sub", ["t/sub/b.parquet", "t/sub/deep/c.parquet"]),  # a plain directory: every file below
        ("t/a.parquet", ["t/a.parquet"]),
        ("t/empty", []),  # an existing empty directory is not an error
    ],
)
def test_glob_semantics(mount, pattern, expected):
    if not expected and PathPattern.parse(pattern).is_glob:
        with pytest.raises(NoMatchError):
            paths(mount, pattern)
        return
    assert paths(mount, pattern) == expected


def test_expansion_is_the_merged_namespace_each_name_once(mount):
    found = list(iter_files(mount, ["t", "t/a.parquet", "u/*"]))
    assert sorted(f.path for f in found) == sorted(FILES)
    by_path = {f.path: f for f in found}
    assert by_path["t/a.parquet"].size == 3 * KiB  # the read-priority member's file, not cold's shadow


def test_bad_patterns_are_clear_errors(mount):
    with pytest.raises(NoMatchError, match=r"glob 't/\*\.orc' matches no file in mount 'lake' below 't'"):
        paths(mount, "t/*.orc")
    with pytest.raises(NoMatchError, match=r"glob 'nowhere/\*' matches no file in mount 'lake'"):
        paths(mount, "nowhere/*")
    with pytest.raises(NoMatchError, match=r"'t/missing.parquet': no such file or directory in mount 'lake' "
                                           r"\(members hot, cold\)"):
        paths(mount, "t/missing.parquet")
    with pytest.raises(PathEscapeError, match=r"escapes its root"):
        parse_patterns(["t/../../etc/*"])
    with pytest.raises(ValueError, match="no paths given"):
        parse_patterns([])


def test_catalog_matching_of_patterns():
    glob = PathPattern.parse("/t/*/x-?.parquet")
    assert glob.static_prefix == "t"
    assert glob.matches("t/a/x-1.parquet") and not glob.matches("t/a/b/x-1.parquet")
    assert PathPattern.parse("t/s*").matches("t/sub/deep/c.parquet")  # below a matched directory
    plain = PathPattern.parse("t/sub")
    assert plain.matches("t/sub/b.parquet") and not plain.matches("t/subway/b.parquet")
    assert PathPattern.parse("/").matches("anything/at/all")


# -- prefetch -------------------------------------------------------------------------------------------
def test_prefetch_loads_in_parallel_then_skips_fresh_and_reloads_changed(tiered_lake, mount):
    root, data = tiered_lake
    first = cache_ops.prefetch(mount, ["t/**/*.parquet", "u"], concurrency=3)
    parquet = [p for p in FILES if p.endswith(".parquet")]
    size = sum(FILES[p][1] for p in parquet)
    assert (first.files, first.bytes, first.loaded, first.loaded_bytes, first.fresh, first.failed) == (
        4, size, 4, size, 0, 0)
    assert set(cached(mount)) == set(parquet)
    for path in parquet:
        assert copy_bytes(mount, path) == data[path]

    (root / "cold" / "u" / "d.parquet").write_bytes(b"version 2")
    os.utime(root / "cold" / "u" / "d.parquet", (1, 1))
    second = cache_ops.prefetch(mount, ["t/**/*.parquet", "u"])
    assert (second.loaded, second.loaded_bytes, second.fresh, second.fresh_bytes) == (
        1, len(b"version 2"), 3, size - 2 * KiB)
    assert second.source_members == {"hot", "cold"}
    with mount.open_read("u/d.parquet") as stream:
        assert stream.read() == b"version 2"


def test_prefetch_counts_a_file_another_reader_is_filling_as_busy(mount):
    reader = mount.open_read("t/sub/b.parquet")  # a read-through fill holds the file's load claim
    try:
        reader.read(10)
        summary = cache_ops.prefetch(mount, "t/sub")
        assert (summary.busy, summary.busy_bytes, summary.loaded) == (1, 5 * KiB, 1)
    finally:
        reader.close()


def test_a_file_larger_than_the_tier_fails_alone(mount):
    summary = cache_ops.prefetch(mount, "t/**/*.parquet", tier="ssd")  # SSD quota is 6 KiB
    assert (summary.tier, summary.loaded, summary.failed) == ("SSD", 2, 1)
    failure = summary.failures[0]
    assert failure["path"] == "t/sub/deep/c.parquet"
    assert "CacheQuotaError" in failure["error"] and "quota 6144 bytes" in failure["error"]


def test_a_tier_full_of_loads_in_flight_is_retried_then_reported(mount):
    member, info = mount.resolve("t/sub/b.parquet")
    reader = mount.cache.fill_while_reading(  # another reader filling 5 KiB of SSD's 6 KiB
        "t/sub/b.parquet", member, info, mount.members[member].open_read("t/sub/b.parquet"), tier="SSD")
    try:
        summary = cache_ops.prefetch(mount, "t/a.parquet", tier="SSD")
        assert (summary.loaded, summary.failed) == (0, 1)
        assert "tier 'SSD' is full: 5120 of 6144 bytes used by pinned or loading entries" in summary.failures[0]["error"]
        reader.read()  # the fill completes: its copy becomes evictable
    finally:
        reader.close()
    summary = cache_ops.prefetch(mount, "t/a.parquet", tier="SSD")
    assert (summary.loaded, summary.failed) == (1, 0)
    assert cached(mount) == {"t/a.parquet": ("SSD", False)}  # b's copy was evicted to make room


def test_prefetch_with_pin_over_quota_pins_and_loads_nothing(mount):
    with pytest.raises(CacheQuotaError, match=r"tier 'SSD' of mount 'lake'.*nothing was pinned"):
        cache_ops.prefetch(mount, "t/**/*.parquet", tier="SSD", pin=True)
    assert cached(mount) == {}
    tier = mount.cache.report().tier("SSD")
    assert (tier.used, tier.pinned_bytes) == (0, 0)


def test_prefetch_logs_files_bytes_rate_and_eta(mount, caplog):
    logger = logging.getLogger("test.prefetch")
    with caplog.at_level(logging.INFO, logger="test.prefetch"):
        summary = cache_ops.prefetch(mount, "t/**/*.parquet", concurrency=1, progress_interval=0, logger=logger)
    lines = [r.getMessage() for r in caplog.records if r.name == "test.prefetch"]
    assert lines[0] == "Prefetch into lake:MEM: 3 files, 15.0 KiB (concurrency 1)"
    progress = [re.fullmatch(r"Prefetch into lake:MEM: (\d)/3 files, ([\d.]+) KiB/15\.0 KiB, [\d.]+ [KMG]?i?B/s, "
                             r"ETA \d+:\d\d:\d\d", line) for line in lines[1:-1]]
    assert all(progress), lines
    # A line per finished file, then the last one. The bytes include the next file's when the worker (one,
    # two files ahead) has read it already, so they are at least the finished files'.
    assert [int(m[1]) for m in progress] == [1, 2, 3, 3], lines
    assert [float(m[2]) for m in progress][0] >= 3.0 and progress[-1][2] == "15.0"
    assert lines[-2].endswith(", ETA 0:00:00")
    assert lines[-1].startswith("Prefetch into lake:MEM: 3 files (15.0 KiB): 3 loaded (15.0 KiB), 0 already fresh")
    assert rate_of(lines[-2]) == rate_of(lines[-1]) == format_bytes(summary.throughput)  # one rate
    assert summary.transfer_elapsed <= summary.elapsed


@pytest.fixture
def gated_file(tiered_lake, mount, monkeypatch):
    """A 48 KiB file ``big/huge.parquet`` whose source streams 16 KiB, then waits until the test releases it."""
    root, _ = tiered_lake
    data = os.urandom(48 * KiB)
    (root / "cold" / "big").mkdir()
    (root / "cold" / "big" / "huge.parquet").write_bytes(data)
    streams: list[GatedStream] = []
    open_member = mount.open_member

    def gated(path, member, info, *args, **kwargs):
        if path != "big/huge.parquet":
            return open_member(path, member, info, *args, **kwargs)
        with open_member(path, member, info, *args, **kwargs) as raw:
            streams.append(GatedStream(raw.read(), chunk=16 * KiB))
        return streams[-1]

    monkeypatch.setattr(mount, "open_member", gated)
    return data, streams


def test_prefetch_of_a_slow_large_file_logs_progress_mid_file(mount, gated_file):
    data, streams = gated_file
    lines = Lines(logging.getLogger("test.prefetch.slow"))
    result: dict = {}

    def run() -> None:  # the source blocks the load until released, while the test reads the log
        result["summary"] = cache_ops.prefetch(mount, "big", progress_interval=0.01, logger=lines.logger)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        mid_file = lines.wait_for(r"^Prefetch into lake:MEM: 0/1 files, 16\.0 KiB/48\.0 KiB, ")  # on the timer
        assert re.search(r", [\d.]+ [KMG]?i?B/s, ETA \d+:\d\d:\d\d$", mid_file), mid_file
        assert streams[0].blocked.is_set()
    finally:
        for stream in streams:
            stream.release()
        worker.join(DEADLINE)
        lines.close()
    summary = result["summary"]
    assert (summary.loaded, summary.loaded_bytes) == (1, 48 * KiB) and copy_bytes(mount, "big/huge.parquet") == data
    last = [m for m in lines.messages if "1/1 files" in m][-1]
    assert last.startswith("Prefetch into lake:MEM: 1/1 files, 48.0 KiB/48.0 KiB, ")
    assert rate_of(last) == rate_of(lines.messages[-1]) == format_bytes(summary.throughput)
    assert not progress_threads()


def test_prefetch_stops_its_progress_timer_when_the_task_is_killed(mount, gated_file, monkeypatch):
    _, streams = gated_file

    def killed(self, size=-1):
        raise AirflowTaskTimeout("Timeout, PID: 1")  # a BaseException, as Airflow raises it in the task

    monkeypatch.setattr(GatedStream, "read", killed)
    with pytest.raises(AirflowTaskTimeout):
        cache_ops.prefetch(mount, "big", progress_interval=0.01)
    assert streams and not progress_threads()
    assert cached(mount) == {}


def test_prefetch_operator_declares_assets_and_templated_fields(tiered_lake):
    op = HybridPrefetchOperator(task_id="warm", mount_conn_id="lake",
                                paths=["/t/sub/*.parquet", "u/d.parquet", "t/sub/**"])
    assert op.outlets == [Asset("hybrid://lake/t/sub"), Asset("hybrid://lake/u/d.parquet")]
    assert set(op.template_fields) == {"mount_conn_id", "paths", "tier", "pin", "ttl"}
    templated = HybridPrefetchOperator(task_id="t", mount_conn_id="lake", paths="{{ params.glob }}", ttl="{{ x }}")
    assert templated.outlets == []  # unknown until rendered


def test_prefetch_operator_returns_a_summary_without_file_names(tiered_lake, mount):
    op = HybridPrefetchOperator(task_id="warm", mount_conn_id="lake", paths="/t/**/*.parquet", pin=True,
                                ttl="1h", concurrency=2)
    summary = op.execute({})
    assert {k: summary[k] for k in ("mount", "tier", "files", "loaded", "fresh", "busy", "failed", "pinned")} == {
        "mount": "lake", "tier": "MEM", "files": 3, "loaded": 3, "fresh": 0, "busy": 0, "failed": 0, "pinned": 3}
    assert summary["loaded_bytes"] == summary["bytes"] == summary["pinned_bytes"] == 15 * KiB
    assert not any(path in json.dumps(summary) for path in FILES)
    entries = {e.path: e for e in mount.cache.entries()}
    assert all(e.pinned and e.ttl == 3600 for e in entries.values())
    root, _ = tiered_lake
    inputs, outputs = op._lineage
    assert inputs == [f"file://{root}/hot/t", f"file://{root}/cold/t"]
    assert outputs == [f"file://{root}/tier-mem"]


def test_prefetch_operator_lineage_facets(tiered_lake):
    import airflow.providers.openlineage  # noqa: F401 - a dependency: missing is a failure, never a skip
    op = HybridPrefetchOperator(task_id="warm", mount_conn_id="lake", paths="u")
    op.execute({})
    lineage = op.get_openlineage_facets_on_complete(None)
    root, _ = tiered_lake
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", f"{root}/cold/u")]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", f"{root}/tier-mem")]


def test_prefetch_operator_fails_on_failed_files_unless_told_not_to(tiered_lake):
    op = HybridPrefetchOperator(task_id="warm", mount_conn_id="lake", paths="t/**/*.parquet", tier="SSD")
    with pytest.raises(AirflowException, match=r"1 of 3 files failed to load into lake:SSD \(2 loaded, 0 already "
                                               r"fresh\): t/sub/deep/c.parquet: CacheQuotaError"):
        op.execute({})
    lenient = HybridPrefetchOperator(task_id="warm2", mount_conn_id="lake", paths="t/**/*.parquet", tier="SSD",
                                     fail_on_error=False)
    summary = lenient.execute({})
    assert (summary["failed"], summary["loaded"] + summary["fresh"]) == (1, 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"paths": "t/*.orc"}, r"NoMatchError: glob 't/\*\.orc' matches no file in mount 'lake'"),
        ({"paths": "t/nope"}, r"'t/nope': no such file or directory in mount 'lake'"),
        ({"paths": "t", "tier": "NVME"}, r"unknown cache tier 'NVME' for mount 'lake'; configured tiers: MEM, SSD"),
        ({"paths": "t", "mount_conn_id": "nocache"}, r"mount 'nocache' has no cache: add a 'cache' section"),
        ({"paths": "t", "mount_conn_id": "badcache"}, r"CacheConfigError: cache.tiers\[0\].quota: negative quota"),
        ({"paths": "{{ params.p }}", "params": {"p": "../outside"}}, r"PathEscapeError: path '../outside' escapes"),
    ],
)
def test_prefetch_operator_bad_input_at_run_time(tiered_lake, kwargs, message):
    kwargs = {"mount_conn_id": "lake", **kwargs}
    op = HybridPrefetchOperator(task_id="warm", **kwargs)
    if "params" in kwargs:
        op.render_template_fields({"params": kwargs["params"]})
    with pytest.raises(AirflowException, match=message):
        op.execute({})


@pytest.mark.parametrize("native", [True, False])
def test_prefetch_operator_rendered_from_dag_params(tiered_lake, mount, native):
    """As dags/hybrid_cache_warming.py uses it: every option from a param, empty meaning the default."""
    from airflow.sdk import DAG

    params = {"mount": "lake", "paths": ["/u/*.parquet", "t/sub"], "tier": None, "pin": False, "ttl": None}
    with DAG("warm", schedule=None, render_template_as_native_obj=native) as dag:
        op = HybridPrefetchOperator(task_id="prefetch", mount_conn_id="{{ params.mount }}", paths="{{ params.paths }}",
                                    tier="{{ params.tier or '' }}", pin="{{ params.pin }}",
                                    ttl="{{ params.ttl or '' }}")
    op.render_template_fields({"params": params}, jinja_env=dag.get_template_env())
    if not native:
        with pytest.raises(AirflowException, match=r"paths rendered to the text of a list .*"
                                                   r"set render_template_as_native_obj=True on the DAG"):
            op.execute({})
        return
    summary = op.execute({})
    assert (summary["tier"], summary["files"], summary["loaded"], summary["pinned"]) == ("MEM", 3, 3, 0)
    assert all(not pinned for _, pinned in cached(mount).values())


def test_bad_input_fails_when_the_dag_is_parsed():
    with pytest.raises(PathEscapeError, match=r"'/t/../../etc' escapes its root"):
        HybridPrefetchOperator(task_id="warm", mount_conn_id="lake", paths="/t/../../etc")
    with pytest.raises(ValueError, match=r"ttl: negative duration"):
        HybridPrefetchOperator(task_id="warm", mount_conn_id="lake", paths="t", ttl="-5m")
    with pytest.raises(ValueError, match=r"pin: expected true or false, got 'maybe'"):
        HybridPrefetchOperator(task_id="warm", mount_conn_id="lake", paths="t", pin="maybe")
    with pytest.raises(ValueError, match=r"concurrency=0"):
        HybridPrefetchOperator(task_id="warm", mount_conn_id="lake", paths="t", concurrency=0)
    with pytest.raises(PathEscapeError):
        HybridFreeOperator(task_id="free", mount_conn_id="lake", paths=["ok", "../no"])


def test_pin_operator(tiered_lake, mount):
    with pytest.raises(AirflowException, match=r"CacheQuotaError: cannot pin 12288 more bytes in tier 'SSD' of "
                                               r"mount 'lake'.*over the tier's quota of 6144 bytes"):
        HybridPinOperator(task_id="pin", mount_conn_id="lake", paths="t/sub", tier="SSD").execute({})
    assert mount.cache.report().tier("SSD").pinned_bytes == 0 and list(mount.cache.catalog.iter_pinned_paths(
        "lake")) == []

    cache_ops.prefetch(mount, "t/sub/b.parquet", tier="SSD")  # cached copies are pinned where they are
    result = HybridPinOperator(task_id="pin", mount_conn_id="lake", paths=["t/sub", "u"]).execute({})
    assert result == {"mount": "lake", "tier": "MEM", "files": 3, "bytes": 14 * KiB, "pinned": 3,
                      "pinned_bytes": 14 * KiB}
    assert cached(mount) == {"t/sub/b.parquet": ("SSD", True)}
    report = mount.cache.report()
    assert report.tier("SSD").pinned_bytes == 5 * KiB
    # not yet loaded files hold their reservation in MEM; loading them keeps the pin
    cache_ops.prefetch(mount, ["t/sub/deep", "u"])
    assert cached(mount) == {"t/sub/b.parquet": ("SSD", True), "t/sub/deep/c.parquet": ("MEM", True),
                             "u/d.parquet": ("MEM", True)}
    assert mount.cache.evict(force=True).files == 0  # pinned copies survive pressure


def test_unpin_operator_matches_globs_against_the_catalog(tiered_lake, mount):
    root, _ = tiered_lake
    cache_ops.prefetch(mount, ["t/**/*.parquet", "u"], pin=True)
    (root / "cold" / "t" / "sub" / "deep" / "c.parquet").unlink()  # its pin must still be removable
    result = HybridUnpinOperator(task_id="unpin", mount_conn_id="lake", paths="t/sub/**/*.parquet").execute({})
    assert result == {"mount": "lake", "unpinned": 2}
    assert sorted(mount.cache.catalog.iter_pinned_paths("lake")) == ["t/a.parquet", "u/d.parquet"]
    assert HybridUnpinOperator(task_id="unpin", mount_conn_id="lake", paths="/").execute({})["unpinned"] == 2
    assert not any(pinned for _, pinned in cached(mount).values())


def test_free_operator_drops_copies_never_sources(tiered_lake, mount):
    root, data = tiered_lake
    cache_ops.prefetch(mount, ["t", "u"])
    cache_ops.pin(mount, "t/a.parquet")
    result = HybridFreeOperator(task_id="free", mount_conn_id="lake", paths=["t/*.parquet", "t/s*"]).execute({})
    assert result == {"mount": "lake", "files": 2, "bytes": 12 * KiB, "skipped_pinned": 1}
    assert set(cached(mount)) == {"t/a.parquet", "t/a.csv", "u/d.parquet"}
    forced = HybridFreeOperator(task_id="free", mount_conn_id="lake", paths="/", force=True).execute({})
    assert forced == {"mount": "lake", "files": 3, "bytes": 5 * KiB + 100, "skipped_pinned": 0}
    assert cached(mount) == {} and list(mount.cache.catalog.iter_pinned_paths("lake")) == []
    assert not list((root / "tier-mem").rglob("*.parquet"))
    for path, (member, _) in FILES.items():  # sources untouched
        assert (root / member / path).read_bytes() == data[path]


def test_report_operator_returns_the_json_summary_and_logs_the_text(tiered_lake, mount, capsys):
    cache_ops.prefetch(mount, "u", pin=True)
    with mount.open_read("u/d.parquet") as stream:
        stream.read()
    op = HybridCacheReportOperator(task_id="report", mount_conn_id="lake")
    report = op.execute({})
    assert (report["mount"], report["files"], report["used_bytes"], report["pinned_bytes"]) == (
        "lake", 1, 2 * KiB, 2 * KiB)
    mem = report["tiers"][0]
    assert (mem["alias"], mem["capacity_bytes"], mem["hits"], mem["hit_ratio"]) == ("MEM", 64 * KiB, 1, 1.0)
    assert mem["oldest_entry"]["path"] == "u/d.parquet"
    text = capsys.readouterr().out  # the task logger (structlog) writes to stdout outside a task runner
    assert "Hybrid cache summary for mount 'lake':" in text and "Hit Ratio: 100.0% (1 hits, 0 misses)" in text
