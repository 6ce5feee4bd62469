"""The "Hybrid lake" page on a real API server (``AirflowDeployment``) with the simple auth manager and real
users (not all admins): no data without a valid token (401), none for a role that may not read connections
(403: the viewer), the page and its JSON for those that may (admin, op), by the ``Authorization: Bearer`` JWT
or the ``_token`` cookie the UI sets. The plugin comes from the installed package (no plugins folder), and
the figures the server shows for a mount are its catalog's report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest

from tests.airflow_deployment import AirflowDeployment
from tests.mounts import local_mount_extra

ROUTES = ("/hybrid/", "/hybrid/api/mounts", "/hybrid/api/policies")
USERS = {"admin": "admin", "op": "op", "viewer": "viewer"}  # name -> role
PASSWORDS = {"admin": "admin-pass-1", "op": "op-pass-2", "viewer": "viewer-pass-3"}

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def lake_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("auth-lake")
    (root / "hdfs" / "t").mkdir(parents=True)
    (root / "s3").mkdir()
    (root / "hdfs" / "t" / "a.bin").write_bytes(b"a" * 100)
    (root / "hdfs" / "t" / "b.bin").write_bytes(b"b" * 2000)
    return root


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, lake_dir):
    home = tmp_path_factory.mktemp("auth-home")
    dags = tmp_path_factory.mktemp("auth-dags")
    passwords = home / "passwords.json"
    passwords.write_text(json.dumps(PASSWORDS))
    env = {
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:{role}" for name, role in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "no-plugins"),  # the plugin must come from the package
        "AIRFLOW_VAR_HYBRID_POLICIES_FILE": str(lake_dir / "policies.yaml"),
    }
    (lake_dir / "policies.yaml").write_text(json.dumps({"policies": [
        {"name": "auth_policy", "mount": "auth_lake", "path": "/t", "schedule": None,
         "policy": "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"}]}))
    with AirflowDeployment(home, {"auth-dags": dags}, env=env, components=("api-server",)) as deployment:
        yield deployment


def _token(airflow: AirflowDeployment, user: str) -> str:
    response = httpx.post(f"{airflow.api_url}/auth/token", json={"username": user, "password": PASSWORDS[user]},
                          timeout=30)
    assert response.status_code == 201, response.text
    return response.json()["access_token"]


def _get(airflow: AirflowDeployment, route: str, token: str | None = None, headers: dict | None = None,
         **kwargs) -> httpx.Response:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.get(f"{airflow.api_url}{route}", headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="module")
def admin(airflow) -> str:
    return _token(airflow, "admin")


def test_no_token_no_data(airflow):
    for route in ROUTES:
        response = _get(airflow, route)
        assert response.status_code == 401, (route, response.text)
        assert "auth_lake" not in response.text and "members" not in response.text
    # a browser without a session is sent to Airflow's login, to come back to the page after it
    response = _get(airflow, "/hybrid/", headers={"Accept": "text/html,application/xhtml+xml"})
    assert response.status_code == 307 and "auth_lake" not in response.text
    login = httpx.URL(response.headers["location"])
    assert login.path == "/api/v2/auth/login" and login.params["next"] == f"{airflow.api_url}/hybrid/"
    assert _get(airflow, "/hybrid/api/mounts", headers={"Accept": "text/html"}).status_code == 401  # JSON: no
    response = _get(airflow, "/hybrid/api/mounts", "not-a-jwt")
    assert response.status_code == 403 and response.json() == {"detail": "Invalid JWT token"}  # as Airflow's API


def test_a_viewer_may_not_read_connections_so_sees_nothing(airflow):
    viewer = _token(airflow, "viewer")
    assert _get(airflow, "/api/v2/dags", viewer).status_code == 200  # a valid user of this deployment
    assert _get(airflow, "/api/v2/connections", viewer).status_code == 403  # whom Airflow denies connections
    for route in ROUTES:
        response = _get(airflow, route, viewer)
        assert response.status_code == 403, (route, response.text)
        assert "needs read access to connections" in response.json()["detail"]


def test_admin_and_op_see_the_page_and_the_mount_figures_are_the_catalogs(airflow, admin, lake_dir):
    from airflow_hybrid.cache import CacheConfig, CacheManager
    from airflow_hybrid.cache.catalog import Catalog
    from airflow_hybrid.cache.report import read_report
    from airflow_hybrid.mount.options import parse_mount_options
    from airflow_hybrid.stores.local import LocalStore

    extra = local_mount_extra(lake_dir, "s3,hdfs", "s3", {"SSD": "1MB"})
    created = httpx.post(f"{airflow.api_url}/api/v2/connections", headers={"Authorization": f"Bearer {admin}"},
                         json={"connection_id": "auth_lake", "conn_type": "hybrid_mount", "extra": json.dumps(extra)},
                         timeout=30)
    assert created.status_code == 201, created.text
    spec = parse_mount_options("auth_lake", extra)
    config = CacheConfig.from_options(spec.settings, "auth_lake")
    source = LocalStore(str(lake_dir / "hdfs"))
    with Catalog(config.catalog_url) as catalog:  # what a task reading through the mount leaves
        cache = CacheManager("auth_lake", config, catalog=catalog)
        for path in ("t/a.bin", "t/b.bin"):
            cache.load(path, "hdfs", source.info(path), lambda p=path: source.open_read(p), pin=path == "t/b.bin")
        cache.close()
    (tier,) = read_report("auth_lake", config).to_dict()["tiers"]
    assert (tier["files"], tier["used_bytes"], tier["pinned_bytes"]) == (2, 2100, 2000)

    for user in ("admin", "op"):
        token = admin if user == "admin" else _token(airflow, user)
        mounts = _get(airflow, "/hybrid/api/mounts", token)
        assert mounts.status_code == 200, mounts.text
        (lake,) = [m for m in mounts.json() if m["conn_id"] == "auth_lake"]
        assert lake["error"] is None, lake
        assert lake["cache"]["tiers"] == [tier]
        assert [e["path"] for e in lake["cache"]["pinned"]] == ["t/b.bin"]
        policies = _get(airflow, "/hybrid/api/policies", token)
        assert policies.status_code == 200 and [r["name"] for r in policies.json()] == ["auth_policy"]

        page = _get(airflow, "/hybrid/", token)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        used = re.search(r'data-testid="tier-usage-auth_lake-SSD"\s+data-used-bytes="(\d+)"', page.text)
        assert int(used.group(1)) == tier["used_bytes"]
        assert "2.1 KiB of 1.0 MiB used (0.2%)" in page.text
        assert 'data-testid="no-runs-auth_policy"' in page.text

    # the UI's session: the _token cookie alone (what the page's iframe sends)
    page = httpx.get(f"{airflow.api_url}/hybrid/", cookies={"_token": admin}, timeout=60)
    assert page.status_code == 200 and 'data-testid="mount-auth_lake"' in page.text


def test_the_plugin_is_the_packages_and_in_the_navigation(airflow, admin):
    plugins = _get(airflow, "/api/v2/plugins", admin)
    assert plugins.status_code == 200, plugins.text
    (hybrid,) = [p for p in plugins.json()["plugins"] if p["name"] == "hybrid"]
    assert hybrid["source"].startswith("airflow-hybrid==")  # the distribution's airflow.plugins entry point
    assert "airflow_hybrid.plugins.plugin:HybridLakePlugin" in hybrid["source"]
    assert [a["url_prefix"] for a in hybrid["fastapi_apps"]] == ["/hybrid"]
    (view,) = hybrid["external_views"]
    assert (view["href"], view["destination"], view["url_route"]) == ("/hybrid/", "nav", "hybrid-lake")
    assert _get(airflow, "/api/v2/plugins/importErrors", admin).json()["import_errors"] == []
