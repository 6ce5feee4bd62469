"""Per-file migration claims on SQLite and PostgreSQL: one owner per file, leases, take-overs, release."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from airflow_hybrid.migration.claims import MigrationClaims, new_owner, owner_is_dead
from airflow_hybrid.migration.state import MigrationState, claims_table

pytestmark = pytest.mark.integration




@pytest.fixture
def mount() -> str:
    return f"lake-{uuid.uuid4().hex[:8]}"


def _age(state: MigrationState, mount: str, owner: str, seconds: float) -> None:
    """Move ``owner``'s leases ``seconds`` into the past (as if it had stopped renewing them)."""
    with state.engine.begin() as conn:
        rows = conn.execute(sa.select(claims_table.c.path, claims_table.c.expires_at).where(
            claims_table.c.mount == mount, claims_table.c.owner == owner)).all()
        for path, expires_at in rows:
            conn.execute(claims_table.update().where(
                claims_table.c.mount == mount, claims_table.c.path == path
            ).values(expires_at=expires_at - timedelta(seconds=seconds)))


def test_a_live_claim_is_held_an_expired_one_taken_over(state, mount):
    first = MigrationClaims(state, mount, lease=60)
    second = MigrationClaims(state, mount, lease=60)
    got = first.claim(["a", "b"])
    assert got.claimed == {"a", "b"} and not got.held
    other = second.claim(["b", "c"])
    assert other.claimed == {"c"} and set(other.held) == {"b"}
    assert other.held["b"].owner == first.owner and not other.taken_over

    _age(state, mount, first.owner, 120)  # the first run stopped renewing (killed on another host)
    assert [c.path for c in second.abandoned()] == ["a", "b"]
    taken = second.claim(["a", "b"])
    assert taken.claimed == {"a", "b"} and taken.taken_over == {"a", "b"}
    assert first.renew() == 0  # its leases are gone
    assert second.renew() == 3


def test_release_drops_only_the_owners_claims(state, mount):
    first, second = MigrationClaims(state, mount), MigrationClaims(state, mount)
    first.claim(["a"])
    second.claim(["b"])
    second.release(["a", "b"])
    assert MigrationClaims(state, mount).claim(["a", "b"]).claimed == {"b"}
    first.release_all()
    assert MigrationClaims(state, mount).claim(["a"]).claimed == {"a"}


def test_a_dead_local_process_loses_its_claims_at_once(state, mount):
    dead = f"{socket.gethostname()}:{2**22 + 12345}:deadbeef"  # above pid_max: no such process
    assert owner_is_dead(dead)
    assert not owner_is_dead(new_owner("dag.task run try 1"))  # this process
    assert not owner_is_dead(f"elsewhere.example:{os.getpid() + 1}:x")  # another host: only its lease tells
    MigrationClaims(state, mount, owner=dead, lease=3600).claim(["x"])
    alive = MigrationClaims(state, mount)
    assert [c.owner for c in alive.abandoned()] == [dead]
    got = alive.claim(["x"])
    assert got.claimed == {"x"} and got.taken_over == {"x"}


def test_each_path_has_one_owner_whatever_the_race(state, mount):
    paths = [f"dir/part-{i:03d}" for i in range(60)]
    runs = [MigrationClaims(state, mount) for _ in range(6)]
    won: dict[str, list[str]] = {}
    barrier = threading.Barrier(len(runs))
    errors: list[BaseException] = []

    def race(claims: MigrationClaims, order: list[str]) -> None:
        try:
            barrier.wait()
            for start in range(0, len(order), 7):
                result = claims.claim(order[start:start + 7])
                won[claims.owner] = won.get(claims.owner, []) + sorted(result.claimed)
        except BaseException as err:
            errors.append(err)

    threads = []
    for index, claims in enumerate(runs):
        order = paths[index * 10:] + paths[:index * 10]
        threads.append(threading.Thread(target=race, args=(claims, order)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    owners = Counter(path for claimed in won.values() for path in claimed)
    assert set(owners) == set(paths) and set(owners.values()) == {1}, owners


def test_abandoned_claims_under_a_prefix_only(state, mount):
    dead = MigrationClaims(state, mount, lease=1)
    dead.claim(["a/b/1", "a/bc/2", "a_b/3"])
    _age(state, mount, dead.owner, 10)
    sweeper = MigrationClaims(state, mount)
    assert [c.path for c in sweeper.abandoned("a/b")] == ["a/b/1"]
    assert [c.path for c in sweeper.abandoned("a_b")] == ["a_b/3"]
    sweeper.forget(sweeper.abandoned())
    assert sweeper.abandoned() == []
