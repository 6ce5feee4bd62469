"""The "Hybrid lake" page: cache figures read from the catalog without writing, human values, bars, the
history chart, DAG run links and explained empty states (no Airflow database or API server needed)."""

from __future__ import annotations

import re

import pytest

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.cache.report import read_report
from airflow_hybrid.mount.options import parse_mount_options
from airflow_hybrid.plugins.figures import cache_figures
from airflow_hybrid.plugins.ui import render_page
from airflow_hybrid.plugins.view import (
    _nice_max,
    dag_run_href,
    history_chart,
    human_bytes,
    percent,
    ratio_text,
    share,
    tier_view,
)
from airflow_hybrid.stores.local import LocalStore

GiB = 1024**3


def _spec(tmp_path, quota="1MB"):
    (tmp_path / "data").mkdir(exist_ok=True)
    return parse_mount_options(
        "lake",
        {
            "members": {"local": {"uri": f"file://{tmp_path / 'data'}"}},
            "cache": {
                "tiers": [{"alias": "SSD", "uri": f"file://{tmp_path / 'tier'}", "quota": quota}],
                "catalog_url": f"sqlite:///{tmp_path / 'catalog.db'}",
            },
        },
    )


def _load(tmp_path, spec, files: dict[str, bytes], pin: tuple[str, ...] = ()) -> None:
    source = LocalStore(str(tmp_path / "data"))
    config = CacheConfig.from_options(spec.settings, "lake")
    with Catalog(config.catalog_url) as catalog:
        cache = CacheManager("lake", config, catalog=catalog)
        for name, data in files.items():
            (tmp_path / "data" / name).write_bytes(data)
            cache.load(name, "local", source.info(name), lambda n=name: source.open_read(n), pin=name in pin)
        cache.close()


def _tier(**over):
    tier = {"alias": "SSD", "uri": "file:///c", "capacity_bytes": 4 * GiB, "used_bytes": GiB, "free_bytes": 3 * GiB,
            "pinned_bytes": GiB // 4, "files": 3, "loading": 0, "hits": 2, "misses": 1, "hit_ratio": 2 / 3,
            "high_watermark": 0.95, "low_watermark": 0.7, "oldest_entry": None}
    tier.update(over)
    return tier


# -- values ---------------------------------------------------------------------------------------------------
def test_human_values():
    assert human_bytes(1073741824) == "1.0 GiB"
    assert human_bytes(512) == "512 B"
    assert human_bytes(None) == "-"
    assert ratio_text(0.9766536964980544) == "97.7%"
    assert ratio_text(None) == "no reads yet"
    assert percent(1, 3) == "33.3%" and percent(5, 0) == "-" and percent(None, 10) == "-"
    assert share(1, 4) == 25.0 and share(7, 0) == 0.0 and share(9, 4) == 100.0  # clipped to the bar
    assert dag_run_href("", "hybrid_migrate_orders", "manual__2026-12-02T18:30:00+00:00") == (
        "/dags/hybrid_migrate_orders/runs/manual__2026-12-02T18%3A30%3A00%2B00%3A00")


def test_a_tier_bar_is_pinned_then_used_then_free_and_adds_up_to_100():
    view = tier_view(_tier())
    assert (view["bar_pinned"], view["bar_used"], view["bar_free"]) == (6.2, 18.8, 75.0)
    assert view["bar_pinned"] + view["bar_used"] + view["bar_free"] == pytest.approx(100.0)
    assert (view["used"], view["used_pct"], view["pinned"], view["free"]) == ("1.0 GiB", "25.0%", "256.0 MiB", "3.0 GiB")
    assert view["hit_ratio"] == "66.7%" and view["files"] == "3 files"
    assert view["watermarks"] == "evicts above 95% down to 70%" and not view["over_high_watermark"]
    full = tier_view(_tier(used_bytes=4 * GiB, free_bytes=0, pinned_bytes=0))
    assert (full["bar_used"], full["bar_free"], full["over_high_watermark"]) == (100.0, 0.0, True)
    empty = tier_view(_tier(capacity_bytes=0, used_bytes=0, free_bytes=0, pinned_bytes=0, hit_ratio=None))
    assert (empty["used_pct"], empty["bar_free"], empty["hit_ratio"]) == ("-", 100.0, "no reads yet")


def test_the_history_chart_scales_to_a_round_top_and_draws_pending_and_moved_per_plan():
    history = [
        {"plan_id": "p1", "at": "2026-12-01T10:00:00+00:00", "pending_files": 10, "pending_bytes": 300 * 1024**2,
         "moved_files": 10, "moved_bytes": 300 * 1024**2, "failed_files": 0, "runs": 2, "state": "success",
         "dag_runs": []},
        {"plan_id": "p2", "at": "2026-12-02T10:00:00+00:00", "pending_files": 4, "pending_bytes": 150 * 1024**2,
         "moved_files": 0, "moved_bytes": 0, "failed_files": 0, "runs": 1, "state": "running", "dag_runs": []},
    ]
    chart = history_chart(history)
    assert [tick[1] for tick in chart.ticks] == ["0 B", "125.0 MiB", "250.0 MiB", "375.0 MiB", "500.0 MiB"]
    pending1, moved1, pending2, moved2 = chart.bars
    assert [b.kind for b in chart.bars] == ["pending", "moved", "pending", "moved"]
    assert pending1.height == moved1.height == pytest.approx(2 * pending2.height, abs=0.2) and moved2.height == 0
    assert pending1.title == "2026-12-01 10:00:00 UTC: 10 files, 300.0 MiB pending at plan time"
    assert history_chart([]) is None
    assert _nice_max(3 * GiB) == 5 * GiB and _nice_max(700) == 1000 and _nice_max(0) == 1.0


# -- the catalog ----------------------------------------------------------------------------------------------
def test_cache_figures_of_a_new_mount_create_no_catalog_and_no_tier(tmp_path):
    figures = cache_figures("lake", _spec(tmp_path).settings)
    assert [(t["alias"], t["files"]) for t in figures["tiers"]] == [("SSD", 0)]
    assert (figures["largest"], figures["pinned"]) == ([], [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_cache_figures_are_the_catalogs_report_and_leave_the_catalog_as_it_was(tmp_path):
    spec = _spec(tmp_path)
    _load(tmp_path, spec, {"a.bin": b"abc", "big.bin": b"x" * 1000, "p.bin": b"pp"}, pin=("p.bin",))
    catalog_db = tmp_path / "catalog.db"
    before = (catalog_db.read_bytes(), catalog_db.stat().st_mtime_ns)

    figures = cache_figures("lake", spec.settings)

    report = read_report("lake", CacheConfig.from_options(spec.settings, "lake")).to_dict()
    assert figures["tiers"] == report["tiers"]
    (tier,) = figures["tiers"]
    assert (tier["files"], tier["used_bytes"], tier["pinned_bytes"]) == (3, 1005, 2)
    assert [(e["path"], e["size"]) for e in figures["largest"]] == [("big.bin", 1000), ("a.bin", 3), ("p.bin", 2)]
    assert [(e["path"], e["pinned"]) for e in figures["pinned"]] == [("p.bin", True)]
    assert (catalog_db.read_bytes(), catalog_db.stat().st_mtime_ns) == before


# -- the page -------------------------------------------------------------------------------------------------
def _mount(conn_id="lake", cache=None, error=None):
    return {"conn_id": conn_id, "members": [
        {"name": "hdfs", "uri": "hdfs://nn/data", "scheme": "hdfs", "read_rank": 2, "create": False},
        {"name": "s3", "uri": "s3://bucket/data", "scheme": "s3", "read_rank": 1, "create": True}],
        "read_order": ["s3", "hdfs"], "create_members": ["s3"], "cache": cache, "error": error}


def _cache(tiers, largest=(), pinned=()):
    return {"catalog_url": "sqlite:///c.db", "generated_at": "2026-12-02T18:00:00+00:00",
            "capacity_bytes": sum(t["capacity_bytes"] for t in tiers), "used_bytes": sum(t["used_bytes"] for t in tiers),
            "files": sum(t["files"] for t in tiers), "tiers": tiers, "largest": list(largest), "pinned": list(pinned),
            "leases": []}


def _policy(**over):
    row = {"name": "orders", "dag_id": "hybrid_migrate_orders", "mount": "lake", "path": "/orders",
           "policy": "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)", "pending_files": None,
           "pending_bytes": None, "pending_source": None, "pending_as_of": None, "moved_files": 0, "moved_bytes": 0,
           "failed_files": 0, "failures": [], "in_progress_files": 0, "last_run": None, "runs": [], "history": []}
    row.update(over)
    return row


def _raw_values(page: str) -> list[str]:
    """Texts a person reads (tags and attributes removed) that are raw Python values."""
    text = re.sub(r"<style>.*?</style>|<[^>]+>", " ", page, flags=re.S)
    return re.findall(r"\bNone\b|\{'|\b\d{7,}\b|\b0\.\d{4,}\b|\bTrue\b|\bFalse\b", text)


def test_the_page_explains_what_is_empty():
    page = render_page([], [])
    assert 'data-testid="no-mounts"' in page and "airflow hybrid devstack up" in page
    assert 'data-testid="no-policies"' in page and "hybrid_policies.yaml" in page

    page = render_page([_mount("plain"), _mount("cold", cache=_cache([_tier(used_bytes=0, pinned_bytes=0, files=0,
                                                                             free_bytes=4 * GiB, hits=0, misses=0,
                                                                             hit_ratio=None)]))],
                       [_policy()])
    assert 'data-testid="no-cache-plain"' in page and "No cache." in page
    assert 'data-testid="cache-empty-cold"' in page and "Nothing cached yet." in page
    assert "no reads yet" in page
    assert 'data-testid="no-runs-orders"' in page and 'href="/dags/hybrid_migrate_orders"' in page
    assert "unknown until the first plan" in page
    assert _raw_values(page) == []


def test_the_page_shows_tiers_entries_runs_and_the_chart_in_human_values():
    tier = _tier(used_bytes=1073741824, hit_ratio=0.9766536964980544)
    entry = {"path": "store_sales/part-0.parquet", "tier": "SSD", "size": 734003200, "hits": 1, "pinned": True,
             "created_at": 1764698400.0}
    run = {"id": 3, "state": "success", "plan_id": "p-1", "batch": 0, "engine": "local", "files": 3, "moved": 2,
           "skipped": 1, "kept": 0, "failed": 0, "bytes": 2048, "migrated_bytes": 3 * 1024**2, "plan_files": 3,
           "plan_bytes": 3 * 1024**2, "dag_id": "hybrid_migrate_orders",
           "dag_run_id": "scheduled__2026-12-02T00:00:00+00:00", "message": None,
           "started_at": "2026-12-02T18:30:00+00:00", "finished_at": "2026-12-02T18:31:05+00:00",
           "plan_created_at": "2026-12-02T18:29:00+00:00"}
    point = {"plan_id": "p-1", "at": "2026-12-02T18:29:00+00:00", "pending_files": 3, "pending_bytes": 3 * 1024**2,
             "moved_files": 3, "moved_bytes": 3 * 1024**2, "failed_files": 0, "runs": 1, "state": "success",
             "dag_runs": [["hybrid_migrate_orders", run["dag_run_id"]]]}
    policy = _policy(pending_files=0, pending_bytes=0, pending_source="plan", pending_as_of=point["at"],
                     moved_files=3, moved_bytes=3 * 1024**2, runs=[run], last_run=run, history=[point],
                     failed_files=1, failures=[{"path": "orders/x.bin", "status": "kept", "reason": "source changed"}])
    page = render_page([_mount(cache=_cache([tier], [entry], [entry]))], [policy], root="/airflow")

    assert re.search(r'data-testid="tier-usage-lake-SSD"\s+data-used-bytes="1073741824"', page)
    assert "1.0 GiB of 4.0 GiB used (25.0%)" in page
    assert 'style="width: 6.2%"' in page and 'style="width: 18.8%"' in page and 'style="width: 75.0%"' in page
    assert "97.7%" in page and 'data-hit-ratio="0.9766536964980544"' in page
    assert "700.0 MiB" in page and 'data-testid="largest-lake"' in page and 'data-testid="pinned-lake"' in page
    assert 'href="/airflow/dags/hybrid_migrate_orders/runs/scheduled__2026-12-02T00%3A00%3A00%2B00%3A00"' in page
    assert "3 files, 3.0 MiB" in page  # moved by the run (2 moved + 1 already there)
    assert "0 files, 0 B (as of the plan of 2026-12-02 18:29:00 UTC)" in page
    assert 'data-testid="policy-chart-orders"' in page and page.count('data-kind="moved"') == 1
    assert "policy orders: 1 file kept or failed" in page  # the mount's errors name its policies' failures
    assert "source changed" in page
    assert _raw_values(page) == []


def test_the_page_escapes_what_it_shows():
    page = render_page([_mount("<lake>", error="bad & worse")], [_policy(name="p<1>", mount="<lake>")])
    assert "&lt;lake&gt;" in page and "bad &amp; worse" in page and "p&lt;1&gt;" in page
    assert "<lake>" not in page
