"""redact_url: a database URL's password never survives, whatever the URL looks like."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from airflow_hybrid.redact import redact_url

SECRET = "Pw-7c1e"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://hybrid:{SECRET}@db:5432/catalog", "postgresql://hybrid:***@db:5432/catalog"),
        (f"postgresql+psycopg2://u:{SECRET}%40x@h/d", "postgresql+psycopg2://u:***@h/d"),  # an escaped @
        (f"postgresql://u:{SECRET}@x@h/d", "postgresql://u:***@h/d"),  # an unescaped @: masked whole
        (f"mysql://u:{SECRET}/x@h/d", "mysql://u:***@h/d"),
        (f"postgresql:///db?password={SECRET}&host=/tmp", "postgresql:///db?host=%2Ftmp&password=***"),
        (sa.engine.make_url(f"postgresql://a:{SECRET}@c/d"), "postgresql://a:***@c/d"),
        ("sqlite:////var/lib/hybrid/catalog.db", "sqlite:////var/lib/hybrid/catalog.db"),
        ("postgresql://user@host/db", "postgresql://user@host/db"),
        (f"not+parsed://u:{SECRET}@h:port/d", "not+parsed://u:***@h:port/d"),  # SQLAlchemy rejects the port
        (None, ""),
    ],
)
def test_passwords_are_masked(url, expected):
    assert redact_url(url) == expected
    assert SECRET not in redact_url(url)
