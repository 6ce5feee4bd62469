"""The Spark SQL script of an EMR step: relations per location, unions by column name, nothing unchecked."""

from __future__ import annotations

import pytest

from airflow_hybrid.mount.resolver import Location
from airflow_hybrid.query.spark_script import (
    escape_glob,
    file_list_globs,
    quote_column,
    spark_sql_script,
    spark_sql_statements,
    spark_string,
)
from airflow_hybrid.query.steps import EmrTable

HDFS = "hdfs://nn.corp:8020/lake/t"
S3 = "s3://bucket/lake/t"


def _view(table: EmrTable) -> list[str]:
    return spark_sql_statements("SELECT 1", [table], "s3://out/r/")[:-1]


def test_escape_glob_escapes_every_hadoop_metacharacter():
    assert escape_glob("a{b}c[d]e*f?g\\h,i.parquet") == "a\\{b\\}c\\[d\\]e\\*f\\?g\\\\h\\,i.parquet"
    assert escape_glob("plain/part-0.parquet") == "plain/part-0.parquet"


def test_a_file_list_is_one_brace_glob_under_the_common_directory():
    files = [f"{HDFS}/sub/b.parquet", f"{HDFS}/a.parquet", f"{HDFS}/sub/deeper/c.parquet"]
    assert file_list_globs(files) == [f"{HDFS}/{{a.parquet,sub/b.parquet,sub/deeper/c.parquet}}"]
    assert file_list_globs([f"{HDFS}/x/a.parquet", f"{HDFS}/x/b.parquet"]) == [f"{HDFS}/x/{{a.parquet,b.parquet}}"]
    assert file_list_globs([f"{HDFS}/a.parquet"]) == [f"{HDFS}/a.parquet"]  # one file: its own path
    assert file_list_globs([f"{HDFS}/a.parquet", f"{HDFS}/a.parquet"]) == [f"{HDFS}/a.parquet"]  # each once


def test_names_in_a_glob_are_escaped_but_the_authority_is_not():
    files = ["hdfs://[::1]:8020/t/a,1.parquet", "hdfs://[::1]:8020/t/{b}.parquet"]
    assert file_list_globs(files) == ["hdfs://[::1]:8020/t/{a\\,1.parquet,\\{b\\}.parquet}"]
    assert file_list_globs(["s3://b/[x]/a.parquet", "s3://b/[x]/b.parquet"]) == [
        "s3://b/\\[x\\]/{a.parquet,b.parquet}"  # metacharacters in the common directory: still one glob
    ]


def test_metacharacters_below_the_common_directory_give_one_glob_per_directory():
    """Hadoop expands a brace holding '/' first and loses the escapes inside it: no such brace then."""
    files = [f"{HDFS}/a.parquet", f"{HDFS}/sub/b{{1}}.parquet", f"{HDFS}/sub/c.parquet", f"{HDFS}/s[2]/d.parquet"]
    assert file_list_globs(files) == [
        f"{HDFS}/a.parquet",
        f"{HDFS}/s\\[2\\]/d.parquet",
        f"{HDFS}/sub/{{b\\{{1\\}}.parquet,c.parquet}}",
    ]


def test_files_of_different_file_systems_are_refused():
    with pytest.raises(ValueError, match="different file systems"):
        file_list_globs(["hdfs://a:1/t/x.parquet", "hdfs://b:1/t/y.parquet"])


def test_locations_are_unioned_by_column_name():
    table = EmrTable(
        "store_sales",
        [Location("s3", S3, 2, 10), Location("hdfs", HDFS, 1, 5, (f"{HDFS}/b.parquet", f"{HDFS}/sub/c.parquet"))],
        ["ss_item_sk", "odd`name", "ss price"],
    )
    columns = "`ss_item_sk`, `odd``name`, `ss price`"
    assert _view(table) == [
        f"CREATE OR REPLACE TEMPORARY VIEW store_sales AS SELECT {columns} FROM parquet.`{S3}` UNION ALL "
        f"SELECT {columns} FROM parquet.`{HDFS}/{{b.parquet,sub/c.parquet}}`"
    ]


def test_a_partitioned_file_list_keeps_its_partition_columns_with_a_base_path():
    files = (f"{HDFS}/year=2001/a.parquet", f"{HDFS}/year=2002/b.parquet")
    table = EmrTable("t", [Location("s3", S3), Location("hdfs", HDFS, 2, 2, files)], ["x", "year"])
    assert _view(table) == [
        f"CREATE OR REPLACE TEMPORARY VIEW t__1 USING parquet OPTIONS "
        f"(path '{HDFS}/{{year=2001/a.parquet,year=2002/b.parquet}}', basePath '{HDFS}')",
        f"CREATE OR REPLACE TEMPORARY VIEW t AS SELECT `x`, `year` FROM parquet.`{S3}` UNION ALL "
        "SELECT `x`, `year` FROM t__1",
    ]


def test_a_single_location_without_column_names_selects_star():
    assert _view(EmrTable("t", [S3])) == [f"CREATE OR REPLACE TEMPORARY VIEW t AS SELECT * FROM parquet.`{S3}`"]
    with pytest.raises(ValueError, match="SELECT \\* union is positional"):
        _view(EmrTable("t", [S3, HDFS]))


def test_the_script_joins_the_statements_and_writes_the_result():
    tables = [EmrTable("a", [S3]), EmrTable("b", [HDFS])]
    statements = spark_sql_statements("SELECT * FROM a JOIN b USING (k);;\n", tables, "s3://out/r/", "csv")
    assert statements[-1] == "INSERT OVERWRITE DIRECTORY 's3://out/r/' USING csv OPTIONS ('header' 'true')\n" \
        "SELECT * FROM a JOIN b USING (k)"
    assert spark_sql_script("SELECT * FROM a JOIN b USING (k)", tables, "s3://out/r/", "csv") == (
        ";\n".join(statements) + ";"
    )
    with pytest.raises(ValueError, match="output_format must be 'parquet' or 'csv'"):
        spark_sql_statements("SELECT 1", tables, "s3://out/r/", "orc")


# -- injection attempts ------------------------------------------------------------------------------------
def test_a_backtick_or_quote_in_a_location_stays_inside_its_quotes():
    assert _view(EmrTable("t", ["s3://b/it`s/t"])) == [
        "CREATE OR REPLACE TEMPORARY VIEW t AS SELECT * FROM parquet.`s3://b/it``s/t`"
    ]
    assert _view(EmrTable("t", ["s3://b/it's/t"])) == [
        "CREATE OR REPLACE TEMPORARY VIEW t AS SELECT * FROM parquet.`s3://b/it's/t`"
    ]
    files = ("s3://b/t/x'y/a.parquet", "s3://b/t/x'y/b\\.parquet")
    helper = _view(EmrTable("t", [Location("s3", "s3://b/t", 2, 2, files)], ["k=v"]))[0]
    assert helper == "CREATE OR REPLACE TEMPORARY VIEW t AS SELECT `k=v` FROM parquet.`s3://b/t/x'y/{a.parquet,b\\\\.parquet}`"


def test_string_literals_escape_quotes_and_backslashes():
    assert spark_string("s3://b/it's\\x") == "'s3://b/it\\'s\\\\x'"
    statements = spark_sql_statements("SELECT 1", [EmrTable("t", [S3])], "s3://out/it's/")
    assert statements[-1].startswith("INSERT OVERWRITE DIRECTORY 's3://out/it\\'s/' USING parquet")


@pytest.mark.parametrize("name", ["x; DROP TABLE y", "x y", "`x`", "1x", "x--", ""])
def test_a_table_name_that_is_not_a_plain_identifier_is_refused(name):
    with pytest.raises(ValueError, match="is not a plain SQL identifier"):
        _view(EmrTable(name, [S3]))


@pytest.mark.parametrize(
    "location", ["s3://b/t;DROP TABLE x", "s3://b/${env:HOME}", "s3://b/t\nDROP", "s3://b/t\x00"]
)
def test_a_location_spark_sql_cannot_carry_is_refused(location):
    with pytest.raises(ValueError, match="a spark-sql script cannot carry safely"):
        _view(EmrTable("t", [location]))
    with pytest.raises(ValueError, match="a spark-sql script cannot carry safely"):
        _view(EmrTable("t", [Location("s3", "s3://b/t", 2, 2, ("s3://b/t/a.parquet", location))], ["c"]))
    with pytest.raises(ValueError, match="a spark-sql script cannot carry safely"):
        spark_sql_statements("SELECT 1", [EmrTable("t", [S3])], location)


def test_column_names_are_quoted_and_checked():
    assert quote_column("a`b") == "`a``b`"
    with pytest.raises(ValueError, match="column 'a;b' contains ';'"):
        quote_column("a;b")
    with pytest.raises(ValueError, match="column '' is empty"):
        quote_column("")
