"""Test set-up: an isolated AIRFLOW_HOME per session, and the shared fixtures."""

from __future__ import annotations

import json
import os
import tempfile

import pytest

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-hybrid-tests-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(_ROOT, "dags"))
# Two DAG bundles: the project's dags/ and the test-only DAGs that dag.test() runs (it re-parses from a bundle).
os.environ.setdefault(
    "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST",
    json.dumps(
        [
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": os.path.join(_ROOT, "dags")}},
            {"name": "test-dags", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": os.path.join(_ROOT, "tests", "e2e", "dags")}},
        ]
    ),
)

# The shared fixtures, registered once for the whole suite (never imported into test modules, which would
# make a session fixture start once per importing module): Apache Hadoop's HDFS (the `hdfs_servers` marker),
# SeaweedFS, the devstack (WebHDFS + S3 servers, its connections and union mounts), moto's S3 server and the
# read priorities and move directions of the interleaving tests.
pytest_plugins = [
    "tests.hadoop_fixtures",
    "tests.seaweedfs_fixtures",
    "tests.devstack_fixtures",
    "tests.integration.moto_s3",
    "tests.interleaving",
    "tests.spark_fixtures",
    "tests.trino_fixtures",
]


@pytest.fixture(autouse=True)
def _fresh_shared_s3_clients():
    """Each test starts with no shared boto3 client (:mod:`airflow_hybrid.stores.s3.clients`): tests register
    fault and observer hooks on a store's client, which would otherwise stay on it for the tests after."""
    from airflow_hybrid.stores.s3.clients import forget_clients

    forget_clients()
    yield
    forget_clients()
