"""What migrations did, per policy and file, for ``airflow hybrid policy status`` and the report.

Two small tables (SQLAlchemy Core) in the mount's ``catalog_url`` database, or by default a SQLite file
``$AIRFLOW_HOME/hybrid/migration.db``:

* ``hybrid_migration_files``: the latest outcome of each file of a policy (``moved``, ``skipped``: moved
  earlier or already copied, ``kept``: the source changed so it stayed, ``failed``), with the reason;
* ``hybrid_migration_runs``: one row per operator run (plan, batch, engine, totals, state, times);
* ``hybrid_migration_claims``: which run is migrating which file now, with a lease
  (:class:`~airflow_hybrid.migration.claims.MigrationClaims`).

Outcomes and runs are a record: migrations never consult them to decide what to do, so a lost or stale
row cannot cause a wrong move. Claims keep concurrent runs off each other's files (no duplicate work, no
outcome reported for a file another run is moving); a file's safety never depends on them (see
:mod:`airflow_hybrid.migration.migrator`). Several workers share claims only through a shared database: set the
mount's ``catalog_url`` to PostgreSQL when migrations run on more than one host.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
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

    def fail_run(self, run_id: int, error: BaseException) -> None:
        """Finish a run that ``error`` stopped (before or while copying: no totals)."""
        self.finish_run(run_id, None, state=FAILURE, message=f"{type(error).__name__}: {error}")

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
