"""SQL over logical mount paths: the embedded DuckDB engine and EMR steps (Spark SQL, Trino, Presto)."""

from __future__ import annotations

from airflow_hybrid.query.result import QueryResult

ENGINES = ("duckdb", "emr")
OUTPUT_FORMATS = ("parquet", "csv")

__all__ = ["ENGINES", "OUTPUT_FORMATS", "QueryResult"]
