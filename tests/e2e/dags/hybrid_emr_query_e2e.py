"""Test DAG of tests/e2e/test_emr_query_triggerer.py: one SQL step on EMR, waited for on the triggerer.

The cluster id comes with the run (``conf["cluster_id"]``); the connections ``emr_e2e_lake`` (a mount) and
``emr_e2e_aws`` (AWS, on the test's EMR stand-in) come from the deployment's environment.
"""

from __future__ import annotations

from airflow.sdk import DAG

from airflow_hybrid.operators.query import HybridQueryOperator

with DAG("hybrid_emr_query_e2e", schedule=None, catchup=False, tags=["test"]) as dag:
    HybridQueryOperator(
        task_id="revenue",
        engine="emr",
        deferrable=True,
        waiter_delay=1,
        waiter_max_attempts=600,
        emr_cluster_id="{{ dag_run.conf['cluster_id'] }}",
        aws_conn_id="emr_e2e_aws",
        region_name="us-east-1",
        mount_conn_id="emr_e2e_lake",
        tables={"sales": "/emr-e2e/sales"},
        sql="SELECT count(*) AS n, sum(v) AS total FROM sales",
        retries=0,
    )
