"""What migrations did, per policy and file, for ``airflow hybrid policy status`` and the report.

Two small tables (SQLAlchemy Core) in the mount's ``catalog_url`` database, or by default a SQLite file
``$AIRFLOW_HOME/hybrid/migration.db``:

* ``hybrid_migration_files``: the latest outcome of each file of a policy (``moved``, ``skipped``: moved
  earlier or already copied, ``kept``: the source changed so it stayed, ``failed``), with the reason;
* ``hybrid_migration_runs``: one row per operator run (plan, batch, engine, totals, state, times), with the
  history the UI page and ``policy status`` show without listing a store: the plan's pending files and bytes
  when it was made (``plan_files``, ``plan_bytes``, ``plan_created_at``), the size of the files the run
  migrated (``migrated_bytes``) and the DAG run it belonged to (``dag_id``, ``dag_run_id``);
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

from airflow_hybrid.exceptions import HybridError
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
    # history (added in place to older tables by _add_history_columns)
    sa.Column("plan_files", sa.BigInteger),
    sa.Column("plan_bytes", sa.BigInteger),
    sa.Column("plan_created_at", sa.DateTime(timezone=True)),
    sa.Column("migrated_bytes", sa.BigInteger),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("dag_run_id", sa.String(250)),
)
#: Columns of ``hybrid_migration_runs`` added after its first version (nullable: older rows have none).
HISTORY_COLUMNS = ("plan_files", "plan_bytes", "plan_created_at", "migrated_bytes", "dag_id", "dag_run_id")
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


_readers: dict[str, Engine] = {}


def _reader_engine(url: str) -> Engine:
    """One read-only engine per URL per process (SQLite ``mode=ro``, PostgreSQL ``READ ONLY``); nothing created."""
    from airflow_hybrid.cache.catalog import create_catalog_engine

    with _engines_lock:
        engine = _readers.get(url)
        if engine is None:
            engine = _readers[url] = create_catalog_engine(url, read_only=True)
        return engine


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
            _add_history_columns(engine)
            _engines[url] = engine
        return engine


def _add_history_columns(engine: Engine) -> None:
    """Add the :data:`HISTORY_COLUMNS` a runs table made by an older version lacks (``ALTER TABLE ADD``)."""
    present = {c["name"] for c in sa.inspect(engine).get_columns(runs_table.name)}
    for name in HISTORY_COLUMNS:
        if name in present:
            continue
        column = runs_table.c[name]
        kind = column.type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(f"ALTER TABLE {runs_table.name} ADD COLUMN {name} {kind}")
        except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # added meanwhile by another process
            if name not in {c["name"] for c in sa.inspect(engine).get_columns(runs_table.name)}:
                raise


def _as_datetime(value: Any) -> datetime | None:
    """A stored or ISO time as an aware datetime (``None`` stays ``None``)."""
    if value is None or isinstance(value, datetime):
        return _aware(value)
    return _aware(datetime.fromisoformat(str(value)))


class MigrationState:
    """Records and reads migration outcomes in the state database at ``url`` (default: SQLite file)."""

    def __init__(self, url: str | None = None, *, read_only: bool = False) -> None:
        raw = url or default_state_url()
        #: The database's URL with its password masked (what may be logged or shown).
        self.url = redact_url(raw)
        #: For readers that must change nothing (the UI page): the database is opened read-only and neither
        #: created nor upgraded; a database or table that does not exist yet reads as empty.
        self.read_only = read_only
        self.engine = _reader_engine(raw) if read_only else _engine(raw)

    @classmethod
    def for_mount(cls, mount: Any, *, read_only: bool = False) -> MigrationState:
        return cls(state_url_for_mount(mount), read_only=read_only)

    def _writable(self) -> None:
        if self.read_only:
            raise HybridError(f"migration state {self.url} is open read-only")

    def stored_columns(self, table: sa.Table) -> list[str]:
        """The columns of ``table`` to read: all for a writer (its tables are created and upgraded); for a
        reader, the stored ones (none when the database or the table does not exist yet)."""
        if not self.read_only:
            return [c.name for c in table.c]
        try:
            with self.engine.connect() as conn:
                stored = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        except sa.exc.NoSuchTableError:
            return []
        except sa.exc.OperationalError as err:
            if "unable to open database file" in str(err):  # SQLite mode=ro never creates the file
                return []
            raise
        return [c.name for c in table.c if c.name in stored]

    # -- runs -----------------------------------------------------------------------------------------
    def start_run(
        self,
        policy: str,
        mount: str,
        path: str,
        *,
        plan_id: str | None,
        batch: int | None,
        engine: str,
        plan_files: int | None = None,
        plan_bytes: int | None = None,
        plan_created_at: datetime | str | None = None,
        dag_id: str | None = None,
        dag_run_id: str | None = None,
    ) -> int:
        """Record a run as running; ``plan_*``: what the plan selected when it was made (the pending files then),
        ``dag_id``/``dag_run_id``: the DAG run it belongs to."""
        self._writable()
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
                    plan_files=plan_files,
                    plan_bytes=plan_bytes,
                    plan_created_at=_as_datetime(plan_created_at),
                    dag_id=dag_id,
                    dag_run_id=dag_run_id,
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
                migrated_bytes=summary.migrated_bytes,
            )
        self._writable()
        with self.engine.begin() as conn:
            conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(**values))

    def fail_run(self, run_id: int, error: BaseException) -> None:
        """Finish a run that ``error`` stopped (before or while copying: no totals)."""
        self.finish_run(run_id, None, state=FAILURE, message=f"{type(error).__name__}: {error}")

    def last_run(self, policy: str, mount: str) -> dict[str, Any] | None:
        runs = self.runs(policy, mount, limit=1)
        return runs[0] if runs else None

    def runs(self, policy: str, mount: str, *, limit: int = 20) -> list[dict[str, Any]]:
        """The last ``limit`` runs of a policy, newest first: every column of ``hybrid_migration_runs`` (``None``
        for a history column an older row lacks), times as aware datetimes."""
        columns = self.stored_columns(runs_table)
        if not columns:
            return []
        query = (
            sa.select(*(runs_table.c[name] for name in columns))
            .where(runs_table.c.policy == policy, runs_table.c.mount == mount)
            .order_by(runs_table.c.started_at.desc(), runs_table.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        result = []
        for row in rows:
            run = dict.fromkeys(c.name for c in runs_table.c)
            run.update(row)
            for key in ("started_at", "finished_at", "plan_created_at"):
                run[key] = _aware(run[key])
            result.append(run)
        return result

    def history(self, policy: str, mount: str, *, limit: int = 30) -> list[dict[str, Any]]:
        """Per plan, oldest first (the last ``limit`` plans): what it found pending when it was made and what
        its runs migrated, from the runs table alone (no store is listed).

        Keys: ``plan_id``, ``at`` (the plan's time, else its first run's), ``pending_files``/``pending_bytes``
        (``None`` for runs recorded before plans' figures were kept), ``moved_files`` (moved or skipped),
        ``moved_bytes``, ``failed_files`` (kept or failed), ``runs``, ``state`` (``failed`` when a run failed,
        ``running`` while one runs, else ``success``) and ``dag_runs`` (``[(dag_id, dag_run_id)]``)."""
        plans: dict[str, dict[str, Any]] = {}
        for run in reversed(self.runs(policy, mount, limit=max(limit * 50, 500))):
            key = run["plan_id"] or f"run-{run['id']}"
            point = plans.get(key)
            if point is None:
                point = plans[key] = {
                    "plan_id": run["plan_id"], "at": run["plan_created_at"] or run["started_at"],
                    "pending_files": run["plan_files"], "pending_bytes": run["plan_bytes"], "moved_files": 0,
                    "moved_bytes": 0, "failed_files": 0, "runs": 0, "state": SUCCESS, "dag_runs": [],
                }
            point["runs"] += 1
            point["moved_files"] += run["moved"] + run["skipped"]
            point["moved_bytes"] += run["migrated_bytes"] or 0
            point["failed_files"] += run["kept"] + run["failed"]
            if run["state"] == FAILURE or (run["state"] == RUNNING and point["state"] != FAILURE):
                point["state"] = run["state"]
            dag_run = (run["dag_id"], run["dag_run_id"])
            if run["dag_run_id"] and dag_run not in point["dag_runs"]:
                point["dag_runs"].append(dag_run)
        return list(plans.values())[-limit:]

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
        if not self.stored_columns(files_table):
            return {"moved_files": 0, "moved_bytes": 0, "kept_files": 0, "failed_files": 0}
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
        if not self.stored_columns(files_table):
            return []
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
