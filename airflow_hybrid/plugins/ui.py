"""The "Hybrid lake" page: mounts and their members, cache tiers, migration policy status (FastAPI)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

if TYPE_CHECKING:
    from airflow_hybrid.mount.options import MountSpec


def mounts_overview() -> list[dict[str, Any]]:
    """Every ``hybrid_mount`` connection: members, read priority, create targets, cache report or error."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

    with create_session() as session:
        conn_ids = [c.conn_id for c in session.query(Connection).filter(Connection.conn_type == "hybrid_mount")]
    rows = []
    for conn_id in sorted(conn_ids):
        row: dict[str, Any] = {"conn_id": conn_id}
        try:
            spec = HybridMountHook(conn_id).spec
            row["members"] = {name: m.uri for name, m in spec.members.items()}
            row["priority.read"] = spec.read_order
            row["collection.create"] = spec.create_members
            if spec.settings.get("cache"):
                row["cache"] = cache_report(spec)
        except Exception as err:  # shown on the page, never a 500 for one bad connection
            row["error"] = f"{type(err).__name__}: {err}"
        rows.append(row)
    return rows


def cache_report(spec: MountSpec) -> dict[str, Any]:
    """The cache report of a mount, read without writing anything (:func:`~airflow_hybrid.cache.report.read_report`)."""
    from airflow_hybrid.cache.config import CacheConfig
    from airflow_hybrid.cache.report import read_report

    return read_report(spec.name, CacheConfig.from_options(spec.settings, spec.name)).to_dict()


def policies_overview() -> list[dict[str, Any]]:
    from airflow_hybrid.migration.status import policy_status_rows

    return policy_status_rows()


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_page(mounts: list[dict[str, Any]], policies: list[dict[str, Any]]) -> str:
    parts = ["<h1>Hybrid lake</h1>", "<h2>Mounts</h2>"]
    parts.append(_table(mounts, ["conn_id", "members", "priority.read", "collection.create", "error"]))
    for mount in mounts:
        tiers = (mount.get("cache") or {}).get("tiers") or []
        if tiers:
            parts.append(f"<h3>Cache of {html.escape(mount['conn_id'])}</h3>")
            parts.append(_table(tiers, sorted({k for t in tiers for k in t})))
    parts.append("<h2>Migration policies</h2>")
    parts.append(
        _table(
            policies,
            ["name", "mount", "path", "policy", "pending_files", "pending_bytes", "moved_files", "failed_files",
             "last_run"],
        )
    )
    style = "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1em}" \
        "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}"
    return f"<!doctype html><html><head><title>Hybrid lake</title><style>{style}</style></head>" \
        f"<body>{''.join(parts)}</body></html>"


def create_app() -> FastAPI:
    app = FastAPI(title="airflow-hybrid", description="Hybrid lake: mounts, cache, migration policies")

    @app.get("/api/mounts")
    def api_mounts() -> list[dict[str, Any]]:
        return mounts_overview()

    @app.get("/api/policies")
    def api_policies() -> list[dict[str, Any]]:
        return policies_overview()

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        try:
            policies = policies_overview()
        except Exception as err:
            policies = [{"name": f"error: {type(err).__name__}: {err}"}]
        return render_page(mounts_overview(), policies)

    return app
