"""Airflow UI page "Hybrid lake" (mounts, cache tiers, migration policies) and the ``hybrid`` template macros.

The page is a small FastAPI app served by the API server at ``/hybrid/`` and linked from the navigation;
its JSON endpoints (``/hybrid/api/mounts``, ``/hybrid/api/policies``) serve scripts as well as the page.
Macros: ``{{ macros.hybrid.uri('onprem_union', '/store_sales') }}`` and ``macros.hybrid.locations(...)``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from airflow_hybrid.mount.resolver import MACROS
from airflow_hybrid.plugins.ui import create_app


class HybridLakePlugin(AirflowPlugin):
    name = "hybrid"
    macros = MACROS
    fastapi_apps = [{"app": create_app(), "url_prefix": "/hybrid", "name": "Hybrid lake"}]
    external_views = [
        {
            "name": "Hybrid lake",
            "href": "/hybrid/",
            "destination": "nav",
            "category": "browse",
            "url_route": "hybrid-lake",
        }
    ]
