"""The "Hybrid lake" app (``airflow_hybrid.plugins.ui``) under FastAPI's test client, for tests of what it shows.

Outside an API server there is no auth manager: the client's caller is a reader the auth manager allows
everything (``allow``: only the connection and DAG ids it returns True for). The real access control, on a
running API server, is tested in ``tests/e2e/test_ui_auth.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient


class AllowingManager:
    """Answers the auth manager's questions the page asks with ``allow(kind, id)``."""

    def __init__(self, allow: Callable[[str, str | None], bool] | None = None) -> None:
        self.allow = allow or (lambda kind, name: True)

    def is_authorized_connection(self, *, method, user, details=None) -> bool:
        return self.allow("connection", details.conn_id if details else None)

    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        return self.allow("dag", details.id if details else None)


def ui_client(allow: Callable[[str, str | None], bool] | None = None) -> TestClient:
    from airflow_hybrid.plugins.ui import Reader, create_app, require_reader

    app = create_app()
    app.dependency_overrides[require_reader] = lambda: Reader(user=None, manager=AllowingManager(allow))
    return TestClient(app)
