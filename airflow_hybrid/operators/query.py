"""Run SQL over logical mount paths, in-process with DuckDB or as a step on an EMR cluster."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException

from airflow_hybrid.aws.emr import EmrSteps, EmrStepWaitMixin, StepStatus
from airflow_hybrid.hooks.hybrid_mount import HybridMountMixin
from airflow_hybrid.query import OUTPUT_FORMATS, QUERY_ENGINES, QueryResult
from airflow_hybrid.query.steps import EMR_CLIS, build_emr_step, resolve_output, resolve_tables

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_hybrid.query.duckdb_engine import DuckDBQuery

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class HybridQueryOperator(HybridMountMixin, EmrStepWaitMixin, BaseOperator):
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
        self._duckdb: DuckDBQuery | None = None
        self._emr_step: tuple[str, str] | None = None

    # -- shared ---------------------------------------------------------------------------------------
    def emr_steps(self, cluster_id: str | None = None) -> EmrSteps:
        return EmrSteps(cluster_id or self.emr_cluster_id, self.aws_conn_id, self.region_name)

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

    def on_kill(self) -> None:
        if self._duckdb is not None:
            self._duckdb.interrupt()
        if self._emr_step is not None:
            cluster_id, step_id = self._emr_step
            self.log.info("Cancelling EMR step %s on %s", step_id, cluster_id)
            self.emr_steps(cluster_id).cancel(step_id)

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
    def _submit_emr(self, context: Context, output_path: str) -> dict[str, Any]:
        if not self.emr_cluster_id:
            raise ValueError("engine='emr' needs emr_cluster_id")
        if self.emr_cli not in EMR_CLIS:
            raise ValueError(f"emr_cli must be one of {', '.join(EMR_CLIS)}, got {self.emr_cli!r}")
        with self.mounts() as mount_of:
            output_uri = resolve_output(output_path, mount_of, self.mount_conn_id)
            tables = resolve_tables(self.tables, mount_of, self.mount_conn_id, typed=self.emr_cli != "spark-sql",
                                    conn_id=self.aws_conn_id)
        step = build_emr_step(
            name=self.emr_step_name or f"{self.dag_id}.{self.task_id}", sql=self.sql, tables=tables,
            output_uri=output_uri, output_format=self.output_format, cli=self.emr_cli, catalog=self.emr_catalog,
            schema=self.emr_schema, cli_args=self.emr_cli_args,
        )
        steps = self.emr_steps()
        step_id = steps.submit([step])[0]
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
        try:
            status, waited = self.wait_for_step(steps, step_id, kwargs={"summary": summary})
        finally:
            self._emr_step = None
        return self._finish_step(summary, status, waited)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, summary: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: the step's own state decides (its failure reason is in the error)."""
        summary = summary or {}
        details = summary.get("details", {})
        status = self.emr_steps(details.get("cluster_id")).describe(details.get("step_id"))
        return self._finish_step(summary, status, (event or {}).get("message"))

    def _finish_step(self, summary: dict[str, Any], status: StepStatus, waited: str | None) -> dict[str, Any]:
        if status.completed:
            self.log.info("EMR step %s completed; result under %s", status.step_id, summary.get("output_path"))
            summary.setdefault("details", {})["state"] = status.state
            return summary
        if status.terminal:
            raise AirflowException(status.failure_text())
        cluster_id = summary.get("details", {}).get("cluster_id", self.emr_cluster_id)
        raise AirflowException(f"EMR step {status.step_id} on {cluster_id} is still {status.state} after waiting: "
                               f"{waited or 'no terminal state reported'}")
