"""Helpers of the migration tests on real servers: a dataset of old and new files under a fresh path.

The mount is ``onprem_union`` of ``hdfs_server`` (``hdfs:///tmp/tpcds`` on the devstack's WebHDFS server or on
Apache Hadoop's, + ``s3://hybrid-lake/tpcds`` on the devstack's S3 server; read priority ``s3,hdfs``, create
``s3``); each test works below its own logical directory. Every file is written through the stores, so the
same dataset works on either HDFS server. The mount itself is the ``union_lake`` fixture (``tests/devstack_fixtures.py``).
"""

from __future__ import annotations

import importlib
import io
import os
import queue
import random
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from airflow_hybrid.mount import HybridMount
from tests.devstack_fixtures import MOUNT

ROOT = Path(__file__).resolve().parents[2]
POLICY = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"
DAY = 86_400
MiB = 1024 * 1024


def payload(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


@dataclass
class Dataset:
    """Files written to the HDFS member below ``root``: ``old`` ones (mtime 10 days ago) and ``new`` ones."""

    mount: HybridMount
    root: str
    old: dict[str, bytes] = field(default_factory=dict)
    new: dict[str, bytes] = field(default_factory=dict)

    @property
    def hdfs(self):
        return self.mount.members["hdfs"]

    @property
    def s3(self):
        return self.mount.members["s3"]

    def add(self, name: str, data: bytes, *, old: bool) -> str:
        path = f"{self.root}/{name}"
        self.hdfs.write(path, io.BytesIO(data))
        if old:
            self.hdfs.set_times(path, mtime=time.time() - 10 * DAY)
            self.old[path] = data
        else:
            self.new[path] = data
        return path

    def s3_paths(self) -> list[str]:
        return sorted(info.path for info in self.s3.walk_files(self.root)) if self.s3.exists(self.root) else []

    def hdfs_paths(self) -> list[str]:
        return sorted(info.path for info in self.hdfs.walk_files(self.root)) if self.hdfs.exists(self.root) else []

    def read(self, member: str, path: str) -> bytes:
        with self.mount.members[member].open_read(path) as stream:
            return stream.read()

    def assert_nothing_lost(self) -> None:
        """At any point of a migration (kills, faults, concurrent runs): each old file is somewhere, whole; S3
        holds only complete copies of old files; new files stay in HDFS."""
        in_s3 = {info.path: info for info in self.s3.walk_files(self.root)} if self.s3.exists(self.root) else {}
        in_hdfs = {info.path: info for info in self.hdfs.walk_files(self.root)}
        assert set(in_s3) <= set(self.old), sorted(set(in_s3) - set(self.old))
        assert set(in_hdfs) >= set(self.new)
        for path, data in self.old.items():
            assert path in in_s3 or path in in_hdfs, f"{path} was lost"
            if path in in_s3:
                assert self.read("s3", path) == data, f"incomplete or wrong copy of {path} in S3"
            if path in in_hdfs:
                assert in_hdfs[path].size == len(data), f"{path} damaged in HDFS"

    def assert_migrated(self) -> None:
        """Old files exactly once, in S3 only, byte-identical; new files in HDFS only; no open upload."""
        assert self.s3_paths() == sorted(self.old)
        assert self.hdfs_paths() == sorted(self.new)
        for path, data in self.old.items():
            assert self.read("s3", path) == data, path
        for path, data in self.new.items():
            assert self.read("hdfs", path) == data, path
        assert list(self.s3.list_open_uploads(self.root)) == []


def make_dataset(mount: HybridMount, *, seed: int, small: int, medium: int = 0, large: int = 0,
                 new: int = 2, large_size: int = 11 * MiB, mixed: bool = False) -> Dataset:
    """Old files: ``small`` of 0-64 KiB (one of them empty), ``medium`` of 1-3 MiB, ``large`` multipart
    ones; plus ``new`` recent files, all below a fresh directory. ``mixed`` puts the old files of every
    size in one directory, in a shuffled order (so large files do not all come last)."""
    rng = random.Random(seed)
    dataset = Dataset(mount, f"migrate-{uuid.uuid4().hex[:10]}")
    sizes = [("small", 0 if i == 0 else rng.randrange(1, 64 * 1024)) for i in range(small)]
    sizes += [("medium", rng.randrange(MiB, 3 * MiB)) for _ in range(medium)]
    sizes += [("large", large_size + i * 12345) for i in range(large)]
    if mixed:
        rng.shuffle(sizes)
    counters: dict[str, int] = {}
    for kind, size in sizes:
        directory = "mixed" if mixed else kind
        index = counters[directory] = counters.get(directory, -1) + 1
        dataset.add(f"{directory}/part-{index:05d}.bin", payload(rng, size), old=True)
    for i in range(new):
        dataset.add(f"small/new-{i:05d}.bin", payload(rng, rng.randrange(1, 32 * 1024)), old=False)
    return dataset


def policy_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, *, mount: str, root: str,
               min_files: int, batch_max_files: int, timeout: int):
    """The DAG ``hybrid_migrate_<name>`` that ``tests/e2e/dags/hybrid_migrate_e2e.py`` builds from a policies
    file of one deferrable policy (``POLICY`` on ``mount`` below ``root``); returns the DAG and the file."""
    policies = tmp_path / f"{name}.yaml"
    policies.write_text(
        "policies:\n"
        f"  - name: {name}\n    mount: {mount}\n    path: {root}\n    policy: '{POLICY}'\n"
        f"    schedule: null\n    min_files: {min_files}\n    batch_max_files: {batch_max_files}\n    deferrable: true\n"
        f"    poke_interval: 0.2\n    timeout: {timeout}\n    concurrency: 2\n"
    )
    monkeypatch.setenv("AIRFLOW_VAR_HYBRID_POLICIES_FILE", str(policies))
    module = importlib.reload(importlib.import_module("tests.e2e.dags.hybrid_migrate_e2e"))
    return getattr(module, f"hybrid_migrate_{name}"), policies


class FakeTaskInstance:
    """Records ``xcom_push`` calls (the only TaskInstance API the sensor uses outside a DAG run)."""

    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


#: Reads ``<mount> <plan_id> <kill_after_n_mutations> <before|after>`` lines; forks a child per line that
#: installs the kill hook (n = 0: none) and runs the operator; reports ``PID <pid>``, the child's
#: ``SUMMARY <json>`` if it finishes, and ``EXIT <status>``.
FORKING_WORKER = """
import json, os, sys, traceback
from airflow_hybrid.operators.migrate import UfsMigrateOperator
from tests.client_requests import kill_at_mutation

for line in sys.stdin:
    mount, plan_id, count, when = line.split()
    pid = os.fork()
    if pid == 0:
        try:
            kill_at_mutation(int(count), when)
            operator = UfsMigrateOperator(task_id="migrate", mount_conn_id=mount, plan_id=plan_id, concurrency=4,
                                          file_retry_delay=0.1, fail_on_error=False, progress_interval=1.0)
            print("SUMMARY " + json.dumps(operator.execute({})), flush=True)
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            sys.stdout.flush()
            os._exit(1)
    print(f"PID {pid}", flush=True)
    print(f"EXIT {os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}", flush=True)
"""


class ForkingWorker:
    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", FORKING_WORKER], cwd=ROOT, env=os.environ.copy(), text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("CLOSED")

    def _next(self, prefix: str, output: list[str]) -> str:
        while True:
            line = self.lines.get(timeout=300)
            output.append(line)
            if line.startswith(prefix) or line == "CLOSED":
                assert line != "CLOSED", "\n".join(output[-50:])
                return line[len(prefix):]

    def run(self, plan_id: str, output: list[str], kill_at: int = 0, when: str = "after") -> int:
        """Run the plan in a new child that kills itself at its ``kill_at``-th mutating request (0: never);
        the child's exit code (negative: killed by that signal)."""
        self.process.stdin.write(f"{MOUNT} {plan_id} {kill_at} {when}\n")
        self.process.stdin.flush()
        self._next("PID ", output)
        return int(self._next("EXIT ", output))

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)
