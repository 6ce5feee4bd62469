"""Per-file claims with leases, so concurrent migrations of overlapping files never work on one file at once.

The claims live in the migration state database (``hybrid_migration_claims``, defined with the other tables
in :mod:`airflow_hybrid.migration.state`); a file's safety never depends on them (see
:mod:`airflow_hybrid.migration.migrator`).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from airflow_hybrid.migration.state import MigrationState, _aware, _utcnow, claims_table

log = logging.getLogger(__name__)

#: Seconds a claim lasts without a renewal; a run renews its claims every third of it.
DEFAULT_CLAIM_LEASE = 60.0



def owner_is_dead(owner: str) -> bool:
    """Whether ``owner`` (see :func:`new_owner`) was a process of this host that no longer exists."""
    host, _, rest = owner.rsplit(" ", 1)[-1].partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def new_owner(label: str | None = None) -> str:
    """A claim owner unique to this run: ``[label ]host:pid:random``."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
    return f"{label} {owner}"[-250:] if label else owner


@dataclass(frozen=True)
class Claim:
    """A file claimed by ``owner`` until ``expires_at``."""

    path: str
    owner: str
    expires_at: datetime


@dataclass(frozen=True)
class ClaimResult:
    """What :meth:`MigrationClaims.claim` got: the paths now ours, those other live runs hold, and those taken
    over from runs whose lease had expired (a killed run: its open uploads of those keys are orphans)."""

    claimed: frozenset[str]
    held: dict[str, Claim]
    taken_over: frozenset[str]


class MigrationClaims:
    """Per-file leases in the state database, so concurrent migrations of overlapping files never work on the
    same file at once (a manual run overlapping the scheduled one, ``max_active_runs > 1``, a retry while
    its first attempt still runs, several workers).

    A claim is a row ``(mount, path) -> (owner, expires_at)``: taken when no live run holds it (an expired
    lease, or one of a process of this host that no longer exists, is taken over), renewed by :meth:`renew` while the file is worked on, deleted by :meth:`release`.
    Every statement is atomic on its own, on SQLite and PostgreSQL, so two runs never both own a file.
    Leases use the workers' clocks (UTC): keep their skew well below ``lease`` seconds.
    """

    def __init__(self, state: MigrationState, mount: str, owner: str | None = None,
                 lease: float = DEFAULT_CLAIM_LEASE) -> None:
        if lease <= 0:
            raise ValueError(f"claim lease={lease} must be positive")
        self.state = state
        self.mount = mount
        self.owner = owner or new_owner()
        self.lease = lease

    def __repr__(self) -> str:
        return f"MigrationClaims({self.mount!r}, owner={self.owner!r}, lease={self.lease})"

    def _where(self, paths: Sequence[str]) -> sa.ColumnElement[bool]:
        return sa.and_(claims_table.c.mount == self.mount, claims_table.c.path.in_(list(paths)))

    def claim(self, paths: Sequence[str], attempts: int = 4) -> ClaimResult:
        """Claim ``paths`` (one transaction): free ones and expired ones become ours, live ones stay held.

        A transaction the database aborted (a deadlock, a serialization failure, a dropped connection) is
        tried again, up to ``attempts`` times.
        """
        for attempt in range(1, attempts + 1):
            try:
                return self._claim(paths)
            except sa.exc.DBAPIError as err:
                if attempt == attempts or not (err.connection_invalidated or isinstance(err, sa.exc.OperationalError)):
                    raise
                log.warning("Claiming %d files failed (%s); attempt %d of %d", len(paths), err.orig, attempt + 1,
                            attempts)
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    def _claim(self, paths: Sequence[str]) -> ClaimResult:
        paths = list(dict.fromkeys(paths))
        if not paths:
            return ClaimResult(frozenset(), {}, frozenset())
        now = _utcnow()
        expires = now + timedelta(seconds=self.lease)
        fresh = {"owner": self.owner, "claimed_at": now, "expires_at": expires}
        with self.state.engine.begin() as conn:
            self._insert_missing(conn, [{"mount": self.mount, "path": p, **fresh} for p in paths])
            others = conn.execute(
                sa.select(claims_table.c.path, claims_table.c.owner, claims_table.c.expires_at).where(
                    self._where(paths), claims_table.c.owner != self.owner)
            ).all()
            stale: dict[str, list[str]] = {}  # dead owner -> its paths
            for path, owner, expires_at in others:
                if _aware(expires_at) < now or owner_is_dead(owner):
                    stale.setdefault(owner, []).append(path)
            for owner, owned in stale.items():  # atomic per row: of two runs taking over, the second matches nothing
                conn.execute(
                    claims_table.update().where(self._where(owned), claims_table.c.owner == owner).values(**fresh)
                )
            conn.execute(  # ours already (claimed again): the lease restarts
                claims_table.update().where(self._where(paths), claims_table.c.owner == self.owner).values(
                    expires_at=expires)
            )
            rows = conn.execute(
                sa.select(claims_table.c.path, claims_table.c.owner, claims_table.c.expires_at).where(
                    self._where(paths))
            ).all()
        claimed = frozenset(p for p, owner, _ in rows if owner == self.owner)
        held = {p: Claim(p, owner, _aware(at)) for p, owner, at in rows if owner != self.owner}
        return ClaimResult(claimed, held, frozenset(p for owned in stale.values() for p in owned) & claimed)

    def _insert_missing(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        dialect = conn.dialect.name
        if dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        elif dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            for row in rows:  # portable fallback: one savepoint per row
                try:
                    with conn.begin_nested():
                        conn.execute(claims_table.insert().values(row))
                except sa.exc.IntegrityError:
                    continue
            return
        conn.execute(insert(claims_table).on_conflict_do_nothing(), rows)

    def renew(self) -> int:
        """Extend every lease this owner holds; return how many (0 if they were all taken over)."""
        expires = _utcnow() + timedelta(seconds=self.lease)
        with self.state.engine.begin() as conn:
            result = conn.execute(
                claims_table.update()
                .where(claims_table.c.mount == self.mount, claims_table.c.owner == self.owner)
                .values(expires_at=expires)
            )
        return int(result.rowcount or 0)

    def release(self, paths: Iterable[str]) -> None:
        """Drop this owner's claims of ``paths`` (a claim another run took over is left to it)."""
        paths = list(paths)
        for start in range(0, len(paths), 500):
            chunk = paths[start:start + 500]
            with self.state.engine.begin() as conn:
                conn.execute(claims_table.delete().where(self._where(chunk), claims_table.c.owner == self.owner))

    def release_all(self) -> None:
        with self.state.engine.begin() as conn:
            conn.execute(
                claims_table.delete().where(claims_table.c.mount == self.mount, claims_table.c.owner == self.owner)
            )

    def abandoned(self, prefix: str = "", limit: int = 10_000) -> list[Claim]:
        """Claims under ``prefix`` whose owners died while moving those files (killed): the lease ran out,
        or the owner is a process of this host that no longer exists."""
        now = _utcnow()
        host = f"{socket.gethostname()}:"
        query = sa.select(claims_table.c.path, claims_table.c.owner, claims_table.c.expires_at).where(
            claims_table.c.mount == self.mount, claims_table.c.owner != self.owner,
            sa.or_(claims_table.c.expires_at < now, claims_table.c.owner.contains(host, autoescape=True)),
        )
        if prefix:
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(sa.or_(claims_table.c.path == prefix,
                                       claims_table.c.path.like(f"{escaped}/%", escape="\\")))
        with self.state.engine.connect() as conn:
            rows = conn.execute(query.order_by(claims_table.c.path).limit(limit)).all()
        return [Claim(p, owner, _aware(at)) for p, owner, at in rows if _aware(at) < now or owner_is_dead(owner)]

    def forget(self, claims: Iterable[Claim]) -> None:
        """Delete these abandoned claims (only while they are still the dead owner's)."""
        with self.state.engine.begin() as conn:
            for claim in claims:
                conn.execute(claims_table.delete().where(
                    claims_table.c.mount == self.mount, claims_table.c.path == claim.path,
                    claims_table.c.owner == claim.owner))

    def holders(self) -> list[Claim]:
        """Every live claim of the mount (for ``policy status``)."""
        with self.state.engine.connect() as conn:
            rows = conn.execute(
                sa.select(claims_table.c.path, claims_table.c.owner, claims_table.c.expires_at).where(
                    claims_table.c.mount == self.mount, claims_table.c.expires_at >= _utcnow())
            ).all()
        return [Claim(p, owner, _aware(at)) for p, owner, at in rows]
