"""A migration of a table HDFS -> S3, one file at a time, stopping at fixed points for a round of queries: what
the engines' tests through the gateway (DuckDB, Trino) check their answers against, with no sleeps or races."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from airflow_hybrid.migration.migrator import Migrator
from airflow_hybrid.migration.planner import PlanEntry
from airflow_hybrid.policy.parser import parse_policy

POLICY = "ufsMigrate(olderThan(1d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)"


def hdfs_entries(lake, directory: str, names: list[str]) -> list[PlanEntry]:
    """The plan entries of ``directory``'s files on the HDFS member, which must be exactly ``names``."""
    files = sorted(lake.members["hdfs"].walk_files(directory), key=lambda f: f.path)
    assert [f.path for f in files] == [f"{directory}/{name}" for name in names]
    return [PlanEntry(path=f.path, size=f.size, mtime=f.mtime, source="hdfs", etag=f.etag) for f in files]


def migrate_checking_each_step(lake, monkeypatch: pytest.MonkeyPatch, check: Callable[[str], None],
                               directory: str, names: list[str]) -> list[str]:
    """Move ``directory``'s files to S3 one by one, calling ``check(when)`` before the migration, for each file
    between its verified copy and its removal from HDFS (from the Migrator's own call of the member's
    ``delete``: the file is on both members), once it is moved, and after the migration. Returns the ``when``
    of every round in the order they must have come."""
    hdfs, s3 = lake.members["hdfs"], lake.members["s3"]
    keys = [f"{directory}/{name}" for name in names]
    real_delete = hdfs.delete

    def delete_after_a_round(path: str, recursive: bool = False) -> bool:
        on_both = hdfs.exists(path) and s3.exists(path)
        check(f"{path} on both members" if on_both else f"{path} NOT on both members")
        return real_delete(path, recursive=recursive)

    monkeypatch.setattr(hdfs, "delete", delete_after_a_round)
    migrator = Migrator(lake, parse_policy(POLICY), retry_delay=0.05)

    check("before the migration")
    for entry in hdfs_entries(lake, directory, names):
        summary = migrator.run([entry], concurrency=1, prefix=directory)
        assert summary.moved == 1, summary.to_dict()
        check(f"{entry.path} moved")
    assert not list(hdfs.walk_files(directory)) and sorted(f.path for f in s3.walk_files(directory)) == keys
    check("after the migration")
    return ["before the migration"] + [f"{key} {state}" for key in keys for state in ("on both members", "moved")
                                       ] + ["after the migration"]
