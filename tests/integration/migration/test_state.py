"""The migration state on SQLite and PostgreSQL: latest outcome per file, totals, failures, last run."""

from __future__ import annotations

import uuid

import pytest

from airflow_hybrid.migration.migrator import FAILED, KEPT, MOVED, SKIPPED, FileOutcome, MigrationSummary
from airflow_hybrid.migration.state import (
    MigrationState,
    OutcomeRecorder,
    default_state_url,
    state_url_for_mount,
)

pytestmark = pytest.mark.integration




def _outcome(path: str, status: str, size: int = 10, reason: str | None = None) -> FileOutcome:
    return FileOutcome(path, "hdfs", status, size, size if status == MOVED else 0, reason)


def test_latest_outcome_per_file_totals_and_failures(state):
    policy, mount = f"p-{uuid.uuid4().hex[:8]}", "lake"
    state.record(policy, mount, [_outcome("a", MOVED, 100), _outcome("b", FAILED, 7, "conflict"),
                                 _outcome("c", KEPT, 5, "changed"), _outcome("d", SKIPPED, 3)], plan_id="p1")
    assert state.totals(policy, mount) == {"moved_files": 2, "moved_bytes": 103, "kept_files": 1, "failed_files": 1}
    assert sorted((f["path"], f["status"], f["reason"]) for f in state.failures(policy, mount)) == [
        ("b", "failed", "conflict"), ("c", "kept", "changed")]

    # a later run moves the failed file: one row per file, the latest outcome wins
    state.record(policy, mount, [_outcome("b", MOVED, 7)], plan_id="p2")
    assert state.totals(policy, mount) == {"moved_files": 3, "moved_bytes": 110, "kept_files": 1, "failed_files": 0}
    assert state.outcome(policy, mount, "b")["plan_id"] == "p2"
    assert state.totals("other-policy", mount)["moved_files"] == 0  # policies are separate


def test_runs_and_the_last_one(state):
    policy, mount = f"p-{uuid.uuid4().hex[:8]}", "lake"
    assert state.last_run(policy, mount) is None
    first = state.start_run(policy, mount, "tpcds", plan_id="p1", batch=0, engine="local")
    summary = MigrationSummary(files=3, moved=2, skipped=0, kept=0, failed=1, bytes=42)
    state.finish_run(first, summary, state="failed", message="b: conflict")
    second = state.start_run(policy, mount, "tpcds", plan_id="p1", batch=1, engine="emr")
    run = state.last_run(policy, mount)
    assert (run["id"], run["state"], run["engine"], run["finished_at"]) == (second, "running", "emr", None)
    state.finish_run(second, MigrationSummary(files=1, moved=1, bytes=9), state="success")
    run = state.last_run(policy, mount)
    assert (run["state"], run["moved"], run["bytes"], run["batch"]) == ("success", 1, 9, 1)
    assert run["started_at"].tzinfo is not None and run["finished_at"] >= run["started_at"]


def test_recorder_flushes_in_batches_and_never_raises(tmp_path, caplog):
    state = MigrationState(f"sqlite:///{tmp_path}/state.db")
    recorder = OutcomeRecorder(state, "p", "lake", "plan", flush_every=2)
    recorder(_outcome("a", MOVED))
    assert state.totals("p", "lake")["moved_files"] == 0  # buffered
    recorder(_outcome("b", MOVED))
    assert state.totals("p", "lake")["moved_files"] == 2
    recorder(_outcome("c", MOVED))
    recorder.flush()
    assert state.totals("p", "lake")["moved_files"] == 3

    broken = OutcomeRecorder(MigrationState(f"sqlite:///{tmp_path}/other.db"), "p", "lake", "plan")
    broken.state.engine.dispose()
    broken.state.record = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("database gone"))
    broken(_outcome("x", MOVED))
    broken.flush()  # logged, not raised
    assert "Could not record 1 migration outcomes" in caplog.text


def test_state_url_defaults_to_airflow_home_or_the_mounts_catalog(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_state_url() == f"sqlite:///{tmp_path}/hybrid/migration.db"

    class Mount:
        options = {"catalog_url": "postgresql://db/catalog"}

    assert state_url_for_mount(Mount()) == "postgresql://db/catalog"
    Mount.options = {}
    assert state_url_for_mount(Mount()) == default_state_url()
