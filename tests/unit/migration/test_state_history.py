"""The migration state's run history (what each plan found pending, what its runs moved, their DAG runs), its
read-only reader, the in-place upgrade of an older runs table, and ``policy status``'s text (SQLite files)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from airflow_hybrid.migration.migrator import MigrationSummary
from airflow_hybrid.migration.state import HISTORY_COLUMNS, MigrationState, runs_table
from airflow_hybrid.migration.status import pending_text, row_text, run_text
from tests.mounts import local_mount_extra

MiB = 1024**2


def _runs(state: MigrationState) -> None:
    a = state.start_run("orders", "lake", "/o", plan_id="p-1", batch=0, engine="local", plan_files=3,
                        plan_bytes=6 * MiB, plan_created_at="2026-12-01T10:00:00+00:00", dag_id="hybrid_migrate_orders",
                        dag_run_id="scheduled__2026-12-01")
    b = state.start_run("orders", "lake", "/o", plan_id="p-1", batch=1, engine="local", plan_files=3,
                        plan_bytes=6 * MiB, plan_created_at="2026-12-01T10:00:00+00:00", dag_id="hybrid_migrate_orders",
                        dag_run_id="scheduled__2026-12-01")
    state.finish_run(a, MigrationSummary(files=2, moved=1, skipped=1, migrated_bytes=4 * MiB), state="success")
    state.finish_run(b, MigrationSummary(files=1, failed=1), state="failed", message="o/c: conflict")
    c = state.start_run("orders", "lake", "/o", plan_id="p-2", batch=None, engine="emr", plan_files=1,
                        plan_bytes=2 * MiB, plan_created_at="2026-12-02T10:00:00+00:00")
    assert c > b


def test_history_per_plan_and_the_runs_newest_first(tmp_path):
    state = MigrationState(f"sqlite:///{tmp_path}/state.db")
    _runs(state)
    first, second = state.history("orders", "lake")
    assert (first["plan_id"], first["pending_files"], first["pending_bytes"]) == ("p-1", 3, 6 * MiB)
    assert (first["moved_files"], first["moved_bytes"], first["failed_files"], first["runs"]) == (2, 4 * MiB, 1, 2)
    assert first["state"] == "failed" and first["dag_runs"] == [("hybrid_migrate_orders", "scheduled__2026-12-01")]
    assert first["at"].isoformat() == "2026-12-01T10:00:00+00:00"
    assert (second["plan_id"], second["state"], second["moved_files"], second["dag_runs"]) == ("p-2", "running", 0, [])
    runs = state.runs("orders", "lake")
    assert [(r["plan_id"], r["batch"]) for r in runs] == [("p-2", None), ("p-1", 1), ("p-1", 0)]
    assert runs[2]["migrated_bytes"] == 4 * MiB and runs[2]["dag_run_id"] == "scheduled__2026-12-01"
    assert state.history("orders", "lake", limit=1) == [second]


def test_a_reader_changes_nothing_and_reads_a_missing_state_as_empty(tmp_path):
    missing = tmp_path / "none" / "state.db"
    reader = MigrationState(f"sqlite:///{missing}", read_only=True)
    assert reader.runs("orders", "lake") == [] and reader.history("orders", "lake") == []
    assert reader.totals("orders", "lake")["moved_files"] == 0 and reader.failures("orders", "lake") == []
    assert not missing.exists() and not missing.parent.exists()

    path = tmp_path / "state.db"
    _runs(MigrationState(f"sqlite:///{path}"))
    before = path.read_bytes()
    reader = MigrationState(f"sqlite:///{path}", read_only=True)
    assert [p["plan_id"] for p in reader.history("orders", "lake")] == ["p-1", "p-2"]
    assert path.read_bytes() == before
    try:
        reader.start_run("orders", "lake", "/o", plan_id=None, batch=None, engine="local")
    except Exception as err:
        assert "read-only" in str(err)
    else:
        raise AssertionError("a reader recorded a run")


def test_an_older_runs_table_gets_the_history_columns_and_its_rows_read_none(tmp_path):
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    old = sa.MetaData()
    sa.Table(runs_table.name, old, *(sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
                                     for c in runs_table.c if c.name not in HISTORY_COLUMNS))
    old.create_all(engine)
    with engine.begin() as conn:
        conn.execute(sa.text(f"INSERT INTO {runs_table.name} (policy, mount, path, plan_id, engine, state, started_at, "
                             "files, moved, skipped, kept, failed, bytes) VALUES ('orders', 'lake', '/o', 'p-0', "
                             "'local', 'success', '2026-11-30 10:00:00', 1, 1, 0, 0, 0, 10)"))
    engine.dispose()

    state = MigrationState(f"sqlite:///{path}")
    (point,) = state.history("orders", "lake")
    assert (point["plan_id"], point["pending_files"], point["moved_files"], point["moved_bytes"]) == ("p-0", None, 1, 0)
    _runs(state)
    assert [p["pending_files"] for p in state.history("orders", "lake")] == [None, 3, 1]


def test_the_operator_records_its_dag_run_and_its_plans_figures(tmp_path, monkeypatch):
    from airflow_hybrid.operators.migrate import UfsMigrateOperator

    (tmp_path / "hdfs" / "o").mkdir(parents=True)
    (tmp_path / "s3").mkdir()
    for name, size in (("a.bin", 100), ("b.bin", 300)):
        (tmp_path / "hdfs" / "o" / name).write_bytes(b"x" * size)
    extra = local_mount_extra(tmp_path, "s3,hdfs", "s3")
    monkeypatch.setenv("AIRFLOW_CONN_HIST_LAKE", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))

    class TaskInstance:
        dag_id, task_id, run_id, map_index, try_number = "hybrid_migrate_orders", "migrate", "manual__1", -1, 1

    operator = UfsMigrateOperator(task_id="migrate", mount_conn_id="hist_lake", path="/o", policy_name="orders",
                                  policy="ufsMigrate(olderThan(0s), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
                                  plan_store=str(tmp_path / "plans"))
    summary = operator.execute({"ti": TaskInstance()})
    assert summary["moved"] == 2

    run = MigrationState(read_only=True).last_run("orders", "hist_lake")
    assert (run["dag_id"], run["dag_run_id"]) == ("hybrid_migrate_orders", "manual__1")
    assert (run["plan_files"], run["plan_bytes"], run["migrated_bytes"]) == (2, 400, 400)
    assert run["plan_created_at"] is not None and run["plan_created_at"] <= run["started_at"]


# -- policy status's text -------------------------------------------------------------------------------------
def _row(**over):
    run = {"id": 1, "state": "failed", "plan_id": "p-2", "batch": 0, "engine": "local", "files": 5, "moved": 3,
           "skipped": 1, "kept": 0, "failed": 1, "bytes": 3 * MiB, "migrated_bytes": 4 * MiB, "plan_files": 5,
           "plan_bytes": 5 * MiB, "dag_id": "hybrid_migrate_orders", "dag_run_id": "manual__2026-12-02",
           "message": "o/e: conflict", "started_at": "2026-12-02T18:30:00+00:00",
           "finished_at": "2026-12-02T18:31:02+00:00", "plan_created_at": "2026-12-02T18:29:00+00:00"}
    row = {"name": "orders", "dag_id": "hybrid_migrate_orders", "mount": "lake", "path": "/o",
           "policy": "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)", "pending_files": 1,
           "pending_bytes": MiB, "pending_source": "plan", "pending_as_of": "2026-12-02T18:29:00+00:00",
           "moved_files": 1234, "moved_bytes": 1073741824, "failed_files": 1, "in_progress_files": 0,
           "failures": [{"path": "o/e", "status": "failed", "reason": "conflict"}], "last_run": run, "runs": [run],
           "history": []}
    row.update(over)
    return row


def test_policy_status_text_is_for_people():
    row = _row()
    assert run_text(row["last_run"]) == (
        "failed at 2026-12-02 18:31:02 UTC (plan p-2, batch 0, moved 4 files, 4.0 MiB; 1 kept or failed) "
        "in DAG run hybrid_migrate_orders / manual__2026-12-02")
    text = row_text(row)
    assert text.splitlines() == [
        "orders: lake:/o  ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)",
        "    pending: 1 file, 1.0 MiB (as of the plan of 2026-12-02 18:29:00 UTC)",
        "    moved: 1,234 files, 1.0 GiB; kept or failed: 1 file; in progress: 0 files",
        "    last run: " + run_text(row["last_run"]),
        "    failed o/e: conflict",
    ]
    assert "None" not in text and "{" not in text and "1073741824" not in text
    assert pending_text(_row(pending_source="live", pending_files=3, pending_bytes=512)) == "3 files, 512 B (counted now)"
    assert pending_text(_row(pending_source=None)).startswith("unknown (no plan yet")
    assert "last run: none yet" in row_text(_row(last_run=None, runs=[]))
    assert row_text(_row(name=None, error="entry 1: bad")) == "INVALID entry 1: bad"
