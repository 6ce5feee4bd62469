"""A migration with connection resets injected on each S3 call type in turn, and on the data node's ``OPEN``,
over HDFS (the devstack's WebHDFS server and Apache Hadoop's) and S3 (moto, the devstack's S3 server, and
SeaweedFS): every file is moved, or kept for a true reason, and no multipart upload is left open.

Faults are injected on the client side (:mod:`tests.faults`), so they work whatever server answers:
``lost`` (the server applies the request and its answer is dropped, e.g. a ``CreateMultipartUpload`` whose
upload id is never seen while botocore retries and creates a second upload), ``reset`` (the request never
arrives), and for ``OPEN`` a reset before the answer or a body cut after 1 KiB. Each run migrates a fresh
dataset (small files below the multipart threshold, multipart ones above it, and one file changed after the
plan, whose copy the migration deletes: the ``DeleteObject`` call), its faults drawn from a seeded RNG.
"""

from __future__ import annotations

import io
import json
import random
import uuid

import pytest

from airflow_hybrid.devstack.stack import airflow_env
from airflow_hybrid.migration.migrator import Migrator
from airflow_hybrid.migration.planner import load_plan, plan_migration
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.policy.parser import parse_policy
from tests.faults import S3Faults, WebHdfsFaults
from tests.integration.migrate_support import MOUNT, POLICY, MiB, make_dataset
from tests.seaweedfs_fixtures import SEAWEED_BUCKET

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]

#: The call types faulted, one per run, and how: kinds, faults per run, requests skipped before each at most
#: (each fault waits for the previous one, so a run has enough requests of the type for all of them).
FAULTS = {
    "CreateMultipartUpload": (("lost",), 1, 1),  # resets of both: tests/integration/stores/s3/test_multipart.py
    "UploadPart": (("lost", "reset"), 2, 2),
    "CompleteMultipartUpload": (("lost",), 1, 1),
    "PutObject": (("lost", "reset"), 2, 1),
    "DeleteObject": (("lost", "reset"), 1, 0),
    "datanode.OPEN": (("body", "reset"), 2, 2),
}
SEEDS = {"devstack": (11, 12, 13), "hadoop": (21, 22)}
PART = 5 * MiB


@pytest.fixture(params=["moto", "seaweedfs"])
def mount_on(request, hdfs_server, monkeypatch, tmp_path):
    """The union mount of ``hdfs_server`` and the S3 backend (small parts, 3 attempts), and a raw S3 client."""
    connections = hdfs_server.connections()
    s3 = connections[MOUNT]["extra"]["members"]["s3"]
    if request.param == "seaweedfs":
        seaweed = request.getfixturevalue("seaweed_s3")
        connections["aws_seaweed_faults"] = seaweed.aws_connection()
        s3.update(uri=f"s3://{SEAWEED_BUCKET}/faults-{uuid.uuid4().hex[:8]}", conn_id="aws_seaweed_faults")
        raw = seaweed.client()
    else:
        import boto3

        aws = connections["aws_default"]
        raw = boto3.client("s3", endpoint_url=aws["extra"]["endpoint_url"], region_name="us-east-1",
                           aws_access_key_id=aws["login"], aws_secret_access_key=aws["password"])
    s3["options"] = {"part_size": "5MiB", "upload_concurrency": 2, "max_attempts": 3}
    home = tmp_path / "airflow-home"
    home.mkdir()
    monkeypatch.setenv("AIRFLOW_HOME", str(home))
    for name, value in airflow_env(connections).items():
        monkeypatch.setenv(name, value)
    bucket, _, prefix = s3["uri"].removeprefix("s3://").partition("/")
    return request.param, raw, bucket, prefix


def _open_uploads(raw, bucket: str, prefix: str) -> list[dict]:
    return raw.list_multipart_uploads(Bucket=bucket, Prefix=f"{prefix}/").get("Uploads", [])


def test_faults_on_each_call_type_lose_nothing_and_leave_no_upload(mount_on, hdfs_server):
    backend, raw, bucket, prefix = mount_on
    policy = parse_policy(POLICY)
    report = []
    for operation, (kinds, count, max_skip) in FAULTS.items():
        for seed in SEEDS[hdfs_server.kind]:
            rng = random.Random(f"{operation}-{seed}")
            mount = HybridMount.from_conn_id(MOUNT)
            try:
                dataset = make_dataset(mount, seed=seed, small=5, large=3, large_size=PART + 123, new=1, mixed=True)
                plan = plan_migration(mount, dataset.root, POLICY)
                changed = sorted(p for p, d in dataset.old.items() if 0 < len(d) < PART)[0]
                dataset.hdfs.write(changed, io.BytesIO(b"changed after the plan"))  # kept; its copy is deleted
                s3_faults = S3Faults(mount.members["s3"].client)
                hdfs_faults = WebHdfsFaults(hdfs_server.webhdfs_port)
                for _ in range(count):
                    kind, skip = rng.choice(kinds), rng.randint(0, max_skip)
                    if operation == "datanode.OPEN":
                        hdfs_faults.arm(operation, kind, skip=skip)
                    else:
                        s3_faults.arm(operation, kind, skip=skip)
                with hdfs_faults.installed():
                    summary = Migrator(mount, policy, attempts=4, retry_delay=0.01).run(
                        load_plan(None, plan.plan_id).iter_entries(), concurrency=3)
                injected = {**s3_faults.injected, **hdfs_faults.injected}
                assert s3_faults.pending() == hdfs_faults.pending() == 0, f"faults not all injected: {injected}"

                where = f"{operation} seed {seed}: {summary.to_dict()}"
                assert summary.failed == 0 and summary.kept == 1, where
                assert summary.moved + summary.skipped == len(dataset.old) - 1, where
                assert "changed" in summary.failures[0]["reason"] and summary.failures[0]["path"] == changed, where
                assert _open_uploads(raw, bucket, prefix) == [], where
                moved = {p: d for p, d in dataset.old.items() if p != changed}
                assert dataset.s3_paths() == sorted(moved), where
                assert dataset.hdfs_paths() == sorted([*dataset.new, changed]), where
                for path, data in moved.items():
                    assert dataset.read("s3", path) == data, f"{where}: {path}"
                assert dataset.read("hdfs", changed) == b"changed after the plan"
                report.append((operation, seed, dict(injected), summary.moved, summary.skipped, summary.kept))
            finally:
                mount.close()
    print(f"\n{backend} + {hdfs_server.kind}: {json.dumps(report)}")
    assert {op for op, *_ in report} == set(FAULTS)
