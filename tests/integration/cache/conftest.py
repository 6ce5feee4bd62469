"""Fixtures of the cache's integration tests: a catalog on SQLite and on a fresh PostgreSQL database."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.services import postgres_url


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    admin_url = postgres_url()
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"hybrid_cache_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    try:
        yield sa.engine.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path):
    """The catalog URL, once per backend: a SQLite file and a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/catalog.db"
    return request.getfixturevalue("pg_url")
