"""The ``hybrid`` Airflow plugin: the "Hybrid lake" page in the UI's navigation and the ``hybrid`` macros.

Registered by the package (the ``airflow.plugins`` entry point, and ``plugins`` in the provider info), so
``pip install airflow-hybrid`` is enough. The page is a FastAPI app the API server mounts at ``/hybrid``
(:mod:`.ui`), shown in the UI as an external view under Browse. Macros:
``{{ macros.hybrid.uri('onprem_union', '/store_sales') }}`` and ``macros.hybrid.locations(...)``. Its listener
(:mod:`.listener`) writes a task's pending cache hits before the task's process stops.

Every Airflow process loads plugins (a task for the macros): the page's app, which imports the API server's
security, is built on the first request only (:class:`LazyApp`).
"""

from __future__ import annotations

import importlib
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_hybrid.mount.resolver import MACROS
from airflow_hybrid.plugins import listener


class LazyApp:
    """An ASGI app built by ``factory`` (``"module:function"``) on its first call."""

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            module, _, name = self.factory.partition(":")
            self._app = getattr(importlib.import_module(module), name)()
        return self._app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class HybridLakePlugin(AirflowPlugin):
    name = "hybrid"
    macros = MACROS
    listeners = [listener]
    fastapi_apps = [
        {"app": LazyApp("airflow_hybrid.plugins.ui:create_app"), "url_prefix": "/hybrid", "name": "Hybrid lake"}
    ]
    external_views = [
        {
            "name": "Hybrid lake",
            "href": "/hybrid/",
            "destination": "nav",
            "category": "browse",
            "url_route": "hybrid-lake",
        }
    ]
