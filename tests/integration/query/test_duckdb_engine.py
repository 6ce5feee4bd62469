"""The embedded DuckDB engine over ``hybrid://``: TPC-DS answers equal DuckDB over the plain Parquet files,
whether a table lives in the on-prem member (a local directory standing in for HDFS) or is split between it
and S3 (moto's S3 server on loopback, reached through a real Airflow AWS connection).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid

import duckdb
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.query import tpcds
from airflow_hybrid.query.duckdb_engine import DuckDBQuery, run_duckdb_query
from airflow_hybrid.query.result import json_value
from tests.integration.moto_s3 import AWS_CONN_ID

pytestmark = pytest.mark.integration

QUERIES = (3, 42, 52, 55)
SCALE_FACTOR = 0.05  # the smallest at which all four queries return rows


def _mount_options(onprem, bucket):
    return {
        "members": {
            "hdfs": {"uri": f"file://{onprem}"},
            "s3": {"uri": f"s3://{bucket}/lake", "conn_id": AWS_CONN_ID},
        },
        "priority.read": "s3,hdfs",
        "collection.create": "s3",
    }


@pytest.fixture(scope="module")
def tpcds_lakes(tmp_path_factory, s3_client):
    """Two mounts over the same TPC-DS data, plus the plain Parquet directory as the reference.

    ``lake_onprem``: every table in the on-prem member. ``lake_hybrid``: ``store_sales``' two oldest files and
    all of ``item`` moved to S3 (as a migration policy would), the rest on-prem.
    """
    root = tmp_path_factory.mktemp("query-lake")
    reference = root / "reference"
    bucket = f"query-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    with pytest.MonkeyPatch.context() as mp:
        conns = {}
        for name in ("lake_onprem", "lake_hybrid"):
            onprem = root / name
            onprem.mkdir()
            options = _mount_options(onprem, f"{bucket}-{name.replace('_', '-')}")
            s3_client.create_bucket(Bucket=f"{bucket}-{name.replace('_', '-')}")
            mp.setenv(
                f"AIRFLOW_CONN_{name.upper()}", json.dumps({"conn_type": "hybrid_mount", "extra": options})
            )
            conns[name] = (onprem, f"{bucket}-{name.replace('_', '-')}")
        onprem, _ = conns["lake_onprem"]
        mount = HybridMount.from_conn_id("lake_onprem")
        tpcds.write_tpcds(mount, member="hdfs", scale_factor=SCALE_FACTOR)
        shutil.copytree(onprem / "tpcds", reference)
        hybrid_onprem, hybrid_bucket = conns["lake_hybrid"]
        shutil.copytree(onprem / "tpcds", hybrid_onprem / "tpcds")
        moved = [f"tpcds/store_sales/part-0000{i}.parquet" for i in (0, 1)]
        moved += [f"tpcds/item/{name}" for name in os.listdir(hybrid_onprem / "tpcds" / "item")]
        for rel in moved:
            s3_client.upload_file(str(hybrid_onprem / rel), hybrid_bucket, f"lake/{rel}")
            os.remove(hybrid_onprem / rel)
        os.rmdir(hybrid_onprem / "tpcds" / "item")
        yield {"reference": reference, "conns": conns}


def _tables(base="/tpcds"):
    return {table: f"{base}/{table}" for table in tpcds.TPCDS_TABLES}


def _reference_rows(reference, sql):
    con = duckdb.connect()
    for table in tpcds.TPCDS_TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{reference}/{table}/*.parquet')")
    return con.execute(sql).fetchall()


def _s3_parquet_rows(s3_client, bucket, key):
    body = s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    return [tuple(row.values()) for row in table.to_pylist()]


@pytest.mark.parametrize("mount", ["lake_onprem", "lake_hybrid"])
@pytest.mark.parametrize("number", QUERIES)
def test_tpcds_query_answers_equal_duckdb_on_plain_parquet(tpcds_lakes, s3_client, mount, number):
    sql = tpcds.tpcds_query(number)
    expected = _reference_rows(tpcds_lakes["reference"], sql)
    assert expected, f"query {number} returns no rows at scale factor {SCALE_FACTOR}"

    result = run_duckdb_query(
        sql, mount_conn_id=mount, tables=_tables(), output_path=f"hybrid://{mount}/results/q{number}.parquet"
    )

    assert result.rows == len(expected)
    assert result.preview == [[json_value(v) for v in row] for row in expected[:10]]
    # The result went to the mount's create member (S3) and holds exactly the expected rows, in order.
    _, bucket = tpcds_lakes["conns"][mount]
    assert _s3_parquet_rows(s3_client, bucket, f"lake/results/q{number}.parquet") == expected


def test_split_table_reads_both_members(tpcds_lakes):
    onprem, _ = tpcds_lakes["conns"]["lake_hybrid"]
    assert sorted(os.listdir(onprem / "tpcds" / "store_sales")) == [
        "part-00002.parquet",
        "part-00003.parquet",
    ]
    sql = "SELECT count(*) AS n, sum(ss_ext_sales_price) AS revenue FROM store_sales"
    expected = _reference_rows(tpcds_lakes["reference"], sql)
    result = run_duckdb_query(sql, mount_conn_id="lake_hybrid", tables=_tables())
    assert result.rows == 1 and result.output_path == ""
    assert result.preview == [[json_value(v) for v in expected[0]]]


def test_csv_output_to_a_local_path(tpcds_lakes, tmp_path):
    sql = tpcds.tpcds_query(55)
    expected = _reference_rows(tpcds_lakes["reference"], sql)
    result = run_duckdb_query(
        sql,
        mount_conn_id="lake_hybrid",
        tables=_tables(),
        output_path=f"{tmp_path}/out/",
        output_format="csv",
        preview_rows=2,
    )
    with open(tmp_path / "out" / "result.csv", newline="") as stream:
        written = list(csv.reader(stream))
    assert result.output_path == f"{tmp_path}/out/result.csv"
    assert written[0] == ["brand_id", "brand", "ext_price"]
    assert written[1:] == [[str(v) for v in row] for row in expected]
    assert len(result.preview) == 2 and result.columns == ["brand_id", "brand", "ext_price"]


def test_output_to_a_plain_s3_uri(tpcds_lakes, s3_client):
    _, bucket = tpcds_lakes["conns"]["lake_onprem"]
    result = run_duckdb_query(
        "SELECT i_category, count(*) AS items FROM item GROUP BY ALL ORDER BY ALL",
        mount_conn_id="lake_onprem",
        tables=_tables(),
        output_path=f"s3://{bucket}/exports/categories.parquet",
        output_conn_id=AWS_CONN_ID,
    )
    rows = _s3_parquet_rows(s3_client, bucket, "exports/categories.parquet")
    assert len(rows) == result.rows and sum(n for _, n in rows) == _count(tpcds_lakes, "item")


def _count(tpcds_lakes, table):
    return _reference_rows(tpcds_lakes["reference"], f"SELECT count(*) FROM {table}")[0][0]


def test_missing_table_names_its_url(tpcds_lakes):
    with pytest.raises(duckdb.Error, match=r"hybrid://lake_onprem/tpcds/nope/\*\.parquet"):
        run_duckdb_query("SELECT * FROM nope", mount_conn_id="lake_onprem", tables={"nope": "/tpcds/nope"})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tables": {"bad name": "/t"}}, "tables: 'bad name' is not a valid view name"),
        ({"tables": {"t": "/t"}, "mount_conn_id": None}, "logical path but no mount_conn_id"),
        ({"output_format": "json"}, "output_format must be 'parquet' or 'csv'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DuckDBQuery("SELECT 1", **{"mount_conn_id": "lake_onprem", **kwargs})


def test_empty_sql_is_refused():
    with pytest.raises(ValueError, match="the SQL statement is empty"):
        DuckDBQuery(" ;\n ")
