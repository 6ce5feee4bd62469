"""The ``spark-submit`` driver of :class:`~airflow_hybrid.query.spark.SparkSqlRunner`: ``spark_driver.py
<statements.json>`` runs each statement of the JSON list with ``spark.sql``, in order.

Self-contained (pyspark and the standard library only): the Spark that runs it needs no airflow-hybrid.
A relative path is also looked up in the driver's working directory, where ``spark-submit --files`` puts it.
"""

from __future__ import annotations

import json
import os
import sys


def read_statements(path: str) -> list[str]:
    """The statements in the JSON file ``path`` (or its base name in the working directory)."""
    if not os.path.exists(path) and os.path.exists(os.path.basename(path)):
        path = os.path.basename(path)
    with open(path, encoding="utf-8") as stream:
        statements = json.load(stream)
    if not isinstance(statements, list) or not statements or not all(isinstance(s, str) for s in statements):
        raise ValueError(f"{path}: expected a JSON list of SQL statements")
    return statements


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: spark_driver.py <statements.json>", file=sys.stderr)
        return 2
    statements = read_statements(argv[0])
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("airflow-hybrid-query").getOrCreate()
    try:
        for index, statement in enumerate(statements, 1):
            print(f"airflow-hybrid: statement {index}/{len(statements)}", file=sys.stderr, flush=True)
            spark.sql(statement)
    finally:
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
