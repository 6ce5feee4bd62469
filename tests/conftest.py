"""Test set-up: an isolated AIRFLOW_HOME per session, and the shared fixtures."""

from __future__ import annotations

import json
import os
import tempfile

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

# Apache Hadoop's HDFS (session fixture, the `hdfs_servers` marker) and its hooks.
pytest_plugins = ["tests.hadoop_fixtures", "tests.seaweedfs_fixtures"]

try:  # the devstack fixtures (WebHDFS + S3 servers on loopback)
    from tests.devstack_fixtures import *  # noqa: F403
except ImportError as _err:  # pragma: no cover - only while the devstack is being written
    if "devstack_fixtures" not in str(_err):
        raise
