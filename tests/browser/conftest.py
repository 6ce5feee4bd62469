"""Browser tests: Debian's headless Chromium, driven by playwright-core (``driver.js`` beside this file), against
a real Airflow API server (:class:`tests.airflow_deployment.AirflowDeployment`) whose simple auth manager has a
real user, so every scenario logs in through the UI's login page. The "Hybrid lake" page is the one the
package registers (its provider info's ``plugins``), as ``pip install`` users get it.

``scripts/bootstrap.sh --test`` installs the tools: ``chromium`` (Debian's package, ``/usr/bin/chromium``;
``HYBRID_CHROMIUM`` names another) and ``playwright-core`` pinned in ``package-lock.json`` (``npm ci`` into
``tests/browser/node_modules``, without Playwright's own browser download). A test whose tools are missing
**fails**. Each step's screenshot is kept in ``$HYBRID_TEST_ARTIFACTS/browser/<test>/`` (default
``<repo>/.artifacts/browser/<test>/``), the failing page's too.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.airflow_deployment import AirflowDeployment

BROWSER_DIR = Path(__file__).resolve().parent
ROOT = BROWSER_DIR.parents[1]
DRIVER = BROWSER_DIR / "driver.js"
CHROMIUM = Path(os.environ.get("HYBRID_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("HYBRID_TEST_ARTIFACTS") or ROOT / ".artifacts") / "browser"
#: The UI user the deployment's simple auth manager knows (role admin, password made per session).
USERNAME = "hybrid_ui_tester"
#: Seconds one scenario may take (its steps wait up to 60 s each for the page).
SCENARIO_TIMEOUT = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every browser test runs real Airflow: mark it ``e2e`` like the tests of ``tests/e2e``."""
    for item in items:
        if item.path.is_relative_to(BROWSER_DIR):
            item.add_marker(pytest.mark.e2e)


class BrowserStepError(AssertionError):
    """A scenario could not do one of its steps; the message names it, the page it was on and its screenshots."""


@pytest.fixture(scope="session")
def browser_tools() -> dict[str, str]:
    """Node.js, Chromium and the pinned playwright-core; a missing one fails the test (never a skip)."""
    setup = "`make setup-test` (scripts/bootstrap.sh --test) installs it"
    node = shutil.which("node")
    if node is None:
        pytest.fail(f"the browser tests need Node.js (`node` is not on PATH); {setup}", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM} (Debian's `chromium`); {setup}", pytrace=False)
    pinned = json.loads((BROWSER_DIR / "package-lock.json").read_text())["packages"]["node_modules/playwright-core"]
    installed = BROWSER_DIR / "node_modules" / "playwright-core" / "package.json"
    if not installed.is_file():
        pytest.fail(f"the browser tests need playwright-core {pinned['version']} in {installed.parent}; {setup}",
                    pytrace=False)
    version = json.loads(installed.read_text())["version"]
    if version != pinned["version"]:
        pytest.fail(f"playwright-core {version} is installed, package-lock.json pins {pinned['version']}; {setup}",
                    pytrace=False)
    return {"node": node, "chromium": str(CHROMIUM), "playwright-core": version}


@dataclass
class AirflowUI:
    """The deployment, and the credentials of its UI user."""

    deployment: AirflowDeployment
    username: str
    password: str

    @property
    def base_url(self) -> str:
        return self.deployment.api_url

    def token(self) -> str:
        """A REST API token of the UI user (``POST /auth/token``, as a script would get one)."""
        response = httpx.post(f"{self.base_url}/auth/token", json={"username": self.username,
                                                                    "password": self.password}, timeout=30)
        assert response.status_code == 201, f"POST /auth/token answered {response.status_code}: {response.text}"
        return response.json()["access_token"]

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """``method path`` on the REST API as the UI user (the deployment's own client has no token here)."""
        headers = {"Authorization": f"Bearer {self.token()}", **kwargs.pop("headers", {})}
        return self.deployment.api(method, path, headers=headers, **kwargs)


@pytest.fixture(scope="session")
def airflow_ui(tmp_path_factory) -> Iterator[AirflowUI]:
    """An API server (the only component the UI needs) on a fresh PostgreSQL database, with the simple auth
    manager's user :data:`USERNAME` (not ``all_admins``: the UI asks for a login) and this project's page."""
    home = tmp_path_factory.mktemp("browser-airflow-home")
    dags = tmp_path_factory.mktemp("browser-dags")
    password = secrets.token_urlsafe(16)
    passwords = home / "simple_auth_manager_passwords.json"
    passwords.write_text(json.dumps({USERNAME: password}))
    env = {
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
    }
    with AirflowDeployment(home, {"browser-dags": dags}, env, components=("api-server",)) as deployment:
        yield AirflowUI(deployment, USERNAME, password)


class Browser:
    """Runs one ``driver.js`` scenario in a fresh Chromium and returns what it observed."""

    def __init__(self, ui: AirflowUI, tools: dict[str, str], artifacts: Path):
        self.ui = ui
        self.tools = tools
        self.artifacts = artifacts

    def run(self, scenario: str, **config: Any) -> dict[str, Any]:
        """The scenario's observations; :class:`BrowserStepError` when a step could not be done."""
        config = {"baseUrl": self.ui.base_url, "username": self.ui.username, "password": self.ui.password,
                  "artifacts": str(self.artifacts), "chromium": self.tools["chromium"], **config}
        env = {**os.environ, "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"}
        try:
            done = subprocess.run(  # noqa: S603 - node on the project's own driver script
                [self.tools["node"], str(DRIVER), scenario, json.dumps(config)], cwd=BROWSER_DIR, env=env,
                capture_output=True, text=True, timeout=SCENARIO_TIMEOUT, check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise BrowserStepError(f"scenario {scenario} did not end within {SCENARIO_TIMEOUT}s; "
                                   f"screenshots in {self.artifacts}") from error
        lines = done.stdout.strip().splitlines()
        try:
            result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            raise BrowserStepError(f"driver.js {scenario} exited with {done.returncode} and no result:\n"
                                   f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}") from None
        if not result.get("ok"):
            raise BrowserStepError(
                f"scenario {scenario}: could not {result.get('step')}: {result.get('error')}\n"
                f"page: {result.get('url')}\nits text: {result.get('text', '')[:1500]}\n"
                f"screenshots: {result.get('screenshots')}\n{done.stderr[-1500:]}\n"
                f"{self.ui.deployment.log_tails(15)}"
            )
        return {**result["observed"], "screenshots": result["screenshots"]}


@pytest.fixture
def browser(request, browser_tools, airflow_ui) -> Browser:
    """A :class:`Browser` on the deployment; its screenshots in a directory of this test's (emptied first)."""
    artifacts = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(artifacts, ignore_errors=True)
    artifacts.mkdir(parents=True)
    return Browser(airflow_ui, browser_tools, artifacts)
