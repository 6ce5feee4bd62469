"""The "Hybrid lake" page and its JSON endpoints (FastAPI), behind Airflow's own access control.

Every route resolves the caller as Airflow's API does (:func:`airflow.api_fastapi.core_api.security.get_user`:
the ``Authorization: Bearer`` JWT, else the ``_token`` cookie the UI sets at login): 401 without a valid
token; 403 for a user the auth manager does not allow to read connections (a mount is a connection: its
members, catalog and cache paths). What a user sees is then filtered per object: the mounts whose
connection they may read, the policies whose mount connection and DAG they may read.

Routes (below the plugin's ``/hybrid`` prefix): ``/`` the page (a browser without a session is sent to
Airflow's login and back), ``/api/mounts`` and ``/api/policies`` the same figures as JSON for scripts. Nothing is written and no store is listed (see :mod:`.figures`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Annotated, Any
from urllib.parse import urlencode

from airflow.api_fastapi.app import API_ROOT_PATH, get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails, DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from airflow_hybrid.cache.report import describe_error
from airflow_hybrid.plugins import figures
from airflow_hybrid.plugins.view import page_context

_PACKAGE = "airflow_hybrid.plugins"


@dataclass(frozen=True)
class Reader:
    """An authenticated user allowed to read connections, and what else the auth manager lets them read."""

    user: Any
    manager: Any

    def may_read_connection(self, conn_id: str) -> bool:
        return self.manager.is_authorized_connection(
            method="GET", details=ConnectionDetails(conn_id=conn_id), user=self.user
        )

    def may_read_dag(self, dag_id: str) -> bool:
        return self.manager.is_authorized_dag(method="GET", details=DagDetails(id=dag_id), user=self.user)

    def may_read_policy(self, row: dict[str, Any]) -> bool:
        return row["dag_id"] is None or self.may_read_dag(row["dag_id"])


def require_reader(user: GetUserDep) -> Reader:
    """The route's caller: 401 without a valid token (from ``get_user``), 403 without read access to connections."""
    manager = get_auth_manager()
    if not manager.is_authorized_connection(method="GET", user=user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Forbidden: the Hybrid lake page needs read access to connections")
    return Reader(user, manager)


ReaderDep = Annotated[Reader, Depends(require_reader)]


def mounts_for(reader: Reader) -> list[dict[str, Any]]:
    return figures.mounts_overview(reader.may_read_connection)


def policies_for(reader: Reader) -> list[dict[str, Any]]:
    rows = figures.policies_overview(may_read=reader.may_read_connection)
    return [row for row in rows if reader.may_read_policy(row)]


@cache
def _templates() -> Any:
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader(_PACKAGE, "templates"), autoescape=select_autoescape(default=True))


@cache
def _css() -> str:
    return files(_PACKAGE).joinpath("static", "hybrid_lake.css").read_text(encoding="utf-8")


def render_page(mounts: list[dict[str, Any]], policies: list[dict[str, Any]], *, root: str = "",
                policies_error: str | None = None) -> str:
    """The page's HTML for these figures (:mod:`.figures`); ``root``: the Airflow UI's path, for links."""
    context = page_context(mounts, policies, root=root, policies_error=policies_error)
    return _templates().get_template("hybrid_lake.html").render(css=_css(), **context)


def create_app() -> FastAPI:
    app = FastAPI(title="airflow-hybrid", description="Hybrid lake: mounts, cache tiers, migration policies",
                  docs_url=None, redoc_url=None, openapi_url=None)
    root = API_ROOT_PATH.rstrip("/")

    @app.exception_handler(StarletteHTTPException)
    async def login_first(request: Request, exc: StarletteHTTPException) -> Response:
        """A browser opening the page without a session goes to Airflow's login, and comes back after it."""
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and request.url.path.endswith("/hybrid/") and (
            "text/html" in request.headers.get("accept", "")
        ):
            return RedirectResponse(f"{root}/api/v2/auth/login?{urlencode({'next': str(request.url)})}")
        return await http_exception_handler(request, exc)

    @app.get("/api/mounts")
    def api_mounts(reader: ReaderDep) -> list[dict[str, Any]]:
        """Each readable mount: members, read order, create targets, cache figures (or ``error``)."""
        return mounts_for(reader)

    @app.get("/api/policies")
    def api_policies(reader: ReaderDep) -> list[dict[str, Any]]:
        """Each readable policy's status from the migration state (pending as of its last plan)."""
        return policies_for(reader)

    @app.get("/", response_class=HTMLResponse)
    def page(reader: ReaderDep) -> str:
        mounts = mounts_for(reader)
        policies, error = [], None
        try:
            policies = policies_for(reader)
        except Exception as err:  # an unreadable policies file: the mounts are still shown
            error = f"policies unavailable: {describe_error(err, 'policies')}"
        return render_page(mounts, policies, root=root, policies_error=error)

    return app
