"""The "Hybrid lake" page and its JSON endpoints over a real metadata DB (FastAPI's test client; the access
control on a running API server is tested in ``test_ui_auth.py``): the figures are the catalog's report and
the migration state's history, a GET writes nothing and lists no store, and the plugin is registered by the
installed package."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.mounts import local_mount_extra
from tests.ui_client import ui_client

MiB = 1024**2


@pytest.fixture
def mount_in_db(airflow_db, tmp_path, monkeypatch):
    from airflow_hybrid.cli.commands import write_connections

    (tmp_path / "hdfs" / "t").mkdir(parents=True)
    (tmp_path / "s3").mkdir()
    (tmp_path / "hdfs" / "t" / "a.bin").write_bytes(b"12345")
    (tmp_path / "hdfs" / "t" / "big.bin").write_bytes(b"x" * 3000)
    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3", {"SSD": "1MB"})
    write_connections(
        {
            "ui_lake": {"conn_type": "hybrid_mount", "extra": extra},
            "ui_broken": {"conn_type": "hybrid_mount", "extra": {"members": {"a": {"uri": "gs://nope"}}}},
            "ui_plain": {"conn_type": "hybrid_mount",
                         "extra": local_mount_extra(tmp_path, "s3,hdfs", "s3")},
        }
    )
    policies = tmp_path / "policies.yaml"
    policies.write_text(json.dumps({"policies": [
        {"name": "ui_policy", "mount": "ui_lake", "path": "/t", "schedule": None,
         "policy": "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"},
        {"name": "ui_idle", "mount": "ui_plain", "path": "/t", "schedule": None,
         "policy": "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"},
    ]}))
    monkeypatch.setenv("AIRFLOW_VAR_HYBRID_POLICIES_FILE", str(policies))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))  # the default migration state of ui_plain
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")  # what the API server sets: connections from the db
    return tmp_path


def _cache(tmp_path, pin=("t/a.bin",)):
    """Load both files into ui_lake's cache (a.bin pinned), as a task reading through the mount would."""
    from airflow_hybrid.cache import CacheConfig, CacheManager
    from airflow_hybrid.cache.catalog import Catalog
    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook
    from airflow_hybrid.stores.local import LocalStore

    spec = HybridMountHook("ui_lake").spec
    config = CacheConfig.from_options(spec.settings, "ui_lake")
    source = LocalStore(str(tmp_path / "hdfs"))
    with Catalog(config.catalog_url) as catalog:
        cache = CacheManager("ui_lake", config, catalog=catalog)
        for path in ("t/a.bin", "t/big.bin"):
            cache.load(path, "hdfs", source.info(path), lambda p=path: source.open_read(p), pin=path in pin)
        cache.close()
    return config


def _record_runs(tmp_path):
    """Two plans of ui_policy as UfsMigrateOperator records them: the first moved everything, the second
    failed on one file."""
    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook
    from airflow_hybrid.migration.migrator import MigrationSummary
    from airflow_hybrid.migration.state import MigrationState

    with HybridMountHook("ui_lake").get_mount() as mount:
        state = MigrationState.for_mount(mount)
    first = state.start_run("ui_policy", "ui_lake", "/t", plan_id="p-1", batch=0, engine="local", plan_files=4,
                            plan_bytes=8 * MiB, plan_created_at="2026-12-01T10:00:00+00:00",
                            dag_id="hybrid_migrate_ui_policy", dag_run_id="scheduled__2026-12-01T00:00:00+00:00")
    state.finish_run(first, MigrationSummary(files=4, moved=4, bytes=8 * MiB, migrated_bytes=8 * MiB),
                     state="success")
    second = state.start_run("ui_policy", "ui_lake", "/t", plan_id="p-2", batch=0, engine="local", plan_files=2,
                             plan_bytes=3 * MiB, plan_created_at="2026-12-02T10:00:00+00:00",
                             dag_id="hybrid_migrate_ui_policy", dag_run_id="manual__2026-12-02T10:00:00+00:00")
    state.finish_run(second, MigrationSummary(files=2, moved=1, failed=1, bytes=MiB, migrated_bytes=MiB),
                     state="failed", message="t/big.bin: a different object is there")


def _no_store_listing(monkeypatch):
    """Every member store refuses to list or stat, and no mount (with its stores) may be built."""
    from airflow_hybrid.mount.union import HybridMount
    from airflow_hybrid.stores.local import LocalStore

    def refuse(*args, **kwargs):
        raise AssertionError("the page must not list or stat a store")

    monkeypatch.setattr(LocalStore, "list", refuse)
    monkeypatch.setattr(LocalStore, "info", refuse)
    monkeypatch.setattr(HybridMount, "__init__", refuse)


def test_page_and_endpoints_show_mounts_members_errors_and_empty_states(mount_in_db):
    client = ui_client()
    mounts = {m["conn_id"]: m for m in client.get("/api/mounts").json()}
    assert mounts["ui_lake"]["error"] is None, mounts["ui_lake"]
    assert mounts["ui_lake"]["read_order"] == ["s3", "hdfs"]
    assert [(m["name"], m["read_rank"], m["create"]) for m in mounts["ui_lake"]["members"]] == [
        ("s3", 1, True), ("hdfs", 2, False)]
    assert mounts["ui_lake"]["cache"]["tiers"][0]["alias"] == "SSD"
    assert mounts["ui_plain"]["cache"] is None
    assert "unsupported scheme 'gs'" in mounts["ui_broken"]["error"]  # one bad connection never breaks the page

    rows = {r["name"]: r for r in client.get("/api/policies").json()}
    assert rows["ui_policy"]["mount"] == "ui_lake" and rows["ui_policy"]["runs"] == []

    page = client.get("/")
    assert page.status_code == 200
    assert 'data-testid="mount-ui_lake"' in page.text and 'data-testid="member-ui_lake-hdfs"' in page.text
    assert 'data-testid="cache-empty-ui_lake"' in page.text  # a cache, nothing in it yet
    assert 'data-testid="no-cache-ui_plain"' in page.text
    assert 'data-testid="mount-errors-ui_broken"' in page.text and "unsupported scheme" in page.text
    assert 'data-testid="no-runs-ui_idle"' in page.text


def test_the_figures_are_the_catalogs_report_and_the_states_history_without_listing_a_store(
    mount_in_db, monkeypatch
):
    from airflow_hybrid.cache.report import read_report

    config = _cache(mount_in_db)
    _record_runs(mount_in_db)
    report = read_report("ui_lake", config).to_dict()
    _no_store_listing(monkeypatch)
    client = ui_client()

    lake = {m["conn_id"]: m for m in client.get("/api/mounts").json()}["ui_lake"]
    assert lake["error"] is None, lake
    assert lake["cache"]["tiers"] == report["tiers"]
    (tier,) = report["tiers"]
    assert (tier["files"], tier["used_bytes"], tier["pinned_bytes"]) == (2, 3005, 5)
    assert [e["path"] for e in lake["cache"]["largest"]] == ["t/big.bin", "t/a.bin"]
    assert [e["path"] for e in lake["cache"]["pinned"]] == ["t/a.bin"]

    row = {r["name"]: r for r in client.get("/api/policies").json()}["ui_policy"]
    assert "error" not in row, row
    # pending as of the last plan: it selected 2 files (3 MiB), its run migrated 1 (1 MiB)
    assert (row["pending_source"], row["pending_files"], row["pending_bytes"]) == ("plan", 1, 2 * MiB)
    assert [(p["plan_id"], p["pending_bytes"], p["moved_bytes"]) for p in row["history"]] == [
        ("p-1", 8 * MiB, 8 * MiB), ("p-2", 3 * MiB, MiB)]
    assert row["last_run"]["dag_run_id"] == "manual__2026-12-02T10:00:00+00:00"

    page = client.get("/").text
    usage = re.search(r'data-testid="tier-usage-ui_lake-SSD"\s+data-used-bytes="(\d+)"\s+data-pinned-bytes="(\d+)"'
                      r'\s+data-free-bytes="(\d+)"\s+data-capacity-bytes="(\d+)"', page)
    assert tuple(map(int, usage.groups())) == (
        tier["used_bytes"], tier["pinned_bytes"], tier["free_bytes"], tier["capacity_bytes"])
    assert "2.9 KiB of 1.0 MiB used (0.3%)" in page
    assert ('href="/dags/hybrid_migrate_ui_policy/runs/manual__2026-12-02T10%3A00%3A00%2B00%3A00"' in page)
    assert 'data-testid="policy-chart-ui_policy"' in page and page.count('data-kind="pending"') == 2
    assert "1 file, 2.0 MiB (as of the plan of 2026-12-02 10:00:00 UTC)" in page
    assert "t/big.bin: a different object is there" in page


def test_a_user_sees_only_the_mounts_and_policies_they_may_read(mount_in_db):
    def allow(kind, name):
        return name in (None, "ui_lake", "ui_plain") if kind == "connection" else name != "hybrid_migrate_ui_idle"

    client = ui_client(allow)
    assert sorted(m["conn_id"] for m in client.get("/api/mounts").json()) == ["ui_lake", "ui_plain"]
    assert [r["name"] for r in client.get("/api/policies").json()] == ["ui_policy"]
    assert "ui_broken" not in client.get("/").text


def test_a_get_writes_nothing_and_leaves_no_catalog_open(mount_in_db, monkeypatch):
    from airflow_hybrid.cache import CacheManager
    from airflow_hybrid.cache.catalog import Catalog

    client = ui_client()
    catalog_db = mount_in_db / "catalog.db"
    (tier,) = {m["conn_id"]: m for m in client.get("/api/mounts").json()}["ui_lake"]["cache"]["tiers"]
    assert (tier["files"], tier["used_bytes"]) == (0, 0)
    assert client.get("/").status_code == 200
    assert client.get("/api/policies").status_code == 200
    assert not catalog_db.exists()  # a GET neither creates the catalog (nor the migration state in it)
    assert not (mount_in_db / "home" / "hybrid" / "migration.db").exists()  # nor the default migration state

    _cache(mount_in_db)
    _record_runs(mount_in_db)
    state_db = mount_in_db / "home" / "hybrid" / "migration.db"
    assert state_db.exists()  # where the runs were recorded (the path checked above)
    before = (catalog_db.read_bytes(), catalog_db.stat().st_mtime_ns)
    state_before = state_db.read_bytes()
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
    assert (tier["files"], tier["used_bytes"]) == (2, 3005)
    assert client.get("/").status_code == 200
    assert client.get("/api/policies").status_code == 200

    assert (catalog_db.read_bytes(), catalog_db.stat().st_mtime_ns) == before
    assert state_db.read_bytes() == state_before
    assert len(opened) == 2 and all(c.read_only for c in opened)  # one per GET showing ui_lake's cache
    assert disposed == opened  # every catalog a GET opened is closed


def test_the_installed_package_registers_the_plugin_and_a_task_process_does_not_load_the_page(tmp_path):
    """In a fresh interpreter (as any Airflow process loads plugins): the entry point gives the plugin, the
    provider info declares it, and loading it imports neither the page nor the API server's security."""
    script = """
import json, sys
from airflow import plugins_manager
from airflow_hybrid.get_provider_info import get_provider_info
plugins, errors = plugins_manager._get_plugins()
(plugin,) = [p for p in plugins if p.name == "hybrid"]
print(json.dumps({
    "class": f"{type(plugin).__module__}.{type(plugin).__qualname__}" if not isinstance(plugin, type)
    else f"{plugin.__module__}.{plugin.__qualname__}",
    "provider": get_provider_info()["plugins"], "errors": errors,
    "prefix": plugin.fastapi_apps[0]["url_prefix"], "view": plugin.external_views[0],
    "macros": sorted(m.__name__ for m in plugin.macros),
    "loaded": sorted(m for m in ("airflow_hybrid.plugins.ui", "airflow.api_fastapi.core_api.security")
                     if m in sys.modules),
}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__PLUGINS_FOLDER=str(tmp_path / "plugins"))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["class"] == "airflow_hybrid.plugins.plugin.HybridLakePlugin"
    assert found["provider"] == [{"name": "hybrid", "plugin-class": "airflow_hybrid.plugins.plugin.HybridLakePlugin"}]
    assert found["errors"] == {}
    assert found["prefix"] == "/hybrid" and found["macros"] == ["locations", "uri"]
    assert found["view"] == {"name": "Hybrid lake", "href": "/hybrid/", "destination": "nav", "category": "browse",
                             "url_route": "hybrid-lake"}
    assert found["loaded"] == []
