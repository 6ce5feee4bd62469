"""Run SQL over logical mount paths: in-process with DuckDB, as a step on an EMR cluster, or on your own Spark."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from airflow_hybrid.aws.emr import EmrSteps, EmrStepWaitMixin, StepStatus
from airflow_hybrid.hooks.hybrid_mount import HybridMountMixin
from airflow_hybrid.query import OUTPUT_FORMATS, QUERY_ENGINES, QueryResult
from airflow_hybrid.query.leases import lease_tables, release_leases
from airflow_hybrid.query.steps import (
    EMR_CLIS,
    build_emr_step,
    needs_script_uri,
    resolve_output,
    resolve_tables,
    step_script,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_hybrid.query.duckdb_engine import DuckDBQuery
    from airflow_hybrid.query.spark import SparkSqlRunner

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Seconds a lease outlasts the longest wait for an EMR step (the step may start late and run to the end).
_LEASE_MARGIN = 600
#: How long a ``engine="spark"`` run leases its tables when the task has no ``execution_timeout``.
_SPARK_LEASE = 6 * 3600


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
    * ``engine="spark"``: the same Spark SQL statements on your own Spark: a Spark Connect server
      (``spark_connect_url``) or ``spark-submit`` through the apache-spark provider (``spark_conn_id``); S3 as
      ``s3a://`` by default.

    For ``emr`` and ``spark`` the tables' cached copies are leased in the mount's cache before the tables are
    resolved and until the step ends (:mod:`airflow_hybrid.query.leases`): a warm copy handed to the engine is
    never evicted or freed under it, and its freshness was checked (``metadata_sync_interval``) just before.

    Returns (XCom) a summary: engine, output path, row count and the first rows (DuckDB), cluster and step
    ids and the resolved locations (EMR). Never the data itself.

    :param sql: one SQL statement (templated; ``{{ data_interval_start }}`` etc. work; a ``.sql`` file
        name is read as a template).
    :param mount_conn_id: the ``hybrid_mount`` connection the logical table paths belong to (templated).
    :param tables: view name -> logical path (``/tpcds/store_sales``) or URI of the table's Parquet
        directory (templated). ``None``: the SQL names its sources itself (DuckDB only).
    :param engine: ``duckdb``, ``emr`` or ``spark`` (templated).
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
    :param emr_script_prefix: an ``s3://`` prefix the step script is uploaded to when it is too long to pass
        inline (EMR limits a step argument to 10,280 characters; long file lists make long scripts).
    :param s3_scheme: the scheme of the S3 URIs the engine reads: ``s3`` (EMRFS, the default on EMR) or
        ``s3a`` (the default for ``engine="spark"``).
    :param spark_connect_url: ``sc://host:15002``: run ``engine="spark"`` on a Spark Connect server.
    :param spark_conn_id: an Airflow ``spark`` connection: run ``engine="spark"`` with ``spark-submit``.
    :param spark_submit_options: further ``SparkSubmitHook`` arguments (``conf``, ``jars``, ...).
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
        emr_script_prefix: str | None = None,
        s3_scheme: str | None = None,
        spark_connect_url: str | None = None,
        spark_conn_id: str | None = None,
        spark_submit_options: dict[str, Any] | None = None,
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
        self.emr_script_prefix = emr_script_prefix
        self.s3_scheme = s3_scheme
        self.spark_connect_url = spark_connect_url
        self.spark_conn_id = spark_conn_id
        self.spark_submit_options = spark_submit_options
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self._duckdb: DuckDBQuery | None = None
        self._emr_step: tuple[str, str] | None = None
        self._spark: SparkSqlRunner | None = None

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
        if self.engine == "spark":
            return self._run_spark(context, output_path)
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
        if self._spark is not None:
            self._spark.on_kill()
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

    # -- leases (emr and spark) -------------------------------------------------------------------------
    def _lease_holder(self, context: Context) -> str:
        return f"{self.dag_id}/{self.task_id}/{context['run_id']}"

    def _release(self, leases: list[dict[str, Any]]) -> None:
        if not leases:
            return
        with self.mounts() as mount_of:
            deleted = release_leases(leases, mount_of)
        self.log.info("Released %d cache lease(s)%s", len(leases), f"; {deleted} stale copies deleted" if deleted else "")

    # -- Spark ----------------------------------------------------------------------------------------
    def _run_spark(self, context: Context, output_path: str) -> dict[str, Any]:
        from airflow_hybrid.query.spark import SparkSqlRunner, run_spark_query

        runner = SparkSqlRunner(
            remote=self.spark_connect_url,
            spark_conn_id=self.spark_conn_id or (None if self.spark_connect_url else "spark_default"),
            submit_options=self.spark_submit_options,
        )
        timeout = self.execution_timeout.total_seconds() if self.execution_timeout else _SPARK_LEASE
        with self.mounts() as mount_of:
            leases = lease_tables(self.tables, mount_of, self.mount_conn_id, seconds=timeout,
                                  holder=self._lease_holder(context))
            self._spark = runner
            try:
                result = run_spark_query(
                    self.sql, tables=self.tables or {}, output_path=output_path, runner=runner, mount_of=mount_of,
                    mount_conn_id=self.mount_conn_id, output_format=self.output_format,
                    s3_scheme=self.s3_scheme or "s3a",
                )
            finally:
                self._spark = None
                release_leases(leases, mount_of)
        for name, uris in result.details["tables"].items():
            self.log.info("Table %s <- %s", name, ", ".join(uris))
        self.log.info("Spark (%s) wrote the result under %s", runner.mode, result.output_path)
        return result.to_dict()

    # -- EMR ------------------------------------------------------------------------------------------
    def _submit_emr(self, context: Context, output_path: str) -> dict[str, Any]:
        if not self.emr_cluster_id:
            raise ValueError("engine='emr' needs emr_cluster_id")
        if self.emr_cli not in EMR_CLIS:
            raise ValueError(f"emr_cli must be one of {', '.join(EMR_CLIS)}, got {self.emr_cli!r}")
        with self.mounts() as mount_of:
            leases = lease_tables(
                self.tables, mount_of, self.mount_conn_id, holder=self._lease_holder(context),
                seconds=self.waiter_delay * self.waiter_max_attempts + _LEASE_MARGIN,
            )
            try:
                output_uri = resolve_output(output_path, mount_of, self.mount_conn_id, s3_scheme=self.s3_scheme or "s3")
                tables = resolve_tables(self.tables, mount_of, self.mount_conn_id, typed=self.emr_cli != "spark-sql",
                                        conn_id=self.aws_conn_id, s3_scheme=self.s3_scheme or "s3")
                if self.emr_cli != "spark-sql":
                    self._clear_output(output_path, mount_of)
                step = self._emr_step_definition(context, tables, output_uri)
            except BaseException:
                release_leases(leases, mount_of)
                raise
        steps = self.emr_steps()
        try:
            step_id = steps.submit([step])[0]
        except BaseException:
            self._release(leases)
            raise
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
                "tables": {t.name: t.uris for t in tables},
                "leases": leases,
            },
        ).to_dict()
        try:
            status, waited = self.wait_for_step(steps, step_id, kwargs={"summary": summary})
        except TaskDeferred:
            raise  # the leases go with the summary; execute_complete releases them
        except BaseException:
            self._release(leases)
            raise
        finally:
            self._emr_step = None
        return self._finish_step(summary, status, waited)

    def _clear_output(self, output_path: str, mount_of) -> None:
        """Delete what an earlier try left under the output prefix: a Trino/Presto CTAS refuses an existing
        ``external_location`` (``HIVE_PATH_ALREADY_EXISTS``), and ``DROP TABLE`` of an external table keeps its
        files. Spark's ``INSERT OVERWRITE DIRECTORY`` replaces it by itself."""
        from airflow_hybrid.query.steps import split_location
        from airflow_hybrid.stores.factory import store_from_uri

        mount_id, rel = split_location(output_path, self.mount_conn_id)
        if mount_id is None:
            conn_id = self.aws_conn_id if rel.startswith(("s3://", "s3a://")) else None
            store, rel = store_from_uri(rel, conn_id), ""
        else:
            mount = mount_of(mount_id)
            try:  # where resolve_output put it
                store = mount.members[mount.member_of(rel)]
            except FileNotFoundError:
                return
        try:
            if store.delete(rel, recursive=True):
                self.log.info("Deleted an earlier result under %s", store.uri(rel))
        finally:
            if mount_id is None:
                store.close()

    def _emr_step_definition(self, context: Context, tables: list, output_uri: str) -> dict[str, Any]:
        """The step; its script goes to ``emr_script_prefix`` on S3 when it is too long to pass inline."""
        options = {
            "sql": self.sql, "tables": tables, "output_uri": output_uri, "output_format": self.output_format,
            "cli": self.emr_cli, "catalog": self.emr_catalog, "schema": self.emr_schema,
        }
        script_uri = None
        script = step_script(**options)
        if needs_script_uri(script) and self.emr_script_prefix:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            run_id = _UNSAFE.sub("_", str(context["run_id"]))
            script_uri = f"{self.emr_script_prefix.rstrip('/')}/{self.dag_id}/{self.task_id}/{run_id}.sql"
            S3Hook(aws_conn_id=self.aws_conn_id).load_string(script, script_uri, replace=True)
            self.log.info("Step script (%d characters) uploaded to %s", len(script), script_uri)
        return build_emr_step(
            name=self.emr_step_name or f"{self.dag_id}.{self.task_id}", cli_args=self.emr_cli_args,
            script_uri=script_uri, **options,
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, summary: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: the step's own state decides (its failure reason is in the error)."""
        summary = summary or {}
        details = summary.get("details", {})
        try:
            status = self.emr_steps(details.get("cluster_id")).describe(details.get("step_id"))
        except BaseException:
            self._release(details.get("leases") or [])
            raise
        return self._finish_step(summary, status, (event or {}).get("message"))

    def _finish_step(self, summary: dict[str, Any], status: StepStatus, waited: str | None) -> dict[str, Any]:
        """Succeed or fail on the step's state. The leases end with the step; a step still running when the
        wait gave up keeps them until they expire (it may still be reading)."""
        details = summary.setdefault("details", {})
        leases = details.pop("leases", None) or []
        if status.terminal:
            self._release(leases)
        if status.completed:
            self.log.info("EMR step %s completed; result under %s", status.step_id, summary.get("output_path"))
            summary.setdefault("details", {})["state"] = status.state
            return summary
        if status.terminal:
            raise AirflowException(status.failure_text())
        cluster_id = summary.get("details", {}).get("cluster_id", self.emr_cluster_id)
        raise AirflowException(f"EMR step {status.step_id} on {cluster_id} is still {status.state} after waiting: "
                               f"{waited or 'no terminal state reported'}")
