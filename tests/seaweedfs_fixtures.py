"""Pytest fixtures for SeaweedFS's S3 gateway (imported by ``tests/conftest.py``).

``seaweed_s3``   session-scoped: one ``weed server -filer -s3`` (:mod:`airflow_hybrid.devstack.seaweedfs`) on free
                 loopback ports with the bucket :data:`SEAWEED_BUCKET`; its log is appended to the report of any
                 failing test that used it. SeaweedFS gives every bucket its own volumes, so tests share this
                 bucket and use their own prefixes.
"""

from __future__ import annotations

import pytest

from airflow_hybrid.devstack.seaweedfs import SeaweedError, SeaweedS3
from tests.services import running

SEAWEED_BUCKET = "hybrid-seaweed"
_SEAWEED_KEY = pytest.StashKey[SeaweedS3]()


@pytest.fixture(scope="session")
def seaweed_s3(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    seaweed = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"), buckets=(SEAWEED_BUCKET,))
    with running(seaweed, "SeaweedFS", SeaweedError):
        request.config.stash[_SEAWEED_KEY] = seaweed
        yield seaweed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    outcome = yield
    report = outcome.get_result()
    seaweed = item.config.stash.get(_SEAWEED_KEY, None)
    if report.failed and seaweed is not None and "seaweed_s3" in getattr(item, "fixturenames", ()):
        report.sections.append(("SeaweedFS log", f"{seaweed.log_path}\n{seaweed.log_tail()}"))
