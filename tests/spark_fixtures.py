"""Pytest fixtures for a real local Spark (a plugin of ``tests/conftest.py``; never import it).

``spark``              session-scoped: ONE ``local[2]`` SparkSession (pyspark 4.3, its bundled Hadoop 3.5.0
                       client) on 127.0.0.1 for the whole run, reading and writing ``hdfs://127.0.0.1:<rpc>/``
                       and ``s3a://`` (and ``s3://``, as EMRFS does) on the session's moto server; stopped at
                       the end. S3A's jars (hadoop-aws, the AWS SDK bundle, the analytics accelerator) come
                       from ``jvm/target/classpath.txt`` (``scripts/hadoop_classpath.sh``).
``spark_connect_url``  session-scoped: a Spark Connect server started inside that same session's JVM (no
                       second Spark) on a free loopback port: ``sc://127.0.0.1:<port>``.

Java, pyspark or the jars missing is :func:`tests.services.unavailable` (a failure under ``CI=true``).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.services import unavailable

ROOT = Path(__file__).resolve().parent.parent
CLASSPATH_FILE = ROOT / "jvm" / "target" / "classpath.txt"
#: The jars ``s3a://`` needs beside Spark's own Hadoop client, by the start of their file names.
S3A_JARS = ("hadoop-aws-", "bundle-", "analyticsaccelerator-s3-")
MOTO_KEY = "testing"


def s3a_jars(classpath_file: Path = CLASSPATH_FILE) -> list[str]:
    """The S3A jars' paths in ``classpath_file`` (:func:`unavailable` when the file or a jar is missing)."""
    if not classpath_file.exists():
        unavailable(f"{classpath_file} is missing (scripts/hadoop_classpath.sh writes it)")
    found: dict[str, str] = {}
    for entry in classpath_file.read_text().strip().split(os.pathsep):
        name = Path(entry).name
        for prefix in S3A_JARS:
            if name.startswith(prefix) and name.endswith(".jar") and prefix not in found and Path(entry).exists():
                found[prefix] = entry
    missing = [prefix + "*.jar" for prefix in S3A_JARS if prefix not in found]
    if missing:
        unavailable(f"{classpath_file} lists no {', '.join(missing)} on this machine (run the jvm build)")
    return [found[prefix] for prefix in S3A_JARS]


def s3a_conf(endpoint: str, key: str = MOTO_KEY, secret: str = MOTO_KEY, region: str = "us-east-1") -> dict[str, str]:
    """Hadoop settings (``spark.hadoop.`` prefixed) for ``s3a://`` and ``s3://`` on a plain-HTTP, path-style
    S3 endpoint with static keys."""
    prefix = "spark.hadoop.fs.s3a."
    conf = {
        prefix + "endpoint": endpoint,
        prefix + "endpoint.region": region,
        prefix + "path.style.access": "true",
        prefix + "connection.ssl.enabled": "false" if endpoint.startswith("http://") else "true",
        prefix + "access.key": key,
        prefix + "secret.key": secret,
        prefix + "aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
        "spark.hadoop.fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
    }
    return conf


def local_spark_conf(endpoint: str, connect_port: int) -> dict[str, str]:
    """Everything the session is built with, beside ``local[2]`` (also what ``spark-submit --conf`` takes)."""
    return {
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.memory": "1g",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.jars": ",".join(s3a_jars()),
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(connect_port),
        **s3a_conf(endpoint),
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def spark_conf(moto_endpoint) -> dict[str, str]:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        unavailable("Java is not installed (Spark needs a JDK 17+)")
    try:
        import pyspark  # noqa: F401
    except ImportError:
        unavailable("pyspark is not installed (the test extra has it)")
    return local_spark_conf(moto_endpoint, _free_port())


@pytest.fixture(scope="session")
def spark(spark_conf):
    """The one local SparkSession of the test run."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its INFO lines at exit hit closed capture streams
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("airflow-hybrid-tests")
    for key, value in spark_conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as error:  # noqa: BLE001 - the JVM failing to start surfaces as several kinds
        unavailable(f"a local Spark could not be started: {error}")
    session.sparkContext.setLogLevel("WARN")
    try:
        yield session
    finally:
        session.stop()
        # py4j's garbage-collection thread still logs through the root logger (logging.info) at exit, after
        # pytest closed its capture streams ("--- Logging error ---"): drop those records.
        logging.getLogger().addFilter(lambda record: "py4j" not in record.pathname)


@pytest.fixture(scope="session")
def spark_connect_url(spark, spark_conf):
    """A Spark Connect server in the ``spark`` session's own JVM, on the port ``spark_conf`` chose."""
    service = spark.sparkContext._jvm.org.apache.spark.sql.connect.service.SparkConnectService
    service.start(spark.sparkContext._jsc.sc())
    try:
        yield f"sc://127.0.0.1:{spark_conf['spark.connect.grpc.binding.port']}"
    finally:  # Scala's default arguments (timeout, unit), as py4j sees them
        service.stop(getattr(service, "stop$default$1")(), getattr(service, "stop$default$2")())
