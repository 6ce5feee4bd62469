"""Concurrent migrations of the same plan never lose or corrupt a file and never report a false outcome.

Several migrators (threads in one process, then operator processes of their own) run the same plan at once,
over the devstack's WebHDFS server and over Apache Hadoop's HDFS, with moto's S3 server: with per-file claims
shared through the state database (SQLite, and PostgreSQL as several workers would share it), without
claims (the storage rules alone must keep every file), with connection resets injected into S3 and WebHDFS
requests (the server did the work, the answer is lost), and with processes SIGKILLed at random points.

An outcome is checked when it is reported, while the reporting run still holds the file's claim (so no other
run can change the answer meanwhile): ``moved``/``skipped`` means S3 holds the planned bytes and HDFS no
longer holds the file; ``kept``/``failed`` means the source is still in HDFS, whole. After every round no
file is lost (each old file is in S3 or HDFS, whole; S3 holds only complete copies), and a last run leaves
every old file exactly once, in S3, byte-identical, with no multipart upload open.
"""

from __future__ import annotations

import json
import random
import signal
import threading
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from botocore.exceptions import ConnectionClosedError

from airflow_hybrid.devstack.stack import airflow_env
from airflow_hybrid.migration.claims import MigrationClaims
from airflow_hybrid.migration.migrator import CLAIMED, FAILED, KEPT, MOVED, SKIPPED, FileOutcome, Migrator
from airflow_hybrid.migration.planner import load_plan, plan_migration
from airflow_hybrid.migration.state import MigrationState
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.policy.parser import as_policy
from tests.client_requests import WHEN, Sent, observing
from tests.integration.migrate_support import MOUNT, POLICY, Dataset, ForkingWorker, make_dataset
from tests.services import postgres_url

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]

SEEDS = (11, 23, 37)
MIGRATORS = 4
#: Set while the test itself inspects the stores: injected faults spare its requests.
_inspecting = threading.local()


@pytest.fixture
def small_parts(hdfs_server, monkeypatch):
    """5 MiB parts, so the dataset's large files are multipart uploads of 3 parts."""
    connections = hdfs_server.connections()
    connections[MOUNT]["extra"]["members"]["s3"]["options"] = {"part_size": "5MiB", "upload_concurrency": 2}
    for name, value in airflow_env(connections).items():
        monkeypatch.setenv(name, value)
    return connections


def _state(kind: str, tmp_path) -> MigrationState:
    return MigrationState(f"sqlite:///{tmp_path}/state.db" if kind == "sqlite" else postgres_url())


class OutcomeChecker:
    """Checks each reported outcome against the stores at the moment it is reported."""

    def __init__(self, dataset: Dataset, *, live: bool) -> None:
        self.dataset = dataset
        self.live = live  # the reporting run holds the claim: kept/failed can be checked too
        self.statuses: dict[str, list[str]] = defaultdict(list)
        self.false: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, outcome: FileOutcome) -> None:
        with self.lock:
            self.statuses[outcome.path].append(outcome.status)
        _inspecting.active = True
        try:
            self._check(outcome)
        finally:
            _inspecting.active = False

    def _check(self, outcome: FileOutcome) -> None:
        path, data = outcome.path, self.dataset.old[outcome.path]
        if outcome.status in (MOVED, SKIPPED):  # never undone: true from now on
            if self.dataset.hdfs.exists(path) or self.dataset.read("s3", path) != data:
                self.false.append(f"{path} reported {outcome.status} ({outcome.reason}) but is not moved")
        elif outcome.status in (KEPT, FAILED) and self.live:
            info = self.dataset.hdfs.info(path) if self.dataset.hdfs.exists(path) else None
            if info is None or info.size != len(data):
                self.false.append(f"{path} reported {outcome.status} ({outcome.reason}) but its source is gone")

    def counts(self) -> Counter:
        return Counter(status for statuses in self.statuses.values() for status in statuses)


def _run_migrators(dataset: Dataset, plan, *, count: int, claims_state: MigrationState | None,
                   checker: OutcomeChecker, faults: Callable[[Sent, str], None] | None = None) -> list[dict]:
    """``count`` migrators, each with its own mount (as separate runs have), over ``plan`` at once."""
    policy = as_policy(POLICY)
    summaries: list[dict] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def one() -> None:
        mount = HybridMount.from_conn_id(MOUNT)
        try:
            claims = MigrationClaims(claims_state, MOUNT) if claims_state is not None else None
            migrator = Migrator(mount, policy, attempts=4, retry_delay=0.01, claims=claims)
            barrier.wait()
            loaded = load_plan(None, plan.plan_id)
            summaries.append(migrator.run(loaded.iter_entries(), concurrency=4, on_outcome=checker,
                                          prefix=loaded.path).to_dict())
        except BaseException as err:  # reported below
            errors.append(err)
        finally:
            mount.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    with observing(faults) if faults is not None else _nothing():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    return summaries


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("state_kind", ["sqlite", "postgresql"])
def test_concurrent_migrators_with_claims_move_each_file_once(union_lake, small_parts, tmp_path, seed, state_kind):
    dataset = make_dataset(union_lake, seed=seed, small=24, medium=1, large=2, new=2, mixed=True)
    plan = plan_migration(union_lake, dataset.root, POLICY)
    checker = OutcomeChecker(dataset, live=True)
    summaries = _run_migrators(dataset, plan, count=MIGRATORS, claims_state=_state(state_kind, tmp_path),
                               checker=checker)

    assert not checker.false, checker.false
    for path in dataset.old:
        statuses = Counter(checker.statuses[path])
        # one run moved it; the others found it held (claimed) or already moved (skipped)
        assert statuses[MOVED] == 1 and set(statuses) <= {MOVED, SKIPPED, CLAIMED}, (path, statuses)
    assert sum(s["failed"] + s["kept"] for s in summaries) == 0, summaries
    dataset.assert_migrated()
    print(f"seed {seed}: {MIGRATORS} migrators, {len(dataset.old)} files: {dict(checker.counts())}")


@pytest.mark.parametrize("seed", SEEDS)
def test_concurrent_migrators_without_claims_still_lose_nothing(union_lake, small_parts, seed):
    """No shared database (or a lease lost to a stalled worker): the storage rules alone keep every file."""
    dataset = make_dataset(union_lake, seed=seed, small=24, medium=1, large=2, new=2, mixed=True)
    plan = plan_migration(union_lake, dataset.root, POLICY)
    checker = OutcomeChecker(dataset, live=False)
    summaries = _run_migrators(dataset, plan, count=MIGRATORS, claims_state=None, checker=checker)

    assert not checker.false, checker.false
    for path in dataset.old:
        statuses = Counter(checker.statuses[path])
        assert statuses[MOVED] <= 1 and set(statuses) <= {MOVED, SKIPPED}, (path, statuses, summaries)
    assert sum(s["failed"] + s["kept"] for s in summaries) == 0, summaries
    dataset.assert_migrated()
    print(f"seed {seed}: {MIGRATORS} migrators without claims: {dict(checker.counts())}")


def _resets(rng: random.Random, rate: float, counter: Counter) -> Callable[[Sent, str], None]:
    """Drops the answer of a random ``rate`` of S3 and WebHDFS requests (after the server did the work), or
    the request itself (before it was sent)."""
    lock = threading.Lock()

    def inject(sent: Sent, when: str) -> None:
        if getattr(_inspecting, "active", False):
            return
        with lock:
            hit = rng.random() < rate
        if not hit:
            return
        counter[f"{sent.name()} {when}"] += 1
        if sent.service == "s3":
            raise ConnectionClosedError(endpoint_url=sent.url)
        raise requests.exceptions.ConnectionError(f"injected reset {when} {sent.method} {sent.url}")

    return inject


@pytest.mark.parametrize("seed", SEEDS)
def test_concurrent_migrators_under_injected_resets(union_lake, small_parts, tmp_path, seed):
    dataset = make_dataset(union_lake, seed=seed, small=24, medium=1, large=2, new=2, mixed=True)
    plan = plan_migration(union_lake, dataset.root, POLICY)
    state = _state("sqlite", tmp_path)
    checker = OutcomeChecker(dataset, live=True)
    injected: Counter = Counter()
    _run_migrators(dataset, plan, count=3, claims_state=state, checker=checker,
                   faults=_resets(random.Random(seed), 0.04, injected))
    assert not checker.false, checker.false
    assert sum(injected.values()) > 0
    dataset.assert_nothing_lost()

    final = OutcomeChecker(dataset, live=True)
    (summary,) = _run_migrators(dataset, plan, count=1, claims_state=state, checker=final)
    assert not final.false, final.false
    assert summary["failed"] == summary["kept"] == 0, summary
    dataset.assert_migrated()  # includes: no multipart upload left open
    print(f"seed {seed}: faults {sum(injected.values())} ({dict(injected)}); outcomes {dict(checker.counts())}")


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_concurrent_operator_processes_killed_at_random_points(union_lake, small_parts, hdfs_server, seed, monkeypatch):
    """Three operator processes at once, each SIGKILLed at a random mutating request or finishing, round after
    round (claims in PostgreSQL, shared as several workers would); then a last run converges."""
    connections = small_parts
    connections[MOUNT]["extra"]["catalog_url"] = postgres_url()
    for name, value in airflow_env(connections).items():
        monkeypatch.setenv(name, value)
    dataset = make_dataset(union_lake, seed=seed, small=30, medium=1, large=3, new=2, mixed=True)
    plan = plan_migration(union_lake, dataset.root, POLICY)
    rng = random.Random(seed)
    rounds = 4 if hdfs_server.kind == "devstack" else 3
    workers = [ForkingWorker() for _ in range(3)]
    kills = finished = 0
    try:
        for _ in range(rounds):
            outputs: list[list[str]] = [[] for _ in workers]
            # two processes die at a random mutating request; the third may finish (0: no kill point)
            points = [(rng.randint(1, 12) if i < 2 or rng.random() < 0.5 else 0, rng.choice(WHEN))
                      for i in range(len(workers))]
            with ThreadPoolExecutor(len(workers)) as pool:
                codes = list(pool.map(lambda w, o, p: w.run(plan.plan_id, o, *p), workers, outputs, points))
            crashed = ["\n".join(o[-80:]) for o, code in zip(outputs, codes, strict=True) if code not in (0, -signal.SIGKILL)]
            assert not crashed, "\n----\n".join(crashed)
            kills += codes.count(-signal.SIGKILL)
            finished += codes.count(0)
            for output in outputs:
                for line in output:
                    if line.startswith("SUMMARY "):
                        summary = json.loads(line[8:])
                        assert summary["failed"] == summary["kept"] == 0, summary
            dataset.assert_nothing_lost()
        output: list[str] = []
        assert workers[0].run(plan.plan_id, output) == 0, "\n".join(output[-60:])
    finally:
        for worker in workers:
            worker.close()
    summary = json.loads(next(line for line in reversed(output) if line.startswith("SUMMARY "))[8:])
    assert summary["failed"] == summary["kept"] == summary["claimed"] == 0, summary
    assert summary["moved"] + summary["skipped"] == len(dataset.old)
    assert kills > 0
    dataset.assert_migrated()
    print(f"seed {seed}: {rounds} rounds x 3 processes: {kills} killed, {finished} finished; converged")
