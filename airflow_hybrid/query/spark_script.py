"""The Spark SQL script of a query step: a temporary view per table over its location(s), then the query's
result written with ``INSERT OVERWRITE DIRECTORY '<output>' USING parquet|csv``.

The same script runs as an EMR step (``spark-sql -e``, :mod:`airflow_hybrid.query.steps`) and on a user's own
Spark."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_hybrid.query.sql import check_identifier, sql_literal, strip_statement

if TYPE_CHECKING:
    from airflow_hybrid.query.steps import EmrTable


def _spark_path(location: str) -> str:
    if "`" in location:
        raise ValueError(f"location {location!r} contains a backtick")
    return f"parquet.`{location}`"


def spark_sql_script(
    sql: str, tables: Sequence[EmrTable], output_uri: str, output_format: str = "parquet"
) -> str:
    """The ``spark-sql -e`` script: a temporary view per table, then the query written to ``output_uri``."""
    statements = []
    for table in tables:
        union = " UNION ALL ".join(f"SELECT * FROM {_spark_path(loc)}" for loc in table.locations)
        statements.append(
            f"CREATE OR REPLACE TEMPORARY VIEW {check_identifier(table.name, 'table')} AS {union}"
        )
    options = " OPTIONS ('header' 'true')" if output_format == "csv" else ""
    statements.append(
        f"INSERT OVERWRITE DIRECTORY {sql_literal(output_uri)} USING {output_format}{options}\n{strip_statement(sql)}"
    )
    return ";\n".join(statements) + ";"
