"""``HybridQueryOperator(engine="emr")``: the step it submits and how it ends.

Real servers on loopback: the devstack's WebHDFS and S3 servers hold the table files, and its moto server
also answers the EMR API. EMR cannot run here -- moto records the steps but runs none -- so each test
decides how its step ends by setting the step's state (and ``FailureDetails``, which moto does not model) in
moto's backend. The amazon provider's ``EmrStepSensorTrigger`` needs ``aiobotocore``, which is not installed
here, so the deferred wait is checked up to the trigger the task defers to, and resumed with the event that
trigger emits (``{"status": "success"|"error", "message": ..., "value": None}``); the synchronous wait
(``deferrable=False``) runs the provider's real waiter against moto.
"""

from __future__ import annotations

import datetime
import decimal
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger
from airflow.sdk.exceptions import AirflowException, TaskDeferred

from airflow_hybrid.devstack.stack import DevStack
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.operators.query import HybridQueryOperator
from tests.integration import moto_s3
from tests.integration.emr_support import patch_step_outcomes

pytestmark = pytest.mark.integration

BUCKET = "query-emr"
SQL = "SELECT i_category, sum(ss_ext_sales_price) AS revenue\nFROM store_sales JOIN item ON ss_item_sk = i_item_sk\nGROUP BY i_category;\n"
SCHEMAS = {
    "store_sales": pa.schema(
        [
            ("ss_sold_date_sk", pa.int32()),
            ("ss_item_sk", pa.int64()),
            ("ss_ext_sales_price", pa.decimal128(7, 2)),
        ]
    ),
    "item": pa.schema(
        [("i_item_sk", pa.int64()), ("i_category", pa.string()), ("i_rec_start_date", pa.date32())]
    ),
}


def _parquet(schema, rows) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), sink)
    return sink.getvalue()


@pytest.fixture(scope="module")
def stack():
    """The devstack with connections ``webhdfs_default``, ``aws_default`` (S3 and EMR) and mount ``lake``
    (``hdfs:///tmp`` + ``s3://query-emr/lake``, read priority s3,hdfs)."""
    # moto's state is process-wide: a bucket of this module's own keeps other tests' objects out.
    with DevStack(buckets=(BUCKET,)) as devstack, pytest.MonkeyPatch.context() as mp:
        env = devstack.airflow_env(mount_conn_id="lake", bucket=BUCKET, hdfs_root="/tmp", s3_prefix="lake")
        for key, value in env.items():
            mp.setenv(key, value)
        mount = HybridMount.from_conn_id("lake")
        sale = {"ss_sold_date_sk": 2451000, "ss_item_sk": 1, "ss_ext_sales_price": decimal.Decimal("9.99")}
        item = {"i_item_sk": 1, "i_category": "Books", "i_rec_start_date": datetime.date(1997, 10, 27)}
        # store_sales is half migrated: its two older files on S3, the newer two still on HDFS.
        for index, member in enumerate(["s3", "s3", "hdfs", "hdfs"]):
            data = _parquet(SCHEMAS["store_sales"], [sale])
            mount.members[member].write(f"tpcds/store_sales/part-{index:05d}.parquet", io.BytesIO(data))
        mount.members["s3"].write(
            "tpcds/item/part-00000.parquet", io.BytesIO(_parquet(SCHEMAS["item"], [item]))
        )
        # A table in the middle of a migration: one file copied to S3 but not yet removed from HDFS.
        for member in ("s3", "hdfs"):
            mount.members[member].write(
                "tpcds/moving/part-00000.parquet", io.BytesIO(_parquet(SCHEMAS["item"], [item]))
            )
        mount.members["hdfs"].write(
            "tpcds/moving/part-00001.parquet", io.BytesIO(_parquet(SCHEMAS["item"], [item]))
        )
        yield devstack


@pytest.fixture
def emr(stack):
    return moto_s3.client(stack.s3_endpoint, "emr")


@pytest.fixture
def cluster_id(emr):
    response = emr.run_job_flow(
        Name="hybrid-query",
        ReleaseLabel="emr-7.1.0",
        Applications=[{"Name": "Spark"}, {"Name": "Trino"}],
        Instances={
            "MasterInstanceType": "m5.xlarge",
            "SlaveInstanceType": "m5.xlarge",
            "InstanceCount": 3,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
    )
    return response["JobFlowId"]


@pytest.fixture
def step_outcome(monkeypatch):
    """How the next submitted steps end, applied in moto's backend (moto runs no step)."""
    return patch_step_outcomes(monkeypatch)


def _operator(cluster_id, **kwargs):
    defaults = {
        "task_id": "q",
        "sql": SQL,
        "mount_conn_id": "lake",
        "tables": {"store_sales": "/tpcds/store_sales", "item": "/tpcds/item"},
        "engine": "emr",
        "emr_cluster_id": cluster_id,
        "output_path": "s3://results-bucket/revenue/",
        "aws_conn_id": "aws_default",
    }
    return HybridQueryOperator(**{**defaults, **kwargs})


def _submit(operator):
    """Run ``execute`` up to its deferral; return the trigger and the kwargs it resumes with."""
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"run_id": "manual__2024-01-01"})
    return deferred.value.trigger, deferred.value.kwargs


def _only_step(emr, cluster_id):
    steps = emr.list_steps(ClusterId=cluster_id)["Steps"]
    assert len(steps) == 1
    return steps[0]


#: The devstack's ``hdfs:///tmp`` as an engine on another host opens it: its namenode host, RPC port 8020.
HDFS = "hdfs://127.0.0.1:8020/tmp"
SALES_COLUMNS = "`ss_sold_date_sk`, `ss_item_sk`, `ss_ext_sales_price`"
SPARK_SCRIPT = (
    "CREATE OR REPLACE TEMPORARY VIEW store_sales AS "
    f"SELECT {SALES_COLUMNS} FROM parquet.`s3://query-emr/lake/tpcds/store_sales` UNION ALL "
    f"SELECT {SALES_COLUMNS} FROM parquet.`{HDFS}/tpcds/store_sales`;\n"
    "CREATE OR REPLACE TEMPORARY VIEW item AS SELECT `i_item_sk`, `i_category`, `i_rec_start_date` "
    "FROM parquet.`s3://query-emr/lake/tpcds/item`;\n"
    "INSERT OVERWRITE DIRECTORY 's3://results-bucket/revenue/' USING parquet\n"
    "SELECT i_category, sum(ss_ext_sales_price) AS revenue\n"
    "FROM store_sales JOIN item ON ss_item_sk = i_item_sk\n"
    "GROUP BY i_category;"
)


def test_spark_sql_step_with_resolved_uris_and_deferral(emr, cluster_id, step_outcome):
    operator = _operator(cluster_id)
    trigger, kwargs = _submit(operator)

    step = _only_step(emr, cluster_id)
    assert (
        step["Name"] == "adhoc_airflow.q"
    )  # <dag_id>.<task_id>; an operator outside a DAG gets adhoc_<owner>
    assert step["ActionOnFailure"] == "CONTINUE"
    assert step["Config"]["Jar"] == "command-runner.jar"
    assert step["Config"]["Args"] == ["spark-sql", "-e", SPARK_SCRIPT]

    assert isinstance(trigger, EmrStepSensorTrigger)
    _, trigger_args = trigger.serialize()
    assert trigger_args["job_flow_id"] == cluster_id
    assert trigger_args["step_id"] == step["Id"]
    assert trigger_args["aws_conn_id"] == "aws_default"
    assert (trigger_args["waiter_delay"], trigger_args["waiter_max_attempts"]) == (30, 120)

    summary = operator.execute_complete({}, event={"status": "success", "value": None}, **kwargs)
    assert summary["engine"] == "emr"
    assert summary["output_path"] == "s3://results-bucket/revenue/"
    assert summary["details"] == {
        "cluster_id": cluster_id,
        "step_id": step["Id"],
        "cli": "spark-sql",
        "state": "COMPLETED",
        "tables": {
            "store_sales": ["s3://query-emr/lake/tpcds/store_sales", f"{HDFS}/tpcds/store_sales"],
            "item": ["s3://query-emr/lake/tpcds/item"],
        },
    }


TRINO_SCRIPT = """CREATE SCHEMA IF NOT EXISTS hive.hybrid;
DROP TABLE IF EXISTS hive.hybrid.store_sales__0;
CREATE TABLE hive.hybrid.store_sales__0 (
  ss_sold_date_sk INTEGER,
  ss_item_sk BIGINT,
  ss_ext_sales_price DECIMAL(7,2)
) WITH (external_location = 's3://query-emr/lake/tpcds/store_sales', format = 'PARQUET');
DROP TABLE IF EXISTS hive.hybrid.store_sales__1;
CREATE TABLE hive.hybrid.store_sales__1 (
  ss_sold_date_sk INTEGER,
  ss_item_sk BIGINT,
  ss_ext_sales_price DECIMAL(7,2)
) WITH (external_location = '{hdfs}/tpcds/store_sales', format = 'PARQUET');
CREATE OR REPLACE VIEW hive.hybrid.store_sales AS SELECT * FROM hive.hybrid.store_sales__0 UNION ALL SELECT * FROM hive.hybrid.store_sales__1;
DROP TABLE IF EXISTS hive.hybrid.item__0;
CREATE TABLE hive.hybrid.item__0 (
  i_item_sk BIGINT,
  i_category VARCHAR,
  i_rec_start_date DATE
) WITH (external_location = 's3://query-emr/lake/tpcds/item', format = 'PARQUET');
CREATE OR REPLACE VIEW hive.hybrid.item AS SELECT * FROM hive.hybrid.item__0;
DROP TABLE IF EXISTS hive.hybrid.{result};
CREATE TABLE hive.hybrid.{result} ("i_category", "revenue") WITH (external_location = 's3://query-emr/lake/results/daily/2024-01-01/', format = 'PARQUET') AS
SELECT i_category, sum(ss_ext_sales_price) AS revenue
FROM store_sales JOIN item ON ss_item_sk = i_item_sk
GROUP BY i_category;"""


@pytest.mark.parametrize(("cli", "command"), [("trino", "trino-cli"), ("presto", "presto-cli")])
def test_trino_and_presto_steps_define_typed_external_tables(emr, cluster_id, step_outcome, cli, command):
    from airflow_hybrid.query.trino_script import result_table_name

    # A hybrid:// output resolves to the mount's create member (S3).
    operator = _operator(cluster_id, emr_cli=cli, output_path="hybrid://lake/results/daily/2024-01-01")
    _submit(operator)
    args = _only_step(emr, cluster_id)["Config"]["Args"]
    result = result_table_name("s3://query-emr/lake/results/daily/2024-01-01/")
    assert args == [
        command,
        "--catalog",
        "hive",
        "--schema",
        "hybrid",
        "--execute",
        TRINO_SCRIPT.format(result=result, hdfs=HDFS),
    ]


def test_failed_step_fails_the_task_with_its_failure_details(emr, cluster_id, step_outcome):
    step_outcome["state"] = "FAILED"
    step_outcome["failure_details"] = {
        "Reason": "Query failed",
        "Message": "line 3:10: Column 'i_categry' cannot be resolved",
        "LogFile": "s3://emr-logs/j-1/steps/s-1/stderr.gz",
    }
    operator = _operator(cluster_id)
    _, kwargs = _submit(operator)
    step_id = kwargs["summary"]["details"]["step_id"]
    # The event EmrStepSensorTrigger emits when its waiter reaches a failure state.
    event = {
        "status": "error",
        "message": f"Error while waiting for step {step_id} to complete",
        "value": None,
    }
    with pytest.raises(AirflowException) as err:
        operator.execute_complete({}, event=event, **kwargs)
    assert str(err.value) == (
        f"EMR step {step_id} (adhoc_airflow.q) ended FAILED: Query failed -- "
        "line 3:10: Column 'i_categry' cannot be resolved (log: s3://emr-logs/j-1/steps/s-1/stderr.gz)"
    )


def test_cancelled_step_fails_the_task(emr, cluster_id, step_outcome):
    step_outcome["state"] = "CANCELLED"
    step_outcome["reason"] = "Cancelled by user"
    operator = _operator(cluster_id)
    _, kwargs = _submit(operator)
    step_id = kwargs["summary"]["details"]["step_id"]
    with pytest.raises(
        AirflowException, match=rf"EMR step {step_id} \(.*\) ended CANCELLED: Cancelled by user$"
    ):
        operator.execute_complete(
            {}, event={"status": "error", "message": "terminal failure", "value": None}, **kwargs
        )


def test_step_still_running_when_the_wait_gives_up(emr, cluster_id, step_outcome):
    step_outcome["state"] = "RUNNING"
    operator = _operator(cluster_id)
    _, kwargs = _submit(operator)
    event = {"status": "error", "message": "Waiter step_wait_for_terminal failed: Max attempts exceeded"}
    with pytest.raises(
        AirflowException, match=r"is still RUNNING after waiting: Waiter .* Max attempts exceeded"
    ):
        operator.execute_complete({}, event=event, **kwargs)


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "CANCELLED"])
def test_synchronous_wait_uses_the_provider_waiter(emr, cluster_id, step_outcome, state):
    step_outcome["state"] = state
    step_outcome["failure_details"] = {"Reason": "Spark job aborted"} if state == "FAILED" else None
    operator = _operator(cluster_id, deferrable=False, waiter_delay=1, waiter_max_attempts=2)
    if state == "COMPLETED":
        summary = operator.execute({"run_id": "r"})
        assert summary["details"]["state"] == "COMPLETED"
        return
    reason = ": Spark job aborted" if state == "FAILED" else ""
    with pytest.raises(AirflowException, match=rf"\(adhoc_airflow.q\) ended {state}{reason}$"):
        operator.execute({"run_id": "r"})


def test_table_mid_migration_reads_each_file_once(emr, cluster_id, step_outcome):
    """A file copied to S3 and not yet removed from HDFS: read from S3; HDFS's directory by its own file."""
    operator = _operator(cluster_id, tables={"moving": "/tpcds/moving"}, sql="SELECT count(*) AS n FROM moving")
    _, kwargs = _submit(operator)
    script = _only_step(emr, cluster_id)["Config"]["Args"][2]
    columns = "`i_item_sk`, `i_category`, `i_rec_start_date`"
    assert script.startswith(
        f"CREATE OR REPLACE TEMPORARY VIEW moving AS SELECT {columns} FROM parquet.`s3://query-emr/lake/tpcds/moving` "
        f"UNION ALL SELECT {columns} FROM parquet.`{HDFS}/tpcds/moving/part-00001.parquet`;\n"
    )
    assert kwargs["summary"]["details"]["tables"] == {
        "moving": ["s3://query-emr/lake/tpcds/moving", f"{HDFS}/tpcds/moving/part-00001.parquet"]
    }


def test_emr_needs_tables_and_a_cluster(cluster_id):
    with pytest.raises(ValueError, match="engine='emr' needs tables"):
        _operator(cluster_id, tables=None).execute({"run_id": "r"})
    with pytest.raises(ValueError, match="engine='emr' needs emr_cluster_id"):
        _operator(None).execute({"run_id": "r"})
    with pytest.raises(ValueError, match="emr_cli must be one of spark-sql, trino, presto"):
        _operator(cluster_id, emr_cli="hive")


def test_default_output_prefix_is_per_run(emr, cluster_id, step_outcome):
    operator = _operator(cluster_id, output_path=None)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({"run_id": "scheduled__2024-01-02T00:00:00+00:00"})
    output = deferred.value.kwargs["summary"]["output_path"]
    assert output == "s3://query-emr/lake/results/adhoc_airflow/q/scheduled__2024-01-02T00_00_00_00_00/"
