"""Consistent reads while data moves (DESIGN.md section 3) on real servers: HDFS (our devstack WebHDFS server and
Apache Hadoop's) + S3 (moto's server; SeaweedFS in one variant).

1. Interleavings: the steps of a move (copy, removal) placed before every pair of a listing's, a lookup's, a
   read's or a glob's member requests (:mod:`tests.interleaving`), both directions, both read priorities: the
   file is listed once, found, read with its own bytes.
2. Stress: reader threads and reader processes glob, list, look up and read a dataset through ``hybrid://`` and
   the mount while the real :class:`~airflow_hybrid.migration.migrator.Migrator` moves every file hdfs -> s3 and then
   back s3 -> hdfs; several seeds. 0 missing, 0 duplicated, 0 unexpected, 0 wrong bytes, 0 errors. Between the
   two directions every reader starts a new operation, so no operation sees a file move twice (the documented
   limit, see :mod:`airflow_hybrid.mount.union`). The counts are printed (``-s``) and attached to the report.
"""

from __future__ import annotations

import dataclasses
import io
import json
import multiprocessing
import time
import uuid
from collections import Counter
from typing import Any

import pytest

from airflow_hybrid.migration.migrator import Migrator
from airflow_hybrid.migration.planner import PlanEntry
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.policy.parser import parse_policy
from tests.integration import consistency_readers
from tests.integration.consistency_readers import dataset
from tests.interleaving import (
    LISTINGS,
    LOOKUPS,
    READS,
    World,
    check_every_interleaving,
    found,
    listed_once,
    same_bytes,
)
from tests.seaweedfs_fixtures import SEAWEED_BUCKET

pytestmark = [pytest.mark.integration, pytest.mark.hdfs_servers]

MOUNT = "consistent_it"


def _connections(hdfs_server, unique: str, seaweed=None) -> dict[str, dict]:
    conns = hdfs_server.connections(mount_conn_id=MOUNT, hdfs_root=f"/tmp/{unique}", s3_prefix=unique)
    if seaweed is not None:  # the S3 member on SeaweedFS instead of moto
        conns["aws_seaweed_consistent"] = seaweed.aws_connection()
        conns[MOUNT]["extra"]["members"]["s3"] = {
            "uri": f"s3://{SEAWEED_BUCKET}/{unique}", "conn_id": "aws_seaweed_consistent",
        }
    return conns


def _env(conns: dict[str, dict]) -> dict[str, str]:
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn) for conn_id, conn in conns.items()}


@pytest.fixture
def real_mount(hdfs_server, monkeypatch):
    """The mount ``consistent_it`` over fresh roots (hdfs:///tmp/consistent-<id>, s3://hybrid-lake/consistent-<id>)."""
    conns = _connections(hdfs_server, f"consistent-{uuid.uuid4().hex[:8]}")
    for name, value in _env(conns).items():
        monkeypatch.setenv(name, value)
    mount = HybridMount.from_conn_id(MOUNT)
    yield mount
    mount.close()


# -- 1. interleavings on the real servers ---------------------------------------------------------------
#: A member read request returns at most this much: the 10,000-byte moving file takes two reads.
CHUNK = 5000


@pytest.fixture
def world(real_mount, priority, direction, tmp_path):
    def make(cache: dict | None = None) -> World:
        settings = dict(real_mount.spec.settings)
        if cache is not None:
            settings["cache"] = {
                "tiers": [{"alias": "SSD", "uri": f"file://{tmp_path}/tier", "quota": "64MB"}],
                "catalog_url": f"sqlite:///{tmp_path}/catalog.db",
                **cache,
            }
        spec = dataclasses.replace(real_mount.spec, read_order=priority.split(","), settings=settings)
        made.append(World(dict(real_mount.members), spec, direction, chunk=CHUNK))
        return made[-1]

    made: list[World] = []
    yield make
    for w in made:
        w.close()


#: Operations run under every interleaving in both read priorities (the others, and the cache's paths, in
#: read priority s3,hdfs; tests/unit/mount/test_union_consistency.py runs every operation in both over local members).
BOTH_PRIORITIES = {
    "mount.ls": (LISTINGS, listed_once),
    "fs.glob": (LISTINGS, listed_once),
    "mount.resolve": (LOOKUPS, found),
    "mount.open_read": (READS, same_bytes),
}
S3_FIRST = {
    "fs.info": (LOOKUPS, found),
    "fs.open": (READS, same_bytes),
}


@pytest.mark.parametrize("op", sorted(BOTH_PRIORITIES))
def test_every_interleaving_of_a_move_with_an_operation(world, op, record_property):
    table, check = BOTH_PRIORITIES[op]
    record_property("interleavings", check_every_interleaving(world(), table[op], check))


@pytest.mark.parametrize("priority", ["s3,hdfs"])
@pytest.mark.parametrize("op", sorted(S3_FIRST))
def test_every_interleaving_of_a_move_with_a_filesystem_call(world, op, record_property):
    table, check = S3_FIRST[op]
    record_property("interleavings", check_every_interleaving(world(), table[op], check))


@pytest.mark.parametrize("priority", ["s3,hdfs"])
def test_every_interleaving_of_a_move_with_a_listing_stored_in_the_catalog(world, record_property):
    w = world({"metadata_sync_interval": 60, "listing_sync_interval": 3600})

    def op(w: World) -> tuple[list[str], list[str]]:
        filled = [e["name"].removeprefix("lake/") for e in w.fs().ls("hybrid://lake/d")]
        stored = [e["name"].removeprefix("lake/") for e in w.fs().ls("hybrid://lake/d")]
        return filled, stored

    def check(result) -> str | None:
        for names in result:
            problem = listed_once([n for n in names if n != "d/sub"] + ["d/sub/x.bin"])
            if problem:
                return problem
        return None

    record_property("interleavings", check_every_interleaving(w, op, check))


@pytest.mark.parametrize("priority", ["s3,hdfs"])
def test_every_interleaving_of_a_move_with_a_read_through_the_cache(world, record_property):
    w = world({"metadata_sync_interval": 0})

    def op(w: World) -> bytes:
        with w.mount.open_read("d/moving.bin") as stream:
            return b"".join(iter(lambda: stream.read(CHUNK), b""))

    record_property("interleavings", check_every_interleaving(w, op, same_bytes))


# -- 2. stress: readers while the Migrator moves everything there and back -------------------------------------
SEEDS = range(5)
FILES = 30
THREADS = 3
PROCESSES = 2


@pytest.fixture(scope="module")
def reader_processes():
    """``PROCESSES`` spawned reader processes, each serving one round per command; stopped at the end."""
    ctx = multiprocessing.get_context("spawn")
    stop, moving = ctx.Event(), ctx.Value("i", 0)
    procs = []
    for _ in range(PROCESSES):
        commands, results, started = ctx.Queue(), ctx.Queue(), ctx.Value("q", 0)
        proc = ctx.Process(
            target=consistency_readers.process_main, args=(commands, results, started, stop, moving), daemon=True
        )
        proc.start()
        procs.append((proc, commands, results, started))
    yield stop, moving, procs
    for _, commands, _, _ in procs:
        commands.put(None)
    for proc, *_ in procs:
        proc.join(timeout=30)
        if proc.is_alive():
            proc.terminate()
            proc.join()


def _wait_until_all_started_after(counters: list, snapshot: list[int], alive, what: str) -> None:
    """Block until every reader has begun an operation after ``snapshot`` (a synchronisation, not a timing)."""
    deadline = time.monotonic() + 180
    while any(c.value <= s for c, s in zip(counters, snapshot, strict=True)):
        dead = alive()
        assert not dead, f"reader process(es) {dead} died {what}"
        assert time.monotonic() < deadline, f"readers did not start a new operation {what}"
        time.sleep(0.005)


def _migrate(mount: HybridMount, src: str, dst: str, root: str, files: int) -> dict[str, int]:
    policy = parse_policy(f"ufsMigrate(olderThan(1d), UFS[{src}]:REMOVE, UFS[{dst}]:STORE)")
    entries = [
        PlanEntry(path=i.path, size=i.size, mtime=i.mtime, source=src, etag=i.etag)
        for i in mount.members[src].walk_files(root)
    ]
    assert len(entries) == files
    summary = Migrator(mount, policy, retry_delay=0.05).run(entries, concurrency=4, prefix=root)
    assert (summary.moved, summary.failed, summary.kept) == (files, 0, 0), summary.to_dict()
    return {"moved": summary.moved}


def _stress(hdfs_server, monkeypatch, reader_processes, seed: int, seaweed=None) -> dict[str, Any]:
    unique = f"stress-{uuid.uuid4().hex[:8]}"
    conns = _connections(hdfs_server, unique, seaweed)
    env = _env(conns)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    mount = HybridMount.from_conn_id(MOUNT)
    root = "t"
    files = dataset(seed, FILES)
    for name, data in files.items():
        mount.members["hdfs"].write(f"{root}/{name}", io.BytesIO(data))

    stop, moving, procs = reader_processes
    stop.clear()
    thread_stop = multiprocessing.get_context("spawn").Event()
    base = {"mount": MOUNT, "root": root, "seed": seed, "files": FILES, "env": env}
    thread_counters = [multiprocessing.get_context("spawn").Value("q", 0) for _ in range(THREADS)]
    thread_results: list[dict] = []
    threads = [
        consistency_readers.run_thread({**base, "reader_seed": seed * 100 + i}, thread_counters[i], thread_stop,
                                       moving, thread_results)
        for i in range(THREADS)
    ]
    for i, (_, commands, _, _) in enumerate(procs):
        commands.put({**base, "reader_seed": seed * 100 + THREADS + i})
    counters = thread_counters + [started for *_, started in procs]

    def dead() -> list[int]:
        return [proc.pid for proc, *_ in procs if not proc.is_alive()]

    moves = Counter()
    try:
        _wait_until_all_started_after(counters, [c.value for c in counters], dead, "before the migration")
        moving.value = 1
        moves["hdfs->s3"] = _migrate(mount, "hdfs", "s3", root, FILES)["moved"]
        moving.value = 0
        # every operation in flight during the first direction ends before the second starts
        _wait_until_all_started_after(counters, [c.value for c in counters], dead, "between the directions")
        moving.value = 2
        moves["s3->hdfs"] = _migrate(mount, "s3", "hdfs", root, FILES)["moved"]
        moving.value = 0
        _wait_until_all_started_after(counters, [c.value for c in counters], dead, "after the migration")
    finally:
        moving.value = 0
        stop.set()
        thread_stop.set()
        for thread in threads:
            thread.join(timeout=120)
        results = list(thread_results)
        for _, _, answers, _ in procs:
            results.append(answers.get(timeout=120))
    try:  # the dataset is back in HDFS only, byte for byte
        assert sorted(i.path for i in mount.members["hdfs"].walk_files(root)) == sorted(f"{root}/{n}" for n in files)
        assert not mount.members["s3"].exists(root)
        for name, data in files.items():
            with mount.members["hdfs"].open_read(f"{root}/{name}") as stream:
                assert stream.read() == data, name
    finally:
        mount.close()
    totals: Counter[str] = Counter()
    problems: list[str] = []
    for result in results:
        totals.update(result["counts"])
        problems += result["problems"]
    return {"readers": len(results), "threads": THREADS, "processes": PROCESSES, **moves, **totals,
            "problems": problems}


def _assert_consistent(report: dict[str, Any], record_property, label: str) -> None:
    shown = {k: v for k, v in report.items() if k != "problems"}
    print(f"\n{label}: {json.dumps(shown, sort_keys=True)}")
    record_property("stress", json.dumps(shown, sort_keys=True))
    bad = {k: report.get(k, 0) for k in ("missing", "duplicated", "unexpected", "wrong", "errors")}
    assert bad == dict.fromkeys(bad, 0), f"{bad}; first problems:\n" + "\n".join(report["problems"])
    assert report["readers"] == THREADS + PROCESSES
    assert report["listings"] > 0 and report["reads"] > 0 and report["lookups"] > 0


@pytest.mark.parametrize("seed", SEEDS)
def test_readers_see_every_file_once_with_its_bytes_while_files_migrate_both_ways(
    hdfs_server, monkeypatch, reader_processes, seed, record_property
):
    report = _stress(hdfs_server, monkeypatch, reader_processes, seed)
    _assert_consistent(report, record_property, f"stress {hdfs_server.kind}+moto seed {seed}")


def test_readers_while_files_migrate_both_ways_with_seaweedfs_as_s3(
    hdfs_server, monkeypatch, reader_processes, seaweed_s3, record_property
):
    report = _stress(hdfs_server, monkeypatch, reader_processes, 101, seaweed=seaweed_s3)
    _assert_consistent(report, record_property, f"stress {hdfs_server.kind}+seaweedfs seed 101")
