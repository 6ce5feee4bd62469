"""The "Hybrid lake" UI page and its JSON endpoints, served by FastAPI's test client over a real metadata DB."""

from __future__ import annotations

import json

import pytest

from tests.mounts import local_mount_extra


@pytest.fixture
def mount_in_db(airflow_db, tmp_path):
    from airflow_hybrid.cli.commands import write_connections

    (tmp_path / "hdfs" / "t").mkdir(parents=True)
    (tmp_path / "hdfs" / "t" / "a.bin").write_bytes(b"12345")
    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3", {"SSD": "1MB"})
    broken = {"members": {"a": {"uri": "gs://nope"}}}
    write_connections(
        {
            "ui_lake": {"conn_type": "hybrid_mount", "extra": extra},
            "ui_broken": {"conn_type": "hybrid_mount", "extra": broken},
        }
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(
        json.dumps(
            {"policies": [{"name": "ui_policy", "mount": "ui_lake", "path": "/t", "schedule": None,
                           "policy": "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"}]}
        )
    )
    import os

    os.environ["AIRFLOW_VAR_HYBRID_POLICIES_FILE"] = str(policies)
    yield
    del os.environ["AIRFLOW_VAR_HYBRID_POLICIES_FILE"]


def test_page_and_endpoints_show_mounts_cache_and_policies(mount_in_db, monkeypatch):
    # what the API server process sets: connections are read from the metadata database
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")
    from fastapi.testclient import TestClient

    from airflow_hybrid.plugins.ui import create_app

    client = TestClient(create_app())
    mounts = {m["conn_id"]: m for m in client.get("/api/mounts").json()}
    assert "error" not in mounts["ui_lake"], mounts["ui_lake"]
    assert mounts["ui_lake"]["priority.read"] == ["s3", "hdfs"]
    assert mounts["ui_lake"]["cache"]["tiers"][0]["alias"] == "SSD"
    assert "unsupported scheme 'gs'" in mounts["ui_broken"]["error"]  # one bad connection never breaks the page

    policies = client.get("/api/policies").json()
    (row,) = [r for r in policies if r["name"] == "ui_policy"]
    assert row["mount"] == "ui_lake"

    page = client.get("/")
    assert page.status_code == 200
    assert "Hybrid lake" in page.text and "ui_lake" in page.text and "ui_policy" in page.text


def test_plugin_registers_page_and_macros():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "plugins" / "hybrid_plugin.py"
    spec = importlib.util.spec_from_file_location("hybrid_plugin", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plugin = module.HybridLakePlugin
    assert plugin.name == "hybrid"
    assert {m.__name__ for m in plugin.macros} == {"uri", "locations"}
    assert plugin.fastapi_apps[0]["url_prefix"] == "/hybrid"
    assert plugin.external_views[0]["href"] == "/hybrid/"


def test_a_get_writes_nothing_and_leaves_no_catalog_open(mount_in_db, tmp_path, monkeypatch):
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")
    from fastapi.testclient import TestClient

    from airflow_hybrid.cache import CacheConfig, CacheManager
    from airflow_hybrid.cache.catalog import Catalog
    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook
    from airflow_hybrid.plugins.ui import create_app
    from airflow_hybrid.stores.local import LocalStore

    client = TestClient(create_app())
    catalog_db = tmp_path / "catalog.db"
    (tier,) = {m["conn_id"]: m for m in client.get("/api/mounts").json()}["ui_lake"]["cache"]["tiers"]
    assert (tier["alias"], tier["files"], tier["used_bytes"]) == ("SSD", 0, 0)
    assert not catalog_db.exists()  # a GET neither creates the catalog nor its schema

    spec = HybridMountHook("ui_lake").spec
    config = CacheConfig.from_options(spec.settings, "ui_lake")
    source = LocalStore(str(tmp_path / "hdfs"))
    with Catalog(config.catalog_url) as catalog:
        cache = CacheManager("ui_lake", config, catalog=catalog)
        cache.load("t/a.bin", "hdfs", source.info("t/a.bin"), lambda: source.open_read("t/a.bin"))
        cache.close()
    before = (catalog_db.read_bytes(), catalog_db.stat().st_mtime_ns)

    opened, disposed = [], []
    real_init, real_dispose = Catalog.__init__, Catalog.dispose

    def counting_init(self, *args, **kwargs):
        opened.append(self)
        real_init(self, *args, **kwargs)

    def counting_dispose(self):
        disposed.append(self)
        real_dispose(self)

    def no_manager(*args, **kwargs):
        raise AssertionError("the page must not build a cache manager")

    monkeypatch.setattr(Catalog, "__init__", counting_init)
    monkeypatch.setattr(Catalog, "dispose", counting_dispose)
    monkeypatch.setattr(CacheManager, "__init__", no_manager)
    (tier,) = {m["conn_id"]: m for m in client.get("/api/mounts").json()}["ui_lake"]["cache"]["tiers"]
    assert (tier["files"], tier["used_bytes"]) == (1, 5)
    assert client.get("/").status_code == 200

    assert (catalog_db.read_bytes(), catalog_db.stat().st_mtime_ns) == before
    assert len(opened) == 2 and all(c.read_only for c in opened)
    assert disposed == opened  # every catalog a GET opened is closed
