"""End-to-end fixtures: a real Airflow metadata database (SQLite file in the session's AIRFLOW_HOME)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def airflow_db():
    """Create the Airflow metadata database once per session (``airflow db migrate``)."""
    from airflow.utils import db

    db.initdb()
    yield
