"""Trino reads (and writes) one unchanging ``s3://<bucket>/...`` location through the gateway while the files
under it migrate from HDFS to S3.

The session's single-node Trino (``trino_server``, :mod:`airflow_hybrid.devstack.trino`) gets a catalog of its
own per test (``CREATE CATALOG ... USING hive``: a file metastore in the test's directory, Trino's native S3
client, AWS SDK v2, pointed at the gateway with the gateway's writer key), so no second JVM is started.

A union mount (``s3`` on moto read first, ``hdfs`` on the devstack's WebHDFS server, new files to ``s3``, a cache)
holds TPC-DS store_sales at scale factor 0.05 on HDFS in :data:`FILES` files; the same bytes are kept in a local
directory, the reference. One external Hive table, ``external_location = 's3://<bucket>/tpcds/store_sales'``,
never altered, is queried at fixed points (no sleeps, no threads racing), as
``test_tpcds_through_gateway.py`` does for DuckDB:

* before the migration;
* for each file, between its copy to S3 and its removal from HDFS (the file is on both members: a gateway that
  listed it twice would read its rows twice), from the Migrator's own call of the HDFS member's ``delete``;
* for each file, once it is moved (S3 only; a gateway that missed it would lose its rows);
* after the migration.

A round is three queries: the row count with two sums, rows and net paid per file (``"$path"``: every file
shows, so a duplicate or a gap changes the answer), and a group-by promotion (16 groups). Each must equal
DuckDB's answer over the local files. A second test writes through the gateway (a CTAS and an INSERT into an external table) and
reads the rows back through Trino and the files through the mount's S3 member.
"""

from __future__ import annotations

import io
import re
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.devstack.trino import S3Endpoint, hive_catalog_properties
from airflow_hybrid.gateway.config import GatewayConfig
from airflow_hybrid.gateway.server import BackgroundGateway
from airflow_hybrid.query import tpcds
from airflow_hybrid.query.schema import column_definitions
from airflow_hybrid.query.sql import sql_string
from tests.integration.gateway.conftest import KEYS_CONN, MOUNT, WRITER
from tests.integration.gateway.migration_rounds import migrate_checking_each_step

pytestmark = pytest.mark.integration

BASE = "tpcds"
SCALE = 0.05
FILES = 4
SALES = f"{BASE}/store_sales"
PART_NAMES = [f"part-{i:05d}.parquet" for i in range(FILES)]
#: Each query with ``{table}`` (Trino's table, or DuckDB's view over the local files) and ``{path}`` (the
#: file's URI under the table's location: Trino's ``"$path"``, DuckDB's from the local file name).
QUERIES = {
    "totals": "SELECT count(*), sum(ss_net_paid), sum(ss_quantity) FROM {table}",
    "per-file": "SELECT {path} AS p, count(*), sum(ss_net_paid) FROM {table} GROUP BY 1 ORDER BY 1",
    "by-promotion": "SELECT ss_promo_sk, count(*), sum(ss_net_profit) FROM {table} GROUP BY 1 ORDER BY 1 NULLS LAST",
}
_DECIMAL = re.compile(r"-?\d+\.\d+")


@pytest.fixture
def bucket() -> str:
    """The mount's bucket name, new per test (a DNS-style name: Trino's S3 locations are URIs)."""
    return f"trino-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def trino_gateway(lake_env, bucket, tmp_path):
    config = GatewayConfig.from_connection([f"{bucket}={MOUNT}"], KEYS_CONN, port=0, spool_dir=tmp_path / "spool")
    with BackgroundGateway(config) as server:
        yield server


@pytest.fixture
def gw_catalog(trino_server, trino_gateway, tmp_path) -> str:
    """A Hive catalog of the session's Trino whose ``s3://`` is the gateway (the writer's key), dropped after."""
    name = f"gw_{uuid.uuid4().hex[:8]}"
    metastore = tmp_path / "gw-metastore"
    metastore.mkdir()
    endpoint = S3Endpoint(trino_gateway.endpoint, *WRITER)
    trino_server.create_catalog(name, hive_catalog_properties(metastore, s3=endpoint))
    trino_server.execute(f"CREATE SCHEMA {name}.lake")
    yield name
    trino_server.drop_catalog(name)


@pytest.fixture
def sales_lake(lake, tmp_path) -> Path:
    """store_sales on the mount's HDFS member in :data:`FILES` files; the same files in a local directory."""
    written = tpcds.write_tpcds(lake, member="hdfs", base_path=BASE, scale_factor=SCALE, ddl=False,
                                tables=("store_sales",), files_per_table=FILES)
    local = tmp_path / "local"
    local.mkdir()
    for path in written.tables["store_sales"].files:
        with lake.members["hdfs"].open_read(path) as stream:
            (local / path.rsplit("/", 1)[-1]).write_bytes(stream.read())
    assert sorted(p.name for p in local.iterdir()) == PART_NAMES
    return local


def _normal(rows) -> list[tuple]:
    """Rows with Trino's decimal strings as ``Decimal`` (DuckDB's already are), so the two compare."""
    return [tuple(Decimal(v) if isinstance(v, str) and _DECIMAL.fullmatch(v) else v for v in row) for row in rows]


def _local_answers(local: Path, location: str) -> dict[str, list[tuple]]:
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW sales AS SELECT * FROM read_parquet('{sql_string(str(local))}/*.parquet', "
                    "filename=true)")
        path = f"'{sql_string(location)}/' || parse_filename(filename)"
        return {name: _normal(con.execute(sql.format(table="sales", path=path)).fetchall())
                for name, sql in QUERIES.items()}
    finally:
        con.close()


def _trino_answers(trino_server, table: str) -> dict[str, list[tuple]]:
    return {name: _normal(trino_server.execute(sql.format(table=table, path='"$path"')))
            for name, sql in QUERIES.items()}


def test_trino_answers_through_the_gateway_equal_the_local_ones_before_during_and_after_a_migration(
    sales_lake, trino_server, gw_catalog, bucket, lake, monkeypatch
):
    location = f"s3://{bucket}/{SALES}"
    expected = _local_answers(sales_lake, location)
    assert [row[0] for row in expected["per-file"]] == [f"{location}/{name}" for name in PART_NAMES]
    assert expected["totals"][0][0] > 0 and len(expected["by-promotion"]) > 10
    columns = column_definitions(pq.read_schema(sales_lake / PART_NAMES[0]), "trino")
    table = f"{gw_catalog}.lake.store_sales"
    trino_server.execute(f"CREATE TABLE {table} ({', '.join(columns)}) "
                         f"WITH (external_location = '{location}', format = 'PARQUET')")
    ddl = trino_server.execute(f"SHOW CREATE TABLE {table}")[0][0]
    rounds: list[tuple[str, dict[str, list[tuple]]]] = []

    def check(when: str) -> None:
        # An error is recorded, not raised: in the Migrator's delete it would only fail the file's move.
        try:
            answers = _trino_answers(trino_server, table)
        except Exception as err:  # noqa: BLE001 - TrinoError, or the gateway failing under it
            answers = {"error": [(f"{type(err).__name__}: {str(err)[:500]}",)]}
        rounds.append((when, answers))

    order = migrate_checking_each_step(lake, monkeypatch, check, SALES, PART_NAMES)

    assert [when for when, _ in rounds] == order
    wrong = [f"{when}: {name}: {got.get(name, got.get('error'))} != {rows}" for when, got in rounds
             for name, rows in expected.items() if got.get(name) != rows]
    assert not wrong, f"{len(wrong)} wrong answers of {len(rounds)} rounds:\n" + "\n".join(wrong[:10])
    assert trino_server.execute(f"SHOW CREATE TABLE {table}")[0][0] == ddl  # the LOCATION never changed


def test_trino_writes_through_the_gateway_and_reads_its_rows_back(trino_server, gw_catalog, bucket, lake):
    """A CTAS then an INSERT into an external table on the gateway: the files land on the mount's
    ``collection.create`` member (S3), Parquet that pyarrow reads, and Trino reads the rows back."""
    location = f"s3://{bucket}/written"
    table = f"{gw_catalog}.lake.written"
    rows = "SELECT x AS id, 'row-' || CAST(x AS varchar) AS name FROM UNNEST(sequence({}, {})) AS t(x)"
    trino_server.execute(f"CREATE TABLE {table} WITH (external_location = '{location}', format = 'PARQUET') AS "
                         + rows.format(1, 10000))
    trino_server.execute(f"INSERT INTO {table} " + rows.format(10001, 20000))

    assert trino_server.execute(f"SELECT count(*), sum(id), count(DISTINCT name) FROM {table}") == [
        [20000, 20000 * 20001 // 2, 20000]
    ]
    files = [f.path for f in lake.members["s3"].walk_files("written")]
    assert files and not lake.members["hdfs"].exists("written")
    tables = []
    for path in files:
        with lake.members["s3"].open_read(path) as stream:
            tables.append(pq.read_table(io.BytesIO(stream.read())))
    data = pa.concat_tables(tables).sort_by("id")
    assert data.column("id").to_pylist() == list(range(1, 20001))
    assert data.column("name").to_pylist() == [f"row-{i}" for i in range(1, 20001)]
