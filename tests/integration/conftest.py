"""Fixtures of the integration tests (real servers on loopback)."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request, tmp_path):
    """A migration state database on SQLite (a file) and on the suite's PostgreSQL."""
    from airflow_hybrid.migration.state import MigrationState
    from tests.services import postgres_url

    if request.param == "sqlite":
        return MigrationState(f"sqlite:///{tmp_path}/state.db")
    return MigrationState(postgres_url())
