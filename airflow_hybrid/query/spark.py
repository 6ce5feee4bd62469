"""Run a query's Spark SQL statements on a Spark of your own, the same statements an EMR step runs.

:func:`spark_query_statements` resolves the tables and the output as ``engine="emr"`` does
(:func:`~airflow_hybrid.query.steps.resolve_tables`) and builds the statements with
:func:`~airflow_hybrid.query.spark_script.spark_sql_statements`; :class:`SparkSqlRunner` runs them one by one
with ``spark.sql`` in one of three ways:

* an existing ``SparkSession`` (notebooks, tests): ``SparkSqlRunner(session=spark)``;
* a Spark Connect server: ``SparkSqlRunner(remote="sc://host:15002")`` (``pyspark[connect]``);
* ``spark-submit`` through the apache-spark provider's ``SparkSubmitHook``: ``SparkSqlRunner(spark_conn_id=
  "spark_default")`` submits :mod:`airflow_hybrid.query.spark_driver` with the statements in a JSON file.

S3 URIs default to ``s3a://`` (Hadoop's S3A, what a Spark outside EMR reads S3 with); the Spark must be
configured to reach the stores (``fs.s3a.*`` settings, the namenode of ``hdfs://`` URIs).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_hybrid.exceptions import HybridConfigError, HybridError
from airflow_hybrid.query.result import QueryResult
from airflow_hybrid.query.spark_script import spark_sql_statements
from airflow_hybrid.query.steps import EmrTable, resolve_output, resolve_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from airflow_hybrid.mount import HybridMount

log = logging.getLogger(__name__)

#: The driver ``spark-submit`` runs: ``spark_driver.py <statements.json>``.
DRIVER = Path(__file__).with_name("spark_driver.py")
_CONNECT_URL = re.compile(r"^sc://[^/\s;?#]+(?::\d+)?/?(?:;[^\s]*)?$")


class SparkQueryError(HybridError):
    """A Spark run of the statements failed; the message names the statement or the submission."""


def check_connect_url(url: str) -> str:
    """``url`` when it is a Spark Connect URL (``sc://host[:port][/;param=value...]``), else HybridConfigError."""
    if not isinstance(url, str) or not _CONNECT_URL.match(url):
        raise HybridConfigError(f"remote: expected a Spark Connect URL such as 'sc://spark-host:15002', got {url!r}")
    return url


def spark_query_statements(
    sql: str,
    *,
    tables: Mapping[str, str],
    output_path: str,
    mount_of: Callable[[str], HybridMount],
    mount_conn_id: str | None = None,
    output_format: str = "parquet",
    s3_scheme: str = "s3a",
) -> tuple[list[str], list[EmrTable], str]:
    """``(statements, resolved tables, output URI)`` of ``sql`` over ``tables`` (view name -> logical path or URI)."""
    resolved = resolve_tables(tables, mount_of, mount_conn_id, s3_scheme=s3_scheme)
    output_uri = resolve_output(output_path, mount_of, mount_conn_id, s3_scheme=s3_scheme)
    return spark_sql_statements(sql, resolved, output_uri, output_format), resolved, output_uri


class SparkSqlRunner:
    """Runs Spark SQL statements on one Spark: exactly one of ``session``, ``remote`` or ``spark_conn_id``.

    :param session: a ``SparkSession`` to run them in (never stopped here).
    :param remote: a Spark Connect URL (``sc://host:15002``): a session is opened for the run and stopped after.
    :param spark_conn_id: an Airflow ``spark`` connection: ``spark-submit`` (``SparkSubmitHook``) runs
        :data:`DRIVER` on its master.
    :param submit_options: further ``SparkSubmitHook`` arguments (``conf``, ``jars``, ``driver_memory``, ...).
    """

    def __init__(
        self,
        *,
        session: SparkSession | None = None,
        remote: str | None = None,
        spark_conn_id: str | None = None,
        submit_options: Mapping[str, Any] | None = None,
    ) -> None:
        given = [name for name, value in (("session", session), ("remote", remote), ("spark_conn_id", spark_conn_id))
                 if value is not None]
        if len(given) != 1:
            raise HybridConfigError(
                f"SparkSqlRunner needs exactly one of session, remote or spark_conn_id, got {given or 'none'}"
            )
        if spark_conn_id is not None and (not isinstance(spark_conn_id, str) or not spark_conn_id.strip()):
            raise HybridConfigError(f"spark_conn_id: expected a connection id, got {spark_conn_id!r}")
        self.session = session
        self.remote = check_connect_url(remote) if remote is not None else None
        self.spark_conn_id = spark_conn_id
        self.submit_options = dict(submit_options or {})
        if submit_options and spark_conn_id is None:
            raise HybridConfigError("submit_options apply to spark_conn_id (spark-submit) only")
        for key in ("application", "application_args", "conn_id"):
            if key in self.submit_options:
                raise HybridConfigError(f"submit_options: {key!r} is set by the runner")
        self._hook: Any = None

    @property
    def mode(self) -> str:
        """``session``, ``connect`` or ``submit``."""
        if self.session is not None:
            return "session"
        return "connect" if self.remote is not None else "submit"

    def run(self, statements: Sequence[str]) -> None:
        """Run ``statements`` in order (the views, then the ``INSERT OVERWRITE DIRECTORY``)."""
        statements = list(statements)
        if not statements or not all(isinstance(s, str) and s.strip() for s in statements):
            raise HybridConfigError("statements: expected a non-empty list of SQL texts")
        if self.session is not None:
            run_statements(self.session, statements)
        elif self.remote is not None:
            self._run_connect(statements)
        else:
            self._run_submit(statements)

    def _run_connect(self, statements: list[str]) -> None:
        try:  # the Connect client's own class: a classic session in this process does not stand in its way
            from pyspark.sql.connect.session import SparkSession as ConnectSession
        except ImportError as error:
            raise HybridConfigError(f"remote={self.remote!r} needs pyspark[connect] installed: {error}") from None
        try:
            spark = ConnectSession.builder.remote(self.remote).create()
        except Exception as error:  # noqa: BLE001 - pyspark raises many kinds; the URL is what to look at
            raise SparkQueryError(f"could not open a Spark Connect session at {self.remote}: {error}") from error
        try:
            run_statements(spark, statements)
        finally:
            spark.stop()

    def _run_submit(self, statements: list[str]) -> None:
        try:
            from airflow.providers.apache.spark.hooks.spark_submit import SparkSubmitHook
        except ImportError:
            raise HybridConfigError(
                "spark_conn_id needs apache-airflow-providers-apache-spark: pip install 'airflow-hybrid[spark]'"
            ) from None
        from airflow.sdk import BaseHook

        try:  # the hook itself falls back to master yarn for a connection it cannot find
            conn = BaseHook.get_connection(self.spark_conn_id)
        except Exception as error:  # noqa: BLE001 - AirflowNotFoundException, or a broken secrets backend
            raise HybridConfigError(f"spark_conn_id {self.spark_conn_id!r}: no such connection ({error})") from error
        if not conn.host:
            raise HybridConfigError(
                f"spark_conn_id {self.spark_conn_id!r}: the connection has no host (the master: yarn, local[2], "
                "spark://host, k8s://...)"
            )
        with tempfile.TemporaryDirectory(prefix="hybrid-spark-") as work:
            path = os.path.join(work, "statements.json")
            with open(path, "w", encoding="utf-8") as stream:
                json.dump(statements, stream)
            options = {"name": "airflow-hybrid-query", **self.submit_options}
            try:
                self._hook = SparkSubmitHook(conn_id=self.spark_conn_id, application_args=[path], **options)
            except Exception as error:  # noqa: BLE001 - a bad connection surfaces as any of several errors
                raise HybridConfigError(f"spark_conn_id {self.spark_conn_id!r}: {error}") from error
            try:
                self._hook.submit(str(DRIVER))
            except Exception as error:  # noqa: BLE001 - AirflowException with spark-submit's exit code
                raise SparkQueryError(f"spark-submit ({self.spark_conn_id}) failed: {error}") from error
            finally:
                self._hook = None

    def on_kill(self) -> None:
        """Stop a running ``spark-submit`` (or cancel the session's jobs)."""
        if self._hook is not None:
            self._hook.on_kill()
        elif self.session is not None:
            self.session.sparkContext.cancelAllJobs()


def run_statements(spark: Any, statements: Sequence[str]) -> None:
    """``spark.sql`` each statement in order; a failure names the statement's position and start."""
    for index, statement in enumerate(statements, 1):
        log.info("Spark SQL %d/%d: %s", index, len(statements), statement[:200])
        try:
            spark.sql(statement)
        except Exception as error:
            raise SparkQueryError(
                f"Spark SQL statement {index}/{len(statements)} failed ({statement[:120]!r}...): {error}"
            ) from error


def run_spark_query(
    sql: str,
    *,
    tables: Mapping[str, str],
    output_path: str,
    runner: SparkSqlRunner,
    mount_of: Callable[[str], HybridMount] | None = None,
    mount_conn_id: str | None = None,
    output_format: str = "parquet",
    s3_scheme: str = "s3a",
) -> QueryResult:
    """Resolve, run with ``runner``, and summarise (where the result went and what each table read)."""
    if mount_of is None:
        from airflow_hybrid.mount import HybridMount

        mount_of = HybridMount.from_conn_id
    statements, resolved, output_uri = spark_query_statements(
        sql, tables=tables, output_path=output_path, mount_of=mount_of, mount_conn_id=mount_conn_id,
        output_format=output_format, s3_scheme=s3_scheme,
    )
    runner.run(statements)
    return QueryResult(
        engine="spark",
        output_path=output_uri,
        output_format=output_format,
        details={"mode": runner.mode, "tables": {t.name: t.uris for t in resolved}},
    )
