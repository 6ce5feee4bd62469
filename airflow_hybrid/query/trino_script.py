"""The Trino / Presto script of a query step: one external Hive table per location (columns typed from the
Parquet schema), a view per table unioning them, then ``CREATE TABLE ... WITH (external_location = '<output>')
AS <query>``. The Hive catalog must allow non-managed table writes (``hive.non-managed-table-writes-enabled=true``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from airflow_hybrid.query.sql import check_identifier, sql_literal, strip_statement

if TYPE_CHECKING:
    from airflow_hybrid.query.steps import EmrTable


def result_table_name(output_uri: str) -> str:
    """A stable table name for the result written to ``output_uri`` (Trino/Presto need a table for CTAS)."""
    return "hybrid_result_" + hashlib.sha1(output_uri.encode()).hexdigest()[:12]


def trino_script(
    sql: str,
    tables: Sequence[EmrTable],
    output_uri: str,
    output_format: str = "parquet",
    catalog: str = "hive",
    schema: str = "hybrid",
) -> str:
    """The ``trino-cli``/``presto-cli --execute`` script: external tables + views, then a CTAS to ``output_uri``."""
    if output_format != "parquet":
        raise ValueError("Trino/Presto steps write Parquet only (output_format='parquet')")
    prefix = f"{check_identifier(catalog, 'catalog')}.{check_identifier(schema, 'schema')}"
    statements = [f"CREATE SCHEMA IF NOT EXISTS {prefix}"]
    for table in tables:
        name = check_identifier(table.name, "table")
        if not table.columns:
            raise ValueError(f"table {name!r}: Trino/Presto need its column definitions")
        columns = ",\n  ".join(table.columns)
        parts = []
        for index, location in enumerate(table.locations):
            part = f"{prefix}.{name}__{index}"
            parts.append(part)
            statements.append(f"DROP TABLE IF EXISTS {part}")
            statements.append(
                f"CREATE TABLE {part} (\n  {columns}\n) "
                f"WITH (external_location = {sql_literal(location)}, format = 'PARQUET')"
            )
        union = " UNION ALL ".join(f"SELECT * FROM {part}" for part in parts)
        statements.append(f"CREATE OR REPLACE VIEW {prefix}.{name} AS {union}")
    result = f"{prefix}.{result_table_name(output_uri)}"
    statements.append(f"DROP TABLE IF EXISTS {result}")
    statements.append(
        f"CREATE TABLE {result} WITH (external_location = {sql_literal(output_uri)}, format = 'PARQUET') AS\n"
        f"{strip_statement(sql)}"
    )
    return ";\n".join(statements) + ";"
