"""UfsMigrateOperator on real servers on loopback: HDFS on the devstack's WebHDFS server and on Apache Hadoop's
(every test marked ``hdfs_servers`` runs on both), S3 on the devstack's moto server.

Old files move and new ones stay; readers of ``hybrid://`` get the same bytes before, during and after;
existing copies are reused, conflicting objects never overwritten; orphaned multipart uploads are
aborted; a source written to during its copy is kept; the status of a policy reflects all of it; a small
file costs five requests. Injected S3 5xx and WebHDFS connection resets are retried (the devstack only: its
links are the ones that can be shaped).
"""

from __future__ import annotations

import argparse
import io
import json
import random
import threading
import time
from datetime import timedelta

import pytest
from airflow.exceptions import AirflowException

from airflow_hybrid.exceptions import TransferError
from airflow_hybrid.migration import migrator as migrator_module
from airflow_hybrid.migration.planner import load_plan, plan_migration
from airflow_hybrid.migration.state import MigrationState
from airflow_hybrid.mount.filesystem import HybridFileSystem
from airflow_hybrid.operators.migrate import UfsMigrateOperator
from airflow_hybrid.stores.hdfs.store import HdfsStore
from tests.client_requests import hdfs_requests
from tests.integration import moto_s3
from tests.integration.migrate_support import MOUNT, POLICY, make_dataset

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]


def _operator(**kwargs) -> UfsMigrateOperator:
    defaults = {"task_id": "migrate", "mount_conn_id": MOUNT, "concurrency": 4, "file_retry_delay": 0.05,
                "progress_interval": 0.5}
    return UfsMigrateOperator(**{**defaults, **kwargs})


def test_old_files_move_new_files_stay_and_readers_always_see_the_same_bytes(union_lake, hdfs_server, monkeypatch):
    # fewer small files on Apache Hadoop, whose writes are slower; multi-block (11 MiB) files on both
    small, medium, new = (40, 3, 5) if hdfs_server.kind == "devstack" else (16, 2, 3)
    dataset = make_dataset(union_lake, seed=1, small=small, medium=medium, large=2, new=new)
    expected = {**dataset.old, **dataset.new}
    fs = HybridFileSystem()

    def hybrid_read(path: str) -> bytes:
        return fs.cat_file(f"hybrid://{MOUNT}/{path}")

    assert all(hybrid_read(path) == data for path, data in expected.items())  # before

    # During, deterministically: just before each source is removed (its copy verified in S3), the
    # logical path is read and must give the same bytes.
    reads_before_removal = []
    delete = HdfsStore.delete

    def delete_after_a_read(self, path, recursive=False):
        reads_before_removal.append(path)
        assert hybrid_read(path) == expected[path], f"{path} changed just before its removal"
        return delete(self, path, recursive)

    monkeypatch.setattr(HdfsStore, "delete", delete_after_a_read)

    # During, freely: a reader thread keeps reading every file while the operator runs.
    stop, mismatches, errors = threading.Event(), [], []
    reads = {"total": 0, "during": 0}
    running = threading.Event()

    def reader() -> None:
        rng = random.Random(7)
        paths = sorted(expected)
        while not stop.is_set():
            path = rng.choice(paths)
            overlapping = running.is_set()
            try:
                if hybrid_read(path) != expected[path]:
                    mismatches.append(path)
            except Exception as err:  # noqa: BLE001 - any failure to read is a test failure
                errors.append(f"{path}: {type(err).__name__}: {err}")
            reads["total"] += 1
            if overlapping and running.is_set():
                reads["during"] += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    running.set()
    try:
        summary = _operator(path=dataset.root, policy=POLICY).execute({})
    finally:
        running.clear()
        stop.set()
        thread.join()

    assert (mismatches, errors) == ([], [])
    assert reads["during"] > 0
    assert sorted(reads_before_removal) == sorted(dataset.old)
    assert (summary["files"], summary["moved"], summary["skipped"], summary["kept"], summary["failed"]) == (
        len(dataset.old), len(dataset.old), 0, 0, 0)
    assert summary["bytes"] == summary["migrated_bytes"] == sum(len(d) for d in dataset.old.values())
    assert summary["throughput_bytes_per_second"] > 0 and "failures" in summary
    dataset.assert_migrated()
    assert all(hybrid_read(path) == data for path, data in expected.items())  # after

    # A second run finds nothing to do.
    again = _operator(path=dataset.root, policy=POLICY).execute({})
    assert again["files"] == 0


def test_plan_batches_run_as_mapped_tasks_each_take_their_batch(union_lake):
    dataset = make_dataset(union_lake, seed=2, small=12, new=1)
    plan = plan_migration(union_lake, dataset.root, POLICY, batch_max_files=5)
    assert plan.batches == 3
    with pytest.raises(AirflowException, match=r"has 3 batches \(0..2\); no batch 3"):
        _operator(plan_id=plan.plan_id, batch=3).execute({})

    first = _operator(plan_id=plan.plan_id, batch=0).execute({})
    assert (first["batch"], first["files"], first["moved"]) == (0, 5, 5)
    loaded = load_plan(None, plan.plan_id)
    batch0 = {entry.path for entry in loaded.iter_batch(0)}
    assert set(dataset.s3_paths()) == batch0  # only batch 0 moved so far
    for batch in (1, 2):
        _operator(plan_id=plan.plan_id, batch=batch).execute({})
    dataset.assert_migrated()


def test_existing_copies_are_reused_and_conflicting_objects_never_overwritten(union_lake):
    dataset = make_dataset(union_lake, seed=3, small=6, new=0)
    paths = sorted(dataset.old)
    identical, same_size, other_size = paths[1], paths[2], paths[3]
    s3 = dataset.s3
    s3.write(identical, io.BytesIO(dataset.old[identical]))  # a crash between copy and removal left it
    different = bytes(b ^ 0xFF for b in dataset.old[same_size])
    s3.write(same_size, io.BytesIO(different))
    s3.write(other_size, io.BytesIO(b"someone else's object"))
    before = {path: s3.info(path) for path in (identical, same_size, other_size)}

    operator = _operator(path=dataset.root, policy=POLICY, policy_name="conflicts")
    with pytest.raises(AirflowException, match="2 of 6 files failed to migrate") as failure:
        operator.execute({})
    assert same_size in str(failure.value)

    # the identical copy was not rewritten, and its source is gone
    assert s3.info(identical) == before[identical]
    assert not dataset.hdfs.exists(identical)
    # the conflicting objects are untouched and their sources kept
    assert dataset.read("s3", same_size) == different
    assert dataset.read("s3", other_size) == b"someone else's object"
    assert s3.info(same_size) == before[same_size]
    for path in (same_size, other_size):
        assert dataset.read("hdfs", path) == dataset.old[path]
    for path in set(paths) - {identical, same_size, other_size}:
        assert dataset.read("s3", path) == dataset.old[path] and not dataset.hdfs.exists(path)

    state = MigrationState.for_mount(union_lake)
    assert state.totals("conflicts", MOUNT) == {"moved_files": 4, "moved_bytes": sum(
        len(dataset.old[p]) for p in set(paths) - {same_size, other_size}), "kept_files": 0, "failed_files": 2}
    assert state.outcome("conflicts", MOUNT, identical)["status"] == "skipped"
    reasons = {f["path"]: f["reason"] for f in state.failures("conflicts", MOUNT)}
    assert set(reasons) == {same_size, other_size}
    assert "already holds a different object of the same size (CRC32C differs); not overwritten" in reasons[same_size]
    assert "already holds a different object (21 bytes" in reasons[other_size]
    run = state.last_run("conflicts", MOUNT)
    assert (run["state"], run["moved"], run["skipped"], run["failed"]) == ("failed", 3, 1, 2)


def test_orphaned_multipart_uploads_of_a_key_are_aborted_before_it_is_written(union_lake, hdfs_server):
    dataset = make_dataset(union_lake, seed=4, small=3, large=1, new=0)
    large = next(p for p in dataset.old if p.startswith(f"{dataset.root}/large/"))
    s3 = dataset.s3
    client = moto_s3.client(hdfs_server.s3_endpoint)
    orphan = client.create_multipart_upload(Bucket=s3.bucket, Key=s3._key(large))["UploadId"]
    client.upload_part(Bucket=s3.bucket, Key=s3._key(large), UploadId=orphan, PartNumber=1, Body=b"x" * 5 * 2**20)
    unrelated_key = s3._key(f"{dataset.root}-elsewhere/file.bin")
    unrelated = client.create_multipart_upload(Bucket=s3.bucket, Key=unrelated_key)["UploadId"]
    assert {u.upload_id for u in s3.list_open_uploads(dataset.root)} == {orphan}

    _operator(path=dataset.root, policy=POLICY).execute({})

    dataset.assert_migrated()  # includes: no upload open below the dataset
    open_elsewhere = {u.upload_id for u in s3.list_open_uploads(f"{dataset.root}-elsewhere")}
    assert open_elsewhere == {unrelated}  # outside the plan: left alone
    client.abort_multipart_upload(Bucket=s3.bucket, Key=unrelated_key, UploadId=unrelated)


def test_a_source_written_to_during_its_copy_is_kept_and_reported(union_lake, monkeypatch):
    dataset = make_dataset(union_lake, seed=5, small=4, medium=1, new=0)
    victim = next(p for p in dataset.old if "/medium/" in p)
    rewritten = b"new content written while the copy ran"
    open_read = HdfsStore.open_read

    def open_read_then_write(self, path, offset=0, length=None):
        stream = open_read(self, path, offset, length)
        if path == victim and not getattr(self, "_rewrote", False):
            self._rewrote = True
            first = stream.read(1024)  # the copy has started ...
            self.write(path, io.BytesIO(rewritten))  # ... when a writer replaces the file
            return _Prepend(first, stream)
        return stream

    monkeypatch.setattr(HdfsStore, "open_read", open_read_then_write)
    summary = _operator(path=dataset.root, policy=POLICY, policy_name="writer").execute({})

    assert (summary["moved"], summary["kept"], summary["failed"]) == (len(dataset.old) - 1, 1, 0)
    [kept] = summary["failures"]
    assert kept["path"] == victim and kept["status"] == "kept"
    assert "the source changed during the copy" in kept["reason"]
    assert dataset.read("hdfs", victim) == rewritten  # the new version stays at its source ...
    assert not dataset.s3.exists(victim)  # ... and the stale copy was deleted, so readers get it
    assert HybridFileSystem().cat_file(f"hybrid://{MOUNT}/{victim}") == rewritten
    outcome = MigrationState.for_mount(union_lake).outcome("writer", MOUNT, victim)
    assert outcome["status"] == "kept" and "changed during the copy" in outcome["reason"]


class _Prepend(io.RawIOBase):
    """``first`` then the rest of ``stream``."""

    def __init__(self, first: bytes, stream) -> None:
        super().__init__()
        self._first, self._stream = first, stream

    def readable(self) -> bool:
        return True

    def read(self, size=-1) -> bytes:
        if self._first:
            data = self._first if size is None or size < 0 else self._first[:size]
            self._first = self._first[len(data):]
            return data
        return self._stream.read(size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


def test_injected_s3_5xx_and_webhdfs_resets_are_retried_until_the_run_completes(devstack_lake, devstack_shaping):
    dataset = make_dataset(devstack_lake, seed=6, small=40, medium=2, large=1, new=2)
    devstack_shaping.configure("s3", fault_rate=0.08, fault_kinds=["500", "503"], seed=11)
    devstack_shaping.configure("webhdfs", fault_rate=0.08, fault_kinds=["reset", "reset_body"], seed=12)
    try:
        summary = _operator(path=dataset.root, policy=POLICY, attempts=8).execute({})
        faults = {link: devstack_shaping.stats(link).get("faults", 0) for link in ("s3", "webhdfs")}
    finally:
        devstack_shaping.clear()
    assert faults["s3"] > 0 and faults["webhdfs"] > 0, faults
    assert (summary["moved"], summary["failed"], summary["kept"]) == (len(dataset.old), 0, 0)
    dataset.assert_migrated()


def test_a_file_failing_transiently_is_retried_after_file_retry_delay_not_the_tasks_retry_delay(union_lake,
                                                                                               monkeypatch):
    """``retry_delay`` is Airflow's (the task's, e.g. from ``default_args``); ``file_retry_delay`` is a file's."""
    dataset = make_dataset(union_lake, seed=8, small=3, medium=0, new=0)
    victim = min(dataset.old)
    copy_file, failed = migrator_module.copy_file, []

    def copy_failing_once(src, path, *args, **kwargs):
        if path == victim and not failed:
            failed.append(path)
            raise TransferError(f"{path}: injected dropped connection")
        return copy_file(src, path, *args, **kwargs)

    sleep, delays = time.sleep, []
    monkeypatch.setattr(migrator_module, "copy_file", copy_failing_once)
    monkeypatch.setattr(migrator_module.time, "sleep", lambda seconds: (delays.append(seconds), sleep(seconds)))
    operator = _operator(path=dataset.root, policy=POLICY, retry_delay=timedelta(minutes=1), file_retry_delay=0.02)
    summary = operator.execute({})

    assert failed == [victim] and 0.02 in delays and timedelta(minutes=1) not in delays
    assert (summary["moved"], summary["failed"], summary["kept"]) == (len(dataset.old), 0, 0)
    assert operator.retry_delay == timedelta(minutes=1) and operator.file_retry_delay == 0.02
    dataset.assert_migrated()


def test_policy_status_and_cli_show_pending_moved_failed_and_last_run(union_lake, tmp_path, capsys):
    from airflow_hybrid.cli.commands import policy_list, policy_status
    from airflow_hybrid.migration.status import policy_status_rows

    dataset = make_dataset(union_lake, seed=7, small=5, new=1)
    conflict = sorted(dataset.old)[0]
    dataset.s3.write(conflict, io.BytesIO(b"a different object"))
    policies = tmp_path / "hybrid_policies.yaml"
    policies.write_text(
        f"policies:\n"
        f"  - {{name: orders, mount: {MOUNT}, path: {dataset.root}, policy: '{POLICY}', schedule: '@daily'}}\n"
        f"  - {{name: broken, mount: {MOUNT}, path: x, policy: 'ufsMigrate(', schedule: '@daily'}}\n"
    )
    [before, invalid] = policy_status_rows(policies)
    assert (before["name"], before["mount"], before["path"], before["policy"]) == ("orders", MOUNT, dataset.root, POLICY)
    assert (before["pending_files"], before["pending_bytes"]) == (5, sum(len(d) for d in dataset.old.values()))
    assert (before["moved_files"], before["failed_files"], before["failures"], before["last_run"]) == (0, 0, [], None)
    assert invalid["name"] is None and invalid["error"].startswith(f"{policies}: entry 1 ('broken'): policy: ")

    with pytest.raises(AirflowException):
        _operator(path=dataset.root, policy=POLICY, policy_name="orders").execute({})

    [after, _] = policy_status_rows(policies)
    assert (after["pending_files"], after["pending_bytes"]) == (1, len(dataset.old[conflict]))
    moved_bytes = sum(len(d) for p, d in dataset.old.items() if p != conflict)
    assert (after["moved_files"], after["moved_bytes"], after["failed_files"]) == (4, moved_bytes, 1)
    [failure] = after["failures"]
    assert failure["path"] == conflict and "not overwritten" in failure["reason"]
    assert after["last_run"]["state"] == "failed" and after["last_run"]["moved"] == 4
    assert after["last_run"]["finished_at"] is not None
    assert after["in_progress_files"] == 0  # the run released its claims

    from airflow_hybrid.migration.claims import MigrationClaims
    from airflow_hybrid.migration.state import MigrationState

    claims = MigrationClaims(MigrationState.for_mount(union_lake), MOUNT)
    claims.claim([conflict, "elsewhere/part-0.bin"])  # a run working on one file of the policy's path
    [busy, _] = policy_status_rows(policies)
    assert busy["in_progress_files"] == 1
    claims.release_all()

    policy_status(argparse.Namespace(policies=str(policies), json=True))
    out = capsys.readouterr().out
    rows = json.loads(out[out.index("[\n"):])
    assert rows[0]["name"] == "orders" and rows[0]["moved_files"] == 4 and rows[0]["failed_files"] == 1
    policy_list(argparse.Namespace(policies=str(policies), json=False))
    text = capsys.readouterr().out
    assert f"hybrid_migrate_orders: {MOUNT}:{dataset.root}  {POLICY}  schedule=@daily" in text
    assert "INVALID " in text and "'broken'" in text


def test_a_plan_evaluated_later_moves_the_files_it_selected(union_lake):
    """A file is selected by its age when planned, not when migrated: a plan made 'now' moves it later."""
    dataset = make_dataset(union_lake, seed=8, small=2, new=1)
    young = next(iter(dataset.new))
    plan = plan_migration(union_lake, dataset.root, POLICY, now=time.time() + 2 * 86_400)
    assert plan.files == 3  # evaluated two days ahead: the new file is old enough too
    summary = _operator(plan_id=plan.plan_id).execute({})
    assert summary["moved"] == 3
    assert dataset.read("s3", young) == dataset.new[young] and not dataset.hdfs.exists(young)


def test_no_store_member_copy_means_no_removal(union_lake):
    """A migrator told not to copy (the bulk path's verification) removes nothing without a copy."""
    from airflow_hybrid.migration.migrator import Migrator
    from airflow_hybrid.policy.parser import parse_policy

    dataset = make_dataset(union_lake, seed=9, small=3, new=0)
    plan = load_plan(None, plan_migration(union_lake, dataset.root, POLICY).plan_id)
    summary = Migrator(union_lake, parse_policy(POLICY), copy=False).run(plan.iter_entries())
    assert (summary.failed, summary.moved) == (3, 0)
    assert dataset.hdfs_paths() == sorted(dataset.old) and dataset.s3_paths() == []
    assert all("holds no copy" in f["reason"] for f in summary.failures)


def test_a_small_file_costs_five_requests(union_lake, hdfs_server, devstack):
    """Small files go straight from the plan into exclusive S3 creates: OPEN (namenode + data node),
    PutObject, one source status after the copy, DELETE -- no HEAD, no status before the copy."""
    dataset = make_dataset(union_lake, seed=10, small=4, new=0)
    plan = plan_migration(union_lake, dataset.root, POLICY)
    with hdfs_requests(hdfs_server) as webhdfs:
        before = {**webhdfs(), **{f"s3 {op}": n for op, n in devstack.stats()["s3"].items()}}  # S3: the devstack's
        assert _operator(plan_id=plan.plan_id).execute({})["moved"] == 4
        after = {**webhdfs(), **{f"s3 {op}": n for op, n in devstack.stats()["s3"].items()}}
    used = {op if op.startswith("s3 ") else f"webhdfs {op}": n - before.get(op, 0)
            for op, n in after.items() if n > before.get(op, 0)}
    # per run: one listing of open uploads (a connection to one namenode is not probed: its first request is)
    assert used == {"webhdfs OPEN": 4, "webhdfs datanode.OPEN": 4, "webhdfs GETFILESTATUS": 4,
                    "webhdfs DELETE": 4, "s3 PutObject": 4, "s3 ListMultipartUploads": 1}, used
    dataset.assert_migrated()


def test_sources_changed_or_gone_since_the_plan_are_not_removed(union_lake):
    dataset = make_dataset(union_lake, seed=11, small=4, new=0)
    plan = plan_migration(union_lake, dataset.root, POLICY)
    changed, gone, *_ = sorted(dataset.old)
    dataset.hdfs.write(changed, io.BytesIO(b"rewritten after the plan"))
    dataset.hdfs.delete(gone)
    summary = _operator(plan_id=plan.plan_id, fail_on_error=False).execute({})
    assert (summary["moved"], summary["kept"], summary["failed"]) == (2, 1, 1)
    reasons = {f["path"]: (f["status"], f["reason"]) for f in summary["failures"]}
    assert reasons[changed][0] == "kept" and "changed during the copy" in reasons[changed][1]
    assert reasons[gone][0] == "failed" and "no longer exists" in reasons[gone][1]
    assert dataset.read("hdfs", changed) == b"rewritten after the plan" and not dataset.s3.exists(changed)
    assert not dataset.s3.exists(gone)
