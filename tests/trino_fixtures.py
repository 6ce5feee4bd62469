"""Pytest fixtures for Trino (a plugin of ``tests/conftest.py``; until listed there, ``-p tests.trino_fixtures``).

``trino_server``  session-scoped: one single-node Trino (:mod:`airflow_hybrid.devstack.trino`, 1 GiB heap) whose
                  ``hive`` catalog reads and writes ``hdfs://`` (as user ``hdfs``) and ``s3://`` on the session's
                  moto server (``moto_endpoint``); started once (it takes 25 s to a few minutes), stopped at
                  the end. Its log is appended to the report of any failing test that used it. The server and
                  CLI come from ``scripts/trino.sh``; missing, the tests are :func:`tests.services.unavailable`.
"""

from __future__ import annotations

import pytest

from airflow_hybrid.devstack.trino import S3Endpoint, TrinoError, TrinoServer
from tests.services import running

_TRINO_KEY = pytest.StashKey[TrinoServer]()


@pytest.fixture(scope="session")
def trino_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest, moto_endpoint):
    server = TrinoServer(tmp_path_factory.mktemp("trino"), s3=S3Endpoint(moto_endpoint, "testing", "testing"))
    with running(server, "Trino (run scripts/trino.sh)", TrinoError):
        request.config.stash[_TRINO_KEY] = server
        yield server


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    server = item.config.stash.get(_TRINO_KEY, None)
    if report.failed and server is not None and "trino_server" in getattr(item, "fixturenames", ()):
        report.sections.append(("Trino log", f"{server.log_path}\n{server.log_tail()}"))
