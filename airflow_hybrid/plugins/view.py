"""What the "Hybrid lake" page shows, for people: figures from :mod:`.figures` turned into texts, bar widths
and chart coordinates (no raw numbers, ratios, ``None`` or dicts reach the page).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from airflow_hybrid.migration.status import format_time, pending_text, plural
from airflow_hybrid.values import format_bytes

NOTHING = "-"


# -- values ---------------------------------------------------------------------------------------------------
def human_bytes(count: int | float | None) -> str:
    """``1.5 GiB``, ``512 B``; ``-`` when unknown."""
    return NOTHING if count is None else format_bytes(count)


def share(part: int | float | None, whole: int | float | None) -> float:
    """``part`` as a percentage of ``whole``, in ``[0, 100]`` with one decimal (0 for an empty whole)."""
    if not part or not whole or whole <= 0:
        return 0.0
    return round(min(max(100.0 * part / whole, 0.0), 100.0), 1)


def percent(part: int | float | None, whole: int | float | None) -> str:
    """``42.5%`` of ``whole``; ``-`` when ``whole`` is empty or unknown."""
    if part is None or not whole:
        return NOTHING
    return f"{100.0 * part / whole:.1f}%"


def ratio_text(ratio: float | None) -> str:
    """A ratio in ``[0, 1]`` as ``97.7%``; ``no reads yet`` for ``None``."""
    return "no reads yet" if ratio is None else f"{100.0 * ratio:.1f}%"


def epoch_text(ts: float | None) -> str:
    """A POSIX time as ``2026-12-02 18:30:05 UTC``."""
    return NOTHING if ts is None else format_time(datetime.fromtimestamp(ts, tz=timezone.utc))


def dag_run_href(root: str, dag_id: str, run_id: str) -> str:
    """The Airflow UI's page of a DAG run: ``<root>/dags/<dag_id>/runs/<run_id>``."""
    return f"{root}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def dag_href(root: str, dag_id: str) -> str:
    return f"{root}/dags/{quote(dag_id, safe='')}"


# -- tiers ----------------------------------------------------------------------------------------------------
def tier_view(tier: dict[str, Any]) -> dict[str, Any]:
    """A tier of a cache report as a bar: pinned, used (unpinned) and free shares of the capacity, in %."""
    capacity, used, pinned = tier["capacity_bytes"], tier["used_bytes"], tier["pinned_bytes"]
    free = tier["free_bytes"]
    pinned_share = share(pinned, capacity)
    used_share = share(used, capacity)
    return {
        "alias": tier["alias"],
        "uri": tier["uri"],
        "capacity_bytes": capacity,
        "used_bytes": used,
        "pinned_bytes": pinned,
        "free_bytes": free,
        "capacity": human_bytes(capacity),
        "used": human_bytes(used),
        "pinned": human_bytes(pinned),
        "free": human_bytes(free),
        "used_pct": percent(used, capacity),
        "pinned_pct": percent(pinned, capacity),
        "free_pct": percent(free, capacity),
        # bar segments (widths in % of the bar): pinned, then the rest of used, then free
        "bar_pinned": pinned_share,
        "bar_used": round(max(used_share - pinned_share, 0.0), 1),
        "bar_free": round(max(100.0 - used_share, 0.0), 1),
        "over_high_watermark": bool(capacity) and used >= tier["high_watermark"] * capacity,
        "files": plural(tier["files"], "file"),
        "loading": plural(tier["loading"], "file") if tier["loading"] else None,
        "hit_ratio": ratio_text(tier["hit_ratio"]),
        "hit_ratio_value": tier["hit_ratio"],
        "hits": f"{tier['hits']:,} hits, {tier['misses']:,} misses",
        "watermarks": f"evicts above {tier['high_watermark']:.0%} down to {tier['low_watermark']:.0%}",
        "oldest": None if tier["oldest_entry"] is None
        else f"{tier['oldest_entry']['path']} (cached {format_time(tier['oldest_entry']['created_at'])})",
    }


def entry_view(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "path": entry["path"],
        "tier": entry["tier"],
        "size": human_bytes(entry["size"]),
        "size_bytes": entry["size"],
        "hits": plural(entry["hits"], "hit"),
        "pinned": entry["pinned"],
        "cached": epoch_text(entry["created_at"]),
    }


def mount_view(mount: dict[str, Any]) -> dict[str, Any]:
    cache = mount["cache"]
    view: dict[str, Any] = {
        "conn_id": mount["conn_id"],
        "error": mount["error"],
        "members": [
            {**member,
             "read": f"read #{member['read_rank']}" if member["read_rank"] else "not read",
             "create": "new files" if member["create"] else ""}
            for member in mount["members"]
        ],
        "cache": None,
    }
    if cache is not None:
        view["cache"] = {
            "catalog": cache["catalog_url"],
            "report_time": format_time(cache["generated_at"]),
            "capacity": human_bytes(cache["capacity_bytes"]),
            "used": human_bytes(cache["used_bytes"]),
            "used_pct": percent(cache["used_bytes"], cache["capacity_bytes"]),
            "files": plural(cache["files"], "file"),
            "file_count": cache["files"],
            "tiers": [tier_view(t) for t in cache["tiers"]],
            "largest": [entry_view(e) for e in cache["largest"]],
            "pinned": [entry_view(e) for e in cache["pinned"]],
            "leases": [
                {"path": lease["path"] or "/", "holder": lease["holder"], "until": format_time(lease["expires_at"])}
                for lease in cache["leases"]
            ],
        }
    return view


# -- policies -------------------------------------------------------------------------------------------------
@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # "pending" or "moved"
    title: str


@dataclass
class Chart:
    """Pending (at plan time) and moved bytes per plan, as SVG coordinates (a ``width`` x ``height`` box)."""

    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    #: ``(y, label)`` of the horizontal grid lines.
    ticks: list[tuple[float, str]] = field(default_factory=list)
    #: ``(x, label)`` under each plan's pair of bars.
    labels: list[tuple[float, str]] = field(default_factory=list)


def _nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 x 1024^k x 10^j at least ``value`` (a round top for the axis)."""
    if value <= 0:
        return 1.0
    unit = 1024 ** max(int(math.log(value, 1024)), 0)
    scaled = value / unit
    step = 10 ** math.floor(math.log10(scaled)) if scaled >= 1 else 1
    for factor in (1, 2, 5, 10):
        if factor * step >= scaled:
            return factor * step * unit
    return 10 * step * unit


def history_chart(history: list[dict[str, Any]], *, width: int = 640, height: int = 180) -> Chart | None:
    """One pair of bars per plan, oldest left: the bytes it found pending, the bytes its runs moved.
    ``None`` when no plan recorded its figures (nothing to draw)."""
    points = [p for p in history if p["pending_bytes"] is not None or p["moved_bytes"]]
    if not points:
        return None
    left, bottom, top = 64.0, 22.0, 8.0
    plot_w, plot_h = width - left - 8.0, height - bottom - top
    peak = _nice_max(max(max(p["pending_bytes"] or 0, p["moved_bytes"]) for p in points))
    chart = Chart(width, height)
    for i in range(5):
        value = peak * i / 4
        chart.ticks.append((round(top + plot_h * (1 - i / 4), 1), human_bytes(value)))
    slot = plot_w / len(points)
    bar_w = max(min(slot * 0.35, 28.0), 2.0)
    for index, point in enumerate(points):
        x0 = left + slot * index + (slot - 2 * bar_w) / 2
        when = format_time(point["at"])
        pending = point["pending_bytes"] or 0
        for offset, kind, value, text in (
            (0.0, "pending", pending,
             f"{when}: {plural(point['pending_files'] or 0, 'file')}, {human_bytes(pending)} pending at plan time"),
            (bar_w, "moved", point["moved_bytes"],
             f"{when}: {plural(point['moved_files'], 'file')}, {human_bytes(point['moved_bytes'])} moved"),
        ):
            h = plot_h * value / peak
            chart.bars.append(Bar(round(x0 + offset, 1), round(top + plot_h - h, 1), round(bar_w, 1),
                                  round(h, 1), kind, text))
        if len(points) <= 8 or index in (0, len(points) - 1):
            chart.labels.append((round(x0 + bar_w, 1), when[5:16]))
    return chart


def run_view(run: dict[str, Any], root: str) -> dict[str, Any]:
    done = run["moved"] + run["skipped"]
    return {
        "state": run["state"],
        "started": format_time(run["started_at"]),
        "finished": format_time(run["finished_at"]) if run["finished_at"] else "running",
        "plan": run["plan_id"] or "inline",
        "batch": NOTHING if run["batch"] is None else str(run["batch"]),
        "engine": run["engine"],
        "moved": f"{plural(done, 'file')}, {human_bytes(run['migrated_bytes'])}"
        if run["migrated_bytes"] is not None else plural(done, "file"),
        "left": plural(run["kept"] + run["failed"], "file") if run["kept"] + run["failed"] else "",
        "written": human_bytes(run["bytes"]),
        "message": run["message"] or "",
        "dag_run": run["dag_run_id"],
        "href": dag_run_href(root, run["dag_id"], run["dag_run_id"]) if run["dag_run_id"] else None,
    }


def policy_view(row: dict[str, Any], root: str) -> dict[str, Any]:
    if row["name"] is None:
        return {"invalid": True, "error": row.get("error")}
    return {
        "invalid": False,
        "name": row["name"],
        "mount": row["mount"],
        "path": row["path"],
        "policy": row["policy"],
        "dag_id": row["dag_id"],
        "dag_href": dag_href(root, row["dag_id"]),
        "error": row.get("error"),
        "pending": NOTHING if row["moved_files"] is None
        else "unknown until the first plan" if row["pending_source"] is None else pending_text(row),
        "pending_files": row["pending_files"],
        "pending_bytes": row["pending_bytes"],
        "moved": NOTHING if row["moved_files"] is None
        else f"{plural(row['moved_files'], 'file')}, {human_bytes(row['moved_bytes'])}",
        "moved_files": row["moved_files"],
        "moved_bytes": row["moved_bytes"],
        "failed": NOTHING if row["failed_files"] is None else plural(row["failed_files"], "file"),
        "in_progress": plural(row["in_progress_files"] or 0, "file"),
        "failures": row["failures"],
        "runs": [run_view(run, root) for run in row["runs"]],
        "chart": history_chart(row["history"]),
    }


def page_context(mounts: list[dict[str, Any]], policies: list[dict[str, Any]], *, root: str = "",
                 policies_error: str | None = None) -> dict[str, Any]:
    """Everything the page template reads; each mount lists its errors: its own, its policies' and their
    files that failed or were kept."""
    views = [mount_view(m) for m in mounts]
    for view in views:
        problems = [view["error"]] if view["error"] else []
        for row in policies:
            if row["mount"] != view["conn_id"]:
                continue
            if row.get("error"):
                problems.append(f"policy {row['name']}: {row['error']}")
            if row["failed_files"]:
                problems.append(f"policy {row['name']}: {plural(row['failed_files'], 'file')} kept or failed "
                                "(see the policy below)")
        view["problems"] = problems
    return {
        "mounts": views,
        "policies": [policy_view(p, root) for p in policies],
        "policies_error": policies_error,
        "connections_href": f"{root}/connections",
    }
