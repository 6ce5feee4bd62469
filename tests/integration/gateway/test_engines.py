"""Engines outside Airflow reading one unchanging location through the gateway: DuckDB's httpfs and pyarrow's
S3FileSystem (the AWS C++ SDK), over a table whose files are split between HDFS and S3."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.integration.gateway.conftest import MOUNT, WRITER, put

pytestmark = pytest.mark.integration


def _parquet(rows: range) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": list(rows), "name": [f"row-{i}" for i in rows]}), sink)
    return sink.getvalue()


@pytest.fixture
def table(lake):
    """``tbl/``: one file on HDFS only, one in S3 only, one on both (mid-migration): 300 rows, ids 0..299."""
    put(lake, "hdfs", "tbl/part-0.parquet", _parquet(range(0, 100)))
    put(lake, "s3", "tbl/part-1.parquet", _parquet(range(100, 200)))
    moving = _parquet(range(200, 300))
    put(lake, "hdfs", "tbl/part-2.parquet", moving)
    put(lake, "s3", "tbl/part-2.parquet", moving)
    return "tbl"


def _httpfs() -> str:
    spec = importlib.util.find_spec("duckdb_extension_httpfs")
    assert spec is not None, "duckdb-extension-httpfs (the test extra) is not installed"
    path = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{duckdb.__version__}" / \
        "httpfs.duckdb_extension"
    assert path.is_file(), f"{path}: duckdb-extension-httpfs does not match DuckDB {duckdb.__version__}"
    return str(path)


def _duckdb(endpoint: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"LOAD '{_httpfs()}'")
    con.execute(
        "CREATE SECRET gw (TYPE s3, KEY_ID ?, SECRET ?, ENDPOINT ?, URL_STYLE 'path', USE_SSL false, "
        "REGION 'us-east-1')".replace("?", "'{}'").format(WRITER[0], WRITER[1], urlsplit(endpoint).netloc)
    )
    return con


@pytest.mark.hdfs_servers  # on the devstack's WebHDFS server and on Apache Hadoop's
def test_duckdb_httpfs_reads_and_writes_parquet_through_the_gateway(table, gateway, lake):
    con = _duckdb(gateway.endpoint)
    count, total, files = con.execute(
        f"SELECT count(*), sum(id), count(DISTINCT filename) FROM read_parquet('s3://{MOUNT}/{table}/*.parquet', "
        "filename=true)").fetchone()
    assert (count, total, files) == (300, sum(range(300)), 3)  # the file on both members read once
    con.execute(f"COPY (SELECT id * 2 AS doubled FROM read_parquet('s3://{MOUNT}/{table}/*.parquet')) "
                f"TO 's3://{MOUNT}/out/doubled.parquet' (FORMAT parquet)")
    assert lake.members["s3"].exists("out/doubled.parquet")  # written to the collection.create member
    assert con.execute(f"SELECT sum(doubled) FROM 's3://{MOUNT}/out/doubled.parquet'").fetchone()[0] == \
        2 * sum(range(300))
    con.close()


def test_pyarrow_s3filesystem_reads_and_writes_through_the_gateway(table, gateway, lake):
    from pyarrow import fs

    parts = urlsplit(gateway.endpoint)
    s3 = fs.S3FileSystem(access_key=WRITER[0], secret_key=WRITER[1], endpoint_override=parts.netloc,
                         scheme="http", region="us-east-1")
    listed = sorted(info.path for info in s3.get_file_info(fs.FileSelector(f"{MOUNT}/{table}")))
    assert listed == [f"{MOUNT}/{table}/part-{i}.parquet" for i in range(3)]
    read = pq.read_table(f"{MOUNT}/{table}", filesystem=s3)
    assert read.num_rows == 300 and sorted(read.column("id").to_pylist()) == list(range(300))
    pq.write_table(read, f"{MOUNT}/copy/all.parquet", filesystem=s3)
    assert lake.members["s3"].exists("copy/all.parquet")
    assert pq.read_table(f"{MOUNT}/copy/all.parquet", filesystem=s3).num_rows == 300
    with s3.open_input_file(f"{MOUNT}/{table}/part-0.parquet") as f:  # ranged reads (footer, then columns)
        assert f.size() == len(_parquet(range(0, 100)))
        f.seek(f.size() - 4)
        assert f.read(4) == b"PAR1"
