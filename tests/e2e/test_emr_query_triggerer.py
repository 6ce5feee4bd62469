"""A deferrable EMR query step that waits on a real ``airflow triggerer`` and resumes on a real worker.

A real deployment (:class:`tests.airflow_deployment.AirflowDeployment`: PostgreSQL metadata database,
``api-server``, ``scheduler`` with the LocalExecutor, ``dag-processor`` and ``triggerer`` as processes) runs
``hybrid_emr_query_e2e`` (tests/e2e/dags), triggered through the REST API: its ``HybridQueryOperator(engine=
"emr", deferrable=True)`` task adds a step to a cluster and defers on the amazon provider's
``EmrStepSensorTrigger``, which the triggerer process runs (aiobotocore), and the task resumes in a new
worker process (``execute_complete``, boto3's ``DescribeStep``).

The EMR stand-in is moto's server in this test process, which both the workers and the triggerer reach through
the ``emr_e2e_aws`` connection's ``endpoint_url``. **moto never runs a step**: it records the step as RUNNING
and keeps it so; each test decides how the step ends by setting its state in moto's backend once the task is
deferred on the triggerer. moto does not model ``FailureDetails`` either: the failure test adds them to the
step's ``Status`` in moto's answer, as EMR reports them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from tests.airflow_deployment import AirflowDeployment
from tests.integration import moto_s3
from tests.mounts import local_mount_extra

DAG_ID = "hybrid_emr_query_e2e"
TASK_ID = "revenue"
REGION = "us-east-1"
DAGS = Path(__file__).resolve().parent / "dags"


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    """A local-only mount's root: table ``/emr-e2e/sales`` (one Parquet file) in member ``hdfs``."""
    root = tmp_path_factory.mktemp("emr_e2e_lake")
    table = root / "hdfs" / "emr-e2e" / "sales"
    table.mkdir(parents=True)
    (root / "s3").mkdir()
    pq.write_table(pa.table({"v": [1, 2, 3]}), table / "part-00000.parquet")
    return root


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, lake, moto_endpoint):
    """The deployment, once for the module, with the mount and the AWS connection (on moto) in its env."""
    aws = {"conn_type": "aws", "login": "testing", "password": "testing",
           "extra": {"endpoint_url": moto_endpoint, "region_name": REGION}}
    mount = {"conn_type": "hybrid_mount", "extra": local_mount_extra(lake, "s3,hdfs", "s3")}
    env = {"AIRFLOW_CONN_EMR_E2E_AWS": json.dumps(aws), "AIRFLOW_CONN_EMR_E2E_LAKE": json.dumps(mount)}
    with AirflowDeployment(tmp_path_factory.mktemp("airflow_home"), {"test-dags": DAGS}, env) as deployment:
        deployment.wait_for(f"DAG {DAG_ID} parsed by the dag processor", lambda: _dag_parsed(deployment))
        yield deployment


@pytest.fixture
def emr(moto_endpoint):
    """A boto3 EMR client on moto."""
    return moto_s3.client(moto_endpoint, "emr")


@pytest.fixture
def cluster_id(emr) -> str:
    """A fresh cluster per test (so the step a run adds is its only one)."""
    return emr.run_job_flow(
        Name="hybrid-e2e", ReleaseLabel="emr-7.1.0", JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
        Instances={"InstanceCount": 1, "MasterInstanceType": "m5.xlarge", "KeepJobFlowAliveWhenNoSteps": True},
    )["JobFlowId"]


def _dag_parsed(airflow: AirflowDeployment) -> bool | None:
    errors = airflow.api("GET", "/importErrors")["import_errors"]
    ours = [e for e in errors if e["filename"].endswith("hybrid_emr_query_e2e.py")]
    assert not ours, f"the test DAG does not import: {ours[0]['stack_trace']}"
    return True if airflow.client.get(f"/dags/{DAG_ID}").status_code == 200 else None


def _ti_path(run_id: str) -> str:
    return f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}"


def _deferred_run(airflow: AirflowDeployment, cluster_id: str) -> tuple[str, dict]:
    """Trigger a run on ``cluster_id``; its id and task instance once deferred with the trigger on the triggerer."""
    run_id = airflow.api("POST", f"/dags/{DAG_ID}/dagRuns",
                         json={"logical_date": None, "conf": {"cluster_id": cluster_id}})["dag_run_id"]

    def deferred_on_triggerer() -> dict | None:
        ti = airflow.api("GET", _ti_path(run_id))
        if ti["state"] in ("failed", "success", "upstream_failed"):
            log = _task_log(airflow, run_id, ti["try_number"])
            pytest.fail(f"task {TASK_ID} ended {ti['state']} before deferring; its log's end:\n{log[-4000:]}")
        job = ti.get("triggerer_job") or {}
        return ti if ti["state"] == "deferred" and ti.get("trigger") and job.get("id") else None

    return run_id, airflow.wait_for(f"task {TASK_ID} of {run_id} deferred on a triggerer", deferred_on_triggerer)


def _only_step(cluster_id: str):
    """The step the run added, in moto's backend."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    steps = emr_backends[DEFAULT_ACCOUNT_ID][REGION].clusters[cluster_id].steps
    assert len(steps) == 1, f"expected the run's one step on {cluster_id}, found {[s.id for s in steps]}"
    return steps[0]


def _finished_run(airflow: AirflowDeployment, run_id: str) -> dict:
    def finished() -> dict | None:
        run = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}")
        return run if run["state"] in ("success", "failed") else None

    return airflow.wait_for(f"end of run {run_id}", finished)


def _assert_held_by_triggerer(airflow: AirflowDeployment, ti: dict) -> None:
    trigger, job = ti["trigger"], ti["triggerer_job"]
    assert trigger["classpath"] == "airflow.providers.amazon.aws.triggers.emr.EmrStepSensorTrigger"
    assert trigger["triggerer_id"] == job["id"]
    assert job["job_type"] == "TriggererJob"
    with airflow.engine.connect() as conn:  # the triggerer process's own job row, alive
        row = conn.execute(sa.text("SELECT job_type, state FROM job WHERE id = :id"), {"id": job["id"]}).one()
    assert tuple(row) == ("TriggererJob", "running")


def _assert_fired_by_triggerer(airflow: AirflowDeployment, run_id: str, ti: dict) -> None:
    """The triggerer job that held the trigger wrote, in its log for this task, that the trigger fired."""
    logs = airflow.trigger_logs(DAG_ID, run_id, TASK_ID, ti["try_number"])
    job_id, trigger_id = ti["triggerer_job"]["id"], ti["trigger"]["id"]
    assert list(logs) == [job_id], f"trigger logs by triggerer job: {sorted(logs)}, expected [{job_id}]"
    assert f"(ID {trigger_id}) starting" in logs[job_id]
    assert "Trigger fired event" in logs[job_id], logs[job_id][-2000:]


def _task_log(airflow: AirflowDeployment, run_id: str, try_number: int) -> str:
    answer = airflow.api("GET", f"{_ti_path(run_id)}/logs/{try_number}", params={"full_content": "true"},
                         headers={"Accept": "application/json"})
    content = answer["content"]
    return content if isinstance(content, str) else "\n".join(json.dumps(part) for part in content)


def test_completed_step_resumes_the_task_which_succeeds(airflow, cluster_id, lake):
    run_id, ti = _deferred_run(airflow, cluster_id)
    _assert_held_by_triggerer(airflow, ti)
    step = _only_step(cluster_id)
    assert step.state == "RUNNING"
    assert step.name == f"{DAG_ID}.{TASK_ID}"

    step.state = "COMPLETED"  # what EMR would report once spark-sql ended well; moto runs nothing

    run = _finished_run(airflow, run_id)
    assert run["state"] == "success", airflow.log_tails()
    _assert_fired_by_triggerer(airflow, run_id, ti)
    summary = airflow.api("GET", f"{_ti_path(run_id)}/xcomEntries/return_value")["value"]
    summary = json.loads(summary) if isinstance(summary, str) else summary
    assert summary["engine"] == "emr"
    assert summary["details"]["cluster_id"] == cluster_id
    assert summary["details"]["step_id"] == step.id
    assert summary["details"]["state"] == "COMPLETED"
    [location] = summary["details"]["tables"]["sales"]  # resolved on the worker, before the step was added
    uri = location["uri"] if isinstance(location, dict) else location  # a Location's dict, or its URI
    assert uri == f"file://{lake}/hdfs/emr-e2e/sales"


def test_failed_step_fails_the_task_with_the_steps_reason(airflow, cluster_id, monkeypatch):
    from moto.emr.models import Step

    status = Step.status

    def status_with_failure_details(self):  # moto keeps no FailureDetails: report them as EMR does
        result = status.fget(self)
        if getattr(self, "failure_details", None):
            result["FailureDetails"] = self.failure_details
        return result

    monkeypatch.setattr(Step, "status", property(status_with_failure_details))
    run_id, ti = _deferred_run(airflow, cluster_id)
    _assert_held_by_triggerer(airflow, ti)
    step = _only_step(cluster_id)

    step.failure_details = {"Reason": "Table or view not found: sales", "Message": "AnalysisException",
                            "LogFile": "s3://logs/j-1/steps/s-1/stderr.gz"}
    step.last_state_change_reason = "Step failed"
    step.state = "FAILED"

    run = _finished_run(airflow, run_id)
    assert run["state"] == "failed"
    _assert_fired_by_triggerer(airflow, run_id, ti)
    ti = airflow.api("GET", _ti_path(run_id))
    assert ti["state"] == "failed"
    expected = (f"EMR step {step.id} ({DAG_ID}.{TASK_ID}) ended FAILED: Table or view not found: sales -- "
                "AnalysisException (log: s3://logs/j-1/steps/s-1/stderr.gz)")
    log = _task_log(airflow, run_id, ti["try_number"])
    assert expected in log, log[-3000:]
