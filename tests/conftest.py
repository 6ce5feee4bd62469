"""Test set-up: an isolated AIRFLOW_HOME per session, and the shared fixtures."""

from __future__ import annotations

import os
import tempfile

_AIRFLOW_HOME = tempfile.mkdtemp(prefix="airflow-hybrid-tests-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(os.path.dirname(__file__), "..", "dags"))

try:  # the devstack fixtures (WebHDFS + S3 servers on loopback)
    from tests.devstack_fixtures import *  # noqa: F403
except ImportError as _err:  # pragma: no cover - only while the devstack is being written
    if "devstack_fixtures" not in str(_err):
        raise
