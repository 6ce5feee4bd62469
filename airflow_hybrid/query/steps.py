"""EMR steps that run SQL over physical table locations with Spark SQL, Trino or Presto.

A step is ``command-runner.jar`` running the engine's CLI on the cluster's primary node with one script:
``spark-sql -e`` with :func:`~airflow_hybrid.query.spark_script.spark_sql_script`, or ``trino-cli`` /
``presto-cli --execute`` with :func:`~airflow_hybrid.query.trino_script.trino_script`. EMR limits each step
argument to :data:`MAX_STEP_ARGUMENT` characters: a longer script is uploaded by the caller to an ``s3://``
object and the step reads it from there (``script_uri``: ``spark-sql -f s3://...``; the Trino and Presto CLIs
read local files only, so their step copies it with ``aws s3 cp`` first).

A table split across members (older files on S3, newer on HDFS) has several locations; the view unions them
(see :mod:`airflow_hybrid.mount.resolver`: every file is read once, a migration in flight included).
:mod:`airflow_hybrid.aws.emr` submits and waits for the steps.
"""

from __future__ import annotations

import logging
import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount.resolver import Location, check_s3_scheme, with_s3_scheme
from airflow_hybrid.paths import is_hybrid_url, split_hybrid_url
from airflow_hybrid.query.spark_script import spark_sql_script
from airflow_hybrid.query.trino_script import trino_script
from airflow_hybrid.stores.base import normalize_path

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.stores.base import Store

log = logging.getLogger(__name__)

#: CLI name (``emr_cli``) -> the command on the EMR primary node.
EMR_CLIS = {"spark-sql": "spark-sql", "trino": "trino-cli", "presto": "presto-cli"}
COMMAND_RUNNER_JAR = "command-runner.jar"
#: The longest argument an EMR step may have (``HadoopJarStep.Args`` items).
MAX_STEP_ARGUMENT = 10_280
#: ``member`` of the :class:`Location` of a table given as a URI rather than a mount path.
URI_MEMBER = "uri"
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_PARTITION = re.compile(r"([^/=]+)=[^/]*")


class StepTooLongError(HybridConfigError):
    """A step argument (the script, in practice) is longer than EMR allows; pass ``script_uri``."""


@dataclass(frozen=True)
class EmrTable:
    """A table as the cluster sees it.

    :param locations: its :class:`~airflow_hybrid.mount.resolver.Location` s (a URI text is taken as a whole
        location).
    :param column_names: its columns in order (the Parquet schema's, then Hive partition keys), for unions
        by name; empty: ``SELECT *``, allowed for a single location only.
    :param columns: Trino/Presto column definitions (``name TYPE``).
    """

    name: str
    locations: Sequence[Location]
    column_names: Sequence[str] = ()
    columns: Sequence[str] | None = None

    def __post_init__(self) -> None:
        found = tuple(Location(URI_MEMBER, loc) if isinstance(loc, str) else loc for loc in self.locations)
        object.__setattr__(self, "locations", found)
        object.__setattr__(self, "column_names", tuple(self.column_names))

    @property
    def uris(self) -> list[str]:
        """Every URI it reads: per location, its file list or its directory (for logs and XCom)."""
        return [uri for loc in self.locations for uri in (loc.file_uris or (loc.uri,))]


def step_script(
    *,
    sql: str,
    tables: Sequence[EmrTable],
    output_uri: str,
    output_format: str = "parquet",
    cli: str = "spark-sql",
    catalog: str = "hive",
    schema: str = "hybrid",
) -> str:
    """The script a step of ``cli`` runs (what a caller uploads to ``script_uri`` when it is too long)."""
    if cli not in EMR_CLIS:
        raise ValueError(f"emr_cli must be one of {', '.join(EMR_CLIS)}, got {cli!r}")
    if output_format not in ("parquet", "csv"):
        raise ValueError(f"output_format must be 'parquet' or 'csv', got {output_format!r}")
    if cli == "spark-sql":
        return spark_sql_script(sql, tables, output_uri, output_format)
    return trino_script(sql, tables, output_uri, output_format, catalog, schema)


def needs_script_uri(script: str) -> bool:
    """Whether ``script`` is too long to pass inline as a step argument."""
    return len(script) > MAX_STEP_ARGUMENT


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
    script_uri: str | None = None,
) -> dict[str, Any]:
    """The ``add_job_flow_steps`` step running ``sql`` with ``cli`` (``spark-sql``, ``trino`` or ``presto``).

    :param script_uri: an ``s3://`` object the caller has uploaded :func:`step_script` to: the step reads the
        script from there instead of carrying it (needed when it is longer than :data:`MAX_STEP_ARGUMENT`).
    :raises StepTooLongError: an argument is longer than EMR allows and no ``script_uri`` was given.
    """
    script = step_script(
        sql=sql, tables=tables, output_uri=output_uri, output_format=output_format, cli=cli, catalog=catalog,
        schema=schema,
    )
    command = EMR_CLIS[cli]
    options = [] if cli == "spark-sql" else ["--catalog", catalog, "--schema", schema]
    if script_uri is None:
        inline = "-e" if cli == "spark-sql" else "--execute"
        args = [command, *options, *cli_args, inline, script]
    else:
        if not isinstance(script_uri, str) or not re.fullmatch(r"s3://[^/\s]+/[^\x00-\x1f\x7f]*[^/\s]", script_uri):
            raise HybridConfigError(f"script_uri: expected an s3://bucket/key object, got {script_uri!r}")
        if cli == "spark-sql":
            args = [command, *cli_args, "-f", script_uri]
        else:  # trino-cli -f reads local files only
            local = f"/tmp/hybrid-step-{posixpath.basename(script_uri)}"  # noqa: S108 - on the EMR primary node
            shell = " ".join(shlex.quote(word) for word in [command, *options, *cli_args, "-f", local])
            copy = f"aws s3 cp {shlex.quote(script_uri)} {shlex.quote(local)}"
            args = ["bash", "-c", f"set -e; {copy}; {shell}"]
    too_long = [len(arg) for arg in args if len(arg) > MAX_STEP_ARGUMENT]
    if too_long:
        raise StepTooLongError(
            f"step {name!r}: an argument of {max(too_long)} characters is longer than EMR allows "
            f"({MAX_STEP_ARGUMENT}); upload step_script(...) to an s3:// object and pass it as script_uri"
        )
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


def table_columns(store: Store | HybridMount, path: str) -> tuple[pa.Schema, list[str]]:
    """``(Parquet schema, column names)`` of the table at ``path``: the file itself, or the first ``*.parquet``
    file (by name) below it, as :func:`~airflow_hybrid.query.schema.table_schema` reads it; the names add the
    Hive partition keys (``year`` of ``year=2001/``) in that file's path below ``path``, which Spark exposes."""
    from airflow_hybrid.query.schema import read_parquet_schema

    rel = normalize_path(path)
    info = store.info(rel)
    first = rel
    if info.is_dir:
        first = min((f.path for f in store.walk_files(rel) if f.path.endswith(".parquet")), default=None)
        if first is None:
            raise FileNotFoundError(f"no Parquet files under {rel!r} in {store!r}")
    schema = read_parquet_schema(store, first)
    names = list(schema.names)
    below = first[len(rel) :].lstrip("/") if rel and first.startswith(rel) else first
    for part in below.split("/")[:-1] if info.is_dir else ():
        match = _PARTITION.fullmatch(part)
        if match and match.group(1) not in names:
            names.append(match.group(1))
    return schema, names


def resolve_tables(
    tables: Mapping[str, str] | None,
    mount_of: Callable[[str], HybridMount],
    mount_conn_id: str | None = None,
    *,
    typed: bool = False,
    conn_id: str | None = None,
    s3_scheme: str = "s3",
) -> list[EmrTable]:
    """Each table's current physical location(s) (:func:`~airflow_hybrid.mount.resolver.resolve_locations`),
    its column names and, when ``typed`` (Trino/Presto), its column definitions; ``conn_id`` reads ``s3://``
    tables' schemas.

    :param s3_scheme: ``s3`` (EMRFS) or ``s3a`` for the S3 URIs the engine reads.
    """
    from airflow_hybrid.mount.resolver import resolve_locations
    from airflow_hybrid.query.schema import column_definitions
    from airflow_hybrid.stores.factory import store_from_uri

    check_s3_scheme(s3_scheme)
    if not tables:
        raise ValueError("engine='emr' needs tables={name: logical path}: the cluster cannot read hybrid://")
    resolved = []
    for name, path in tables.items():
        mount_id, rel = split_location(path, mount_conn_id)
        if mount_id is None:
            locations = [Location(URI_MEMBER, with_s3_scheme(rel, s3_scheme))]
            store = store_from_uri(rel, conn_id if rel.startswith(("s3://", "s3a://")) else None)
            schema, names = table_columns(store, "")
        else:
            mount = mount_of(mount_id)
            locations = resolve_locations(mount, rel, s3_scheme=s3_scheme)
            schema, names = table_columns(mount, rel)
        columns = column_definitions(schema, "trino") if typed else None
        table = EmrTable(name, locations, names, columns)
        log.info("Table %s (%s) -> %s", name, path, ", ".join(table.uris))
        resolved.append(table)
    return resolved


def resolve_output(
    output_path: str, mount_of: Callable[[str], HybridMount], mount_conn_id: str | None = None, *, s3_scheme: str = "s3"
) -> str:
    """The engine URI (ending in ``/``) a step writes its result under: ``hybrid://`` and logical paths resolve
    in the member holding the path, else the mount's create member (:func:`~airflow_hybrid.mount.resolver.engine_uri`);
    an S3 URI is spelt in ``s3_scheme``."""
    from airflow_hybrid.mount.resolver import engine_uri

    check_s3_scheme(s3_scheme)
    mount_id, rel = split_location(output_path, mount_conn_id)
    if mount_id is None:
        uri = with_s3_scheme(rel, s3_scheme)
    else:
        mount = mount_of(mount_id)
        try:
            member = mount.member_of(rel)
        except FileNotFoundError:
            member = mount.create_members[0]
        uri = engine_uri(mount.members[member], rel, s3_scheme=s3_scheme)
    return uri.rstrip("/") + "/"
