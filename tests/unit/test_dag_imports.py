"""Parsing a shipped DAG file imports none of what only a running task needs (issue 15 goal 7; Airflow's best
practices for top-level code): boto3, the amazon provider's hooks, DuckDB, pyarrow, fsspec, the stores' clients,
the cache's catalog and manager, the union mount.

Each file is exec'd in a fresh interpreter after ``import airflow.sdk``, and what the exec adds is checked. Airflow's Asset-URI normalisation loads
every provider's ``asset-uris`` handlers once per process, and the amazon provider's S3 handler imports boto3 at
its top; that is Airflow's cost, not the DAG file's, so the probe replaces the discovery with an empty one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))

#: Modules (and packages) a DAG file's parse must not import.
TASK_ONLY = (
    "boto3", "botocore", "s3transfer", "duckdb", "pyarrow", "pandas", "fsspec", "hdfs", "hdfs_native",
    "airflow.providers.amazon.aws.hooks", "airflow_hybrid.cache.manager", "airflow_hybrid.cache.catalog",
    "airflow_hybrid.cache.ops", "airflow_hybrid.mount.union", "airflow_hybrid.mount.filesystem",
    "airflow_hybrid.stores.s3.store", "airflow_hybrid.stores.hdfs.store", "airflow_hybrid.query.duckdb_engine",
)

PROBE = """
import json, runpy, sys
import airflow.sdk  # noqa: F401
from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime
ProvidersManagerTaskRuntime._discover_asset_uri_resources = lambda self: None
before = set(sys.modules)
runpy.run_path(sys.argv[1])
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[f.name for f in DAG_FILES])
def test_parsing_a_dag_file_imports_nothing_only_a_task_needs(dag_file, tmp_path):
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        # as a dag-processor's supervisor answers the Variable (no metadata database in this process)
        "AIRFLOW_VAR_HYBRID_POLICIES_FILE": str(ROOT / "dags" / "hybrid_policies.yaml"),
    }
    done = subprocess.run([sys.executable, "-c", PROBE, str(dag_file)], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    added = json.loads(done.stdout.strip().splitlines()[-1])
    heavy = sorted(m for m in added if any(m == t or m.startswith(f"{t}.") for t in TASK_ONLY))
    assert heavy == [], f"{dag_file.name} imports at parse time: {heavy}"
