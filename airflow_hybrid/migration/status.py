"""Status of every declared policy: what is pending, what moved, what failed and why, the last runs.

Everything comes from the migration state (:mod:`airflow_hybrid.migration.state`), read without writing:
moved and failed files, the runs and, per plan, what it found pending when it was made. ``pending`` is the
last plan's pending files less those its runs migrated since; ``count_pending=True`` counts them live from
the mount instead (a streamed listing of the REMOVE members, as the sensor does).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from typing import Any

from airflow_hybrid.migration.claims import MigrationClaims
from airflow_hybrid.migration.planner import count_candidates
from airflow_hybrid.migration.registry import PolicyEntry, load_policies_file
from airflow_hybrid.migration.state import MigrationState, claims_table

log = logging.getLogger(__name__)

#: Runs and plans kept in a row (``runs``, ``history``).
MAX_RUNS = 10
MAX_PLANS = 30


def policy_status_rows(
    policies_path: str | os.PathLike | None = None, *, count_pending: bool = True, max_failures: int = 20
) -> list[dict[str, Any]]:
    """One row per valid policy of the policies file.

    Keys: ``name``, ``dag_id``, ``mount``, ``path``, ``policy``; ``pending_files``, ``pending_bytes`` with
    ``pending_source`` (``live``: counted now; ``plan``: the last plan's pending less what its runs migrated,
    as of ``pending_as_of``; ``None``: unknown, ``error`` may say why); ``moved_files``, ``moved_bytes``,
    ``failed_files`` (kept + failed), ``failures`` (``[{path, status, reason}]``, most recent first),
    ``in_progress_files``, ``last_run`` (``{state, started_at, finished_at, plan_id, batch, moved, dag_id,
    dag_run_id, ...}`` or ``None``), ``runs`` (the last runs, newest first) and ``history`` (per plan, oldest
    first: ``{plan_id, at, pending_files, pending_bytes, moved_files, moved_bytes, failed_files, state,
    dag_runs}``). An invalid entry of the file gives a row of ``None`` values with its ``error``.
    """
    entries, errors = load_policies_file(policies_path)
    rows = [entry_status(entry, count_pending=count_pending, max_failures=max_failures) for entry in entries]
    rows.extend(dict(_EMPTY_ROW, error=error) for error in errors)
    return rows


_EMPTY_ROW: dict[str, Any] = {
    "name": None,
    "dag_id": None,
    "mount": None,
    "path": None,
    "policy": None,
    "pending_files": None,
    "pending_bytes": None,
    "pending_source": None,
    "pending_as_of": None,
    "moved_files": None,
    "moved_bytes": None,
    "failed_files": None,
    "failures": [],
    "in_progress_files": None,
    "last_run": None,
    "runs": [],
    "history": [],
}


def entry_status(entry: PolicyEntry, *, count_pending: bool = True, max_failures: int = 20) -> dict[str, Any]:
    row: dict[str, Any] = dict(
        _EMPTY_ROW, name=entry.name, dag_id=entry.dag_id, mount=entry.mount, path=entry.path,
        policy=entry.policy.to_text(), failures=[], runs=[], history=[],
    )
    errors = []
    settings: dict[str, Any] | None = None
    try:
        from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

        settings = HybridMountHook(entry.mount).spec.settings
    except Exception as err:
        errors.append(f"mount {entry.mount!r} unavailable: {type(err).__name__}: {err}")
    if settings is not None and count_pending:
        _count_live(entry, row, errors)
    try:
        state = MigrationState((settings or {}).get("catalog_url"), read_only=True)
        row.update(_recorded(state, entry, max_failures))
    except Exception as err:
        errors.append(f"migration state unavailable: {type(err).__name__}: {err}")
    if row["pending_source"] is None and not count_pending and row["history"]:
        _pending_from_plan(row)
    if errors:
        row["error"] = "; ".join(errors)
    return row


def _count_live(entry: PolicyEntry, row: dict[str, Any], errors: list[str]) -> None:
    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

    try:
        with HybridMountHook(entry.mount).get_mount() as mount:
            count = count_candidates(mount, entry.path, entry.policy)
    except Exception as err:
        errors.append(f"listing pending files failed: {type(err).__name__}: {err}")
        return
    row.update(pending_files=count.files, pending_bytes=count.bytes, pending_source="live")


def _recorded(state: MigrationState, entry: PolicyEntry, max_failures: int) -> dict[str, Any]:
    totals = state.totals(entry.name, entry.mount)
    runs = state.runs(entry.name, entry.mount, limit=MAX_RUNS)
    prefix = entry.path.strip("/")
    in_progress = 0
    if state.stored_columns(claims_table):
        in_progress = sum(
            1 for claim in MigrationClaims(state, entry.mount).holders()
            if not prefix or claim.path == prefix or claim.path.startswith(f"{prefix}/")
        )
    return {
        "moved_files": totals["moved_files"],
        "moved_bytes": totals["moved_bytes"],
        "failed_files": totals["failed_files"] + totals["kept_files"],
        "failures": state.failures(entry.name, entry.mount, limit=max_failures),
        "in_progress_files": in_progress,
        "last_run": _run(runs[0]) if runs else None,
        "runs": [_run(run) for run in runs],
        "history": [_point(point) for point in state.history(entry.name, entry.mount, limit=MAX_PLANS)],
    }


def _pending_from_plan(row: dict[str, Any]) -> None:
    """Pending as of the last plan with figures: what it selected less what its runs migrated since."""
    for point in reversed(row["history"]):
        if point["pending_files"] is not None:
            row.update(
                pending_files=max(point["pending_files"] - point["moved_files"], 0),
                pending_bytes=max((point["pending_bytes"] or 0) - point["moved_bytes"], 0),
                pending_source="plan",
                pending_as_of=point["at"],
            )
            return


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


_RUN_KEYS = (
    "id", "state", "plan_id", "batch", "engine", "files", "moved", "skipped", "kept", "failed", "bytes",
    "migrated_bytes", "plan_files", "plan_bytes", "dag_id", "dag_run_id", "message",
)


def _run(run: dict[str, Any]) -> dict[str, Any]:
    result = {key: run[key] for key in _RUN_KEYS}
    for key in ("started_at", "finished_at", "plan_created_at"):
        result[key] = _iso(run[key])
    return result


def _point(point: dict[str, Any]) -> dict[str, Any]:
    return {**point, "at": _iso(point["at"]), "dag_runs": [list(pair) for pair in point["dag_runs"]]}


# -- text for people ------------------------------------------------------------------------------------------
def plural(count: int, word: str) -> str:
    """``1 file``, ``3 files``."""
    return f"{count:,} {word}" if count == 1 else f"{count:,} {word}s"


def format_time(value: str | datetime | None) -> str:
    """``2026-12-02 18:30:05 UTC`` (``-`` when unknown)."""
    if value is None:
        return "-"
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def run_text(run: dict[str, Any]) -> str:
    """``failed at 2026-12-02 18:31:02 UTC (plan p-..., batch 0, moved 4 files, 1.2 MiB; 1 failed)``."""
    from airflow_hybrid.values import format_bytes

    done = (run["moved"] or 0) + (run["skipped"] or 0)
    details = [f"plan {run['plan_id']}" if run["plan_id"] else "inline plan"]
    if run["batch"] is not None:
        details.append(f"batch {run['batch']}")
    moved = f"moved {plural(done, 'file')}"
    if run.get("migrated_bytes") is not None:
        moved += f", {format_bytes(run['migrated_bytes'])}"
    details.append(moved)
    left = (run["kept"] or 0) + (run["failed"] or 0)
    text = f"{run['state']} at {format_time(run['finished_at'] or run['started_at'])} ({', '.join(details)}"
    text += f"; {left:,} kept or failed)" if left else ")"
    if run.get("dag_run_id"):
        text += f" in DAG run {run['dag_id']} / {run['dag_run_id']}"
    return text


def pending_text(row: dict[str, Any]) -> str:
    """``3 files, 1.5 MiB (counted now)``, ``... (as of the plan of <time>)`` or why it is unknown."""
    from airflow_hybrid.values import format_bytes

    if row["pending_source"] is None:
        return "unknown (no plan yet; --count-pending counts it from the mount)"
    figures = f"{plural(row['pending_files'], 'file')}, {format_bytes(row['pending_bytes'])}"
    if row["pending_source"] == "live":
        return f"{figures} (counted now)"
    return f"{figures} (as of the plan of {format_time(row['pending_as_of'])})"


def row_text(row: dict[str, Any]) -> str:
    """A policy's status for ``airflow hybrid policy status``."""
    from airflow_hybrid.values import format_bytes

    if row["name"] is None:
        return f"INVALID {row.get('error')}"
    lines = [f"{row['name']}: {row['mount']}:{row['path']}  {row['policy']}"]
    if row.get("error"):
        lines.append(f"    ERROR {row['error']}")
    if row["moved_files"] is not None:
        lines += [
            f"    pending: {pending_text(row)}",
            f"    moved: {plural(row['moved_files'], 'file')}, {format_bytes(row['moved_bytes'])}; kept or failed: "
            f"{plural(row['failed_files'], 'file')}; in progress: {plural(row['in_progress_files'] or 0, 'file')}",
            f"    last run: {run_text(row['last_run']) if row['last_run'] else 'none yet'}",
        ]
    lines += [f"    {f.get('status', 'failed')} {f['path']}: {f['reason']}" for f in row.get("failures", [])]
    return "\n".join(lines)
