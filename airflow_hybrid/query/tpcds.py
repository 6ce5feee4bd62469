"""The TPC-DS sample lake: generate tables with DuckDB's TPC-DS extension and write them into a mount.

The extension comes from the ``duckdb-extension-tpcds`` wheel, whose version must equal DuckDB's; it is
loaded from the wheel's file and nothing is ever downloaded at run time. Each table becomes several
Parquet files, ``<base_path>/<table>/part-NNNNN.parquet``, written one at a time to a local temporary file
by DuckDB ``COPY`` and streamed to the store, with the generated database itself kept on disk (DuckDB
spills), so memory stays flat as the scale factor grows. Rows are ordered by each table's leading key
(``ss_sold_date_sk`` for ``store_sales``), so with ``mtime_range`` the oldest files hold the oldest sales --
the part an age-based migration policy (``olderThan(...)``) selects.

Next to the data, ``<base_path>/create-table.sql`` holds the Hive DDL users run on-prem
(``CREATE EXTERNAL TABLE ... STORED AS PARQUET LOCATION 'hdfs://...'``), typed from the Parquet schema.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import io
import logging
import os
import tempfile
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow.parquet as pq

from airflow_hybrid.exceptions import HybridError
from airflow_hybrid.query.extensions import wheel_extension_path
from airflow_hybrid.query.schema import column_definitions, table_schema
from airflow_hybrid.query.sql import sql_string
from airflow_hybrid.stores.base import Store, join_path, normalize_path

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import pyarrow as pa

    from airflow_hybrid.mount import HybridMount

log = logging.getLogger(__name__)

#: The tables of the sample lake (the reference tutorial's queries 3, 42, 52 and 55 use only these).
TPCDS_TABLES: tuple[str, ...] = ("store_sales", "item", "date_dim")
DEFAULT_BASE_PATH = "tpcds"
DDL_FILE_NAME = "create-table.sql"
#: Column each table's files are ordered (and split) by; other tables use their first column.
ORDER_KEYS = {"store_sales": "ss_sold_date_sk", "item": "i_item_sk", "date_dim": "d_date_sk"}


class TpcdsExtensionError(HybridError, RuntimeError):
    """The TPC-DS extension wheel is missing or does not match the installed DuckDB."""


# -- the generator ---------------------------------------------------------------------------------
def tpcds_extension_path() -> Path:
    """Path of the TPC-DS extension file shipped in the ``duckdb-extension-tpcds`` wheel.

    :raises TpcdsExtensionError: the wheel is not installed, or was built for another DuckDB version.
    """
    return wheel_extension_path("tpcds", TpcdsExtensionError)


def connect(database: str = ":memory:") -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the TPC-DS extension loaded from the wheel (automatic downloads disabled)."""
    extension = tpcds_extension_path()
    con = duckdb.connect(
        database, config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    try:
        con.execute(f"LOAD '{sql_string(str(extension))}'")
    except duckdb.Error as err:
        con.close()
        raise TpcdsExtensionError(f"cannot load {extension} into duckdb {duckdb.__version__}: {err}") from err
    return con


@functools.lru_cache(maxsize=1)
def _query_set() -> dict[int, str]:
    con = connect()
    try:
        return dict(con.execute("SELECT query_nr, query FROM tpcds_queries() ORDER BY query_nr").fetchall())
    finally:
        con.close()


def tpcds_query_numbers() -> list[int]:
    """The numbers of the queries in the generator's query set (1 to 99)."""
    return list(_query_set())


def tpcds_query(number: int) -> str:
    """The text of TPC-DS query ``number`` from the generator's own query set (``tpcds_queries()``)."""
    queries = _query_set()
    try:
        return queries[int(number)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(
            f"no TPC-DS query {number!r}; the generator's query set has {min(queries)} to {max(queries)}"
        ) from None


# -- writing the lake --------------------------------------------------------------------------------
@dataclass
class TableWritten:
    """One table of the sample lake as written."""

    name: str
    path: str
    location: str
    rows: int
    bytes: int
    files: list[str] = field(default_factory=list)


@dataclass
class TpcdsLake:
    """Summary of a generated sample lake (small: fit for XCom)."""

    mount: str
    member: str | None
    base_path: str
    scale_factor: float
    tables: dict[str, TableWritten]
    ddl_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def write_tpcds(
    mount: HybridMount,
    *,
    member: str | None = None,
    base_path: str = DEFAULT_BASE_PATH,
    scale_factor: float = 0.01,
    tables: Sequence[str] = TPCDS_TABLES,
    files_per_table: int | dict[str, int] = 4,
    mtime_range: tuple[datetime.datetime, datetime.datetime] | None = None,
    overwrite: bool = False,
    ddl: bool = True,
    location_root: str | None = None,
    work_dir: str | None = None,
    upload_workers: int = 2,
) -> TpcdsLake:
    """Generate TPC-DS ``tables`` at ``scale_factor`` and write them as Parquet into ``mount``.

    :param member: write into this member only (e.g. ``hdfs``, the on-prem side); ``None`` writes through the
        mount, i.e. to its ``collection.create`` members.
    :param base_path: logical directory of the lake in the mount; table ``t`` goes to ``<base_path>/t/``.
    :param files_per_table: Parquet files per table (an int, or per table name).
    :param mtime_range: ``(oldest, newest)``: give each table's files modification times spread evenly over
        this range, ``part-00000`` the oldest. Needs stores that can set times (local directories, HDFS).
    :param overwrite: replace tables that already exist (in any member); otherwise an existing table is an
        error, so that a re-run never mixes parts of two generations.
    :param ddl: also write the Hive DDL (``create-table.sql``) next to the data.
    :param location_root: root URI the DDL's ``LOCATION`` clauses use instead of the member's own URI (e.g.
        ``hdfs://namenode:8020/tmp``, when the store is reached through another address than Hive's).
    :param work_dir: local directory for DuckDB's database and the per-file temporary files.
    :param upload_workers: files streamed to the store concurrently while DuckDB writes the next ones.
    """
    base = normalize_path(base_path)
    if scale_factor <= 0:
        raise ValueError(f"scale_factor must be positive, got {scale_factor}")
    if member is not None and member not in mount.members:
        raise ValueError(
            f"mount {mount.name!r} has no member {member!r} (members: {', '.join(mount.members)})"
        )
    targets = [member] if member else list(mount.create_members)
    stores = {name: mount.members[name] for name in targets}
    if mtime_range is not None:
        oldest, newest = mtime_range
        if newest < oldest:
            raise ValueError(f"mtime_range: newest {newest} is before oldest {oldest}")
        for name, store in stores.items():
            if not store.features.set_times:
                raise ValueError(
                    f"mtime_range: member {name!r} ({type(store).__name__}) cannot set modification times"
                )
    counts = {
        t: files_per_table.get(t, 4) if isinstance(files_per_table, dict) else files_per_table for t in tables
    }
    for table, count in counts.items():
        if count < 1:
            raise ValueError(f"files_per_table: {table} needs at least one file, got {count}")
    _check_targets_free(mount, base, tables, overwrite)

    writer: Store | HybridMount = mount.members[member] if member else mount
    written: dict[str, TableWritten] = {}
    schemas: dict[str, pa.Schema] = {}
    with contextlib.ExitStack() as stack:
        work = work_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="hybrid-tpcds-"))
        database = os.path.join(work, "tpcds.duckdb")
        con = connect(database)
        stack.callback(lambda: Path(database).unlink(missing_ok=True))
        stack.callback(con.close)
        con.execute(f"SET temp_directory = '{sql_string(work)}'")
        log.info("Generating TPC-DS at scale factor %s in %s", scale_factor, database)
        con.execute("CALL dsdgen(sf = ?)", [float(scale_factor)])
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=max(1, upload_workers)))
        lake = _LakeWriter(con, pool, upload_workers, writer, stores, work, mtime_range)
        for table in tables:
            written[table], schemas[table] = lake.write_table(table, join_path(base, table), counts[table])
            written[table].location = _location(mount, targets[0], written[table].path, location_root)

    ddl_path = None
    if ddl:
        ddl_path = join_path(base, DDL_FILE_NAME)
        text = hive_ddl({t: (written[t].location, schemas[t]) for t in tables}, scale_factor=scale_factor)
        writer.write(ddl_path, io.BytesIO(text.encode()))
    return TpcdsLake(mount.name, member, base, float(scale_factor), written, ddl_path)


def _check_targets_free(mount: HybridMount, base: str, tables: Iterable[str], overwrite: bool) -> None:
    for table in tables:
        path = join_path(base, table)
        holders = [name for name in mount.read_order if mount.members[name].exists(path)]
        if not holders:
            continue
        if not overwrite:
            raise FileExistsError(
                f"hybrid://{mount.name}/{path} already exists in member(s) {', '.join(holders)}; "
                "pass overwrite=True to replace the table"
            )
        log.info("Removing the previous %s from %s", path, holders)
        mount.delete(path, recursive=True)


@dataclass
class _LakeWriter:
    """Writes tables from a DuckDB database as Parquet files, uploading while DuckDB writes the next file."""

    con: duckdb.DuckDBPyConnection
    pool: ThreadPoolExecutor
    upload_workers: int
    writer: Store | HybridMount
    stores: dict[str, Store]  # where the files land (to set their times)
    work: str
    mtime_range: tuple[datetime.datetime, datetime.datetime] | None

    def write_table(self, table: str, table_path: str, file_count: int) -> tuple[TableWritten, pa.Schema]:
        columns = [row[0] for row in self.con.execute(f"DESCRIBE {table}").fetchall()]
        key = ORDER_KEYS.get(table, columns[0])
        staged = f"__parts_{table}"
        self.con.execute(
            f"CREATE TEMP TABLE {staged} AS SELECT *, ntile({int(file_count)}) OVER (ORDER BY {key}) AS __part "
            f"FROM {table}"
        )
        result = TableWritten(name=table, path=table_path, location="", rows=0, bytes=0)
        schema = None
        pending: deque[Future] = deque()
        try:
            for index in range(file_count):
                name = f"part-{index:05d}.parquet"
                local = os.path.join(self.work, f"{table}-{name}")
                rows = self.con.execute(
                    f"COPY (SELECT * EXCLUDE (__part) FROM {staged} WHERE __part = {index + 1} ORDER BY {key}) "
                    f"TO '{sql_string(local)}' (FORMAT parquet)"
                ).fetchone()[0]
                if schema is None:
                    schema = pq.read_schema(local)
                result.rows += rows
                result.bytes += os.path.getsize(local)
                path = join_path(table_path, name)
                result.files.append(path)
                mtime = _spread(self.mtime_range, index, file_count)
                pending.append(self.pool.submit(self._upload, local, path, mtime))
                while len(pending) >= max(1, self.upload_workers):  # bounded: few local files at once
                    pending.popleft().result()
            while pending:
                pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            self.con.execute(f"DROP TABLE IF EXISTS {staged}")
        log.info("Wrote %s: %d rows in %d files under %s", table, result.rows, file_count, table_path)
        return result, schema

    def _upload(self, local: str, path: str, mtime: float | None) -> None:
        try:
            with open(local, "rb") as stream:
                self.writer.write(path, stream, size_hint=os.path.getsize(local))
            if mtime is not None:
                for store in self.stores.values():
                    set_mtime(store, path, mtime)
        finally:
            Path(local).unlink(missing_ok=True)


def _spread(
    mtime_range: tuple[datetime.datetime, datetime.datetime] | None, index: int, count: int
) -> float | None:
    if mtime_range is None:
        return None
    oldest, newest = (_timestamp(t) for t in mtime_range)
    if count == 1:
        return newest
    return oldest + (newest - oldest) * index / (count - 1)


def _timestamp(value: datetime.datetime | datetime.date) -> float:
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()


def set_mtime(store: Store, path: str, mtime: float) -> None:
    """Set the modification time of ``path`` in ``store`` (one declaring ``features.set_times``)."""
    if not store.features.set_times:
        raise ValueError(f"{store!r} cannot set modification times")
    store.set_times(path, mtime=mtime)


def _location(mount: HybridMount, member: str, path: str, location_root: str | None) -> str:
    if location_root:
        return f"{location_root.rstrip('/')}/{path}"
    return mount.members[member].uri(path)


# -- Hive DDL ----------------------------------------------------------------------------------------
def hive_ddl(tables: dict[str, tuple[str, pa.Schema]], scale_factor: float | None = None) -> str:
    """``CREATE EXTERNAL TABLE`` statements for ``{name: (location, schema)}``, Parquet-backed."""
    lines = ["-- Hive DDL for the TPC-DS sample lake written by airflow-hybrid"]
    if scale_factor is not None:
        lines[0] += f" (scale factor {scale_factor:g})"
    lines.append("-- Run on-prem with: hive -f create-table.sql  (or beeline -f)")
    for name, (location, schema) in tables.items():
        columns = ",\n".join(f"  {definition}" for definition in column_definitions(schema, "hive"))
        lines += [
            "",
            f"DROP TABLE IF EXISTS {name};",
            f"CREATE EXTERNAL TABLE {name} (\n{columns}\n)",
            "STORED AS PARQUET",
            f"LOCATION '{sql_string(location.rstrip('/'))}/';",
        ]
    return "\n".join(lines) + "\n"


def read_table_schemas(
    store: Store | HybridMount, base_path: str, tables: Sequence[str]
) -> dict[str, pa.Schema]:
    """The schema of each table under ``base_path``, from the footer of its first Parquet file."""
    return {table: table_schema(store, join_path(base_path, table)) for table in tables}


def write_hive_ddl(
    mount: HybridMount,
    *,
    member: str | None = None,
    base_path: str = DEFAULT_BASE_PATH,
    tables: Sequence[str] = TPCDS_TABLES,
    location_root: str | None = None,
) -> str:
    """Write ``<base_path>/create-table.sql`` for tables already in the mount (read from their footers).

    Returns the logical path of the DDL file.
    """
    base = normalize_path(base_path)
    source: Store | HybridMount = mount.members[member] if member else mount
    schemas = read_table_schemas(source, base, tables)
    locations = {}
    for table in tables:
        path = join_path(base, table)
        if location_root:
            locations[table] = _location(mount, "", path, location_root)
        elif member:
            locations[table] = mount.members[member].uri(path)
        else:
            locations[table] = mount.physical_uri(path)
    text = hive_ddl({t: (locations[t], schemas[t]) for t in tables})
    ddl_path = join_path(base, DDL_FILE_NAME)
    source.write(ddl_path, io.BytesIO(text.encode()))
    return ddl_path
