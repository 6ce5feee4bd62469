"""``UfsMigrateOperator(engine="distcp")``: Apache Hadoop DistCp copies a batch, then the same verification
and removal as the other engines.

Real everything: Apache Hadoop 3.5's HDFS (the ``hadoop_hdfs`` fixture) as the REMOVE member, moto's S3
server (the devstack's) as the STORE member, and DistCp itself with local MapReduce in a JVM of its own
(:func:`~airflow_hybrid.migration.distcp.local_distcp_command`), reading ``hdfs://127.0.0.1:<rpc>/tmp/...`` and writing
``s3a://`` through S3A. The mount's HDFS member names the namenode, as DistCp needs; our store reaches the
same files through the WebHDFS connection (to write the test files, verify and remove). Each DistCp JVM
takes some seconds, so every test runs at most two of them over a few small files.
"""

from __future__ import annotations

import io
import os
import sys
import textwrap
import uuid

import pytest

from airflow_hybrid.devstack.stack import airflow_env, devstack_connections
from airflow_hybrid.migration.distcp import (
    DEVSTACK_S3A_PROPERTIES,
    CopyJob,
    DistCp,
    DistCpError,
    hadoop_uri,
    local_distcp_command,
    s3a_properties,
)
from airflow_hybrid.migration.planner import plan_migration
from airflow_hybrid.migration.state import MigrationState
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.operators.migrate import UfsMigrateOperator
from airflow_hybrid.stores.hdfs.store import HdfsStore
from tests.integration.migrate_support import POLICY, make_dataset

pytestmark = pytest.mark.integration

MOUNT = "distcp_lake"
BUCKET = "hybrid-lake"

#: A Hadoop client that SIGKILLs DistCp's JVM, then itself, as soon as DistCp reports its first object
#: written: a client killed in the middle of the job (e.g. the worker's machine going down).
KILLING_WRAPPER = textwrap.dedent(
    """
    import os, signal, subprocess, sys

    jvm = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for line in jvm.stdout:
        sys.stdout.buffer.write(line)
        sys.stdout.flush()
        if b"RetriableFileCopyCommand: Completed writing" in line:
            jvm.kill()
            os.kill(os.getpid(), signal.SIGKILL)
    sys.exit(jvm.wait())
    """
)


@pytest.fixture
def hadoop_lake(hadoop_hdfs, devstack, monkeypatch, tmp_path):
    """The mount ``distcp_lake``: ``hdfs://127.0.0.1:<rpc>/tmp/distcp-<id>`` on Apache Hadoop (WebHDFS as
    ``hdfs``) + ``s3://hybrid-lake/distcp-<id>`` on the devstack's S3 server."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    name = f"distcp-{uuid.uuid4().hex[:8]}"
    connections = devstack_connections(
        webhdfs_host=hadoop_hdfs.webhdfs_host, webhdfs_port=hadoop_hdfs.webhdfs_port,
        s3_endpoint=devstack.s3_endpoint, user="hdfs", mount_conn_id=MOUNT, s3_prefix=name,
    )
    connections[MOUNT]["extra"]["members"]["hdfs"]["uri"] = f"{hadoop_hdfs.fs_uri}/tmp/{name}"
    for key, value in airflow_env(connections).items():
        monkeypatch.setenv(key, value)
    mount = HybridMount.from_conn_id(MOUNT)
    yield mount
    mount.close()


@pytest.fixture
def distcp_command(tmp_path) -> list[str]:
    return local_distcp_command(tmp_path / "distcp")


@pytest.fixture
def events(monkeypatch):
    """The order of DistCp runs and source removals, with what the STORE member held at each removal."""
    recorded: list[tuple] = []
    run, delete = DistCp.run, HdfsStore.delete

    def recording_run(self, job, defaults=None):
        recorded.append(("distcp", job.files))
        return run(self, job, defaults)

    def recording_delete(self, path, recursive=False):
        recorded.append(("delete", path))
        return delete(self, path, recursive)

    monkeypatch.setattr(DistCp, "run", recording_run)
    monkeypatch.setattr(HdfsStore, "delete", recording_delete)
    return recorded


def _operator(distcp_command, **kwargs) -> UfsMigrateOperator:
    defaults = {"task_id": "migrate", "mount_conn_id": MOUNT, "engine": "distcp", "concurrency": 4,
                "file_retry_delay": 0.05, "distcp_command": distcp_command, "distcp_env": {"HADOOP_USER_NAME": "hdfs"},
                "distcp_properties": DEVSTACK_S3A_PROPERTIES}
    return UfsMigrateOperator(**{**defaults, **kwargs})


def test_distcp_copies_each_directory_then_every_copy_is_verified_before_its_source_is_removed(
    hadoop_lake, distcp_command, events, monkeypatch
):
    dataset = make_dataset(hadoop_lake, seed=71, small=4, medium=1, new=1)  # small/ (4 old, 1 new) and medium/ (1)
    paths = sorted(dataset.old)
    present, conflict = paths[-1], paths[-2]  # both in small/
    dataset.s3.write(present, io.BytesIO(dataset.old[present]))  # an earlier run copied it already
    dataset.s3.write(conflict, io.BytesIO(b"not the same object"))
    plan = plan_migration(hadoop_lake, dataset.root, POLICY)

    at_removal = {}
    delete = HdfsStore.delete

    def check_then_delete(self, path, recursive=False):
        at_removal[path] = dataset.read("s3", path)  # the copy the removal relies on
        return delete(self, path, recursive)

    monkeypatch.setattr(HdfsStore, "delete", check_then_delete)
    summary = _operator(distcp_command, plan_id=plan.plan_id, policy_name="bulk", fail_on_error=False).execute({})

    # medium/ (one file: DistCp's solitary-file target) and small/ (two files lacking copies) -> two runs,
    # both before any removal
    assert sorted(events[:2]) == [("distcp", 1), ("distcp", 2)]
    assert [e for e in events[2:] if e[0] == "distcp"] == []
    assert sorted(at_removal) == sorted(set(paths) - {conflict})
    assert all(at_removal[path] == dataset.old[path] for path in at_removal)
    copied = set(paths) - {conflict}
    assert (summary["engine"], summary["files"], summary["moved"], summary["skipped"], summary["failed"]) == (
        "distcp", len(paths), len(copied), 0, 1)
    assert summary["migrated_bytes"] == sum(len(dataset.old[p]) for p in copied)
    assert summary["failures"][0]["path"] == conflict and "not overwritten" in summary["failures"][0]["reason"]
    for path in copied:
        assert dataset.read("s3", path) == dataset.old[path] and not dataset.hdfs.exists(path)
    assert dataset.read("s3", conflict) == b"not the same object"  # never overwritten by DistCp
    assert dataset.read("hdfs", conflict) == dataset.old[conflict]  # so its source is kept
    assert dataset.hdfs_paths() == sorted([conflict, *dataset.new])
    for path in set(paths) - {present, conflict}:  # S3A wrote them with S3's whole-object CRC32C
        assert dataset.s3.checksum(path).algorithm == "CRC32C"
    assert MigrationState.for_mount(hadoop_lake).last_run("bulk", MOUNT)["engine"] == "distcp"

    # A re-run of the plan converges without DistCp: every moved file is recognised, the conflict stays.
    events.clear()
    again = _operator(distcp_command, plan_id=plan.plan_id, fail_on_error=False).execute({})
    assert events == []
    assert (again["moved"], again["skipped"], again["failed"]) == (0, len(copied), 1)


def test_a_failing_distcp_removes_nothing_and_the_next_run_converges(hadoop_lake, distcp_command, events):
    dataset = make_dataset(hadoop_lake, seed=72, small=3, new=0)
    unreachable = {f"fs.s3a.bucket.{BUCKET}.endpoint": "http://127.0.0.1:1",  # a destination nobody answers
                   "fs.s3a.attempts.maximum": "0", "fs.s3a.retry.limit": "0"}
    operator = _operator(distcp_command, path=dataset.root, policy=POLICY, policy_name="failing",
                         distcp_properties={**DEVSTACK_S3A_PROPERTIES, **unreachable})
    with pytest.raises(DistCpError) as failure:
        operator.execute({})
    message = str(failure.value)
    assert failure.value.returncode == 25
    assert "failed with exit status 25 (the copy failed)" in message
    assert "Connection refused" in message and message.endswith("; no source was removed")
    assert not [e for e in events if e[0] == "delete"]
    assert dataset.hdfs_paths() == sorted(dataset.old) and dataset.s3_paths() == []
    assert all(dataset.read("hdfs", path) == data for path, data in dataset.old.items())
    run = MigrationState.for_mount(hadoop_lake).last_run("failing", MOUNT)
    assert run["state"] == "failed" and "exit status 25" in run["message"]

    summary = _operator(distcp_command, path=dataset.root, policy=POLICY).execute({})
    assert (summary["moved"], summary["failed"]) == (3, 0)
    dataset.assert_migrated()


def test_a_killed_distcp_removes_nothing_and_the_next_run_copies_only_the_rest(
    hadoop_lake, distcp_command, events, tmp_path
):
    dataset = make_dataset(hadoop_lake, seed=73, small=0, medium=3, new=0)  # 1-3 MiB each, in medium/
    wrapper = tmp_path / "killing_client.py"
    wrapper.write_text(KILLING_WRAPPER)
    plan = plan_migration(hadoop_lake, dataset.root, POLICY)
    # At 4 MB/s a file takes a quarter of a second or more: the kill lands while the job is mid-way.
    killing = _operator([sys.executable, str(wrapper), *distcp_command], plan_id=plan.plan_id,
                        distcp_args=["-bandwidth", "4"])
    with pytest.raises(DistCpError, match=r"was killed by SIGKILL.*; no source was removed") as killed:
        killing.execute({})
    assert killed.value.returncode == -9
    assert not [e for e in events if e[0] == "delete"]
    assert dataset.hdfs_paths() == sorted(dataset.old)
    assert all(dataset.read("hdfs", path) == data for path, data in dataset.old.items())
    written = dataset.s3_paths()
    assert 1 <= len(written) < 3, written  # killed after its first object, before its last
    assert all(dataset.read("s3", path) == dataset.old[path] for path in written)  # complete copies only

    events.clear()
    summary = _operator(distcp_command, plan_id=plan.plan_id).execute({})
    assert events[0] == ("distcp", 3 - len(written))  # what the killed run copied is not copied again
    assert (summary["moved"], summary["failed"]) == (3, 0)
    dataset.assert_migrated()


# -- without a JVM: the command, the properties and the error mapping ---------------------------------
def test_job_command_passes_properties_in_a_private_file_and_gives_a_solitary_file_its_own_target(tmp_path):
    distcp = DistCp(["hadoop", "distcp"], args=["-m", "4"])
    many = CopyJob("hdfs", "s3", "hdfs://nn:8020/lake/t", "s3://b/lake/t", "file:///tmp/l.txt", 2, 10, "t/a")
    one = CopyJob("hdfs", "s3", "hdfs://nn:8020/lake/t", "s3://b/lake/t", "file:///tmp/l.txt", 1, 5, "t/a")
    assert distcp.job_command(many, "/x/job.xml") == [
        "hadoop", "distcp", "-conf", "/x/job.xml", "-direct", "-m", "4", "-f", "file:///tmp/l.txt", "s3a://b/lake/t"]
    assert distcp.job_command(one, "/x/job.xml")[-1] == "s3a://b/lake/t/a"
    assert DistCp(s3_scheme="s3").job_command(many, "/j")[-1] == "s3://b/lake/t"
    to_hdfs = CopyJob("s3", "hdfs", "s3://b/t", "hdfs://nn:8020/t", "file:///tmp/l.txt", 2, 10, "t/a")
    assert distcp.job_command(to_hdfs, "/j")[4:] == ["-m", "4", "-f", "file:///tmp/l.txt", "hdfs://nn:8020/t"]
    assert hadoop_uri("s3://b/k") == "s3a://b/k" and hadoop_uri("hdfs:///x") == "hdfs:///x"


def test_s3a_properties_come_from_the_connection_per_bucket(monkeypatch):
    from airflow_hybrid.stores.s3.store import S3Store

    monkeypatch.setenv("AIRFLOW_CONN_S3_ONPREM", '{"conn_type": "aws", "login": "AK", "password": "SK", '
                       '"extra": {"endpoint_url": "http://minio:9000", "region_name": "eu-west-1"}}')
    store = S3Store("s3://lake/warehouse", aws_conn_id="s3_onprem")
    prefix = "fs.s3a.bucket.lake."
    assert s3a_properties(store) == {
        prefix + "create.checksum.algorithm": "CRC32C", prefix + "endpoint": "http://minio:9000",
        prefix + "connection.ssl.enabled": "false", prefix + "path.style.access": "true",
        prefix + "endpoint.region": "eu-west-1", prefix + "access.key": "AK", prefix + "secret.key": "SK",
    }
    assert s3a_properties(store, from_connection=False) == {prefix + "create.checksum.algorithm": "CRC32C"}


def test_a_failed_run_names_distcp_error_and_keeps_secrets_off_the_command_line(tmp_path, caplog):
    script = tmp_path / "fake_distcp.sh"
    script.write_text(
        "#!/bin/sh\n"
        'conf="$2"; test "$(stat -c %a "$conf")" = 600 || exit 3\n'
        'grep -q "<value>s3cr3t</value>" "$conf" || exit 4\n'
        'echo "2026-01-01 00:00:00,000 INFO tools.DistCp: Input Options: ..."\n'
        'echo "2026-01-01 00:00:01,000 ERROR tools.DistCp: Exception encountered " >&2\n'
        'echo "java.io.FileNotFoundException: File hdfs://nn/lake/t/a does not exist" >&2\n'
        'echo "\tat org.apache.hadoop.tools.DistCp.run(DistCp.java:1)" >&2\n'
        "exit 25\n"
    )
    os.chmod(script, 0o755)
    job = CopyJob("hdfs", "s3", "hdfs://nn/lake/t", "s3://b/lake/t", "file:///tmp/l.txt", 2, 10, "t/a")
    distcp = DistCp([str(script)], properties={"fs.s3a.bucket.b.secret.key": "s3cr3t"})
    with caplog.at_level("INFO"), pytest.raises(DistCpError) as failure:
        distcp.run(job)
    assert str(failure.value) == (
        "DistCp of 2 files hdfs://nn/lake/t -> s3://b/lake/t (list file:///tmp/l.txt) failed with exit status 25 "
        "(the copy failed): Exception encountered: java.io.FileNotFoundException: File hdfs://nn/lake/t/a does "
        "not exist; no source was removed"
    )
    assert "s3cr3t" not in caplog.text and "'fs.s3a.bucket.b.secret.key': '***'" in caplog.text
    assert "[distcp] 2026-01-01 00:00:01,000 ERROR tools.DistCp: Exception encountered" in caplog.text


def test_a_client_that_cannot_start_is_a_distcp_error():
    job = CopyJob("hdfs", "s3", "hdfs://nn/t", "s3://b/t", "file:///tmp/l.txt", 2)
    with pytest.raises(DistCpError, match=r"could not start DistCp \(/nonexistent/hadoop\).*no source was removed"):
        DistCp(["/nonexistent/hadoop", "distcp"]).run(job)
