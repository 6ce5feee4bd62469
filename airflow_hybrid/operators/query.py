"""Run SQL over logical mount paths, in-process with DuckDB or as a step on an EMR cluster."""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from airflow_hybrid.mount.resolver import resolve_locations
from airflow_hybrid.paths import is_hybrid_url, split_hybrid_url
from airflow_hybrid.query import OUTPUT_FORMATS, QUERY_ENGINES, QueryResult
from airflow_hybrid.query.emr import (
    EMR_CLIS,
    FAILED_STATES,
    EmrTable,
    build_emr_step,
    step_failure_reason,
    step_state,
)
from airflow_hybrid.stores.base import normalize_path
from airflow_hybrid.stores.factory import store_from_uri

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.hooks.emr import EmrHook
    from airflow.sdk import Context

    from airflow_hybrid.mount import HybridMount
    from airflow_hybrid.query.duckdb_engine import DuckDBQuery

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class HybridQueryOperator(BaseOperator):
    """
    Run one SQL query over tables given as logical paths of a hybrid mount, and write its result.

    * ``engine="duckdb"`` (default): DuckDB in the task's process reads each table through ``hybrid://``
      (a view per table over its Parquet files), so the answer is the same wherever the files live; the
      result goes to ``output_path`` (``hybrid://``, ``s3://``, ``file://``).
    * ``engine="emr"``: adds a ``command-runner.jar`` step to cluster ``emr_cluster_id`` running ``spark-sql
      -e``, ``trino-cli`` or ``presto-cli --execute``, over each table's *physical* location(s) as resolved
      now (``s3://`` after a migration, the cache's S3 tier when warm, ``hdfs://`` otherwise; see
      :mod:`airflow_hybrid.mount.resolver`), writing the result under the ``output_path`` prefix. With
      ``deferrable=True`` the task waits in the triggerer (the amazon provider's ``EmrStepSensorTrigger``); a
      failed, cancelled or interrupted step fails the task with the step's ``FailureDetails``.

    Returns (XCom) a summary: engine, output path, row count and the first rows (DuckDB), cluster and step
    ids and the resolved locations (EMR). Never the data itself.

    :param sql: one SQL statement (templated; ``{{ data_interval_start }}`` etc. work; a ``.sql`` file
        name is read as a template).
    :param mount_conn_id: the ``hybrid_mount`` connection the logical table paths belong to (templated).
    :param tables: view name -> logical path (``/tpcds/store_sales``) or URI of the table's Parquet
        directory (templated). ``None``: the SQL names its sources itself (DuckDB only).
    :param engine: ``duckdb`` or ``emr`` (templated).
    :param output_path: result file (DuckDB) or prefix (EMR); ``hybrid://`` paths resolve to the mount's
        create member for EMR. Default: ``hybrid://<mount>/results/<dag_id>/<task_id>/<run_id>`` (templated).
    :param output_format: ``parquet`` or ``csv`` (EMR Trino/Presto: parquet only).
    :param preview_rows: rows of the result carried in the summary (DuckDB).
    :param duckdb_settings: DuckDB settings for the embedded engine (``memory_limit``, ``threads``...).
    :param emr_cluster_id: the EMR cluster (job flow) id (templated).
    :param aws_conn_id: AWS connection for EMR (and for ``s3://`` outputs of the DuckDB engine).
    :param region_name: AWS region of the cluster.
    :param emr_cli: ``spark-sql``, ``trino`` or ``presto`` (templated).
    :param emr_catalog: Hive catalog Trino/Presto register the tables in.
    :param emr_schema: schema for those tables and the result table.
    :param emr_step_name: step name (default: ``<dag_id>.<task_id>``).
    :param emr_cli_args: extra CLI arguments (e.g. ``["--conf", "spark.sql.shuffle.partitions=64"]``).
    :param deferrable: wait for the EMR step in the triggerer rather than in a worker slot.
    :param waiter_delay: seconds between step state checks.
    :param waiter_max_attempts: checks before giving up.
    """

    template_fields: Sequence[str] = (
        "sql",
        "mount_conn_id",
        "tables",
        "engine",
        "output_path",
        "output_format",
        "emr_cluster_id",
        "emr_cli",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"sql": "sql", "tables": "json"}
    ui_color = "#c6e2ff"

    def __init__(
        self,
        *,
        sql: str,
        mount_conn_id: str | None = None,
        tables: dict[str, str] | None = None,
        engine: str = "duckdb",
        output_path: str | None = None,
        output_format: str = "parquet",
        preview_rows: int = 10,
        duckdb_settings: dict[str, Any] | None = None,
        emr_cluster_id: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        emr_cli: str = "spark-sql",
        emr_catalog: str = "hive",
        emr_schema: str = "hybrid",
        emr_step_name: str | None = None,
        emr_cli_args: Sequence[str] = (),
        deferrable: bool = True,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if emr_cli not in EMR_CLIS and "{{" not in emr_cli:  # templated values are checked when rendered
            raise ValueError(f"emr_cli must be one of {', '.join(EMR_CLIS)}, got {emr_cli!r}")
        self.sql = sql
        self.mount_conn_id = mount_conn_id
        self.tables = tables
        self.engine = engine
        self.output_path = output_path
        self.output_format = output_format
        self.preview_rows = preview_rows
        self.duckdb_settings = duckdb_settings
        self.emr_cluster_id = emr_cluster_id
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.emr_cli = emr_cli
        self.emr_catalog = emr_catalog
        self.emr_schema = emr_schema
        self.emr_step_name = emr_step_name
        self.emr_cli_args = list(emr_cli_args)
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self._mounts: dict[str, HybridMount] = {}
        self._duckdb: DuckDBQuery | None = None
        self._emr_step: tuple[str, str] | None = None

    # -- shared ---------------------------------------------------------------------------------------
    @cached_property
    def emr_hook(self) -> EmrHook:
        from airflow.providers.amazon.aws.hooks.emr import EmrHook

        return EmrHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

    def execute(self, context: Context) -> dict[str, Any]:
        if self.engine not in QUERY_ENGINES:
            raise ValueError(f"engine must be one of {', '.join(QUERY_ENGINES)}, got {self.engine!r}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(
                f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, got {self.output_format!r}"
            )
        output_path = self.output_path or self._default_output(context)
        if self.engine == "duckdb":
            return self._run_duckdb(output_path)
        return self._submit_emr(context, output_path)

    def _default_output(self, context: Context) -> str:
        if not self.mount_conn_id:
            raise ValueError("output_path is required when mount_conn_id is not set")
        run_id = _UNSAFE.sub("_", str(context["run_id"]))
        path = f"hybrid://{self.mount_conn_id}/results/{self.dag_id}/{self.task_id}/{run_id}"
        return f"{path}.{self.output_format}" if self.engine == "duckdb" else f"{path}/"

    def _mount(self, conn_id: str) -> HybridMount:
        if conn_id not in self._mounts:
            from airflow_hybrid.mount import HybridMount

            self._mounts[conn_id] = HybridMount.from_conn_id(conn_id)
        return self._mounts[conn_id]

    def on_kill(self) -> None:
        if self._duckdb is not None:
            self._duckdb.interrupt()
        if self._emr_step is not None:
            cluster_id, step_id = self._emr_step
            self.log.info("Cancelling EMR step %s on %s", step_id, cluster_id)
            self.emr_hook.conn.cancel_steps(ClusterId=cluster_id, StepIds=[step_id])

    # -- DuckDB ---------------------------------------------------------------------------------------
    def _run_duckdb(self, output_path: str) -> dict[str, Any]:
        from airflow_hybrid.query.duckdb_engine import DuckDBQuery

        self._duckdb = DuckDBQuery(
            self.sql,
            mount_conn_id=self.mount_conn_id,
            tables=self.tables,
            output_path=output_path,
            output_format=self.output_format,
            output_conn_id=self.aws_conn_id if output_path.startswith(("s3://", "s3a://")) else None,
            preview_rows=self.preview_rows,
            settings=self.duckdb_settings,
        )
        for name, url in self._duckdb.tables.items():
            self.log.info("Table %s <- %s", name, url)
        try:
            result = self._duckdb.run()
        finally:
            self._duckdb = None
        self.log.info("%d rows written to %s", result.rows, result.output_path)
        return result.to_dict()

    # -- EMR ------------------------------------------------------------------------------------------
    def _split_uri(self, path: str) -> tuple[str | None, str]:
        """``(mount, logical path)`` for a logical or ``hybrid://`` path; ``(None, uri)`` for other URIs."""
        if is_hybrid_url(path):
            return split_hybrid_url(path)
        if _URI.match(path):
            return None, path
        if not self.mount_conn_id:
            raise ValueError(f"table path {path!r} is a logical path but no mount_conn_id was given")
        return self.mount_conn_id, normalize_path(path)

    def resolve_tables(self) -> list[EmrTable]:
        """Each table's current physical location(s) and, for Trino/Presto, its columns."""
        from airflow_hybrid.query.schema import column_definitions, table_schema

        if not self.tables:
            raise ValueError(
                "engine='emr' needs tables={name: logical path}: the cluster cannot read hybrid://"
            )
        resolved = []
        for name, path in self.tables.items():
            mount_id, rel = self._split_uri(path)
            if mount_id is None:
                uris = [rel]
            else:
                uris = [loc.uri for loc in resolve_locations(self._mount(mount_id), rel)]
            columns = None
            if self.emr_cli != "spark-sql":
                if mount_id is None:
                    store = store_from_uri(
                        rel, self.aws_conn_id if rel.startswith(("s3://", "s3a://")) else None
                    )
                    schema = table_schema(store, "")
                else:
                    schema = table_schema(self._mount(mount_id), rel)
                columns = column_definitions(schema, "trino")
            self.log.info("Table %s (%s) -> %s", name, path, ", ".join(uris))
            resolved.append(EmrTable(name, uris, columns))
        return resolved

    def resolve_output(self, output_path: str) -> str:
        mount_id, rel = self._split_uri(output_path)
        uri = rel if mount_id is None else self._mount(mount_id).physical_uri(rel)
        return uri.rstrip("/") + "/"

    def _submit_emr(self, context: Context, output_path: str) -> dict[str, Any]:
        from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger
        from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

        if not self.emr_cluster_id:
            raise ValueError("engine='emr' needs emr_cluster_id")
        if self.emr_cli not in EMR_CLIS:
            raise ValueError(f"emr_cli must be one of {', '.join(EMR_CLIS)}, got {self.emr_cli!r}")
        output_uri = self.resolve_output(output_path)
        tables = self.resolve_tables()
        step = build_emr_step(
            name=self.emr_step_name or f"{self.dag_id}.{self.task_id}",
            sql=self.sql,
            tables=tables,
            output_uri=output_uri,
            output_format=self.output_format,
            cli=self.emr_cli,
            catalog=self.emr_catalog,
            schema=self.emr_schema,
            cli_args=self.emr_cli_args,
        )
        step_id = self.emr_hook.add_job_flow_steps(job_flow_id=self.emr_cluster_id, steps=[step])[0]
        self._emr_step = (self.emr_cluster_id, step_id)
        self.log.info("Submitted EMR step %s to %s; result -> %s", step_id, self.emr_cluster_id, output_uri)
        summary = QueryResult(
            engine="emr",
            output_path=output_uri,
            output_format=self.output_format,
            details={
                "cluster_id": self.emr_cluster_id,
                "step_id": step_id,
                "cli": self.emr_cli,
                "tables": {t.name: list(t.locations) for t in tables},
            },
        ).to_dict()
        if self.deferrable:
            self.defer(
                trigger=EmrStepSensorTrigger(
                    job_flow_id=self.emr_cluster_id,
                    step_id=step_id,
                    waiter_delay=self.waiter_delay,
                    waiter_max_attempts=self.waiter_max_attempts,
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                ),
                method_name="execute_complete",
                kwargs={"summary": summary},
            )
        waited: dict[str, Any] = {"status": "success"}
        try:
            wait(
                waiter=self.emr_hook.get_waiter("step_wait_for_terminal"),
                waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts,
                args={"ClusterId": self.emr_cluster_id, "StepId": step_id},
                failure_message=f"EMR step {step_id} did not complete",
                status_message=f"EMR step {step_id} is",
                status_args=["Step.Status.State"],
            )
        except AirflowException as err:
            waited = {"status": "error", "message": str(err)}
        finally:
            self._emr_step = None
        return self._check_step(summary, waited)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, summary: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: the step's own state decides (its failure reason is in the error)."""
        return self._check_step(summary or {}, event)

    def _check_step(self, summary: dict[str, Any], event: dict[str, Any] | None) -> dict[str, Any]:
        details = summary.get("details", {})
        cluster_id = details.get("cluster_id", self.emr_cluster_id)
        step_id = details.get("step_id")
        response = self.emr_hook.conn.describe_step(ClusterId=cluster_id, StepId=step_id)
        state = step_state(response)
        if state == "COMPLETED":
            self.log.info("EMR step %s completed; result under %s", step_id, summary.get("output_path"))
            details["state"] = state
            return summary
        if state in FAILED_STATES:
            raise AirflowException(step_failure_reason(response))
        reason = (event or {}).get("message") or "no terminal state reported"
        raise AirflowException(f"EMR step {step_id} on {cluster_id} is still {state} after waiting: {reason}")
