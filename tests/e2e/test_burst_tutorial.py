"""The tutorial's bursting flow, end to end: ``hybrid_cache_warming`` warms the TPC-DS tables into the cache's S3
tier near compute, then ``hybrid_query`` runs its queries as EMR steps, which read the warm tier instead of the
on-prem HDFS; the exact script of a step, run by a real Spark, answers as DuckDB does over the plain files.

Real: Airflow's DAG runs (``dag.test()``, the deferred step waits run in line), moto's S3 server as the tier's
bucket, the cache catalog, pyspark ``local[2]`` (``s3://`` through S3A, as EMRFS would). Mocked: EMR itself --
moto records the steps and runs none; the test sets each step COMPLETED (``emr_support``) and runs one step's
script on the local Spark instead. The mount's members are local directories standing in for HDFS and S3.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import duckdb
import pytest

from airflow_hybrid.mount import HybridMount
from airflow_hybrid.query import tpcds
from tests.e2e.dag_files import project_dag
from tests.integration import moto_s3
from tests.integration.emr_support import patch_step_outcomes

MOUNT = "onprem_union"



@pytest.fixture
def burst_lake(airflow_db, tmp_path, moto_endpoint, s3_client, monkeypatch):
    """Mount ``onprem_union`` (local hdfs + s3 members) whose cache has one tier, ``S3``, on a moto bucket."""
    bucket = f"cloud-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    hdfs, s3 = tmp_path / "hdfs", tmp_path / "s3"
    hdfs.mkdir()
    s3.mkdir()
    extra = {
        "members": {"hdfs": {"uri": f"file://{hdfs}"}, "s3": {"uri": f"file://{s3}"}},
        "priority.read": "s3,hdfs",
        "collection.create": "s3",
        "cache": {
            "tiers": [{"alias": "S3", "uri": f"s3://{bucket}/cache", "conn_id": moto_s3.AWS_CONN_ID, "quota": "1GB"}],
            "catalog_url": f"sqlite:///{tmp_path}/catalog.db",
        },
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{MOUNT.upper()}", json.dumps({"conn_type": "hybrid_mount", "extra": extra}))
    # The query DAG's EMR client (aws_default) talks to moto, which answers the EMR API.
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"endpoint_url": moto_endpoint, "region_name": "us-east-1"},
    }))
    run = project_dag("hybrid_tpcds_prepare.py", "hybrid_tpcds_prepare").test(
        run_conf={"scale_factor": 0.05, "files_per_table": 3, "mtime_spread_days": 30}
    )
    assert run.state == "success"
    return hdfs, s3, bucket


def _reference(hdfs: Path, sql: str) -> list[tuple]:
    con = duckdb.connect()
    for table in tpcds.TPCDS_TABLES:
        con.execute(f"CREATE VIEW {table} AS SELECT * FROM read_parquet('{hdfs}/{table}/*.parquet')")
    return sorted(con.execute(sql).fetchall())


def test_warm_then_query_on_emr_reads_the_s3_tier(burst_lake, moto_endpoint, monkeypatch, spark):
    hdfs, s3, bucket = burst_lake
    warming = project_dag("hybrid_cache_warming.py", "hybrid_cache_warming").test(run_conf={"tier": "S3"})
    assert warming.state == "success"

    emr = moto_s3.client(moto_endpoint, "emr")
    cluster_id = emr.run_job_flow(
        Name="burst", ReleaseLabel="emr-7.1.0", Applications=[{"Name": "Spark"}],
        Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1, "KeepJobFlowAliveWhenNoSteps": True},
        JobFlowRole="EMR_EC2_DefaultRole", ServiceRole="EMR_DefaultRole",
    )["JobFlowId"]
    patch_step_outcomes(monkeypatch)  # moto runs no step: each one ends COMPLETED
    query_dag = project_dag("hybrid_query.py", "hybrid_query")
    for task in query_dag.tasks:
        # dag.test() resumes a deferred task with the trigger's event alone, dropping the kwargs it deferred
        # with (a real triggerer keeps them: tests/e2e/test_emr_query_triggerer.py), so here the provider's
        # waiter waits in the task instead.
        task.deferrable, task.waiter_delay = False, 1
    query = query_dag.test(run_conf={"engine": "emr", "emr_cluster_id": cluster_id})
    assert query.state == "success"

    steps = {s["Name"]: s["Config"]["Args"] for s in emr.list_steps(ClusterId=cluster_id)["Steps"]}
    assert sorted(steps) == [f"hybrid_query.tpcds_q{n}" for n in (3, 42, 52, 55)]
    tier = f"s3://{bucket}/cache/{MOUNT}"
    for args in steps.values():
        assert args[:2] == ["spark-sql", "-e"]
        script = args[2]
        for table in tpcds.TPCDS_TABLES:  # every table read warm, near compute; nothing from on-prem HDFS
            assert f"parquet.`{tier}/{table}`" in script
        assert str(hdfs) not in script
    with HybridMount.from_conn_id(MOUNT) as mount:
        assert mount.cache.leases() == []  # the steps ended, and so did their leases

    # What EMR would have done with the q3 step: its exact script, on a real Spark.
    statements = steps["hybrid_query.tpcds_q3"][2].rstrip(";").split(";\n")
    for statement in statements:
        spark.sql(statement)
    output = statements[-1].split("'")[1]  # INSERT OVERWRITE DIRECTORY '<output>' ...
    rows = sorted(tuple(row) for row in spark.read.parquet(output).collect())
    assert rows == _reference(hdfs, tpcds.tpcds_query(3))
    assert rows
