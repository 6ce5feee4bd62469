"""``UfsMigrateOperator(engine="emr")``: the S3DistCp step it submits, and how each step state ends.

Real servers on loopback: the devstack's WebHDFS and S3 servers (run in this process), whose moto server
also answers the EMR API. EMR cannot run here -- moto records steps but runs none -- so the tests stand in
for the cluster in moto's backend: when a step is added, its state is set as the test decides (with the
``FailureDetails`` moto does not model), and for a COMPLETED step the stand-in does what S3DistCp does: it
reads the ``--srcPrefixesFile`` manifest and copies each listed file from ``--src`` to the same relative
path under ``--dest`` (a plain PutObject, without checksum, as EMRFS writes). The amazon provider's
``EmrStepSensorTrigger`` needs ``aiobotocore``, not installed here, so the deferred wait is checked up to
the trigger the task defers to and resumed with the event that trigger emits.
"""

from __future__ import annotations

import io
import json

import pytest
from airflow.exceptions import AirflowException
from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger
from airflow.sdk.exceptions import TaskDeferred

from airflow_hybrid.devstack.stack import DevStack
from airflow_hybrid.migration.planner import plan_migration
from airflow_hybrid.migration.s3distcp import s3distcp_step
from airflow_hybrid.migration.state import MigrationState
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.operators.migrate import UfsMigrateOperator
from tests.integration import moto_s3
from tests.integration.emr_support import patch_step_outcomes
from tests.integration.migrate_support import POLICY, make_dataset

pytestmark = pytest.mark.integration

MOUNT = "emr_lake"
BUCKET = "hybrid-lake"
MANIFESTS = f"s3://{BUCKET}/manifests"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The devstack in this process (so moto's EMR backend can stand in for the cluster), with the mount
    ``emr_lake``: ``hdfs:///data`` + ``s3://hybrid-lake/lake``, read priority s3,hdfs."""
    home = tmp_path_factory.mktemp("airflow-home")
    with DevStack() as devstack, pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW_HOME", str(home))
        for key, value in devstack.airflow_env(mount_conn_id=MOUNT, hdfs_root="/data", s3_prefix="lake").items():
            mp.setenv(key, value)
        yield devstack


@pytest.fixture
def emr_lake(stack):
    mount = HybridMount.from_conn_id(MOUNT)
    yield mount
    mount.close()


@pytest.fixture
def s3(stack):
    return moto_s3.client(stack.s3_endpoint)


@pytest.fixture
def emr(stack):
    return moto_s3.client(stack.s3_endpoint, "emr")


@pytest.fixture
def cluster_id(emr):
    return emr.run_job_flow(
        Name="hybrid-migrate", ReleaseLabel="emr-7.1.0", Applications=[{"Name": "Hadoop"}],
        Instances={"MasterInstanceType": "m5.xlarge", "SlaveInstanceType": "m5.xlarge", "InstanceCount": 3,
                   "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
    )["JobFlowId"]


@pytest.fixture
def cluster(monkeypatch, s3, emr_lake):
    """Stand-in for the cluster: how added steps end, and S3DistCp's copy for COMPLETED ones."""
    copied: list[str] = []

    def s3distcp(args: list[str]) -> None:
        assert args[0] == "s3-dist-cp"
        options = dict(zip(args[1:7:2], args[2:7:2], strict=True))  # --src, --dest, --srcPrefixesFile
        bucket, _, key = options["--srcPrefixesFile"][len("s3://"):].partition("/")
        manifest = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
        dest_bucket, _, dest_prefix = options["--dest"][len("s3://"):].partition("/")
        for uri in manifest:
            assert uri.startswith(options["--src"] + "/"), uri
            relative = uri[len(options["--src"]) + 1:]
            with emr_lake.members["hdfs"].open_read(relative) as stream:
                s3.put_object(Bucket=dest_bucket, Key=f"{dest_prefix}/{relative}", Body=stream.read())
            copied.append(relative)

    outcome = patch_step_outcomes(monkeypatch, on_completed=s3distcp)
    outcome["copied"] = copied
    return outcome


def _operator(cluster_id, **kwargs) -> UfsMigrateOperator:
    defaults = {"task_id": "migrate", "mount_conn_id": MOUNT, "engine": "emr", "emr_job_flow_id": cluster_id,
                "emr_aws_conn_id": "aws_default", "emr_manifest_prefix": MANIFESTS, "deferrable": True,
                "waiter_delay": 15, "waiter_max_attempts": 40, "file_retry_delay": 0.05}
    return UfsMigrateOperator(**{**defaults, **kwargs})


def _submit(operator):
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    return deferred.value.trigger, deferred.value.kwargs


def test_s3distcp_step_with_a_manifest_of_the_missing_copies_then_verify_and_remove(
    emr_lake, s3, emr, cluster_id, cluster
):
    dataset = make_dataset(emr_lake, seed=41, small=5, medium=1, new=1)
    paths = sorted(dataset.old)
    present, conflict = paths[0], paths[1]
    dataset.s3.write(present, io.BytesIO(dataset.old[present]))  # an earlier run copied it already
    dataset.s3.write(conflict, io.BytesIO(b"not the same object"))
    plan = plan_migration(emr_lake, dataset.root, POLICY)

    operator = _operator(cluster_id, plan_id=plan.plan_id, batch=0, s3distcp_args=["--s3ServerSideEncryption"],
                         policy_name="bulk", fail_on_error=False)
    trigger, resume = _submit(operator)

    [step] = emr.list_steps(ClusterId=cluster_id)["Steps"]
    manifest_key = f"manifests/{plan.plan_id}/emr/00000-hdfs-s3.txt"
    assert step["Name"] == f"airflow-hybrid {plan.plan_id} batch 00000 hdfs->s3"
    assert step["ActionOnFailure"] == "CONTINUE"
    assert step["Config"]["Jar"] == "command-runner.jar"
    assert step["Config"]["Args"] == [
        "s3-dist-cp", "--src", "hdfs:///data", "--dest", f"s3://{BUCKET}/lake",
        "--srcPrefixesFile", f"s3://{BUCKET}/{manifest_key}", "--s3ServerSideEncryption",
    ]
    expected_copies = sorted(set(paths) - {present, conflict})
    manifest = s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read().decode()
    assert manifest == "".join(f"hdfs:///data/{path}\n" for path in expected_copies)

    assert isinstance(trigger, EmrStepSensorTrigger)
    _, trigger_args = trigger.serialize()
    assert (trigger_args["job_flow_id"], trigger_args["step_id"]) == (cluster_id, step["Id"])
    assert (trigger_args["waiter_delay"], trigger_args["waiter_max_attempts"]) == (15, 40)
    assert trigger_args["aws_conn_id"] == "aws_default"
    assert sorted(resume) == ["index", "plan_id", "run_id", "step_ids"]
    assert dataset.hdfs_paths() == sorted({**dataset.old, **dataset.new})  # nothing removed yet

    summary = operator.execute_complete({}, event={"status": "success", "value": None}, **resume)

    assert sorted(cluster["copied"]) == expected_copies
    assert (summary["moved"], summary["failed"], summary["engine"]) == (len(paths) - 1, 1, "emr")
    assert summary["failures"][0]["path"] == conflict
    assert "not overwritten" in summary["failures"][0]["reason"]
    for path in set(paths) - {conflict}:
        assert dataset.read("s3", path) == dataset.old[path] and not dataset.hdfs.exists(path)
    assert dataset.read("hdfs", conflict) == dataset.old[conflict]  # the conflict keeps its source
    assert dataset.read("s3", conflict) == b"not the same object"
    assert MigrationState.for_mount(emr_lake).last_run("bulk", MOUNT)["engine"] == "emr"


@pytest.mark.parametrize("state", ["FAILED", "CANCELLED", "INTERRUPTED"])
def test_a_step_that_did_not_complete_fails_the_task_and_removes_nothing(emr_lake, emr, cluster_id, cluster, state):
    dataset = make_dataset(emr_lake, seed=42, small=3, new=0)
    cluster.update(state=state, reason="Step was stopped",
                   failure_details={"Reason": "Unknown Error.", "Message": "Container killed on request",
                                    "LogFile": "s3://logs/j-1/steps/s-1/stderr.gz"})
    operator = _operator(cluster_id, path=dataset.root, policy=POLICY, policy_name="failing")
    _, resume = _submit(operator)
    with pytest.raises(AirflowException) as failure:
        operator.execute_complete({}, event={"status": "error", "message": "Error while waiting for step"}, **resume)
    step_id = resume["step_ids"][0]
    assert str(failure.value) == (
        f"S3DistCp step {step_id} on cluster {cluster_id} ended {state}: Unknown Error.; Container killed on "
        "request; s3://logs/j-1/steps/s-1/stderr.gz; Step was stopped; no source was removed"
    )
    assert dataset.hdfs_paths() == sorted(dataset.old) and dataset.s3_paths() == []
    run = MigrationState.for_mount(emr_lake).last_run("failing", MOUNT)
    assert run["state"] == "failed" and state in run["message"]


def test_a_step_still_running_when_the_trigger_gives_up_fails_the_task(emr_lake, cluster_id, cluster):
    dataset = make_dataset(emr_lake, seed=43, small=2, new=0)
    cluster.update(state="RUNNING")
    operator = _operator(cluster_id, path=dataset.root, policy=POLICY)
    _, resume = _submit(operator)
    with pytest.raises(AirflowException, match="is still RUNNING: Waiter error: max attempts reached; no source"):
        operator.execute_complete({}, event={"status": "error", "message": "Waiter error: max attempts reached"},
                                  **resume)
    assert dataset.hdfs_paths() == sorted(dataset.old)


def test_synchronous_wait_then_verify_and_remove(emr_lake, emr, cluster_id, cluster):
    dataset = make_dataset(emr_lake, seed=44, small=4, new=1)
    summary = _operator(cluster_id, path=dataset.root, policy=POLICY, deferrable=False, waiter_delay=0).execute({})
    assert (summary["moved"], summary["failed"]) == (4, 0)
    assert summary["bytes"] == sum(len(d) for d in dataset.old.values())  # copied by the step, verified here
    dataset.assert_migrated()
    assert len(emr.list_steps(ClusterId=cluster_id)["Steps"]) == 1


def test_no_step_when_every_copy_is_already_there(emr_lake, emr, cluster_id, cluster):
    dataset = make_dataset(emr_lake, seed=45, small=3, new=0)
    for path, data in dataset.old.items():
        dataset.s3.write(path, io.BytesIO(data))
    summary = _operator(cluster_id, path=dataset.root, policy=POLICY).execute({})  # does not defer
    assert emr.list_steps(ClusterId=cluster_id)["Steps"] == []
    assert summary["moved"] == 3
    dataset.assert_migrated()


def test_manifests_need_an_s3_location(emr_lake, cluster_id, cluster):
    dataset = make_dataset(emr_lake, seed=46, small=1, new=0)
    operator = _operator(cluster_id, path=dataset.root, policy=POLICY, emr_manifest_prefix=None)
    with pytest.raises(AirflowException, match="needs emr_manifest_prefix .* the plan store file:///.* is not on S3"):
        operator.execute({})
    assert dataset.hdfs_paths() == sorted(dataset.old)


def test_step_definition():
    assert json.loads(json.dumps(s3distcp_step("n", "hdfs:///a", "s3://b/c", "s3://b/m.txt"))) == {
        "Name": "n", "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": [
            "s3-dist-cp", "--src", "hdfs:///a", "--dest", "s3://b/c", "--srcPrefixesFile", "s3://b/m.txt"]},
    }
