"""The cache report, and reading it without writing: a read-only catalog (SQLite ``mode=ro``)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from airflow_hybrid.cache import CacheConfig, CacheManager
from airflow_hybrid.cache.catalog import Catalog, create_catalog_engine
from airflow_hybrid.cache.exceptions import CacheCatalogError
from airflow_hybrid.cache.report import read_report
from airflow_hybrid.cache.schema import upgrade
from airflow_hybrid.stores.local import LocalStore


def _config(tmp_path) -> CacheConfig:
    tiers = [
        {"alias": "MEM", "uri": f"file://{tmp_path}/mem", "quota": 1000},
        {"alias": "SSD", "uri": f"file://{tmp_path}/ssd", "quota": 4000},
    ]
    return CacheConfig.from_options({"cache": {"tiers": tiers, "catalog_url": f"sqlite:///{tmp_path}/catalog.db"}}, "lake")


def _fill(tmp_path, config: CacheConfig) -> None:
    source = LocalStore(str(tmp_path / "src"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.bin").write_bytes(b"x" * 300)
    info = source.info("a.bin")
    manager = CacheManager("lake", config, catalog=Catalog(config.catalog_url), clock=lambda: 1000.0)
    manager.load("a.bin", "hdfs", info, lambda: source.open_read("a.bin"), tier="SSD", pin=True)
    manager.close()
    manager.catalog.dispose()


def _snapshot(path):
    return path.read_bytes(), path.stat().st_mtime_ns


def test_read_report_matches_the_managers_and_writes_nothing(tmp_path):
    config = _config(tmp_path)
    _fill(tmp_path, config)
    catalog_db = tmp_path / "catalog.db"
    before = _snapshot(catalog_db)

    report = read_report("lake", config, clock=lambda: 2000.0)

    assert _snapshot(catalog_db) == before
    assert [t.alias for t in report.tiers] == ["MEM", "SSD"]
    ssd = report.tier("SSD")
    assert (ssd.files, ssd.used, ssd.pinned_bytes, ssd.capacity) == (1, 300, 300, 4000)
    assert report.tier("MEM").files == 0
    manager = CacheManager("lake", config, catalog=Catalog(config.catalog_url), clock=lambda: 2000.0)
    try:
        assert manager.report().to_dict() == {**report.to_dict(), "catalog_url": manager.catalog.url}
    finally:
        manager.close()
        manager.catalog.dispose()


def test_read_report_of_a_catalog_not_created_yet_creates_nothing(tmp_path):
    report = read_report("lake", _config(tmp_path))
    assert [(t.alias, t.files, t.used) for t in report.tiers] == [("MEM", 0, 0), ("SSD", 0, 0)]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_read_only_catalog_refuses_every_write(tmp_path):
    config = _config(tmp_path)
    _fill(tmp_path, config)
    with Catalog(config.catalog_url, read_only=True) as catalog:
        assert catalog.get("lake", "a.bin").size == 300
        with pytest.raises(CacheCatalogError, match="open read-only"):
            catalog.sync_tiers("lake", config.tiers, 0.0)
        conn = catalog.engine.connect()
        with pytest.raises(sa.exc.OperationalError, match="readonly database"), conn, conn.begin():
            conn.exec_driver_sql("DELETE FROM hybrid_cache_entries")  # the database refuses too
    assert Catalog(config.catalog_url).get("lake", "a.bin").size == 300


def test_read_only_catalog_refuses_an_older_schema(tmp_path):
    url = f"sqlite:///{tmp_path}/catalog.db"
    engine = create_catalog_engine(url)
    with engine.connect() as conn:
        conn.execution_options(hybrid_begin="IMMEDIATE")
        with conn.begin():
            upgrade(conn, target=1)
    engine.dispose()
    with pytest.raises(CacheCatalogError, match="schema version 1, this code reads version"):
        Catalog(url, read_only=True)
