"""The Trino / Presto step script: external tables per location, file-list filters, the CTAS column list."""

from __future__ import annotations

import dataclasses

import pytest

from airflow_hybrid.mount.resolver import Location
from airflow_hybrid.query.steps import EmrTable
from airflow_hybrid.query.trino_script import (
    _duckdb_type,
    _split_definition,
    common_directory,
    result_column_names,
    result_table_name,
    trino_script,
)

SALES = ["ss_sold_date_sk INTEGER", "ss_item_sk BIGINT", "ss_ext_sales_price DECIMAL(7,2)"]
ITEM = ["i_item_sk BIGINT", "i_category VARCHAR", '"i category id" INTEGER']
OUT = "s3://lake/results/q/"


def _table(name: str, locations, columns) -> EmrTable:
    fields = {field.name for field in dataclasses.fields(EmrTable)}
    extra = {"column_names": [_split_definition(c)[0] for c in columns]} if "column_names" in fields else {}
    return EmrTable(name=name, locations=locations, columns=columns, **extra)


def _statements(script: str) -> list[str]:
    assert script.endswith(";")
    return script[:-1].split(";\n")


def test_directory_locations_are_external_tables_unioned_by_a_view():
    sales = _table(
        "store_sales", ["s3://lake/ss", Location(member="hdfs", uri="hdfs://nn:8020/tmp/ss")], SALES
    )
    statements = _statements(trino_script("SELECT ss_item_sk FROM store_sales", [sales], OUT))
    assert statements[0] == "CREATE SCHEMA IF NOT EXISTS hive.hybrid"
    assert "external_location = 's3://lake/ss'" in statements[2]
    assert "external_location = 'hdfs://nn:8020/tmp/ss'" in statements[4]
    assert statements[5] == (
        "CREATE OR REPLACE VIEW hive.hybrid.store_sales AS SELECT * FROM hive.hybrid.store_sales__0 "
        "UNION ALL SELECT * FROM hive.hybrid.store_sales__1"
    )
    assert statements[-1] == (
        f'CREATE TABLE hive.hybrid.{result_table_name(OUT)} ("ss_item_sk") '
        f"WITH (external_location = '{OUT}', format = 'PARQUET') AS\nSELECT ss_item_sk FROM store_sales"
    )


def test_a_file_list_reads_the_common_directory_keeping_only_the_listed_files():
    files = ("hdfs://nn:8020/t/ss/part-2.parquet", "hdfs://nn:8020/t/ss/late/part-3.parquet")
    listed = Location(member="hdfs", uri="hdfs://nn:8020/t/ss", file_uris=files)
    statements = _statements(
        trino_script("SELECT * FROM store_sales", [_table("store_sales", [listed], SALES)], OUT)
    )
    assert "external_location = 'hdfs://nn:8020/t/ss'" in statements[2]
    assert statements[3] == (
        "CREATE OR REPLACE VIEW hive.hybrid.store_sales AS SELECT * FROM hive.hybrid.store_sales__0 "
        """WHERE "$path" IN ('hdfs://nn:8020/t/ss/part-2.parquet', 'hdfs://nn:8020/t/ss/late/part-3.parquet')"""
    )


def test_a_parquet_file_uri_is_a_one_file_list_over_its_directory():
    table = _table("item", ["s3://lake/item/data.parquet"], ITEM)
    statements = _statements(trino_script("SELECT i_item_sk FROM item", [table], OUT))
    assert "external_location = 's3://lake/item'" in statements[2]
    assert statements[3].endswith("""WHERE "$path" IN ('s3://lake/item/data.parquet')""")


def test_common_directory():
    assert common_directory(["s3://b/a/x/1.parquet", "s3://b/a/y/2.parquet"]) == "s3://b/a"
    assert common_directory(["s3://b/a/1.parquet"]) == "s3://b/a"
    with pytest.raises(ValueError, match="share a scheme and authority"):
        common_directory(["s3://b/a/1.parquet", "hdfs://nn/a/2.parquet"])
    with pytest.raises(ValueError, match="not the URI of a file"):
        common_directory(["s3://b/a/"])


def test_result_columns_keep_plain_names_and_number_the_others():
    sales, item = _table("store_sales", ["s3://l/ss"], SALES), _table("item", ["s3://l/i"], ITEM)
    sql = (
        "SELECT i_category, i_category AS again, ss.ss_item_sk, sum(ss_ext_sales_price), count(*) n, "
        '"i category id", i_item_sk AS I_CATEGORY FROM store_sales ss JOIN item ON ss_item_sk = i_item_sk '
        'GROUP BY i_category, ss.ss_item_sk, "i category id", i_item_sk'
    )
    assert result_column_names(sql, [sales, item]) == [
        "i_category", "again", "ss_item_sk", "_col3", "n", "_col5", "_col6",
    ]  # fmt: skip


def test_sql_duckdb_cannot_bind_leaves_the_naming_to_trino():
    sales = _table("store_sales", ["s3://l/ss"], SALES)
    sql = "SELECT approx_set(ss_item_sk) FROM store_sales"  # a Trino-only function
    assert result_column_names(sql, [sales]) is None
    assert _statements(trino_script(sql, [sales], OUT))[-1].startswith(
        f"CREATE TABLE hive.hybrid.{result_table_name(OUT)} WITH ("
    )


@pytest.mark.parametrize(
    ("trino", "duckdb"),
    [
        ("DECIMAL(7,2)", "DECIMAL(7,2)"),
        ("ARRAY(BIGINT)", "BIGINT[]"),
        ("ARRAY(ROW(a INTEGER, b ARRAY(VARCHAR)))", "STRUCT(a INTEGER, b VARCHAR[])[]"),
        ("MAP(VARCHAR, ARRAY(DOUBLE))", "MAP(VARCHAR, DOUBLE[])"),
    ],
)
def test_duckdb_types(trino, duckdb):
    assert _duckdb_type(trino) == duckdb


def test_column_definitions_split():
    assert _split_definition("a BIGINT") == ("a", "BIGINT")
    assert _split_definition('"odd ""name""" ARRAY(VARCHAR)') == ('odd "name"', "ARRAY(VARCHAR)")


def test_complex_columns_bind():
    table = _table(
        "t", ["s3://l/t"], ['"x" ARRAY(ROW(a INTEGER))', "m MAP(VARCHAR, BIGINT)", "ts TIMESTAMP(3)"]
    )
    assert result_column_names("SELECT x[1].a AS a, m['k'] AS k, ts FROM t", [table]) == ["a", "k", "ts"]


def test_errors():
    with pytest.raises(ValueError, match="Parquet only"):
        trino_script("SELECT 1", [], OUT, output_format="csv")
    with pytest.raises(ValueError, match="column definitions"):
        trino_script("SELECT 1", [_table("t", ["s3://l/t"], [])], OUT)
