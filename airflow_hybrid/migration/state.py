"""What migrations did, per policy and file, for ``airflow hybrid policy status`` and the report.

Two small tables (SQLAlchemy Core) in the mount's ``catalog_url`` database, or by default a SQLite file
``$AIRFLOW_HOME/hybrid/migration.db``:

* ``hybrid_migration_files``: the latest outcome of each file of a policy (``moved``, ``skipped``: moved
  earlier or already copied, ``kept``: the source changed so it stayed, ``failed``), with the reason;
* ``hybrid_migration_runs``: one row per operator run (plan, batch, engine, totals, state, times);
* ``hybrid_migration_claims``: which run is migrating which file now, with a lease (:class:`MigrationClaims`).

Outcomes and runs are a record: migrations never consult them to decide what to do, so a lost or stale
row cannot cause a wrong move. Claims keep concurrent runs off each other's files (no duplicate work, no
outcome reported for a file another run is moving); a file's safety never depends on them (see
:mod:`airflow_hybrid.migration.migrator`). Several workers share claims only through a shared database: set the
mount's ``catalog_url`` to PostgreSQL when migrations run on more than one host.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from airflow_hybrid.migration.migrator import (
    CLAIMED,
    FAILED,
    KEPT,
    MOVED,
    SKIPPED,
    FileOutcome,
    MigrationSummary,
)
from airflow_hybrid.redact import redact_url
from airflow_hybrid.settings import hybrid_home

log = logging.getLogger(__name__)

TABLE_PREFIX = "hybrid_migration_"
#: Outcomes rows are written in batches of this many.
FLUSH_EVERY = 200
RUNNING, SUCCESS, FAILURE = "running", "success", "failed"

metadata = sa.MetaData()

files_table = sa.Table(
    f"{TABLE_PREFIX}files",
    metadata,
    sa.Column("policy", sa.String(250), primary_key=True),
    sa.Column("mount", sa.String(250), primary_key=True),
    sa.Column("source", sa.String(100), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("plan_id", sa.String(250)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index(f"{TABLE_PREFIX}files_status", files_table.c.policy, files_table.c.mount, files_table.c.status)

runs_table = sa.Table(
    f"{TABLE_PREFIX}runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("policy", sa.String(250), nullable=False),
    sa.Column("mount", sa.String(250), nullable=False),
    sa.Column("path", sa.String(1024), nullable=False),
    sa.Column("plan_id", sa.String(250)),
    sa.Column("batch", sa.Integer),
    sa.Column("engine", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("files", sa.Integer, nullable=False, default=0),
    sa.Column("moved", sa.Integer, nullable=False, default=0),
    sa.Column("skipped", sa.Integer, nullable=False, default=0),
    sa.Column("kept", sa.Integer, nullable=False, default=0),
    sa.Column("failed", sa.Integer, nullable=False, default=0),
    sa.Column("bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("message", sa.Text),
)
sa.Index(f"{TABLE_PREFIX}runs_policy", runs_table.c.policy, runs_table.c.mount, runs_table.c.started_at)

claims_table = sa.Table(
    f"{TABLE_PREFIX}claims",
    metadata,
    sa.Column("mount", sa.String(250), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("owner", sa.String(250), nullable=False),
    sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)
sa.Index(f"{TABLE_PREFIX}claims_owner", claims_table.c.owner)

#: Seconds a claim lasts without a renewal; a run renews its claims every third of it.
DEFAULT_CLAIM_LEASE = 60.0


def default_state_url() -> str:
    return f"sqlite:///{hybrid_home('migration.db')}"


def state_url_for_mount(mount: Any) -> str:
    """The mount's ``catalog_url`` when it sets one, else :func:`default_state_url`."""
    options = getattr(mount, "options", None) or {}
    return options.get("catalog_url") or default_state_url()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def _create_engine(url: str) -> Engine:
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:")
    if not in_memory:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 60, "check_same_thread": False}}
    if in_memory:
        kwargs["poolclass"] = sa.pool.StaticPool
    engine = sa.create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    return engine


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _engine(url: str) -> Engine:
    """One engine per URL per process, with the tables created on first use."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create_engine(url)
            try:
                metadata.create_all(engine, checkfirst=True)
            except (sa.exc.OperationalError, sa.exc.IntegrityError, sa.exc.ProgrammingError):  # created meanwhile
                metadata.create_all(engine, checkfirst=True)
            _engines[url] = engine
        return engine


class MigrationState:
    """Records and reads migration outcomes in the state database at ``url`` (default: SQLite file)."""

    def __init__(self, url: str | None = None) -> None:
        raw = url or default_state_url()
        #: The database's URL with its password masked (what may be logged or shown).
        self.url = redact_url(raw)
        self.engine = _engine(raw)

    @classmethod
    def for_mount(cls, mount: Any) -> MigrationState:
        return cls(state_url_for_mount(mount))

    # -- runs -----------------------------------------------------------------------------------------
    def start_run(
        self, policy: str, mount: str, path: str, *, plan_id: str | None, batch: int | None, engine: str
    ) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                runs_table.insert().values(
                    policy=policy,
                    mount=mount,
                    path=path,
                    plan_id=plan_id,
                    batch=batch,
                    engine=engine,
                    state=RUNNING,
                    started_at=_utcnow(),
                    files=0,
                    moved=0,
                    skipped=0,
                    kept=0,
                    failed=0,
                    bytes=0,
                )
            )
            return int(result.inserted_primary_key[0])

    def finish_run(
        self, run_id: int, summary: MigrationSummary | None, *, state: str, message: str | None = None
    ) -> None:
        values: dict[str, Any] = {"state": state, "finished_at": _utcnow(), "message": message}
        if summary is not None:
            values.update(
                files=summary.files,
                moved=summary.moved,
                skipped=summary.skipped,
                kept=summary.kept,
                failed=summary.failed,
                bytes=summary.bytes,
            )
        with self.engine.begin() as conn:
            conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(**values))

    def last_run(self, policy: str, mount: str) -> dict[str, Any] | None:
        query = (
            sa.select(runs_table)
            .where(runs_table.c.policy == policy, runs_table.c.mount == mount)
            .order_by(runs_table.c.started_at.desc(), runs_table.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        run = dict(row)
        run["started_at"] = _aware(run["started_at"])
        run["finished_at"] = _aware(run["finished_at"])
        return run

    # -- files ----------------------------------------------------------------------------------------
    def record(self, policy: str, mount: str, outcomes: Iterable[FileOutcome], *, plan_id: str | None) -> int:
        """Upsert the latest outcome of each file; return how many rows were written.

        A ``claimed`` outcome (another run is moving the file) is not this run's to record and is left out.
        """
        now = _utcnow()
        rows = [
            {
                "policy": policy,
                "mount": mount,
                "source": o.source,
                "path": o.path,
                "status": o.status,
                "size": o.size,
                "reason": o.reason,
                "plan_id": plan_id,
                "updated_at": now,
            }
            for o in outcomes
            if o.status != CLAIMED
        ]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            self._upsert(conn, rows)
        return len(rows)

    def _upsert(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        dialect = conn.dialect.name
        keys = ("policy", "mount", "source", "path")
        changed = ("status", "size", "reason", "plan_id", "updated_at")
        if dialect in ("sqlite", "postgresql"):
            if dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert
            else:
                from sqlalchemy.dialects.postgresql import insert
            statement = insert(files_table)
            statement = statement.on_conflict_do_update(
                index_elements=list(keys), set_={name: statement.excluded[name] for name in changed}
            )
            conn.execute(statement, rows)
            return
        for row in rows:  # portable fallback: update, insert when nothing was there
            where = sa.and_(*(files_table.c[k] == row[k] for k in keys))
            updated = conn.execute(files_table.update().where(where).values({k: row[k] for k in changed}))
            if not updated.rowcount:
                conn.execute(files_table.insert().values(row))

    def totals(self, policy: str, mount: str) -> dict[str, int]:
        """``moved_files``/``moved_bytes`` (moved or skipped), ``kept_files``, ``failed_files``."""
        query = (
            sa.select(
                files_table.c.status, sa.func.count(), sa.func.coalesce(sa.func.sum(files_table.c.size), 0)
            )
            .where(files_table.c.policy == policy, files_table.c.mount == mount)
            .group_by(files_table.c.status)
        )
        counts: dict[str, tuple[int, int]] = {}
        with self.engine.connect() as conn:
            for status, count, size in conn.execute(query):
                counts[status] = (int(count), int(size))
        done = [counts.get(MOVED, (0, 0)), counts.get(SKIPPED, (0, 0))]
        return {
            "moved_files": sum(c for c, _ in done),
            "moved_bytes": sum(s for _, s in done),
            "kept_files": counts.get(KEPT, (0, 0))[0],
            "failed_files": counts.get(FAILED, (0, 0))[0],
        }

    def failures(self, policy: str, mount: str, limit: int = 20) -> list[dict[str, str]]:
        """The most recent files that were kept or failed, with their reasons."""
        query = (
            sa.select(files_table.c.path, files_table.c.status, files_table.c.reason)
            .where(
                files_table.c.policy == policy,
                files_table.c.mount == mount,
                files_table.c.status.in_((KEPT, FAILED)),
            )
            .order_by(files_table.c.updated_at.desc(), files_table.c.path)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [{"path": p, "status": s, "reason": r or ""} for p, s, r in conn.execute(query)]

    def outcome(self, policy: str, mount: str, path: str) -> dict[str, Any] | None:
        query = sa.select(files_table).where(
            files_table.c.policy == policy, files_table.c.mount == mount, files_table.c.path == path
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row is not None else None


class OutcomeRecorder:
    """Buffers file outcomes and writes them to a :class:`MigrationState` every ``FLUSH_EVERY`` files.

    A failure to record is logged, never raised: the state is informational and must not fail a
    migration whose files moved correctly.
    """

    def __init__(
        self,
        state: MigrationState,
        policy: str,
        mount: str,
        plan_id: str | None,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        self.state = state
        self.policy = policy
        self.mount = mount
        self.plan_id = plan_id
        self.flush_every = flush_every
        self._buffer: list[FileOutcome] = []

    def __call__(self, outcome: FileOutcome) -> None:
        self._buffer.append(outcome)
        if len(self._buffer) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        buffer, self._buffer = self._buffer, []
        try:
            self.state.record(self.policy, self.mount, buffer, plan_id=self.plan_id)
        except Exception:
            log.exception("Could not record %d migration outcomes in %s", len(buffer), self.state.url)


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
