"""EMR steps that run SQL over physical table locations with Spark SQL, Trino or Presto.

A step is ``command-runner.jar`` running the engine's CLI on the cluster's primary node with one script:

* ``spark-sql -e``: one temporary view per table over its location(s), then
  ``INSERT OVERWRITE DIRECTORY '<output>' USING parquet|csv <query>``;
* ``trino-cli`` / ``presto-cli --execute``: one external Hive table per location (columns typed from the
  Parquet schema), a view per table unioning them, then ``CREATE TABLE ... WITH (external_location =
  '<output>') AS <query>``. The Hive catalog must allow non-managed table writes
  (``hive.non-managed-table-writes-enabled=true``).

A table split across members (older files on S3, newer on HDFS) has several locations; the view unions them
(see :mod:`airflow_hybrid.mount.resolver` for when that is exact). :mod:`airflow_hybrid.aws.emr` submits and
waits for the steps.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_hybrid.paths import is_hybrid_url, split_hybrid_url
from airflow_hybrid.query.sql import strip_statement
from airflow_hybrid.stores.base import normalize_path

if TYPE_CHECKING:
    from airflow_hybrid.mount import HybridMount

log = logging.getLogger(__name__)

#: CLI name (``emr_cli``) -> the command on the EMR primary node.
EMR_CLIS = {"spark-sql": "spark-sql", "trino": "trino-cli", "presto": "presto-cli"}
COMMAND_RUNNER_JAR = "command-runner.jar"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class EmrTable:
    """A table as the cluster sees it: physical locations and, for Trino/Presto, its column definitions."""

    name: str
    locations: Sequence[str]
    columns: Sequence[str] | None = None


def _check_identifier(value: str, what: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain SQL identifier")
    return value


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


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
            f"CREATE OR REPLACE TEMPORARY VIEW {_check_identifier(table.name, 'table')} AS {union}"
        )
    options = " OPTIONS ('header' 'true')" if output_format == "csv" else ""
    statements.append(
        f"INSERT OVERWRITE DIRECTORY {_literal(output_uri)} USING {output_format}{options}\n{strip_statement(sql)}"
    )
    return ";\n".join(statements) + ";"


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
    prefix = f"{_check_identifier(catalog, 'catalog')}.{_check_identifier(schema, 'schema')}"
    statements = [f"CREATE SCHEMA IF NOT EXISTS {prefix}"]
    for table in tables:
        name = _check_identifier(table.name, "table")
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
                f"WITH (external_location = {_literal(location)}, format = 'PARQUET')"
            )
        union = " UNION ALL ".join(f"SELECT * FROM {part}" for part in parts)
        statements.append(f"CREATE OR REPLACE VIEW {prefix}.{name} AS {union}")
    result = f"{prefix}.{result_table_name(output_uri)}"
    statements.append(f"DROP TABLE IF EXISTS {result}")
    statements.append(
        f"CREATE TABLE {result} WITH (external_location = {_literal(output_uri)}, format = 'PARQUET') AS\n"
        f"{strip_statement(sql)}"
    )
    return ";\n".join(statements) + ";"


def build_emr_step(
    *,
    name: str,
    sql: str,
    tables: Sequence[EmrTable],
    output_uri: str,
    output_format: str = "parquet",
    cli: str = "spark-sql",
    catalog: str = "hive",
    schema: str = "hybrid",
    action_on_failure: str = "CONTINUE",
    cli_args: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``add_job_flow_steps`` step running ``sql`` with ``cli`` (``spark-sql``, ``trino`` or ``presto``)."""
    if cli not in EMR_CLIS:
        raise ValueError(f"emr_cli must be one of {', '.join(EMR_CLIS)}, got {cli!r}")
    if output_format not in ("parquet", "csv"):
        raise ValueError(f"output_format must be 'parquet' or 'csv', got {output_format!r}")
    if cli == "spark-sql":
        args = [EMR_CLIS[cli], *cli_args, "-e", spark_sql_script(sql, tables, output_uri, output_format)]
    else:
        script = trino_script(sql, tables, output_uri, output_format, catalog, schema)
        args = [EMR_CLIS[cli], "--catalog", catalog, "--schema", schema, *cli_args, "--execute", script]
    return {
        "Name": name,
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {"Jar": COMMAND_RUNNER_JAR, "Args": args},
    }


# -- physical locations ---------------------------------------------------------------------------------
def split_location(path: str, mount_conn_id: str | None) -> tuple[str | None, str]:
    """``(mount, logical path)`` of a logical or ``hybrid://`` path; ``(None, uri)`` for other URIs."""
    if is_hybrid_url(path):
        return split_hybrid_url(path)
    if _URI.match(path):
        return None, path
    if not mount_conn_id:
        raise ValueError(f"table path {path!r} is a logical path but no mount_conn_id was given")
    return mount_conn_id, normalize_path(path)


def resolve_tables(
    tables: Mapping[str, str] | None,
    mount_of: Callable[[str], HybridMount],
    mount_conn_id: str | None = None,
    *,
    typed: bool = False,
    conn_id: str | None = None,
) -> list[EmrTable]:
    """Each table's current physical location(s) (:func:`~airflow_hybrid.mount.resolver.resolve_locations`)
    and, when ``typed`` (Trino/Presto), its column definitions; ``conn_id`` reads ``s3://`` tables' schemas."""
    from airflow_hybrid.mount.resolver import resolve_locations
    from airflow_hybrid.query.schema import column_definitions, table_schema
    from airflow_hybrid.stores.factory import store_from_uri

    if not tables:
        raise ValueError("engine='emr' needs tables={name: logical path}: the cluster cannot read hybrid://")
    resolved = []
    for name, path in tables.items():
        mount_id, rel = split_location(path, mount_conn_id)
        uris = [rel] if mount_id is None else [loc.uri for loc in resolve_locations(mount_of(mount_id), rel)]
        columns = None
        if typed:
            if mount_id is None:
                store = store_from_uri(rel, conn_id if rel.startswith(("s3://", "s3a://")) else None)
                schema = table_schema(store, "")
            else:
                schema = table_schema(mount_of(mount_id), rel)
            columns = column_definitions(schema, "trino")
        log.info("Table %s (%s) -> %s", name, path, ", ".join(uris))
        resolved.append(EmrTable(name, uris, columns))
    return resolved


def resolve_output(output_path: str, mount_of: Callable[[str], HybridMount], mount_conn_id: str | None = None) -> str:
    """The physical prefix (ending in ``/``) a step writes its result under; ``hybrid://`` paths resolve to the
    mount's create member."""
    mount_id, rel = split_location(output_path, mount_conn_id)
    uri = rel if mount_id is None else mount_of(mount_id).physical_uri(rel)
    return uri.rstrip("/") + "/"
