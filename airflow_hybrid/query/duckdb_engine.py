"""The embedded engine: DuckDB in the task's process, reading tables through ``hybrid://``.

Each named table becomes a view over its Parquet files in the mount (``CREATE VIEW store_sales AS SELECT *
FROM read_parquet('hybrid://onprem_union/tpcds/store_sales/*.parquet')``), so the query reads the files from
whichever member holds each of them, before and after a migration alike. For a mount with a cache the
files are resolved when the query starts (:mod:`airflow_hybrid.query.native`): fresh copies in a local tier are
read natively by DuckDB, leased for the query, files on S3 by DuckDB's httpfs (:mod:`airflow_hybrid.query.duckdb_s3`),
the rest through ``hybrid://``. Should httpfs have read another version of a file than the one listed when the
query started (a file rewritten, or moved off S3 by a migration, meanwhile), the query is run again with its S3
files through ``hybrid://``, which follows moves and never mixes versions. The result is written by DuckDB to
a local temporary file and streamed to the output path (``hybrid://``, ``s3://``, ``file://`` or a local
path); the summary carries its row count and first rows.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import re
import tempfile
import threading
import uuid
from typing import TYPE_CHECKING

import duckdb

from airflow_hybrid.mount.filesystem import HybridFileSystem
from airflow_hybrid.paths import hybrid_url, is_hybrid_url, split_hybrid_url
from airflow_hybrid.query.duckdb_s3 import HttpfsAccess, HttpfsUnavailableError
from airflow_hybrid.query.native import DEFAULT_LEASE_SECONDS, TablePlan, TablePlanner
from airflow_hybrid.query.result import QueryResult, json_value
from airflow_hybrid.query.sql import sql_string, strip_statement
from airflow_hybrid.stores.factory import store_from_uri

if TYPE_CHECKING:
    from collections.abc import Mapping

log = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GLOB_CHARS = re.compile(r"[*?\[]")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def table_url(mount_conn_id: str | None, path: str) -> str:
    """The URL DuckDB reads a table from: a logical path joins ``hybrid://<mount_conn_id>/``; URIs pass through."""
    if _URI.match(path):
        return path
    if not mount_conn_id:
        raise ValueError(f"table path {path!r} is a logical path but no mount_conn_id was given")
    return hybrid_url(mount_conn_id, path)


def parquet_source(url: str) -> str:
    """``read_parquet(...)`` over a file, a glob, or every ``*.parquet`` file of a directory."""
    if not (_GLOB_CHARS.search(url) or url.endswith(".parquet")):
        url = url.rstrip("/") + "/*.parquet"
    return f"read_parquet('{sql_string(url)}')"


class DuckDBQuery:
    """One query over ``hybrid://`` tables; :meth:`interrupt` (from another thread) cancels it."""

    def __init__(
        self,
        sql: str,
        *,
        mount_conn_id: str | None = None,
        tables: Mapping[str, str] | None = None,
        output_path: str | None = None,
        output_format: str = "parquet",
        output_conn_id: str | None = None,
        preview_rows: int = 10,
        settings: Mapping[str, object] | None = None,
        native: bool = True,
        s3_native: bool = True,
        speculate: bool = True,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        holder: str | None = None,
        filesystem: HybridFileSystem | None = None,
    ) -> None:
        """
        :param sql: one SQL statement (DuckDB dialect; the TPC-DS query texts run unchanged).
        :param mount_conn_id: the mount that logical table paths belong to.
        :param tables: view name -> logical path (or ``hybrid://``/``s3://``/``file://`` URI) of a table's
            Parquet directory, file or glob.
        :param output_path: where to write the result (a file path; a trailing ``/`` writes
            ``result.<format>`` inside it). ``None``: run and summarise only.
        :param output_format: ``parquet`` or ``csv`` (with a header line).
        :param output_conn_id: Airflow connection for a non-``hybrid://`` output (e.g. ``aws_default``).
        :param preview_rows: how many leading rows the summary carries.
        :param settings: DuckDB settings (``memory_limit``, ``threads``, ...; httpfs's, such as ``http_timeout``,
            when the query reads S3 files with it).
        :param native: resolve the files of each table of a mount with a cache when the query starts, so
            DuckDB reads fresh copies in a local tier natively (leased for the query), the rest through
            ``hybrid://`` (:mod:`airflow_hybrid.query.native`). ``False``: every table through ``hybrid://``.
        :param s3_native: with ``native``, files on S3 (at an S3 member or in a shared S3 cache tier) are read by
            DuckDB's httpfs with a secret from the store's connection, the versions read checked against the
            listing afterwards (:mod:`airflow_hybrid.query.duckdb_s3`). ``False``: through ``hybrid://``.
        :param speculate: with ``native``, a table whose files the catalog holds as ready local copies is read
            from them while its freshness check (the members' listings) runs alongside, instead of before; a
            check that finds a change (a file added, removed, rewritten or moved) runs the query again over the
            checked plan, so the answer is the same and a warm query does not wait for the source's round trips.
        :param lease_seconds: how long the query's leases last unless renewed (renewed every third of it
            while the query runs, so a crashed task's lease ends by itself).
        :param holder: who holds the leases, for the cache report (default ``duckdb/<pid>/<random>``).
        :param filesystem: the ``hybrid://`` filesystem to read through (default: a new one).
        """
        if output_format not in ("parquet", "csv"):
            raise ValueError(f"output_format must be 'parquet' or 'csv', got {output_format!r}")
        for name in tables or {}:
            if not _IDENTIFIER.fullmatch(name):
                raise ValueError(f"tables: {name!r} is not a valid view name")
        self.sql = strip_statement(sql)
        self.mount_conn_id = mount_conn_id
        self.tables = {name: table_url(mount_conn_id, path) for name, path in (tables or {}).items()}
        self.output_format = output_format
        self.output_path = self._output_file(output_path) if output_path else None
        self.output_conn_id = output_conn_id
        self.preview_rows = max(0, int(preview_rows))
        self.settings = dict(settings or {})
        self.native = native
        self.s3_native = s3_native
        self.speculate = speculate
        self.lease_seconds = float(lease_seconds)
        self.holder = holder or f"duckdb/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self.fs = filesystem if filesystem is not None else HybridFileSystem(skip_instance_cache=True)
        #: view name -> its plan, for the tables read file by file in the last run
        self.plans: dict[str, TablePlan] = {}
        #: why the last run was run again with its S3 files through hybrid:// (``None``: it was not)
        self.retried: str | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()

    def _output_file(self, path: str) -> str:
        return path + f"result.{self.output_format}" if path.endswith("/") else path

    def view_statements(self, plans: Mapping[str, TablePlan] | None = None) -> list[str]:
        """``CREATE VIEW`` per table: over the files of its plan when ``plans`` has one, else its URL."""
        plans = plans or {}
        return [
            f"CREATE VIEW {name} AS SELECT * FROM "
            + (planned_source(plans[name]) if name in plans else parquet_source(url))
            for name, url in self.tables.items()
        ]

    def run(self) -> QueryResult:
        self.retried = None
        s3 = HttpfsAccess() if self.native and self.s3_native else None
        planners = [TablePlanner(self.fs, self.holder, self.lease_seconds, s3=s3)]
        try:
            try:
                return self._run(planners[0], s3)
            except _ReadAnotherVersion as err:
                log.warning("%s; running the query again with its S3 files through hybrid://", err)
                self.retried = str(err)
            planners.append(TablePlanner(self.fs, self.holder, self.lease_seconds))
            return self._run(planners[1], None)
        finally:
            for planner in planners:
                planner.close()  # after the connection closed: nothing reads the leased copies any more

    def _plan(self, planner: TablePlanner) -> dict[str, TablePlan]:
        plans = {}
        if self.native:
            for name, url in self.tables.items():
                plan = planner.plan(name, url, speculate=self.speculate)
                if plan is not None:
                    plans[name] = plan
        self.plans = plans
        return plans

    def _run(self, planner: TablePlanner, s3: HttpfsAccess | None) -> QueryResult:
        plans = self._plan(planner)
        while True:
            with tempfile.TemporaryDirectory(prefix="hybrid-query-") as work, self._connection(work) as con:
                try:
                    rows, staged = self._execute(con, work, plans, s3)
                except duckdb.Error:
                    if (checked := self._checked(planner, plans)) is None:
                        raise
                    plans = checked  # an error over copies the check did not confirm: run the checked plan
                    continue
                if (checked := self._checked(planner, plans)) is None:
                    return self._result(con, work, staged, rows, plans)
            plans = checked

    def _checked(self, planner: TablePlanner, plans: dict[str, TablePlan]) -> dict[str, TablePlan] | None:
        """``None`` when every speculative plan's freshness check confirmed it (:meth:`TablePlanner.confirm`),
        else the plans to run the query again with (a table no longer planned: read through its URL)."""
        outcomes = {name: planner.confirm(plan) for name, plan in plans.items()}
        if all(confirmed for confirmed, _ in outcomes.values()):
            return None
        self.plans = {name: plan for name, (_, plan) in outcomes.items() if plan is not None}
        return self.plans

    def _execute(
        self, con: duckdb.DuckDBPyConnection, work: str, plans: dict[str, TablePlan], s3: HttpfsAccess | None
    ) -> tuple[int, str]:
        """Run the query over ``plans`` into a staged Parquet file: ``(rows, its path)``."""
        targets = [target for plan in plans.values() for target in plan.s3_targets]
        if targets:
            try:
                s3.configure(con)
            except HttpfsUnavailableError as err:
                raise _ReadAnotherVersion(f"httpfs could not be set up ({err})") from err
        self._apply_settings(con)  # after httpfs is loaded: its settings (http_timeout ...) exist then
        if targets:
            s3.start_log(con)  # after the settings (none may turn off what verify reads), before any read
        for statement in self.view_statements(plans):
            con.execute(statement)
        staged = os.path.join(work, "result.parquet")
        try:
            rows = con.execute(f"COPY ({self.sql}) TO '{sql_string(staged)}' (FORMAT parquet)").fetchone()[0]
        except duckdb.Error as err:
            failed = _httpfs_failure(err, targets)
            if failed is None:
                raise
            raise _ReadAnotherVersion(f"DuckDB's httpfs failed on {failed}: {_first_line(err)}") from err
        if targets:
            mismatches = s3.verify(con, targets)
            if mismatches:
                first = mismatches[0]
                raise _ReadAnotherVersion(
                    f"{len(mismatches)} S3 file(s) changed after the query's listing, e.g. {first.target.uri} "
                    f"(logical path {first.target.path}): {first.reason}"
                )
        return int(rows), staged

    def _result(
        self, con: duckdb.DuckDBPyConnection, work: str, staged: str, rows: int, plans: dict[str, TablePlan]
    ) -> QueryResult:
        preview = con.execute(f"SELECT * FROM read_parquet('{sql_string(staged)}') LIMIT {self.preview_rows}")
        columns = [d[0] for d in preview.description]
        first_rows = [[json_value(v) for v in row] for row in preview.fetchall()]
        if self.output_path:
            local = staged
            if self.output_format == "csv":
                local = os.path.join(work, "result.csv")
                con.execute(
                    f"COPY (SELECT * FROM read_parquet('{sql_string(staged)}')) TO '{sql_string(local)}' "
                    "(FORMAT csv, HEADER true)"
                )
            self._upload(local)
        return QueryResult(
            engine="duckdb",
            output_path=self.output_path or "",
            output_format=self.output_format,
            rows=rows,
            columns=columns,
            preview=first_rows,
            details={
                "tables": dict(self.tables),
                "reads": {name: p.summary() for name, p in plans.items()},
                **({"s3_retry": self.retried} if self.retried else {}),
            },
        )

    @contextlib.contextmanager
    def _connection(self, work: str):
        con = duckdb.connect(
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        try:
            con.execute(f"SET temp_directory = '{sql_string(work)}'")
            con.register_filesystem(self.fs)
            with self._lock:
                self._con = con
            yield con
        finally:
            with self._lock:
                self._con = None
            con.close()

    def _apply_settings(self, con: duckdb.DuckDBPyConnection) -> None:
        for key, value in self.settings.items():
            if not _IDENTIFIER.fullmatch(key):
                raise ValueError(f"settings: {key!r} is not a DuckDB setting name")
            con.execute(f"SET {key} = {_sql_literal(value)}")

    def _upload(self, local: str) -> None:
        size = os.path.getsize(local)
        with open(local, "rb") as stream:
            if is_hybrid_url(self.output_path):
                mount_name, rel = split_hybrid_url(self.output_path)
                self.fs.mount(mount_name).write(rel, stream, size_hint=size)
            else:
                parent, name = posixpath.split(self.output_path)
                store = store_from_uri(parent, self.output_conn_id)
                try:
                    store.write(name, stream, size_hint=size)
                finally:
                    store.close()

    def interrupt(self) -> None:
        """Cancel the running query (safe to call from another thread)."""
        with self._lock:
            if self._con is not None:
                self._con.interrupt()


def planned_source(plan: TablePlan) -> str:
    """``read_parquet([...])`` over the files of a plan (no Hive partitions: a planned table has none, and
    the names of cache copies must not be read as partition columns)."""
    files = ", ".join(f"'{sql_string(source)}'" for source in plan.sources)
    return f"read_parquet([{files}], hive_partitioning = false)"


class _ReadAnotherVersion(Exception):
    """httpfs read (or failed to read) another version of an S3 file than the query's listing named, or could
    not be set up: the query runs again with its S3 files through the bridge."""


def _httpfs_failure(err: duckdb.Error, targets: list) -> str | None:
    """The target an httpfs error is about (a file removed or rewritten while read), else ``None``."""
    if not targets or not isinstance(err, (duckdb.IOException, duckdb.HTTPException)):
        return None
    text = str(err)
    for target in targets:
        if target.uri in text:
            return target.uri
    return "an S3 file" if "ETag" in text else None


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def run_duckdb_query(sql: str, **kwargs) -> QueryResult:
    """Run ``sql`` with :class:`DuckDBQuery` and return its summary."""
    return DuckDBQuery(sql, **kwargs).run()


def _sql_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return f"'{sql_string(str(value))}'"
