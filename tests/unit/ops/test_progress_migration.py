"""Migration progress: bytes written as they stream, a mid-file line on the timer, one rate in the log.

The members are local directories (the copy, verification and removal are the real ones); the source of
the large file streams one chunk, then waits until the test releases it; the clock and timer are the test's.
"""

from __future__ import annotations

import logging
import threading
from types import SimpleNamespace

import pytest

from airflow_hybrid.migration.migrator import Migrator
from airflow_hybrid.migration.planner import PlanEntry
from airflow_hybrid.ops.progress import ProgressTracker
from airflow_hybrid.policy.parser import parse_policy
from airflow_hybrid.stores.local import LocalStore
from airflow_hybrid.values import format_bytes
from tests.unit.ops.progress_support import (
    DEADLINE,
    Clock,
    GatedSource,
    Lines,
    ManualTicker,
    progress_threads,
    rate_of,
)

MiB = 1024 * 1024
POLICY = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"


@pytest.fixture
def lines():
    handler = Lines(logging.getLogger("test.progress.migration"))
    yield handler
    handler.close()


def entry(store: LocalStore, path: str) -> PlanEntry:
    info = store.info(path)
    return PlanEntry(path=path, size=info.size, mtime=info.mtime, source="hdfs", etag=info.etag)


def test_migration_logs_bytes_mid_file_and_one_rate(dirs, lines, caplog):
    hdfs_dir, s3_dir = dirs
    (hdfs_dir / "big.bin").write_bytes(b"b" * (4 * MiB))
    (hdfs_dir / "done.bin").write_bytes(b"d" * MiB)
    (s3_dir / "done.bin").write_bytes(b"d" * MiB)  # copied by an earlier run: skipped, nothing written
    hdfs, s3 = GatedSource(f"file://{hdfs_dir}", chunk=MiB), LocalStore(f"file://{s3_dir}")
    mount = SimpleNamespace(members={"hdfs": hdfs, "s3": s3})
    entries = [entry(hdfs, "big.bin"), entry(hdfs, "done.bin")]
    clock, ticker = Clock(), ManualTicker()
    progress = ProgressTracker(2, 5 * MiB, interval=10, logger=lines.logger, label="Migration p1", clock=clock,
                               ticker=ticker)
    skipped = threading.Event()
    result: dict = {}

    def on_outcome(outcome) -> None:
        if outcome.path == "done.bin":
            skipped.set()

    def run() -> None:
        result["summary"] = Migrator(mount, parse_policy(POLICY), retry_delay=0).run(
            entries, concurrency=2, on_outcome=on_outcome, progress=progress)

    with caplog.at_level(logging.INFO, logger="airflow_hybrid.migration.migrator"):
        worker = threading.Thread(target=run)
        worker.start()
        try:
            hdfs.blocked("big.bin")  # 1 of its 4 MiB written
            assert skipped.wait(DEADLINE)
            clock.now += 10
            ticker.tick()
            # done.bin is done with nothing to write: out of the bytes to come (5 MiB planned, 4 to write)
            assert lines.messages[-1] == "Migration p1: 1/2 files, 1.0 MiB/4.0 MiB, 102.4 KiB/s, ETA 0:00:30"
            clock.now += 10
        finally:
            hdfs.release_all()
            worker.join(DEADLINE)
    summary = result["summary"]
    assert (summary.moved, summary.skipped, summary.bytes, summary.failed) == (1, 1, 4 * MiB, 0)
    assert (s3_dir / "big.bin").read_bytes() == b"b" * (4 * MiB) and not (hdfs_dir / "big.bin").exists()
    assert summary.elapsed == progress.elapsed == 20 and summary.throughput == progress.rate
    final = progress.maybe_log(force=True)  # as PlanExecution.migrate logs it after the run
    assert final == "Migration p1: 2/2 files, 4.0 MiB/4.0 MiB, 204.8 KiB/s, ETA 0:00:00"
    migrated = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("Migrated 2 of 2"))
    assert rate_of(final) == rate_of(migrated) == format_bytes(4 * MiB / 20)
    assert not progress_threads()


def test_bytes_written_count_once_per_store_member(tmp_path, lines):
    stores = {}
    for name in ("hdfs", "s3", "gcs"):
        (tmp_path / name).mkdir()
        stores[name] = LocalStore(f"file://{tmp_path / name}")
    (tmp_path / "hdfs" / "f.bin").write_bytes(b"f" * MiB)
    policy = parse_policy("ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE, UFS[gcs]:STORE)")
    progress = ProgressTracker(1, 2 * MiB, interval=0, logger=lines.logger, label="Migration")  # as PlanExecution
    summary = Migrator(SimpleNamespace(members=stores), policy).run([entry(stores["hdfs"], "f.bin")],
                                                                   progress=progress)
    assert (summary.moved, summary.bytes) == (1, 2 * MiB) and summary.elapsed == progress.elapsed
    rate = format_bytes(summary.throughput)
    assert progress.maybe_log(force=True) == f"Migration: 1/1 files, 2.0 MiB/2.0 MiB, {rate}/s, ETA 0:00:00"


def test_the_timer_stops_when_the_run_fails(dirs, lines):
    hdfs_dir, s3_dir = dirs
    (hdfs_dir / "a.bin").write_bytes(b"a" * 10)
    hdfs, s3 = LocalStore(f"file://{hdfs_dir}"), LocalStore(f"file://{s3_dir}")
    progress = ProgressTracker(1, 10, interval=10, logger=lines.logger, label="Migration fails",
                               ticker=ManualTicker())

    def on_outcome(outcome) -> None:
        assert progress_threads(), "the timer runs while files migrate"
        raise RuntimeError("the state database went away")

    with pytest.raises(RuntimeError, match="went away"):
        Migrator(SimpleNamespace(members={"hdfs": hdfs, "s3": s3}), parse_policy(POLICY)).run(
            [entry(hdfs, "a.bin")], on_outcome=on_outcome, progress=progress)
    assert not progress_threads() and not progress.running
