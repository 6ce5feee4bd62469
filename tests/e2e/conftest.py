"""End-to-end fixtures: a real Airflow metadata database (SQLite file in the session's AIRFLOW_HOME).

Every test below ``tests/e2e`` carries the ``e2e`` marker (added here at collection, so no file can forget it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

_E2E = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before ``-m`` selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``e2e`` (the hook sees the whole session's items)."""
    for item in items:
        if item.path.is_relative_to(_E2E):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def airflow_db():
    """Create the Airflow metadata database once per session (``airflow db migrate``)."""
    from airflow.utils import db

    db.initdb()
    yield
