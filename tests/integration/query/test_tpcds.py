"""The sample lake and the DuckDB engine against the devstack's real servers: WebHDFS (files written with
CREATE, times set with SETTIMES) and S3 (moto), both on loopback, through real Airflow connections."""

from __future__ import annotations

import datetime

import duckdb
import pytest

from airflow_hybrid.devstack.stack import DevStack
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.resolver import resolve_locations
from airflow_hybrid.ops.copy import copy_file
from airflow_hybrid.query import tpcds
from airflow_hybrid.query.duckdb_engine import run_duckdb_query
from airflow_hybrid.query.result import json_value

pytestmark = pytest.mark.integration

BUCKET = "query-devstack"

OLDEST = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
NEWEST = datetime.datetime(2024, 1, 31, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def stack():
    """Mount ``onprem_union``: ``hdfs:///tmp`` on the WebHDFS server + ``s3://query-devstack/lake``."""
    # moto's state is process-wide: a bucket of this module's own keeps other tests' objects out.
    with DevStack(buckets=(BUCKET,)) as devstack, pytest.MonkeyPatch.context() as mp:
        for key, value in devstack.airflow_env(bucket=BUCKET, hdfs_root="/tmp", s3_prefix="lake").items():
            mp.setenv(key, value)
        mount = HybridMount.from_conn_id("onprem_union")
        tpcds.write_tpcds(mount, member="hdfs", scale_factor=0.05, mtime_range=(OLDEST, NEWEST))
        yield devstack, mount


def _plain_after_move(devstack, mount, sql):
    """DuckDB over plain Parquet files: the WebHDFS server's data directory plus the two moved files,
    fetched from S3 with the S3 store into a local directory."""
    con = duckdb.connect()
    hdfs_dir = devstack.hdfs_dir / "tmp" / "tpcds"
    for table in tpcds.TPCDS_TABLES:
        files = [str(p) for p in sorted((hdfs_dir / table).glob("*.parquet"))]
        if table == "store_sales":
            for index in (0, 1):
                local = devstack.data_dir / f"moved-{index}.parquet"
                with mount.members["s3"].open_read(f"tpcds/store_sales/part-{index:05d}.parquet") as stream:
                    local.write_bytes(stream.read())
                files.append(str(local))
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({files!r})")
    return con.execute(sql).fetchall()


def test_lake_on_webhdfs_with_times_and_ddl(stack):
    devstack, mount = stack
    hdfs = mount.members["hdfs"]
    files = sorted(hdfs.walk_files("tpcds/store_sales"), key=lambda f: f.path)
    assert [f.path for f in files] == [f"tpcds/store_sales/part-{i:05d}.parquet" for i in range(4)]
    assert [f.mtime for f in files][0] == OLDEST.timestamp()
    assert [f.mtime for f in files][-1] == NEWEST.timestamp()
    with hdfs.open_read("tpcds/create-table.sql") as stream:
        ddl = stream.read().decode()
    assert "LOCATION 'hdfs:///tmp/tpcds/store_sales/';" in ddl
    # An engine on another host opens the namenode-qualified URI (the WebHDFS host, RPC port 8020 by default).
    assert resolve_locations(mount, "/tpcds/store_sales")[0].uri == "hdfs://127.0.0.1:8020/tmp/tpcds/store_sales"


QUERIES = (3, 42, 52, 55)
TABLES = {t: f"/tpcds/{t}" for t in tpcds.TPCDS_TABLES}


@pytest.fixture(scope="module")
def before_and_after(stack):
    """Each query's result on the lake as written, then the two oldest store_sales files are copied to S3
    (verified) and removed from HDFS, as a migration does; the tests query after that."""
    _, mount = stack
    before = {
        n: run_duckdb_query(tpcds.tpcds_query(n), mount_conn_id="onprem_union", tables=TABLES)
        for n in QUERIES
    }
    for index in (0, 1):
        path = f"tpcds/store_sales/part-{index:05d}.parquet"
        copy_file(mount.members["hdfs"], path, mount.members["s3"], path)
        mount.members["hdfs"].delete(path)
    return before


@pytest.mark.parametrize("number", QUERIES)
def test_tpcds_answers_equal_before_and_after_moving_older_files_to_s3(stack, before_and_after, number):
    devstack, mount = stack
    assert [loc.member for loc in resolve_locations(mount, "tpcds/store_sales")] == ["s3", "hdfs"]
    sql = tpcds.tpcds_query(number)
    expected = _plain_after_move(devstack, mount, sql)
    after = run_duckdb_query(
        sql,
        mount_conn_id="onprem_union",
        tables=TABLES,
        output_path=f"hybrid://onprem_union/results/q{number}.csv",
        output_format="csv",
    )
    before = before_and_after[number]
    assert after.rows == before.rows == len(expected) > 0
    assert after.preview == before.preview == [[json_value(v) for v in row] for row in expected[:10]]
    assert mount.members["s3"].exists(f"results/q{number}.csv")
