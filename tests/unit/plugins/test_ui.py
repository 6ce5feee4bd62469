"""The "Hybrid lake" page's cache report reads the catalog without writing (no Airflow database needed)."""

from __future__ import annotations

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.cache.catalog import Catalog
from airflow_hybrid.mount.options import parse_mount_options
from airflow_hybrid.plugins.ui import cache_report, render_page
from airflow_hybrid.stores.local import LocalStore


def _spec(tmp_path):
    (tmp_path / "data").mkdir(exist_ok=True)
    return parse_mount_options(
        "lake",
        {
            "members": {"local": {"uri": f"file://{tmp_path / 'data'}"}},
            "cache": {
                "tiers": [{"alias": "SSD", "uri": f"file://{tmp_path / 'tier'}", "quota": "1MB"}],
                "catalog_url": f"sqlite:///{tmp_path / 'catalog.db'}",
            },
        },
    )


def test_cache_report_of_a_new_mount_creates_no_catalog_and_no_tier(tmp_path):
    report = cache_report(_spec(tmp_path))
    assert [(t["alias"], t["files"]) for t in report["tiers"]] == [("SSD", 0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_cache_report_leaves_the_catalog_file_as_it_was(tmp_path):
    spec = _spec(tmp_path)
    (tmp_path / "data" / "a.bin").write_bytes(b"abc")
    source = LocalStore(str(tmp_path / "data"))
    config = CacheConfig.from_options(spec.settings, "lake")
    with Catalog(config.catalog_url) as catalog:
        cache = CacheManager("lake", config, catalog=catalog)
        cache.load("a.bin", "local", source.info("a.bin"), lambda: source.open_read("a.bin"))
        cache.close()
    catalog_db = tmp_path / "catalog.db"
    before = (catalog_db.read_bytes(), catalog_db.stat().st_mtime_ns)

    (tier,) = cache_report(spec)["tiers"]

    assert (tier["files"], tier["used_bytes"]) == (1, 3)
    assert (catalog_db.read_bytes(), catalog_db.stat().st_mtime_ns) == before


def test_page_escapes_what_it_shows():
    page = render_page([{"conn_id": "<lake>", "error": "bad & worse"}], [{"name": "p<1>"}])
    assert "&lt;lake&gt;" in page and "bad &amp; worse" in page and "p&lt;1&gt;" in page
    assert "<lake>" not in page
