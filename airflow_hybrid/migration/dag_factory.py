"""One migration DAG per entry of the policies file: wait and plan -> migrate each batch -> report.

::

    # dags/hybrid_migration.py
    from airflow_hybrid.migration.dag_factory import migration_dags

    globals().update(migration_dags())  # hybrid_policies.yaml next to it, or the hybrid_policies_file Variable

Each DAG (``hybrid_migrate_<name>``) runs on the entry's schedule, one run at a time:

* ``plan``: :class:`~airflow_hybrid.sensors.migrate.UfsMigrateSensor` waits (deferred, by default) until
  the policy selects ``min_files`` / ``min_bytes``, then writes the plan;
* ``batches``: the plan's batch indexes;
* ``migrate``: :class:`~airflow_hybrid.operators.migrate.UfsMigrateOperator` mapped over them
  (``.expand(batch=...)``), its outlet the Asset ``hybrid://<mount>/<path>``;
* ``report``: totals over the batches and the failures recorded for the policy; fails the run when a
  batch failed, so the DAG run's state says whether everything moved.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from airflow_hybrid.migration.registry import PolicyEntry, load_policies_file
from airflow_hybrid.operators.lineage import hybrid_asset
from airflow_hybrid.operators.migrate import UfsMigrateOperator, plan_batches
from airflow_hybrid.sensors.migrate import PLAN_ID_KEY, UfsMigrateSensor
from airflow_hybrid.values import format_bytes

log = logging.getLogger(__name__)

DEFAULT_START = datetime(2024, 1, 1, tzinfo=timezone.utc)
DEFAULT_ARGS: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(minutes=1)}


@task(trigger_rule="all_done")
def migration_report(plan: dict[str, Any], summaries: Any, *, policy_name: str, mount_conn_id: str) -> dict:
    """Add up the batches' summaries, log them with the recorded failures; fail when a batch did."""
    from airflow_hybrid.hooks.hybrid_mount import HybridMountHook
    from airflow_hybrid.migration.state import MigrationState

    if plan is None:  # no plan: the plan task was skipped (nothing left to migrate; a soft_fail timeout) or failed
        from airflow.sdk import get_current_context

        ti = get_current_context()["ti"]
        if ti.get_ti_count(dag_id=ti.dag_id, task_ids=["plan"], run_ids=[ti.run_id], states=["skipped"]):
            raise AirflowSkipException(f"policy {policy_name}: the plan task was skipped; nothing to report")
        raise AirflowFailException(f"policy {policy_name}: the plan task failed; nothing was migrated")
    # index within len(): iterating Airflow's lazy XCom sequence probes one past the end (a logged 404)
    summaries = summaries or []
    done = [s for s in (summaries[i] for i in range(len(summaries))) if s]
    keys = ("files", "moved", "skipped", "kept", "failed", "bytes", "migrated_bytes")
    totals: dict[str, Any] = {key: sum(s[key] for s in done) for key in keys}
    elapsed = max((s["elapsed_seconds"] for s in done), default=0.0)
    totals.update(plan_id=plan["plan_id"], batches=plan["batches"], batches_done=len(done),
                  throughput_bytes_per_second=round(totals["bytes"] / elapsed, 1) if elapsed else 0.0)
    log.info("Policy %s, plan %s: %d of %d batches done; %d files moved, %d skipped, %d kept, %d failed; "
             "%s written (%s/s over the slowest batch)", policy_name, plan["plan_id"], len(done), plan["batches"],
             totals["moved"], totals["skipped"], totals["kept"], totals["failed"], format_bytes(totals["bytes"]),
             format_bytes(totals["throughput_bytes_per_second"]))
    with HybridMountHook(mount_conn_id).get_mount() as mount:
        for failure in MigrationState.for_mount(mount).failures(policy_name, mount_conn_id):
            log.warning("%s %s: %s", failure["status"], failure["path"], failure["reason"])
    if len(done) < plan["batches"] or totals["failed"]:
        raise AirflowException(f"policy {policy_name}: {plan['batches'] - len(done)} batch(es) failed, "
                               f"{totals['failed']} file(s) failed; see the migrate tasks and "
                               "'airflow hybrid policy status'")
    return totals


def migration_dag(entry: PolicyEntry, *, start_date: datetime = DEFAULT_START,
                  default_args: dict[str, Any] | None = None, **dag_kwargs: Any) -> DAG:
    """The migration DAG of one policies-file entry."""
    emr = entry.emr
    optional: dict[str, Any] = {}
    if entry.batch_max_files:
        optional["batch_max_files"] = entry.batch_max_files
    if entry.batch_max_bytes:
        optional["batch_max_bytes"] = entry.batch_max_bytes
    store = {"plan_store": entry.plan_store, "plan_store_conn_id": entry.plan_store_conn_id}
    with DAG(
        entry.dag_id,
        schedule=entry.schedule,
        start_date=start_date,
        catchup=False,
        max_active_runs=1,  # two runs of one policy would plan the same files
        default_args={**DEFAULT_ARGS, **(default_args or {})},
        tags=["hybrid", "migration", *entry.tags],
        description=entry.description or f"{entry.policy.to_text()} on hybrid://{entry.mount}/{entry.path}",
        doc_md=f"Migration policy `{entry.policy.to_text()}` on `hybrid://{entry.mount}/{entry.path}` "
               f"(policies file entry `{entry.name}`).",
        **dag_kwargs,
    ) as dag:
        sensor_timing: dict[str, Any] = {"poke_interval": entry.poke_interval}
        if entry.timeout is not None:
            sensor_timing["timeout"] = entry.timeout
        plan = UfsMigrateSensor(
            task_id="plan",
            mount_conn_id=entry.mount,
            path=entry.path,
            policy=entry.policy.to_text(),
            min_files=entry.min_files,
            min_bytes=entry.min_bytes,
            deferrable=entry.deferrable,
            mode="poke" if entry.deferrable else "reschedule",
            **sensor_timing,
            **store,
            **optional,
        )
        engine_kwargs: dict[str, Any] = {}
        if entry.engine == "emr":
            engine_kwargs = {
                "emr_job_flow_id": emr["job_flow_id"],
                "emr_aws_conn_id": emr.get("aws_conn_id", "aws_default"),
                "emr_manifest_prefix": emr.get("manifest_prefix"),
                "s3distcp_args": emr.get("s3distcp_args", []),
                "deferrable": entry.deferrable,
                **{k: emr[k] for k in ("waiter_delay", "waiter_max_attempts") if k in emr},
            }
        elif entry.engine == "distcp":
            engine_kwargs = {f"distcp_{key}": value for key, value in entry.distcp.items()}
        migrate = UfsMigrateOperator.partial(
            task_id="migrate",
            mount_conn_id=entry.mount,
            plan_id=plan.output[PLAN_ID_KEY],
            path=entry.path,
            policy_name=entry.name,
            concurrency=entry.concurrency,
            engine=entry.engine,
            outlets=[hybrid_asset(entry.mount, entry.path)],
            **store,
            **engine_kwargs,
        ).expand(batch=plan_batches.override(task_id="batches")(plan.output))
        migration_report.override(task_id="report")(
            plan.output, migrate.output, policy_name=entry.name, mount_conn_id=entry.mount
        )
    return dag


def migration_dags(policies_path: str | os.PathLike | None = None, **kwargs: Any) -> dict[str, DAG]:
    """A DAG per valid entry of the policies file, by DAG id; invalid entries are logged and skipped."""
    entries, errors = load_policies_file(policies_path)
    for error in errors:
        log.warning("Skipping a migration policy: %s", error)
    return {entry.dag_id: migration_dag(entry, **kwargs) for entry in entries}
