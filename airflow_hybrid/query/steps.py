"""EMR steps that run SQL over physical table locations with Spark SQL, Trino or Presto.

A step is ``command-runner.jar`` running the engine's CLI on the cluster's primary node with one script:
``spark-sql -e`` with :func:`~airflow_hybrid.query.spark_script.spark_sql_script`, or ``trino-cli`` /
``presto-cli --execute`` with :func:`~airflow_hybrid.query.trino_script.trino_script`.

A table split across members (older files on S3, newer on HDFS) has several locations; the view unions them
(see :mod:`airflow_hybrid.mount.resolver` for when that is exact). :mod:`airflow_hybrid.aws.emr` submits and
waits for the steps.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_hybrid.paths import is_hybrid_url, split_hybrid_url
from airflow_hybrid.query.spark_script import spark_sql_script
from airflow_hybrid.query.trino_script import trino_script
from airflow_hybrid.stores.base import normalize_path

if TYPE_CHECKING:
    from airflow_hybrid.mount import HybridMount

log = logging.getLogger(__name__)

#: CLI name (``emr_cli``) -> the command on the EMR primary node.
EMR_CLIS = {"spark-sql": "spark-sql", "trino": "trino-cli", "presto": "presto-cli"}
COMMAND_RUNNER_JAR = "command-runner.jar"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class EmrTable:
    """A table as the cluster sees it: physical locations and, for Trino/Presto, its column definitions."""

    name: str
    locations: Sequence[str]
    columns: Sequence[str] | None = None


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
