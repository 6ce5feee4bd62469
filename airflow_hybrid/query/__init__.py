"""SQL over logical mount paths: the embedded DuckDB engine and EMR steps (Spark SQL, Trino, Presto)."""

from __future__ import annotations

from airflow_hybrid.query.result import QueryResult

#: Where a query runs: the embedded DuckDB engine, an EMR step, or your own Spark.
QUERY_ENGINES = ("duckdb", "emr", "spark")
OUTPUT_FORMATS = ("parquet", "csv")

__all__ = ["QUERY_ENGINES", "OUTPUT_FORMATS", "QueryResult"]
