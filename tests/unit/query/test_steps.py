"""EMR steps: tables resolved to locations and column names, the step for each CLI, EMR's argument limit."""

from __future__ import annotations

import io
import shlex

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.resolver import Location
from airflow_hybrid.query.steps import (
    MAX_STEP_ARGUMENT,
    URI_MEMBER,
    EmrTable,
    StepTooLongError,
    build_emr_step,
    resolve_tables,
    step_script,
    table_columns,
)

S3 = "s3://bucket/lake/t"
TABLE = EmrTable("t", [Location("s3", S3, 1, 1)], ["a", "b"], ['"a" BIGINT', '"b" VARCHAR'])


def _parquet(path, columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    path.write_bytes(sink.getvalue())


def test_a_uri_text_is_a_whole_location():
    table = EmrTable("t", ["s3://b/t", Location("hdfs", "hdfs://nn:8020/t", 2, 3, ("hdfs://nn:8020/t/a",))])
    assert table.locations == (Location(URI_MEMBER, "s3://b/t"), Location("hdfs", "hdfs://nn:8020/t", 2, 3, ("hdfs://nn:8020/t/a",)))
    assert table.uris == ["s3://b/t", "hdfs://nn:8020/t/a"]


def test_spark_sql_step_runs_the_script_inline():
    step = build_emr_step(name="q", sql="SELECT a FROM t", tables=[TABLE], output_uri="s3://out/r/", cli_args=["--conf", "x=1"])
    assert step["Name"] == "q" and step["ActionOnFailure"] == "CONTINUE"
    assert step["HadoopJarStep"]["Jar"] == "command-runner.jar"
    script = step_script(sql="SELECT a FROM t", tables=[TABLE], output_uri="s3://out/r/")
    assert step["HadoopJarStep"]["Args"] == ["spark-sql", "--conf", "x=1", "-e", script]
    assert f"SELECT `a`, `b` FROM parquet.`{S3}`" in script


@pytest.mark.parametrize(("cli", "command"), [("trino", "trino-cli"), ("presto", "presto-cli")])
def test_trino_and_presto_steps_run_the_script_inline(cli, command):
    step = build_emr_step(name="q", sql="SELECT a FROM t", tables=[TABLE], output_uri="s3://out/r/", cli=cli)
    args = step["HadoopJarStep"]["Args"]
    assert args[:6] == [command, "--catalog", "hive", "--schema", "hybrid", "--execute"]
    assert args[6] == step_script(sql="SELECT a FROM t", tables=[TABLE], output_uri="s3://out/r/", cli=cli)


def _long_table():
    files = tuple(f"{S3}/part-{i:06d}-{'x' * 40}.parquet" for i in range(300))
    return EmrTable("t", [Location("s3", S3, 300, 300, files)], ["a", "b"], ['"a" BIGINT', '"b" VARCHAR'])


@pytest.mark.parametrize("cli", ["spark-sql", "trino"])
def test_a_script_longer_than_emr_allows_needs_a_script_uri(cli):
    table = _long_table()
    assert len(step_script(sql="SELECT a FROM t", tables=[table], output_uri="s3://out/r/", cli=cli)) > MAX_STEP_ARGUMENT
    with pytest.raises(StepTooLongError, match=r"longer than EMR allows \(10280\); upload step_script\(...\) to an s3"):
        build_emr_step(name="q", sql="SELECT a FROM t", tables=[table], output_uri="s3://out/r/", cli=cli)


def test_spark_sql_reads_a_long_script_from_s3():
    step = build_emr_step(
        name="q", sql="SELECT a FROM t", tables=[_long_table()], output_uri="s3://out/r/",
        script_uri="s3://scripts/run-1/q.sql", cli_args=["--conf", "x=1"],
    )
    assert step["HadoopJarStep"]["Args"] == ["spark-sql", "--conf", "x=1", "-f", "s3://scripts/run-1/q.sql"]


def test_trino_copies_a_long_script_from_s3_first():
    step = build_emr_step(
        name="q", sql="SELECT a FROM t", tables=[_long_table()], output_uri="s3://out/r/", cli="trino",
        script_uri="s3://scripts/run 1/q.sql",
    )
    args = step["HadoopJarStep"]["Args"]
    assert args[:2] == ["bash", "-c"]
    assert shlex.split(args[2]) == [
        "set", "-e;", "aws", "s3", "cp", "s3://scripts/run 1/q.sql", "/tmp/hybrid-step-q.sql;",
        "trino-cli", "--catalog", "hive", "--schema", "hybrid", "-f", "/tmp/hybrid-step-q.sql",
    ]


@pytest.mark.parametrize("script_uri", ["/local/q.sql", "s3://bucket/", "hdfs://nn/q.sql", "s3://b/q.sql\n;rm", 7])
def test_a_script_uri_must_be_an_s3_object(script_uri):
    with pytest.raises(HybridConfigError, match="script_uri: expected an s3://bucket/key object"):
        build_emr_step(name="q", sql="SELECT 1", tables=[TABLE], output_uri="s3://out/r/", script_uri=script_uri)


def test_bad_cli_and_format_are_refused():
    with pytest.raises(ValueError, match="emr_cli must be one of spark-sql, trino, presto"):
        build_emr_step(name="q", sql="SELECT 1", tables=[TABLE], output_uri="s3://o/", cli="hive")
    with pytest.raises(ValueError, match="output_format must be 'parquet' or 'csv'"):
        build_emr_step(name="q", sql="SELECT 1", tables=[TABLE], output_uri="s3://o/", output_format="orc")


# -- tables -------------------------------------------------------------------------------------------------
def test_table_columns_add_hive_partition_keys(dirs):
    hdfs, _ = dirs
    _parquet(hdfs / "t/year=2001/month=1/a.parquet", {"x": [1], "month": [1]})
    _parquet(hdfs / "t/year=2002/month=2/b.parquet", {"x": [2], "month": [2]})
    from airflow_hybrid.stores.local import LocalStore

    schema, names = table_columns(LocalStore(str(hdfs)), "/t/")
    assert schema.names == ["x", "month"]
    assert names == ["x", "month", "year"]  # month is in the file too: once
    assert table_columns(LocalStore(str(hdfs)), "t/year=2001/month=1/a.parquet")[1] == ["x", "month"]


def test_resolve_tables_locates_each_table_with_its_column_names(options, dirs):
    hdfs, s3 = dirs
    _parquet(s3 / "t/part-0.parquet", {"b": ["x"], "a": [1]})
    _parquet(hdfs / "t/part-0.parquet", {"b": ["x"], "a": [1]})  # mid-migration: copied, not yet removed
    _parquet(hdfs / "t/part-1.parquet", {"a": [2], "b": ["y"]})
    mount = HybridMount.from_options("lake", options)
    [table] = resolve_tables({"t": "/t"}, lambda _: mount, "lake", typed=True, s3_scheme="s3a")
    assert table.name == "t"
    assert [(loc.member, loc.files, loc.file_uris) for loc in table.locations] == [
        ("s3", 1, ()),
        ("hdfs", 1, (f"file://{hdfs}/t/part-1.parquet",)),
    ]
    assert table.column_names == ("b", "a")  # the first file's (by name) schema
    assert table.columns == ["b VARCHAR", "a BIGINT"]
    [untyped] = resolve_tables({"t": "hybrid://lake/t"}, lambda _: mount, typed=False)
    assert untyped.columns is None and untyped.column_names == ("b", "a")


def test_resolve_tables_takes_a_uri_as_it_is(dirs):
    hdfs, _ = dirs
    _parquet(hdfs / "t/part-0.parquet", {"a": [1]})
    [table] = resolve_tables({"t": f"file://{hdfs}/t"}, lambda _: pytest.fail("no mount"))
    assert table.locations == (Location(URI_MEMBER, f"file://{hdfs}/t"),)
    assert table.column_names == ("a",)
    with pytest.raises(HybridConfigError, match="s3_scheme must be one of s3, s3a"):
        resolve_tables({"t": f"file://{hdfs}/t"}, lambda _: None, s3_scheme="S3")


def test_the_output_is_an_engine_uri_in_the_create_member(options, dirs):
    from airflow_hybrid.query.steps import resolve_output

    hdfs, s3 = dirs
    mount = HybridMount.from_options("lake", options)
    assert resolve_output("hybrid://lake/results/r1", lambda _: mount) == f"file://{s3}/results/r1/"
    (hdfs / "old").mkdir()
    assert resolve_output("/old", lambda _: mount, "lake") == f"file://{hdfs}/old/"  # where it already is
    assert resolve_output("s3://out/r", lambda _: mount, s3_scheme="s3a") == "s3a://out/r/"
    assert resolve_output("s3a://out/r/", lambda _: mount) == "s3://out/r/"
