"""TPC-DS through the gateway equals TPC-DS on the local files, before, during and after a migration, with one
``s3://<bucket>/tpcds/<table>/`` location per table that never changes.

A union mount (``s3`` on moto read first, ``hdfs`` on the devstack's WebHDFS server, new files to ``s3``, a cache)
holds TPC-DS at scale factor 0.05 on HDFS, store_sales in :data:`FILES` files; the same bytes are kept in a local
directory, the reference. The project's :class:`~airflow_hybrid.migration.migrator.Migrator` moves store_sales
HDFS -> S3 one file per run, and a round of queries runs at fixed points (no sleeps, no threads racing):

* before the migration;
* for each file, between its copy to S3 and its removal from HDFS (the file is on both members: a gateway that
  listed it twice would read its rows twice), from the Migrator's own call of the HDFS member's ``delete``;
* for each file, once it is moved (S3 only; a gateway that missed it would lose its rows);
* after the migration.

A round is a fresh DuckDB (httpfs, no caches carried over) running queries 3, 42, 52 and 55 and a per-file count
and sum of store_sales (every file shows, so a duplicate or a gap changes the answer even where the TPC-DS
queries' filters skip a file), plus the store_sales keys as ListObjectsV2 pages of 2 list them. Each must equal
the local answer. pyspark with s3a (hadoop-aws from ``jvm/pom.xml``) reads the same locations for one query and
the per-file figures before and after a migration.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pytest

from airflow_hybrid.gateway.config import GatewayConfig
from airflow_hybrid.gateway.server import BackgroundGateway
from airflow_hybrid.migration.migrator import Migrator
from airflow_hybrid.policy.parser import parse_policy
from airflow_hybrid.query import tpcds
from airflow_hybrid.query.duckdb_s3 import httpfs_extension_path
from airflow_hybrid.query.sql import sql_string
from tests.integration.gateway.conftest import KEYS_CONN, MOUNT, WRITER, s3_client
from tests.integration.gateway.migration_rounds import POLICY, hdfs_entries, migrate_checking_each_step

pytestmark = pytest.mark.integration

BASE = "tpcds"
SCALE = 0.05
FILES = 6
QUERIES = (3, 42, 52, 55)
SALES = f"{BASE}/store_sales"
PART_NAMES = [f"part-{i:05d}.parquet" for i in range(FILES)]
#: Rows and net paid per store_sales file: every file appears, so a file read twice or missed changes it.
PER_FILE = (
    "SELECT parse_filename(filename) AS part, count(*) AS n, sum(ss_net_paid) AS paid "
    "FROM read_parquet('{location}*.parquet', filename=true) GROUP BY part ORDER BY part"
)


@pytest.fixture
def tpcds_lake(lake, tmp_path) -> Path:
    """TPC-DS on the mount's HDFS member (store_sales in :data:`FILES` files); the same files in a local
    directory, returned (``<dir>/<table>/part-*.parquet``)."""
    written = tpcds.write_tpcds(lake, member="hdfs", base_path=BASE, scale_factor=SCALE, ddl=False,
                                files_per_table={"store_sales": FILES, "item": 1, "date_dim": 1})
    local = tmp_path / "local"
    for table in written.tables.values():
        (local / table.name).mkdir(parents=True)
        for path in table.files:
            with lake.members["hdfs"].open_read(path) as stream:
                (local / table.name / path.rsplit("/", 1)[-1]).write_bytes(stream.read())
    assert sorted(p.name for p in (local / "store_sales").iterdir()) == PART_NAMES
    return local


@pytest.fixture
def bucket() -> str:
    """The mount's bucket name, new per test (Spark keeps one S3A file system per bucket for the JVM's life)."""
    return f"tpcds-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tpcds_gateway(lake_env, bucket, tmp_path):
    config = GatewayConfig.from_connection([f"{bucket}={MOUNT}"], KEYS_CONN, port=0, spool_dir=tmp_path / "spool")
    with BackgroundGateway(config) as server:
        yield server


def _locations(root: str) -> dict[str, str]:
    return {table: f"{root}/{table}/" for table in tpcds.TPCDS_TABLES}


def _duckdb_answers(locations: dict[str, str], endpoint: str | None = None) -> dict[str, list[tuple]]:
    """Each query's rows on a new DuckDB over ``locations`` (through the gateway at ``endpoint`` if given)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        if endpoint is not None:
            con.execute(f"LOAD '{sql_string(str(httpfs_extension_path()))}'")
            con.execute(
                f"CREATE SECRET gw (TYPE s3, KEY_ID '{WRITER[0]}', SECRET '{WRITER[1]}', REGION 'us-east-1', "
                f"ENDPOINT '{urlsplit(endpoint).netloc}', URL_STYLE 'path', USE_SSL false)"
            )
        for table, location in locations.items():
            con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{sql_string(location)}*.parquet')")
        answers = {f"q{n}": con.execute(tpcds.tpcds_query(n)).fetchall() for n in QUERIES}
        answers["per-file"] = con.execute(PER_FILE.format(location=sql_string(locations["store_sales"]))).fetchall()
        return answers
    finally:
        con.close()


def _listed_keys(endpoint: str, bucket: str) -> list[str]:
    """store_sales' keys as ListObjectsV2 pages of 2 give them, in order."""
    client = s3_client(endpoint)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{SALES}/",
                                                             PaginationConfig={"PageSize": 2})
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def test_duckdb_answers_through_the_gateway_equal_the_local_ones_before_during_and_after_a_migration(
    tpcds_lake, tpcds_gateway, bucket, lake, monkeypatch
):
    expected = _duckdb_answers(_locations(str(tpcds_lake)))
    assert all(expected.values()), {name: len(rows) for name, rows in expected.items()}
    assert [row[0] for row in expected["per-file"]] == PART_NAMES
    keys = [f"{SALES}/{name}" for name in PART_NAMES]
    gateway_locations = _locations(f"s3://{bucket}/{BASE}")
    rounds: list[tuple[str, dict[str, list[tuple]], list[str]]] = []

    def check(when: str) -> None:
        # An error is recorded, not raised: in the Migrator's delete it would only fail the file's move.
        try:
            answers = _duckdb_answers(gateway_locations, tpcds_gateway.endpoint)
        except Exception as err:  # noqa: BLE001 - DuckDB's IO errors, or its message not decoding
            answers = {"error": [(f"{type(err).__name__}: {str(err)[:300]}",)]}
        rounds.append((when, answers, _listed_keys(tpcds_gateway.endpoint, bucket)))

    order = migrate_checking_each_step(lake, monkeypatch, check, SALES, PART_NAMES)

    assert [when for when, _, _ in rounds] == order
    wrong = [f"{when}: {name}: {got.get(name, got.get('error'))} != {rows}" for when, got, _ in rounds
             for name, rows in expected.items() if got.get(name) != rows]
    wrong += [f"{when}: listed {listed}" for when, _, listed in rounds if listed != keys]
    assert not wrong, f"{len(wrong)} wrong answers of {len(rounds)} rounds:\n" + "\n".join(wrong[:10])


# -- Spark (s3a) ------------------------------------------------------------------------------------------------
SPARK_QUERY = 52


def _canonical(rows) -> list[tuple]:
    """Rows in a fixed order, decimals at the queries' scale (2), so DuckDB's and Spark's answers compare."""
    def value(v):
        return v.quantize(Decimal("0.01")) if isinstance(v, Decimal) else v

    return sorted((tuple(value(v) for v in row) for row in rows), key=repr)


def _spark_answers(spark, locations: dict[str, str]) -> dict[str, list[tuple]]:
    from pyspark.sql import functions as F

    frames = {table: spark.read.parquet(location) for table, location in locations.items()}
    for table, frame in frames.items():
        frame.createOrReplaceTempView(table)
    per_file = (frames["store_sales"]
                .withColumn("part", F.regexp_extract(F.input_file_name(), r"([^/]+)$", 1))
                .groupBy("part").agg(F.count("*").alias("n"), F.sum("ss_net_paid").alias("paid")))
    return {
        f"q{SPARK_QUERY}": _canonical(spark.sql(tpcds.tpcds_query(SPARK_QUERY)).collect()),
        "per-file": _canonical(per_file.collect()),
    }


@pytest.fixture
def spark_on_gateway(spark, tpcds_gateway, bucket):
    """The session's S3A settings for the gateway's bucket only (per-bucket options; moto's stay the default)."""
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    prefix = f"fs.s3a.bucket.{bucket}."
    settings = {
        "endpoint": tpcds_gateway.endpoint, "endpoint.region": "us-east-1", "path.style.access": "true",
        "connection.ssl.enabled": "false", "access.key": WRITER[0], "secret.key": WRITER[1],
    }
    for key, value in settings.items():
        hadoop.set(prefix + key, value)
    yield spark
    for key in settings:
        hadoop.unset(prefix + key)


def test_spark_s3a_answers_through_the_gateway_equal_the_local_ones_before_and_after_a_migration(
    tpcds_lake, spark_on_gateway, bucket, lake
):
    local = _duckdb_answers(_locations(str(tpcds_lake)))
    expected = {f"q{SPARK_QUERY}": _canonical(local[f"q{SPARK_QUERY}"]), "per-file": _canonical(local["per-file"])}
    assert all(expected.values())
    locations = _locations(f"s3a://{bucket}/{BASE}")

    before = _spark_answers(spark_on_gateway, locations)
    migrator = Migrator(lake, parse_policy(POLICY), retry_delay=0.05)
    summary = migrator.run(hdfs_entries(lake, SALES, PART_NAMES), concurrency=2, prefix=SALES)
    assert summary.moved == FILES, summary.to_dict()
    assert not list(lake.members["hdfs"].walk_files(SALES))
    after = _spark_answers(spark_on_gateway, locations)

    assert before == expected
    assert after == expected
