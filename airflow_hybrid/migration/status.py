"""Status of every declared policy: what is pending, what moved, what failed and why, the last run.

Pending files and bytes are counted live from the mount (a streamed listing of the REMOVE members, as
the sensor does); moved and failed come from the migration state (:mod:`airflow_hybrid.migration.state`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

from airflow_hybrid.migration.claims import MigrationClaims
from airflow_hybrid.migration.planner import count_candidates
from airflow_hybrid.migration.registry import PolicyEntry, load_policies_file
from airflow_hybrid.migration.state import MigrationState, default_state_url

log = logging.getLogger(__name__)


def policy_status_rows(
    policies_path: str | os.PathLike | None = None, *, count_pending: bool = True, max_failures: int = 20
) -> list[dict[str, Any]]:
    """One row per valid policy of the policies file.

    Keys: ``name``, ``dag_id``, ``mount``, ``path``, ``policy``, ``pending_files``, ``pending_bytes``
    (``None`` when the mount could not be listed; ``error`` says why), ``moved_files``, ``moved_bytes``,
    ``kept_files``, ``failed_files`` (kept + failed), ``failures`` (``[{path, status, reason}]``, most
    recent first) and ``last_run`` (``{state, started_at, finished_at, plan_id, batch, moved, ...}`` or
    ``None``). An invalid entry of the file gives a row of ``None`` values with its ``error``.
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
    "moved_files": None,
    "moved_bytes": None,
    "failed_files": None,
    "failures": [],
    "last_run": None,
}


def entry_status(entry: PolicyEntry, *, count_pending: bool = True, max_failures: int = 20) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": entry.name,
        "dag_id": entry.dag_id,
        "mount": entry.mount,
        "path": entry.path,
        "policy": entry.policy.to_text(),
        "pending_files": None,
        "pending_bytes": None,
    }
    mount = None
    errors = []
    try:
        from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

        mount = HybridMountHook(entry.mount).get_mount()
    except Exception as err:
        errors.append(f"mount {entry.mount!r} unavailable: {type(err).__name__}: {err}")
    if mount is not None and count_pending:
        try:
            count = count_candidates(mount, entry.path, entry.policy)
            row["pending_files"], row["pending_bytes"] = count.files, count.bytes
        except Exception as err:
            errors.append(f"listing pending files failed: {type(err).__name__}: {err}")
    try:
        state = MigrationState.for_mount(mount) if mount is not None else MigrationState(default_state_url())
        row.update(state.totals(entry.name, entry.mount))
        row["failed_files"] += row.pop("kept_files")
        row["failures"] = state.failures(entry.name, entry.mount, limit=max_failures)
        row["last_run"] = _run(state.last_run(entry.name, entry.mount))
        prefix = entry.path.strip("/")
        row["in_progress_files"] = sum(
            1 for claim in MigrationClaims(state, entry.mount).holders()
            if not prefix or claim.path == prefix or claim.path.startswith(f"{prefix}/")
        )
    except Exception as err:
        errors.append(f"migration state unavailable: {type(err).__name__}: {err}")
        row.update(moved_files=None, moved_bytes=None, failed_files=None, failures=[], last_run=None,
                   in_progress_files=None)
    finally:
        if mount is not None:
            mount.close()
    if errors:
        row["error"] = "; ".join(errors)
    return row


def _run(run: dict[str, Any] | None) -> dict[str, Any] | None:
    if run is None:
        return None
    keys = (
        "state",
        "plan_id",
        "batch",
        "engine",
        "files",
        "moved",
        "skipped",
        "kept",
        "failed",
        "bytes",
        "message",
    )
    result = {key: run[key] for key in keys}
    for key in ("started_at", "finished_at"):
        result[key] = run[key].isoformat(timespec="seconds") if run[key] is not None else None
    return result
