"""Operator that executes a migration plan: copy, verify, re-check the source, remove."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator, task

from airflow_hybrid.aws.emr import EmrSteps, EmrStepWaitMixin
from airflow_hybrid.hooks.hybrid_mount import HybridMountMixin
from airflow_hybrid.migration.claims import DEFAULT_CLAIM_LEASE
from airflow_hybrid.migration.distcp import DEFAULT_COMMAND, DistCp, copy_with_distcp
from airflow_hybrid.migration.execution import MigrationOptions, MigrationRunError, PlanExecution, PlanStore
from airflow_hybrid.migration.planner import (
    DEFAULT_BATCH_MAX_BYTES,
    DEFAULT_BATCH_MAX_FILES,
    resolve_plan_store,
)
from airflow_hybrid.migration.registry import MIGRATION_ENGINES
from airflow_hybrid.migration.s3distcp import S3DistCp, manifest_store
from airflow_hybrid.migration.state import MigrationState
from airflow_hybrid.operators.lineage import hybrid_asset, operator_lineage
from airflow_hybrid.policy.parser import as_policy

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

__all__ = ["UfsMigrateOperator", "hybrid_asset", "plan_batches"]


@task
def plan_batches(plan: dict[str, Any]) -> list[int]:
    """The batch indexes ``[0, ..., batches - 1]`` of a plan summary (the sensor's return value), to map
    migrate tasks over: ``UfsMigrateOperator.partial(...).expand(batch=plan_batches(sensor.output))``."""
    return list(range(int(plan["batches"])))


class UfsMigrateOperator(HybridMountMixin, EmrStepWaitMixin, BaseOperator):
    """
    Execute a migration plan (or plan inline from ``path`` + ``policy``) over a hybrid mount.

    Per file: stream the source into every STORE member (S3 multipart, parallel parts), verify the copy
    end to end (CRC32C computed while streaming against S3's stored checksum), re-check the source is
    the planned one, then remove it from its REMOVE member. A STORE member already holding an identical
    copy is not written again (a re-run after a crash goes straight to the removal); one holding a
    different object is never overwritten (the file fails as a conflict). Orphaned multipart uploads of
    a key are aborted before it is written. A source that changed is kept and reported, never removed.

    Returns (XCom) a summary: ``moved``, ``skipped``, ``kept``, ``failed``, ``bytes`` (written),
    ``migrated_bytes``, ``throughput_bytes_per_second``, ``elapsed_seconds`` and the first failures with reasons.
    Outcomes per file and per run go to the migration state (``airflow hybrid policy status``).

    Map it over a plan's batches::

        UfsMigrateOperator.partial(task_id="migrate", mount_conn_id="lake", plan_id=plan.output["plan_id"]
                                   ).expand(batch=plan_batches(plan.output))

    :param mount_conn_id: the ``hybrid_mount`` connection.
    :param plan_id: the plan to execute (e.g. the sensor's XCom ``plan_id``).
    :param path: logical path: planned inline with ``policy`` when no ``plan_id`` is given; with a
        ``plan_id`` it only names the outlet Asset ``hybrid://<mount>/<path>`` declared by default.
    :param policy: the policy text, to plan inline (without ``plan_id``).
    :param batch: the plan batch to run (0-based); ``None`` runs every batch.
    :param concurrency: files migrated in parallel.
    :param engine: ``local`` (this worker copies), ``emr`` (an S3DistCp step on an EMR cluster copies) or
        ``distcp`` (Apache Hadoop DistCp copies, run by a Hadoop client: see :mod:`airflow_hybrid.migration.distcp`);
        with ``emr`` and ``distcp`` this task then verifies the copies and removes the sources.
    :param policy_name: name the outcomes are recorded under (default: the policy's name, else
        ``ufsMigrate-/<path>``).
    :param verify: how fresh copies are verified: ``auto`` (stored CRC32C, else read back), ``reread``...
    :param attempts: attempts per file for transient errors (5xx, dropped connections), with backoff.
    :param file_retry_delay: seconds before a file's second attempt, doubled for each further one (capped at
        30 s). Not Airflow's ``retry_delay``, which is the delay between tries of the task.
    :param fail_on_error: fail the task when a file failed (a conflict, an error); kept files never do,
        nor files another live run holds the claim of (left to it, counted as ``claimed``).
    :param claim_lease: seconds a claim on a file lasts without renewal (renewed every third of it while
        the task runs); a killed try's files become free for another run after at most this long.
    :param progress_interval: seconds between progress lines in the log.
    :param plan_store: where plans live (URI; default ``[hybrid] plan_store`` or ``$AIRFLOW_HOME/hybrid/plans``).
    :param plan_store_conn_id: connection for ``plan_store``.
    :param emr_job_flow_id: the EMR cluster running S3DistCp (``engine="emr"``).
    :param emr_aws_conn_id: AWS connection for EMR.
    :param emr_manifest_prefix: ``s3://`` prefix the cluster reads manifests from (default: the plan store,
        when it is on S3).
    :param emr_manifest_conn_id: connection to write manifests (default: ``emr_aws_conn_id``).
    :param s3distcp_args: extra S3DistCp arguments (e.g. ``["--s3ServerSideEncryption"]``).
    :param deferrable: wait for the S3DistCp step on the triggerer (``EmrStepSensorTrigger``).
    :param waiter_delay: seconds between step status checks.
    :param waiter_max_attempts: status checks before giving up on a step.
    :param distcp_command: the Hadoop client running DistCp (``engine="distcp"``), up to DistCp's arguments
        (default ``["hadoop", "distcp"]``).
    :param distcp_properties: Hadoop job properties for DistCp (override those taken from the connections
        and the members' options).
    :param distcp_env: environment added for the Hadoop client (``HADOOP_USER_NAME``, ``HADOOP_CONF_DIR``...).
    :param distcp_args: more DistCp options (e.g. ``["-m", "50", "-bandwidth", "100"]``).
    :param distcp_s3_scheme: scheme of S3 URIs for the client (``s3a``; ``s3`` for EMRFS).
    :param distcp_s3a_from_connection: hand each S3 STORE member's connection (endpoint, region, keys) to
        S3A as per-bucket properties; off where the cluster holds its own S3 credentials.
    :param distcp_list_prefix: where DistCp's file lists are written (default: a local temporary directory;
        an ``hdfs://`` or ``s3://`` prefix for a client on another host).
    :param distcp_list_conn_id: connection for ``distcp_list_prefix``.
    """

    template_fields: Sequence[str] = (
        "mount_conn_id", "plan_id", "path", "policy", "batch", "plan_store", "emr_job_flow_id",
        "emr_manifest_prefix", "distcp_list_prefix",
    )
    ui_color = "#bde3c7"

    def __init__(
        self,
        *,
        mount_conn_id: str,
        plan_id: str | None = None,
        path: str | None = None,
        policy: str | None = None,
        batch: int | None = None,
        concurrency: int = 8,
        engine: str = "local",
        policy_name: str | None = None,
        verify: bool | str = "auto",
        attempts: int = 3,
        file_retry_delay: float = 1.0,
        fail_on_error: bool = True,
        progress_interval: float = 30.0,
        plan_store: str | None = None,
        plan_store_conn_id: str | None = None,
        batch_max_files: int = DEFAULT_BATCH_MAX_FILES,
        batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
        emr_job_flow_id: str | None = None,
        emr_aws_conn_id: str | None = "aws_default",
        emr_manifest_prefix: str | None = None,
        emr_manifest_conn_id: str | None = None,
        s3distcp_args: Sequence[str] = (),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 30,
        waiter_max_attempts: int = 2880,
        distcp_command: Sequence[str] = DEFAULT_COMMAND,
        distcp_properties: Mapping[str, Any] | None = None,
        distcp_env: Mapping[str, str] | None = None,
        distcp_args: Sequence[str] = (),
        distcp_s3_scheme: str = "s3a",
        distcp_s3a_from_connection: bool = True,
        distcp_list_prefix: str | None = None,
        distcp_list_conn_id: str | None = None,
        claim_lease: float = DEFAULT_CLAIM_LEASE,
        **kwargs: Any,
    ) -> None:
        if plan_id is None and (path is None or policy is None):
            raise ValueError("UfsMigrateOperator needs plan_id, or path and policy to plan inline")
        if engine not in MIGRATION_ENGINES:
            raise ValueError(f"engine={engine!r} must be one of {', '.join(MIGRATION_ENGINES)}")
        if engine == "emr" and not emr_job_flow_id:
            raise ValueError("engine='emr' needs emr_job_flow_id (the EMR cluster that runs S3DistCp)")
        if concurrency < 1 or attempts < 1:
            raise ValueError(f"concurrency={concurrency} and attempts={attempts} must be at least 1")
        if file_retry_delay < 0:
            raise ValueError(f"file_retry_delay={file_retry_delay} must not be negative (seconds)")
        if claim_lease <= 0:
            raise ValueError(f"claim_lease={claim_lease} must be positive (seconds)")
        if policy is not None and "{{" not in policy:
            as_policy(policy)  # a bad policy fails at DAG parse time, with its position
        if "outlets" not in kwargs and path is not None and "{{" not in f"{mount_conn_id}{path}":
            kwargs["outlets"] = [hybrid_asset(mount_conn_id, path)]
        super().__init__(**kwargs)
        self.mount_conn_id = mount_conn_id
        self.plan_id = plan_id
        self.path = path
        self.policy = policy
        self.batch = batch
        self.concurrency = concurrency
        self.engine = engine
        self.policy_name = policy_name
        self.verify = verify
        self.attempts = attempts
        self.file_retry_delay = file_retry_delay
        self.fail_on_error = fail_on_error
        self.progress_interval = progress_interval
        self.plan_store = plan_store
        self.plan_store_conn_id = plan_store_conn_id
        self.batch_max_files = batch_max_files
        self.batch_max_bytes = batch_max_bytes
        self.emr_job_flow_id = emr_job_flow_id
        self.emr_aws_conn_id = emr_aws_conn_id
        self.emr_manifest_prefix = emr_manifest_prefix
        self.emr_manifest_conn_id = emr_manifest_conn_id
        self.s3distcp_args = list(s3distcp_args)
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.distcp_command = list(distcp_command)
        self.distcp_properties = dict(distcp_properties or {})
        self.distcp_env = dict(distcp_env or {})
        self.distcp_args = list(distcp_args)
        self.distcp_s3_scheme = distcp_s3_scheme
        self.distcp_s3a_from_connection = distcp_s3a_from_connection
        self.distcp_list_prefix = distcp_list_prefix
        self.distcp_list_conn_id = distcp_list_conn_id
        self.claim_lease = claim_lease
        self._distcp: DistCp | None = None
        #: Physical URIs read from and written to, for OpenLineage.
        self._lineage: tuple[list[str], list[str]] | None = None

    # -- execution ------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        with self.mount() as mount:
            run = self._execution(mount, context, self.plan_id)
            run_id = run.start()
            with _recorded(mount, run_id):
                if self.engine == "emr":
                    self._copy_with_s3distcp(run, run_id)  # defers, or waits for the steps
                elif self.engine == "distcp":
                    self._copy_with_distcp(run)
                return self._migrate(run, run_id, copy=self.engine == "local")

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, *, step_ids: list[str], index: int,
        run_id: int, plan_id: str,
    ) -> dict[str, Any]:
        """Resume after step ``step_ids[index]`` finished: check every step, then verify and remove."""
        with self.mount() as mount, _recorded(mount, run_id):
            run = self._execution(mount, context, plan_id)
            waited = (event or {}).get("message", event)
            s3distcp = self._s3distcp()
            position = s3distcp.next_running(step_ids, index, str(waited))
            if position is not None:
                self._wait_for_steps(s3distcp, step_ids, position, run_id, plan_id)
            return self._migrate(run, run_id, copy=False)

    def _execution(self, mount: Any, context: Context, plan_id: str | None) -> PlanExecution:
        plans = PlanStore(self.plan_store, self.plan_store_conn_id, self.batch_max_files, self.batch_max_bytes)
        options = MigrationOptions(concurrency=self.concurrency, verify=self.verify, attempts=self.attempts,
                                   retry_delay=self.file_retry_delay, claim_lease=self.claim_lease,
                                   progress_interval=self.progress_interval)
        with _task_errors():
            run = PlanExecution.load(mount, plan_id, path=self.path, policy=self.policy, plans=plans, batch=self.batch,
                                     engine=self.engine, policy_name=self.policy_name, options=options,
                                     owner_label=_try_label(context), logger=self.log, **_dag_run(context))
        self._lineage = run.lineage()
        return run

    def _migrate(self, run: PlanExecution, run_id: int, *, copy: bool) -> dict[str, Any]:
        """The per-file migration (``copy=False``: an engine made the copies), as the XCom summary."""
        summary = run.migrate(run_id, copy=copy, fail_on_error=self.fail_on_error)
        return {"plan_id": run.plan.plan_id, "batch": self.batch, "engine": self.engine, **summary.to_dict()}

    # -- EMR S3DistCp ---------------------------------------------------------------------------------
    def _s3distcp(self) -> S3DistCp:
        manifests = manifest_store(self.emr_manifest_prefix, self.emr_manifest_conn_id or self.emr_aws_conn_id,
                                   self.plan_store, self.plan_store_conn_id)
        return S3DistCp(EmrSteps(self.emr_job_flow_id, self.emr_aws_conn_id), manifests, self.s3distcp_args)

    def _copy_with_s3distcp(self, run: PlanExecution, run_id: int) -> None:
        """Write the manifests and submit the steps, then defer on them (or wait for them)."""
        s3distcp = self._s3distcp()
        jobs, step_ids = s3distcp.submit(run)
        if not jobs:
            self.log.info("Every file already has its copies; no S3DistCp step needed")
            return
        for job, step_id in zip(jobs, step_ids, strict=True):
            self.log.info("S3DistCp step %s on %s: %d files %s -> %s (manifest %s)", step_id, self.emr_job_flow_id,
                          job.files, job.src_root, job.dest_root, job.manifest_uri)
        self._wait_for_steps(s3distcp, step_ids, 0, run_id, run.plan.plan_id)

    def _wait_for_steps(self, s3distcp: S3DistCp, step_ids: list[str], index: int, run_id: int, plan_id: str) -> None:
        """Wait for ``step_ids[index:]`` in turn (deferrable: defer on the first; resumed at ``index``)."""
        for position in range(index, len(step_ids)):
            resume = {"step_ids": step_ids, "index": position, "run_id": run_id, "plan_id": plan_id}
            s3distcp.check(*self.wait_for_step(s3distcp.steps, step_ids[position], kwargs=resume))

    # -- Apache Hadoop DistCp -------------------------------------------------------------------------
    def _copy_with_distcp(self, run: PlanExecution) -> None:
        """Copy the files lacking copies with DistCp, one run per directory; raise if a run fails."""
        self._distcp = DistCp(self.distcp_command, properties=self.distcp_properties, env=self.distcp_env,
                              args=self.distcp_args, s3_scheme=self.distcp_s3_scheme, logger=self.log)
        list_store = (resolve_plan_store(self.distcp_list_prefix, self.distcp_list_conn_id)
                      if self.distcp_list_prefix else None)
        copy_with_distcp(run.mount, run.migrator(copy=False, claims=False), run.entries(), self._distcp,
                         key_prefix=run.key_prefix("distcp"), list_store=list_store, concurrency=run.concurrency,
                         s3a_from_connection=self.distcp_s3a_from_connection, orphans_under=run.plan.path)

    def on_kill(self) -> None:
        """Stop a running DistCp (its sources are kept: nothing is removed without a verified copy)."""
        if self._distcp is not None:
            self._distcp.terminate()

    # -- OpenLineage ----------------------------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs: the REMOVE members' physical path; outputs: the STORE members' (as FileTransferOperator)."""
        return operator_lineage(*(self._lineage or ([], [])))


def _try_label(context: Context) -> str:
    """``dag.task run map try``: names this task try in the claims other runs see."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return "UfsMigrateOperator"
    map_index = getattr(ti, "map_index", -1)
    mapped = f"[{map_index}]" if map_index is not None and map_index >= 0 else ""
    return f"{ti.dag_id}.{ti.task_id}{mapped} {ti.run_id} try {getattr(ti, 'try_number', '?')}"


def _dag_run(context: Context) -> dict[str, str]:
    """``dag_id`` and ``dag_run_id`` of the task's DAG run, recorded with the migration run (none outside a run)."""
    ti = context.get("ti") or context.get("task_instance")
    return {"dag_id": ti.dag_id, "dag_run_id": ti.run_id} if ti is not None else {}


@contextmanager
def _task_errors() -> Iterator[None]:
    """The migration layer's own errors (no such batch, a copy engine failed) fail the task with their message."""
    try:
        yield
    except MigrationRunError as err:
        raise AirflowException(str(err)) from err


@contextmanager
def _recorded(mount: Any, run_id: int) -> Iterator[None]:
    """Record the run as failed by an error (not by a deferral: the run resumes)."""
    from airflow.sdk.exceptions import TaskDeferred

    try:
        with _task_errors():
            yield
    except TaskDeferred:
        raise
    except BaseException as err:
        MigrationState.for_mount(mount).fail_run(run_id, err)
        raise
