"""Crash safety: the operator, in its own process, is killed with SIGKILL at random points, over and over,
on the devstack's WebHDFS server and on Apache Hadoop's HDFS.

Each run executes the same plan in a fresh child process that SIGKILLs itself just before or just after its
n-th *mutating* request (WebHDFS or S3 PUT/POST/DELETE: PutObject, CreateMultipartUpload, UploadPart,
CompleteMultipartUpload, AbortMultipartUpload, DeleteObject, the HDFS DELETE), n and the side drawn from a
seeded RNG, so kills land between any two steps of a migration: mid multipart upload, between upload and
verification, between verification and removal, after a removal the run never heard of... The hook sits in
the child's HTTP layer (:mod:`tests.client_requests`), so it works whatever server answers. After every
kill no byte may be lost: every old file is readable, identical, from HDFS or S3, and every S3 object is a
complete copy. A last run then finishes the job: every file exists exactly once (in S3, not in HDFS),
byte-identical, with no multipart upload left open.

To keep many runs affordable, a parent process imports Airflow and the provider once and forks one child
per run (``os.fork``, as Airflow's own task runner does); the child runs ``UfsMigrateOperator.execute``
and is what gets killed.
"""

from __future__ import annotations

import json
import random
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest

from airflow_hybrid.devstack.stack import airflow_env
from airflow_hybrid.migration.planner import plan_migration
from airflow_hybrid.mount.filesystem import HybridFileSystem
from tests.client_requests import WHEN
from tests.integration.migrate_support import MOUNT, POLICY, Dataset, ForkingWorker, make_dataset

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]

ROOT = Path(__file__).resolve().parents[3]
SEED = 20240611


@dataclass(frozen=True)
class Scale:
    """How many killed runs, and the dataset they migrate (``make_dataset``'s counts)."""

    runs: int
    small: int
    medium: int
    large: int
    new: int


#: Real HDFS is slower per request and shares the CI budget: fewer runs over fewer files, still several
#: multipart files (3 parts of 5 MiB each) among them.
SCALES = {"devstack": Scale(runs=24, small=90, medium=3, large=6, new=3),
          "hadoop": Scale(runs=12, small=30, medium=2, large=4, new=2)}

def _assert_nothing_lost(dataset: Dataset, rng: random.Random) -> None:
    """Whatever the point of the kill: nothing lost, and a sample reads whole through ``hybrid://``."""
    dataset.assert_nothing_lost()
    fs = HybridFileSystem()
    for path in rng.sample(sorted(dataset.old), 10):
        assert fs.cat_file(f"hybrid://{MOUNT}/{path}") == dataset.old[path]


def test_sigkill_at_random_points_then_a_rerun_converges(union_lake, hdfs_server, monkeypatch):
    scale = SCALES[hdfs_server.kind]
    # Small parts (5 MiB, 2 in flight) so a large file takes several requests to upload: more kill points.
    connections = hdfs_server.connections()
    connections[MOUNT]["extra"]["members"]["s3"]["options"] = {"part_size": "5MiB", "upload_concurrency": 2}
    for name, value in airflow_env(connections).items():
        monkeypatch.setenv(name, value)
    dataset = make_dataset(union_lake, seed=SEED, small=scale.small, medium=scale.medium, large=scale.large,
                           new=scale.new, mixed=True)
    plan = plan_migration(union_lake, dataset.root, POLICY)
    rng = random.Random(SEED)
    kills, orphans, progress = 0, 0, []
    worker = ForkingWorker()
    try:
        for _ in range(scale.runs):
            output: list[str] = []
            code = worker.run(plan.plan_id, output, kill_at=rng.randint(1, 10), when=rng.choice(WHEN))
            assert code in (0, -signal.SIGKILL), "\n".join(output[-60:])
            kills += code == -signal.SIGKILL
            _assert_nothing_lost(dataset, rng)
            orphans += len(list(dataset.s3.list_open_uploads(dataset.root)))
            progress.append(len(dataset.s3_paths()))

        assert kills >= scale.runs // 2, f"only {kills} of {scale.runs} runs were killed before finishing"
        assert orphans > 0, "no kill landed inside a multipart upload"
        output = []
        assert worker.run(plan.plan_id, output) == 0, "\n".join(output[-60:])
    finally:
        worker.close()
    print(f"{kills} kills; S3 copies after each run: {progress}; open uploads left by kills: {orphans}")
    summary = json.loads(next(line for line in reversed(output) if line.startswith("SUMMARY "))[8:])
    assert summary["failed"] == summary["kept"] == 0, summary
    assert summary["moved"] + summary["skipped"] == len(dataset.old)
    dataset.assert_migrated()  # exactly once, in S3 only, identical, no open multipart upload
