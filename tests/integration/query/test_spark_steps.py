"""The Spark SQL step statements on a real Spark (pyspark 4.3, ``local[2]``) over real HDFS (Apache Hadoop) and
S3 (moto), compared with DuckDB over ``hybrid://``.

A ``hybrid_mount`` (``spark_lake``: ``s3`` on moto read first, ``hdfs`` on Apache Hadoop's WebHDFS with the
root ``hdfs://127.0.0.1:<rpc>/...``, new files to ``s3``) holds TPC-DS at scale factor 0.05 (store_sales in 4
files) in four shapes; each test resolves the tables as ``engine="emr"`` does, runs exactly the statements of
the EMR step (the step's ``-e`` script is the same statements joined), reads the Parquet files Spark wrote,
and compares them with DuckDB's answer over ``hybrid://``:

* ``hdfs``: every table on HDFS only, the result written to HDFS;
* ``split``: store_sales' two older files on S3, the newer two on HDFS (a view over two directories);
* ``doubled``: the older files copied to S3 and still on HDFS (a migration between copy and removal): the
  HDFS part is an exact file list, so every row is read once;
* ``warm``: the ``hdfs`` tables prefetched into the cache's S3 tier (mount ``spark_lake_cached``): each
  resolves to the tier's copy.

Spark Connect (a server in the session's own JVM) and ``spark-submit`` through ``SparkSubmitHook`` (master
``local[2]``) run one query each.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import sys
import uuid
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.cache import ops
from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.resolver import CACHE_MEMBER, resolve_locations
from airflow_hybrid.ops.copy import copy_file
from airflow_hybrid.query import tpcds
from airflow_hybrid.query.duckdb_engine import run_duckdb_query
from airflow_hybrid.query.spark import (
    SparkQueryError,
    SparkSqlRunner,
    run_spark_query,
    spark_query_statements,
)
from airflow_hybrid.query.steps import build_emr_step
from tests.integration.moto_s3 import AWS_CONN_ID

pytestmark = pytest.mark.integration

MOUNT = "spark_lake"
CACHED = "spark_lake_cached"
WEBHDFS = "webhdfs_spark_lake"
QUERIES = ("q3", "q42", "q52", "q55", "daily")
SHAPES = ("hdfs", "split", "doubled", "warm")
BASES = {"hdfs": "all", "split": "split", "doubled": "doubled", "warm": "all"}
OLDEST = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
NEWEST = datetime.datetime(2024, 1, 31, tzinfo=datetime.timezone.utc)
OLDER = ("part-00000.parquet", "part-00001.parquet")


def _sql(query: str) -> str:
    if query.startswith("q"):
        return tpcds.tpcds_query(int(query[1:]))
    from dags.hybrid_query import DAILY_SALES_SQL

    # The report's data interval, rendered as Airflow would for a month of sales.
    return DAILY_SALES_SQL.replace("{{ data_interval_start | ds }}", "2002-11-01").replace(
        "{{ data_interval_end | ds }}", "2002-12-01"
    )


def _tables(base: str) -> dict[str, str]:
    return {table: f"/{base}/{table}" for table in tpcds.TPCDS_TABLES}


@pytest.fixture(scope="module")
def lake(tmp_path_factory, hadoop_hdfs, s3_client):
    """The mounts (as Airflow connections) and the TPC-DS shapes on HDFS and S3."""
    run = uuid.uuid4().hex[:8]
    bucket = f"spark-{run}"
    s3_client.create_bucket(Bucket=bucket)
    hdfs_root = f"{hadoop_hdfs.fs_uri}/spark-steps/{run}"
    members = {
        "s3": {"uri": f"s3://{bucket}/lake", "conn_id": AWS_CONN_ID},
        "hdfs": {"uri": hdfs_root, "conn_id": WEBHDFS},
    }
    plain = {"members": members, "priority.read": "s3,hdfs", "collection.create": "s3"}
    work = tmp_path_factory.mktemp("spark-cache")
    cached = {
        **plain,
        "cache": {
            "tiers": [{"alias": "S3", "uri": f"s3://{bucket}/cache", "conn_id": AWS_CONN_ID, "quota": "1GB"}],
            "default_tier": "S3",
            "catalog_url": f"sqlite:///{work}/catalog.db",
        },
    }
    env = {
        f"AIRFLOW_CONN_{WEBHDFS.upper()}": json.dumps(hadoop_hdfs.webhdfs_connection()),
        f"AIRFLOW_CONN_{MOUNT.upper()}": json.dumps({"conn_type": "hybrid_mount", "extra": plain}),
        f"AIRFLOW_CONN_{CACHED.upper()}": json.dumps({"conn_type": "hybrid_mount", "extra": cached}),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mount = HybridMount.from_conn_id(MOUNT)
        for base in ("all", "split", "doubled"):
            tpcds.write_tpcds(mount, member="hdfs", base_path=base, scale_factor=0.05, mtime_range=(OLDEST, NEWEST),
                              ddl=False)
        hdfs, s3 = mount.members["hdfs"], mount.members["s3"]
        for base in ("split", "doubled"):
            for name in OLDER:
                path = f"{base}/store_sales/{name}"
                copy_file(hdfs, path, s3, path)
                if base == "split":
                    hdfs.delete(path)
        cached_mount = HybridMount.from_conn_id(CACHED)
        summary = ops.prefetch(cached_mount, [f"/all/{table}" for table in tpcds.TPCDS_TABLES], tier="S3")
        assert summary.files == summary.loaded > 0
        yield {"mount": mount, "cached": cached_mount, "bucket": bucket, "hdfs_root": hdfs_root}
        if cached_mount.cache is not None:
            cached_mount.cache.close()


def _mount_of(lake):
    mounts = {MOUNT: lake["mount"], CACHED: lake["cached"]}
    return mounts.__getitem__


def _read_result(lake, uri: str) -> pa.Table:
    """The Parquet files Spark wrote under ``uri`` (an engine URI of the lake's S3 bucket or HDFS root), read
    through the members' own stores."""
    hdfs_root = lake["hdfs_root"] + "/"
    if uri.startswith(hdfs_root):
        store, rel = lake["mount"].members["hdfs"], uri[len(hdfs_root) :]
    else:
        prefix = uri.split("://", 1)[1]
        store, rel = lake["mount"].members["s3"], prefix.removeprefix(f"{lake['bucket']}/lake/")
    files = sorted(f.path for f in store.walk_files(rel.rstrip("/")) if not f.path.rsplit("/", 1)[-1].startswith(("_", ".")))
    assert files, f"Spark wrote no data file under {uri}"
    parts = []
    for path in files:
        with store.open_read(path) as stream:
            parts.append(pq.read_table(io.BytesIO(stream.read())))
    return pa.concat_tables(parts)


def _duckdb(lake, mount_id: str, base: str, query: str, tag: str) -> pa.Table:
    """DuckDB's answer over ``hybrid://<mount_id>/``, written through the mount and read back."""
    rel = f"results/duckdb/{tag}/{query}.parquet"
    result = run_duckdb_query(_sql(query), mount_conn_id=mount_id, tables=_tables(base),
                              output_path=f"hybrid://{mount_id}/{rel}")
    assert result.rows > 0
    with lake["mount"].members["s3"].open_read(rel) as stream:
        return pq.read_table(io.BytesIO(stream.read()))


def _canonical(table: pa.Table) -> list[tuple]:
    """Rows in a fixed order, decimals at the queries' scale (2), so the two engines' answers compare."""
    def value(v):
        return v.quantize(Decimal("0.01")) if isinstance(v, Decimal) else v

    return sorted((tuple(value(v) for v in row.values()) for row in table.to_pylist()), key=repr)


def _expected_locations(lake, shape: str, mount_id: str) -> None:
    """The resolver gives each shape's store_sales the locations the shape is about."""
    base = BASES[shape]
    found = resolve_locations(_mount_of(lake)(mount_id), f"/{base}/store_sales", s3_scheme="s3")
    bucket, hdfs_root = lake["bucket"], lake["hdfs_root"]
    if shape == "hdfs":
        assert [(loc.member, loc.uri, loc.file_uris) for loc in found] == [("hdfs", f"{hdfs_root}/all/store_sales", ())]
    elif shape == "split":
        assert [(loc.member, loc.uri, loc.file_uris) for loc in found] == [
            ("s3", f"s3://{bucket}/lake/split/store_sales", ()),
            ("hdfs", f"{hdfs_root}/split/store_sales", ()),
        ]
    elif shape == "doubled":
        directory = f"{hdfs_root}/doubled/store_sales"
        assert [(loc.member, loc.uri) for loc in found] == [
            ("s3", f"s3://{bucket}/lake/doubled/store_sales"), ("hdfs", directory)
        ]
        assert sorted(found[1].file_uris) == [f"{directory}/part-00002.parquet", f"{directory}/part-00003.parquet"]
    else:
        assert [(loc.member, loc.uri) for loc in found] == [(CACHE_MEMBER, f"s3://{bucket}/cache/{CACHED}/all/store_sales")]


@pytest.mark.parametrize("query", QUERIES)
@pytest.mark.parametrize("shape", SHAPES)
def test_spark_step_statements_answer_as_duckdb(lake, spark, shape, query):
    mount_id = CACHED if shape == "warm" else MOUNT
    base = BASES[shape]
    _expected_locations(lake, shape, mount_id)
    sql = _sql(query)
    output = (f"{lake['hdfs_root']}/results/spark/{query}" if shape == "hdfs"
              else f"hybrid://{mount_id}/results/spark/{shape}/{query}")
    # s3:// as on EMR (EMRFS there; S3A here through fs.s3.impl): the step's own statements.
    statements, tables, output_uri = spark_query_statements(
        sql, tables=_tables(base), output_path=output, mount_of=_mount_of(lake), mount_conn_id=mount_id,
        s3_scheme="s3",
    )
    step = build_emr_step(name=query, sql=sql, tables=tables, output_uri=output_uri)
    assert step["HadoopJarStep"]["Args"][-1] == ";\n".join(statements) + ";"
    SparkSqlRunner(session=spark).run(statements)

    result = _read_result(lake, output_uri)
    expected = _duckdb(lake, mount_id, base, query, shape)
    assert result.column_names == expected.column_names
    assert len(_canonical(expected)) > 0
    assert _canonical(result) == _canonical(expected)


def test_s3a_uris_and_csv_output(lake, spark):
    """``s3_scheme="s3a"`` (the runner's default) over the split shape, the result as CSV with a header."""
    result = run_spark_query(
        _sql("q52"), tables=_tables("split"), output_path=f"hybrid://{MOUNT}/results/spark/s3a/q52",
        runner=SparkSqlRunner(session=spark), mount_of=_mount_of(lake), mount_conn_id=MOUNT, output_format="csv",
    )
    bucket = lake["bucket"]
    assert result.engine == "spark" and result.output_path == f"s3a://{bucket}/lake/results/spark/s3a/q52/"
    assert result.details["tables"]["store_sales"] == [
        f"s3a://{bucket}/lake/split/store_sales", f"{lake['hdfs_root']}/split/store_sales"
    ]
    s3 = lake["mount"].members["s3"]
    files = [f.path for f in s3.walk_files("results/spark/s3a/q52") if f.path.endswith(".csv")]
    assert files
    lines = []
    for path in files:
        with s3.open_read(path) as stream:
            lines += [line for line in stream.read().decode().splitlines()[1:] if line]
    expected = _duckdb(lake, MOUNT, "split", "q52", "s3a")
    assert len(lines) == expected.num_rows > 0


def test_spark_connect_runs_the_statements(lake, spark_connect_url):
    result = run_spark_query(
        _sql("q3"), tables=_tables("split"), output_path=f"hybrid://{MOUNT}/results/spark/connect/q3",
        runner=SparkSqlRunner(remote=spark_connect_url), mount_of=_mount_of(lake), mount_conn_id=MOUNT,
    )
    assert result.details["mode"] == "connect"
    assert _canonical(_read_result(lake, result.output_path)) == _canonical(
        _duckdb(lake, MOUNT, "split", "q3", "connect")
    )


def test_spark_submit_runs_the_driver(lake, spark_conf, monkeypatch):
    """``spark-submit --master local[2]`` (the ``spark`` connection's host) runs the driver module."""
    bin_dir = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(bin_dir, "spark-submit")):
        pytest.fail(f"pyspark's spark-submit is not in {bin_dir}")
    monkeypatch.setenv("PATH", bin_dir + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_LOCAL", json.dumps({"conn_type": "spark", "host": "local[2]"}))
    conf = {k: v for k, v in spark_conf.items() if not k.startswith("spark.connect.")}
    runner = SparkSqlRunner(
        spark_conn_id="spark_local",
        submit_options={"conf": conf, "env_vars": {"PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}},
    )
    result = run_spark_query(
        _sql("q42"), tables=_tables("doubled"), output_path=f"hybrid://{MOUNT}/results/spark/submit/q42",
        runner=runner, mount_of=_mount_of(lake), mount_conn_id=MOUNT,
    )
    assert result.details["mode"] == "submit"
    assert _canonical(_read_result(lake, result.output_path)) == _canonical(
        _duckdb(lake, MOUNT, "doubled", "q42", "submit")
    )


def test_a_failing_statement_names_its_position(spark):
    with pytest.raises(SparkQueryError, match=r"statement 2/2 failed"):
        SparkSqlRunner(session=spark).run(["SELECT 1", "SELECT * FROM no_such_view_here"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of session, remote or spark_conn_id"),
        ({"remote": "sc://h:15002", "spark_conn_id": "spark_default"}, "exactly one of"),
        ({"remote": "http://spark-host:15002"}, "expected a Spark Connect URL"),
        ({"remote": "sc://"}, "expected a Spark Connect URL"),
        ({"spark_conn_id": " "}, "expected a connection id"),
        ({"remote": "sc://h:15002", "submit_options": {"jars": "a.jar"}}, "spark_conn_id"),
        ({"spark_conn_id": "spark_default", "submit_options": {"application": "x.py"}}, "set by the runner"),
    ],
)
def test_bad_runner_settings_are_refused(kwargs, message):
    with pytest.raises(HybridConfigError, match=message):
        SparkSqlRunner(**kwargs)


def test_an_unknown_spark_connection_is_a_config_error(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_SPARK", raising=False)
    with pytest.raises(HybridConfigError, match="no_such_spark"):
        SparkSqlRunner(spark_conn_id="no_such_spark").run(["SELECT 1"])


def test_query_operator_on_spark_leases_the_warm_tables_while_spark_reads_them(lake, spark_connect_url, monkeypatch):
    """``HybridQueryOperator(engine="spark")`` on Spark Connect: the warm S3 tier is read, every table is leased
    in the mount's cache while the statements run (so no eviction can delete a copy under Spark), and the leases
    end with the run."""
    from airflow_hybrid.operators.query import HybridQueryOperator

    seen_leases = []
    run = SparkSqlRunner.run

    def run_and_look(self, statements):
        seen_leases.extend(lease.path for lease in HybridMount.from_conn_id(CACHED).cache.leases())
        return run(self, statements)

    monkeypatch.setattr(SparkSqlRunner, "run", run_and_look)
    operator = HybridQueryOperator(
        task_id="q3", sql=_sql("q3"), mount_conn_id=CACHED, tables=_tables("all"), engine="spark",
        spark_connect_url=spark_connect_url, output_path=f"hybrid://{MOUNT}/results/spark/operator/q3",
    )
    summary = operator.execute({"run_id": "manual__spark"})
    assert summary["engine"] == "spark"
    assert sorted(seen_leases) == sorted(f"all/{table}" for table in tpcds.TPCDS_TABLES)
    assert lake["cached"].cache.leases() == []
    for uris in summary["details"]["tables"].values():
        assert all(uri.startswith(f"s3a://{lake['bucket']}/cache/{CACHED}/") for uri in uris)
    assert _canonical(_read_result(lake, summary["output_path"])) == _canonical(_duckdb(lake, MOUNT, "all", "q3", "op"))
