"""The Trino step script on a real Trino 476 over real HDFS (Apache Hadoop) and S3 (moto).

Each test runs the exact ``Args`` of :func:`~airflow_hybrid.query.steps.build_emr_step` (``cli="trino"``) with
``trino-cli`` replaced by the CLI jar pointed at the session's server (``--server http://127.0.0.1:<port>``),
then reads the Parquet files the CTAS wrote at the output location and compares them with DuckDB over the
same TPC-DS files, for three layouts of ``store_sales``:

* ``hdfs``: every table a whole HDFS directory, the result written to HDFS;
* ``split``: older files on S3, newer on HDFS (two directory locations unioned), ``date_dim`` on S3 alone;
* ``listed``: older files on S3, newer on HDFS in a directory that still holds the older files' originals
  (which must not be read twice), one of the listed files in a subdirectory: an HDFS ``Location`` with
  ``file_uris``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.mount.resolver import Location
from airflow_hybrid.query import tpcds
from airflow_hybrid.query.schema import column_definitions
from airflow_hybrid.query.steps import EmrTable, build_emr_step
from airflow_hybrid.query.trino_script import result_column_names

pytestmark = pytest.mark.integration

QUERIES = (3, 42, 52, 55)
SHAPES = ("hdfs", "split", "listed")
SCALE_FACTOR = 0.05
STORE_SALES_FILES = 4


@dataclasses.dataclass
class Lake:
    local: dict[str, list[Path]]  # table -> its local Parquet files (every row once)
    hdfs_root: str  # hdfs://127.0.0.1:<rpc>/trino-steps/<run>
    bucket: str
    columns: dict[str, list[str]]


def _part(index: int) -> str:
    return f"part-{index:05d}.parquet"


@pytest.fixture(scope="module")
def lake(tmp_path_factory, hadoop_hdfs, s3_client) -> Lake:
    """TPC-DS at scale factor 0.05 (store_sales in 4 files by sale date), staged on HDFS and S3 for the shapes."""
    stage = tmp_path_factory.mktemp("trino-lake")
    con = tpcds.connect()
    con.execute("CALL dsdgen(sf = ?)", [SCALE_FACTOR])
    local: dict[str, list[Path]] = {}
    for table in tpcds.TPCDS_TABLES:
        data = con.execute(f"SELECT * FROM {table} ORDER BY {tpcds.ORDER_KEYS[table]}").to_arrow_table()
        count = STORE_SALES_FILES if table == "store_sales" else 1
        step = -(-data.num_rows // count)
        (stage / "full" / table).mkdir(parents=True)
        local[table] = []
        for index in range(count):
            path = stage / "full" / table / _part(index)
            pq.write_table(data.slice(index * step, step), path)
            local[table].append(path)
    con.close()
    sales = local["store_sales"]
    (stage / "split" / "store_sales").mkdir(parents=True)
    (stage / "listed" / "store_sales" / "late").mkdir(parents=True)
    for index in (2, 3):
        (stage / "split" / "store_sales" / _part(index)).write_bytes(sales[index].read_bytes())
    for index in (0, 1, 2):  # 0 and 1: originals of the files on S3, still on HDFS
        (stage / "listed" / "store_sales" / _part(index)).write_bytes(sales[index].read_bytes())
    (stage / "listed" / "store_sales" / "late" / _part(3)).write_bytes(sales[3].read_bytes())

    hdfs_root = f"{hadoop_hdfs.fs_uri}/trino-steps/{uuid.uuid4().hex[:8]}"
    hadoop_hdfs.fs_shell("-mkdir", "-p", hdfs_root)
    hadoop_hdfs.fs_shell("-put", *(str(stage / name) for name in ("full", "split", "listed")), hdfs_root)
    bucket = f"trino-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    for index in (0, 1):
        s3_client.upload_file(str(sales[index]), bucket, f"split/store_sales/{_part(index)}")
    s3_client.upload_file(str(local["date_dim"][0]), bucket, f"split/date_dim/{_part(0)}")
    columns = {table: column_definitions(pq.read_schema(files[0]), "trino") for table, files in local.items()}
    return Lake(local, hdfs_root, bucket, columns)


def _table(lake: Lake, name: str, locations: list) -> EmrTable:
    """An ``EmrTable`` built by hand (with ``column_names`` when the dataclass has them)."""
    fields = {field.name for field in dataclasses.fields(EmrTable)}
    extra = {}
    if "column_names" in fields:
        extra["column_names"] = [str(field.name) for field in pq.read_schema(lake.local[name][0])]
    return EmrTable(name=name, locations=locations, columns=lake.columns[name], **extra)


def _tables(lake: Lake, shape: str) -> list[EmrTable]:
    hdfs, s3 = lake.hdfs_root, f"s3://{lake.bucket}"
    if shape == "hdfs":
        return [_table(lake, name, [f"{hdfs}/full/{name}"]) for name in tpcds.TPCDS_TABLES]
    older = Location(member="s3", uri=f"{s3}/split/store_sales")
    if shape == "split":
        sales = [older, Location(member="hdfs", uri=f"{hdfs}/split/store_sales")]
    else:
        directory = f"{hdfs}/listed/store_sales"
        newer = (f"{directory}/{_part(2)}", f"{directory}/late/{_part(3)}")
        sales = [older, Location(member="hdfs", uri=directory, file_uris=newer)]
    return [
        _table(lake, "store_sales", sales),
        _table(lake, "item", [f"{hdfs}/full/item"]),
        _table(lake, "date_dim", [f"{s3}/split/date_dim"]),
    ]


def _run_step(trino_server, step: dict) -> None:
    args = step["HadoopJarStep"]["Args"]
    assert args[0] == "trino-cli"
    command = [*trino_server.cli_command(), *args[1:]]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    assert result.returncode == 0, f"trino-cli failed ({result.returncode}):\n{result.stderr[-4000:]}"


def _webhdfs(hadoop_hdfs, path: str, op: str) -> bytes:
    url = f"{hadoop_hdfs.webhdfs_url}/webhdfs/v1{path}?op={op}&user.name={hadoop_hdfs.user}"
    with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - loopback URL
        return response.read()


def _read_output(output_uri: str, hadoop_hdfs, s3_client) -> pa.Table:
    """Every (non-hidden) file the CTAS wrote under ``output_uri``, read as Parquet and concatenated."""
    blobs = []
    if output_uri.startswith("hdfs://"):
        path = "/" + output_uri.split("://", 1)[1].split("/", 1)[1].rstrip("/")
        listing = json.loads(_webhdfs(hadoop_hdfs, path, "LISTSTATUS"))["FileStatuses"]["FileStatus"]
        names = [entry["pathSuffix"] for entry in listing if entry["type"] == "FILE"]
        blobs = [
            _webhdfs(hadoop_hdfs, f"{path}/{name}", "OPEN")
            for name in names
            if not name.startswith((".", "_"))
        ]
    else:
        bucket, prefix = output_uri.removeprefix("s3://").split("/", 1)
        listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        keys = [item["Key"] for item in listed if not item["Key"].rsplit("/", 1)[-1].startswith((".", "_"))]
        blobs = [s3_client.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys]
    assert blobs, f"no result files under {output_uri}"
    return pa.concat_tables([pq.read_table(io.BytesIO(blob)) for blob in blobs])


def _duckdb_rows(lake: Lake, sql: str) -> list[tuple]:
    con = duckdb.connect()
    for table, files in lake.local.items():
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet({[str(f) for f in files]!r})")
    return con.execute(sql).fetchall()


def _canonical(rows) -> list[tuple]:
    """Rows in a fixed order, decimals at the query's scale (2), so the two engines' answers compare."""

    def value(v):
        return v.quantize(Decimal("0.01")) if isinstance(v, Decimal) else v

    return sorted((tuple(value(v) for v in row) for row in rows), key=repr)


@pytest.mark.parametrize("number", QUERIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_trino_step_answers_equal_duckdb(lake, trino_server, hadoop_hdfs, s3_client, shape, number):
    sql = tpcds.tpcds_query(number)
    tables = _tables(lake, shape)
    output = (
        f"{lake.hdfs_root}/results/q{number}/"
        if shape == "hdfs"
        else f"s3://{lake.bucket}/results/{shape}/q{number}/"
    )
    step = build_emr_step(name=f"q{number}", sql=sql, tables=tables, output_uri=output, cli="trino")
    _run_step(trino_server, step)
    result = _read_output(output, hadoop_hdfs, s3_client)
    expected = _duckdb_rows(lake, sql)
    assert len(expected) > 0
    assert result.column_names == result_column_names(sql, tables)
    assert _canonical(tuple(row.values()) for row in result.to_pylist()) == _canonical(expected)


def _cli(trino_server, script: str) -> subprocess.CompletedProcess:
    command = [*trino_server.cli_command(), "--catalog", "hive", "--schema", "hybrid", "--execute", script]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603


def test_path_column_is_the_file_uri_under_the_table_location(lake, trino_server):
    """``"$path"`` (what a file-list filter compares) is the table location joined with the file's relative
    path, on HDFS (``hdfs://host:port/...``) as on S3 (``s3://bucket/...``), subdirectories included."""
    locations = {"h": f"{lake.hdfs_root}/listed/store_sales", "s": f"s3://{lake.bucket}/split/store_sales"}
    script = ["CREATE SCHEMA IF NOT EXISTS hive.hybrid"]
    for name, location in locations.items():
        script += [
            f"DROP TABLE IF EXISTS path_probe_{name}",
            f"CREATE TABLE path_probe_{name} ({', '.join(lake.columns['store_sales'])}) "
            f"WITH (external_location = '{location}', format = 'PARQUET')",
        ]
    script.append(
        'SELECT DISTINCT "$path" FROM path_probe_h UNION ALL SELECT DISTINCT "$path" FROM path_probe_s'
    )
    result = _cli(trino_server, ";\n".join(script) + ";")
    assert result.returncode == 0, result.stderr[-4000:]
    paths = sorted(line.strip('"') for line in result.stdout.splitlines() if line.strip())
    hdfs = locations["h"]
    assert paths == sorted([
        f"{hdfs}/{_part(0)}", f"{hdfs}/{_part(1)}", f"{hdfs}/{_part(2)}", f"{hdfs}/late/{_part(3)}",
        f"{locations['s']}/{_part(0)}", f"{locations['s']}/{_part(1)}",
    ])  # fmt: skip


def test_a_rerun_needs_the_output_prefix_deleted_first(lake, trino_server, hadoop_hdfs, s3_client):
    """The CTAS refuses an output directory that holds files (``HIVE_PATH_ALREADY_EXISTS``, the CLI printing
    "Target directory for table '...' already exists: <output>"): whoever submits
    the step again deletes the output prefix first; then the re-run writes the same answer."""
    sql = tpcds.tpcds_query(55)
    output = f"s3://{lake.bucket}/results/rerun/q55/"
    step = build_emr_step(name="q55", sql=sql, tables=_tables(lake, "split"), output_uri=output, cli="trino")
    _run_step(trino_server, step)
    first = _read_output(output, hadoop_hdfs, s3_client)

    args = step["HadoopJarStep"]["Args"]
    again = subprocess.run(  # noqa: S603
        [*trino_server.cli_command(), *args[1:]], capture_output=True, text=True, timeout=600, check=False
    )
    assert again.returncode != 0
    assert f"already exists: {output}" in again.stderr

    prefix = output.removeprefix(f"s3://{lake.bucket}/")
    for item in s3_client.list_objects_v2(Bucket=lake.bucket, Prefix=prefix).get("Contents", []):
        s3_client.delete_object(Bucket=lake.bucket, Key=item["Key"])
    _run_step(trino_server, step)
    assert _canonical(
        tuple(r.values()) for r in _read_output(output, hadoop_hdfs, s3_client).to_pylist()
    ) == (_canonical(tuple(r.values()) for r in first.to_pylist()))
