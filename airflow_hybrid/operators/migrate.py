"""Operator that executes a migration plan: copy, verify, re-check the source, remove."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow.configuration import conf
from airflow.exceptions import AirflowException
from airflow.sdk import Asset, BaseOperator, task

from airflow_hybrid.aws.emr import STEP_TERMINAL_STATES, describe_step, s3distcp_step, wait_for_step
from airflow_hybrid.hooks.hybrid_mount import HybridMountHook
from airflow_hybrid.migration.distcp import (
    DEFAULT_COMMAND,
    CopyJob,
    DistCp,
    copy_with_distcp,
    write_file_lists,
)
from airflow_hybrid.migration.migrator import MigrationSummary, Migrator
from airflow_hybrid.migration.planner import (
    DEFAULT_BATCH_MAX_BYTES,
    DEFAULT_BATCH_MAX_FILES,
    Plan,
    PlanEntry,
    load_plan,
    plan_migration,
    resolve_plan_store,
)
from airflow_hybrid.migration.registry import MIGRATION_ENGINES
from airflow_hybrid.migration.state import (
    DEFAULT_CLAIM_LEASE,
    FAILURE,
    SUCCESS,
    MigrationClaims,
    MigrationState,
    OutcomeRecorder,
    new_owner,
)
from airflow_hybrid.ops.progress import ProgressTracker
from airflow_hybrid.paths import hybrid_url
from airflow_hybrid.policy.model import Policy, validate_members
from airflow_hybrid.policy.parser import as_policy
from airflow_hybrid.stores.base import Store

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_hybrid.mount import HybridMount


@task
def plan_batches(plan: dict[str, Any]) -> list[int]:
    """The batch indexes ``[0, ..., batches - 1]`` of a plan summary (the sensor's return value), to map
    migrate tasks over: ``UfsMigrateOperator.partial(...).expand(batch=plan_batches(sensor.output))``."""
    return list(range(int(plan["batches"])))


def hybrid_asset(mount_conn_id: str, path: str) -> Asset:
    """The Asset of a logical path, ``hybrid://<mount>/<path>``."""
    return Asset(hybrid_url(mount_conn_id, path))


class UfsMigrateOperator(BaseOperator):
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
    :param retry_delay: first backoff in seconds, doubled per attempt.
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
        retry_delay: float = 1.0,
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
        self.retry_delay = retry_delay
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
        #: Who this try is, in the claims other runs see (set when it executes).
        self._claim_label: str | None = None
        #: Physical URIs read from and written to, for OpenLineage.
        self._lineage: tuple[list[str], list[str]] | None = None

    @cached_property
    def hook(self) -> HybridMountHook:
        return HybridMountHook(self.mount_conn_id)

    # -- plan -----------------------------------------------------------------------------------------
    def _load_plan(self, mount: HybridMount, plan_id: str | None = None) -> Plan:
        plan_id = plan_id or self.plan_id
        if plan_id is None:
            summary = plan_migration(
                mount, self.path or "", self.policy or "", plan_store=self.plan_store,
                plan_store_conn_id=self.plan_store_conn_id, batch_max_files=self.batch_max_files,
                batch_max_bytes=self.batch_max_bytes,
            )
            self.log.info("Planned %s inline: %d files, %d bytes, %d batches", summary.plan_id, summary.files,
                          summary.bytes, summary.batches)
            plan_id = summary.plan_id
        plan = load_plan(self.plan_store, plan_id, plan_store_conn_id=self.plan_store_conn_id)
        if plan.mount not in (None, mount.name):
            raise AirflowException(f"plan {plan_id} was made for mount {plan.mount!r}, not {mount.name!r}")
        validate_members(plan.policy, mount.members, mount_name=mount.name)
        return plan

    def _batches(self, plan: Plan) -> list[int]:
        count = plan.summary.batches
        if self.batch is None:
            return list(range(count))
        batch = int(self.batch)
        if not 0 <= batch < count:
            raise AirflowException(f"plan {plan.plan_id} has {count} batches (0..{count - 1}); no batch {batch}")
        return [batch]

    def _policy_name(self, plan: Plan) -> str:
        return self.policy_name or plan.policy.display_name(plan.path)

    @staticmethod
    def _entries(plan: Plan, batches: list[int]) -> Iterator[PlanEntry]:
        return itertools.chain.from_iterable(plan.iter_batch(index) for index in batches)

    def _migrator(
        self, mount: HybridMount, policy: Policy, *, copy: bool, state: MigrationState | None = None
    ) -> Migrator:
        claims = None
        if state is not None:
            claims = MigrationClaims(state, mount.name, new_owner(self._claim_label), lease=self.claim_lease)
        return Migrator(mount, policy, copy=copy, verify=self.verify, attempts=self.attempts,
                        retry_delay=self.retry_delay, claims=claims)

    def _remember_lineage(self, mount: HybridMount, plan: Plan) -> None:
        policy = plan.policy
        self._lineage = (
            [mount.members[m].uri(plan.path) for m in policy.remove_members],
            [mount.members[m].uri(plan.path) for m in policy.store_members],
        )

    # -- execution ------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        self._claim_label = _try_label(context)
        mount = self.hook.get_mount()
        try:
            plan = self._load_plan(mount)
            batches = self._batches(plan)
            self._remember_lineage(mount, plan)
            state = MigrationState.for_mount(mount)
            run_id = state.start_run(self._policy_name(plan), mount.name, plan.path, plan_id=plan.plan_id,
                                     batch=self.batch, engine=self.engine)
            try:
                if self.engine == "emr":
                    self._submit_s3distcp(mount, plan, batches, run_id)  # defers, or waits for the steps
                elif self.engine == "distcp":
                    self._run_distcp(mount, plan, batches)
                return self._verify_and_remove(mount, plan, batches, state, run_id, copy=self.engine == "local")
            except BaseException as err:
                if not _is_deferral(err):
                    state.finish_run(run_id, None, state=FAILURE, message=f"{type(err).__name__}: {err}")
                raise
        finally:
            mount.close()

    def _verify_and_remove(
        self, mount: HybridMount, plan: Plan, batches: list[int], state: MigrationState, run_id: int, *, copy: bool
    ) -> dict[str, Any]:
        """Run the per-file migration (``copy=False``: copies were made by S3DistCp) and record it."""
        files = sum(plan.batches[i].files for i in batches)
        size = sum(plan.batches[i].bytes for i in batches)
        label = f"Migration {plan.plan_id}" + (f" batch {self.batch}" if self.batch is not None else "")
        self.log.info("%s: %d files, %d bytes from %s to %s (engine %s, concurrency %d)", label, files, size,
                      ",".join(plan.policy.remove_members), ",".join(plan.policy.store_members), self.engine,
                      self.concurrency)
        progress = ProgressTracker(files, size, interval=self.progress_interval, logger=self.log, label=label)
        recorder = OutcomeRecorder(state, self._policy_name(plan), mount.name, plan.plan_id)
        try:
            summary = self._migrator(mount, plan.policy, copy=copy, state=state).run(
                self._entries(plan, batches), concurrency=self.concurrency, on_outcome=recorder,
                progress=progress, prefix=plan.path,
            )
        finally:
            recorder.flush()
        progress.maybe_log(force=True)
        return self._finish(plan, summary, state, run_id)

    def _finish(self, plan: Plan, summary: MigrationSummary, state: MigrationState, run_id: int) -> dict[str, Any]:
        result = {"plan_id": plan.plan_id, "batch": self.batch, "engine": self.engine, **summary.to_dict()}
        failed = summary.failed and self.fail_on_error
        message = "; ".join(f"{f['path']}: {f['reason']}" for f in summary.failures[:5]) or None
        state.finish_run(run_id, summary, state=FAILURE if failed else SUCCESS, message=message)
        for failure in summary.failures:
            self.log.warning("%s %s: %s", failure["status"], failure["path"], failure["reason"])
        if summary.claimed:
            self.log.info("%d files were being migrated by other runs (they hold the claims) and were left to them",
                          summary.claimed)
        if failed:
            raise AirflowException(
                f"{summary.failed} of {summary.files} files failed to migrate (their sources were kept): {message}"
            )
        return result

    # -- EMR S3DistCp ---------------------------------------------------------------------------------
    def _manifest_store(self) -> Store:
        if self.emr_manifest_prefix:
            return resolve_plan_store(self.emr_manifest_prefix, self.emr_manifest_conn_id or self.emr_aws_conn_id)
        store = resolve_plan_store(self.plan_store, self.plan_store_conn_id)
        if store.scheme != "s3":
            raise AirflowException(
                f"engine='emr' needs emr_manifest_prefix (an s3:// prefix the cluster can read): the plan "
                f"store {store.root_uri} is not on S3"
            )
        return store

    def _submit_s3distcp(self, mount: HybridMount, plan: Plan, batches: list[int], run_id: int) -> None:
        """Write the manifests and submit the steps, then defer on them (or wait for them)."""
        for member in plan.policy.store_members:
            if mount.members[member].scheme != "s3":
                raise AirflowException(f"engine='emr' copies with S3DistCp into S3 only; STORE member "
                                       f"{member!r} is {mount.members[member].root_uri}")
        jobs = self._write_manifests(mount, plan, batches)
        if not jobs:
            self.log.info("Every file already has its copies; no S3DistCp step needed")
            return
        steps = [
            s3distcp_step(f"airflow-hybrid {plan.plan_id} batch {self._batch_label()} {job.source}->{job.store}",
                          job.src_root, job.dest_root, job.manifest_uri, extra_args=self.s3distcp_args)
            for job in jobs
        ]
        from airflow.providers.amazon.aws.hooks.emr import EmrHook

        step_ids = EmrHook(aws_conn_id=self.emr_aws_conn_id).add_job_flow_steps(
            job_flow_id=self.emr_job_flow_id, steps=steps
        )
        for job, step_id in zip(jobs, step_ids, strict=True):
            self.log.info("S3DistCp step %s on %s: %d files %s -> %s (manifest %s)", step_id, self.emr_job_flow_id,
                          job.files, job.src_root, job.dest_root, job.manifest_uri)
        if self.deferrable:
            self._defer_on_step(step_ids, 0, run_id, plan.plan_id)
        client = EmrHook(aws_conn_id=self.emr_aws_conn_id).conn
        for step_id in step_ids:
            state, reason = wait_for_step(client, self.emr_job_flow_id, step_id, delay=self.waiter_delay,
                                          max_attempts=self.waiter_max_attempts)
            self._check_step_state(step_id, state, reason)

    def _batch_label(self) -> str:
        return f"{int(self.batch):05d}" if self.batch is not None else "all"

    def _write_manifests(self, mount: HybridMount, plan: Plan, batches: list[int]) -> list[CopyJob]:
        """One manifest per (REMOVE member, STORE member) of the files lacking a copy there."""
        return write_file_lists(
            mount, self._migrator(mount, plan.policy, copy=False), self._entries(plan, batches),
            self._manifest_store(), f"{plan.plan_id}/emr/{self._batch_label()}", concurrency=self.concurrency,
            orphans_under=plan.path,
        )

    def _defer_on_step(self, step_ids: list[str], index: int, run_id: int, plan_id: str) -> None:
        from airflow.providers.amazon.aws.triggers.emr import EmrStepSensorTrigger

        self.defer(
            trigger=EmrStepSensorTrigger(
                job_flow_id=self.emr_job_flow_id, step_id=step_ids[index], waiter_delay=self.waiter_delay,
                waiter_max_attempts=self.waiter_max_attempts, aws_conn_id=self.emr_aws_conn_id,
            ),
            method_name="execute_complete",
            kwargs={"step_ids": step_ids, "index": index, "run_id": run_id, "plan_id": plan_id},
        )

    def _check_step_state(self, step_id: str, state: str, reason: str) -> None:
        if state != "COMPLETED":
            raise AirflowException(f"S3DistCp step {step_id} on cluster {self.emr_job_flow_id} ended {state}: "
                                   f"{reason}; no source was removed")

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, *, step_ids: list[str], index: int,
        run_id: int, plan_id: str,
    ) -> dict[str, Any]:
        """Resume after step ``step_ids[index]`` finished: check every step, then verify and remove."""
        from airflow.providers.amazon.aws.hooks.emr import EmrHook

        self._claim_label = _try_label(context)
        mount = self.hook.get_mount()
        try:
            state_db = MigrationState.for_mount(mount)
            try:
                client = EmrHook(aws_conn_id=self.emr_aws_conn_id).conn
                for position in range(index, len(step_ids)):
                    step_id = step_ids[position]
                    state, reason = describe_step(client, self.emr_job_flow_id, step_id)
                    if state in STEP_TERMINAL_STATES:
                        self._check_step_state(step_id, state, reason)
                    elif position == index:  # the trigger stopped waiting before the step ended
                        message = (event or {}).get("message", event)
                        raise AirflowException(f"S3DistCp step {step_id} on cluster {self.emr_job_flow_id} is "
                                               f"still {state}: {message}; no source was removed")
                    else:
                        self._defer_on_step(step_ids, position, run_id, plan_id)
                plan = self._load_plan(mount, plan_id)
                self._remember_lineage(mount, plan)
                return self._verify_and_remove(mount, plan, self._batches(plan), state_db, run_id, copy=False)
            except BaseException as err:
                if not _is_deferral(err):
                    state_db.finish_run(run_id, None, state=FAILURE, message=f"{type(err).__name__}: {err}")
                raise
        finally:
            mount.close()

    # -- Apache Hadoop DistCp -------------------------------------------------------------------------
    def _run_distcp(self, mount: HybridMount, plan: Plan, batches: list[int]) -> None:
        """Copy the files lacking copies with DistCp, one run per directory; raise if a run fails."""
        self._distcp = DistCp(self.distcp_command, properties=self.distcp_properties, env=self.distcp_env,
                              args=self.distcp_args, s3_scheme=self.distcp_s3_scheme, logger=self.log)
        list_store = (resolve_plan_store(self.distcp_list_prefix, self.distcp_list_conn_id)
                      if self.distcp_list_prefix else None)
        copy_with_distcp(
            mount, self._migrator(mount, plan.policy, copy=False), self._entries(plan, batches), self._distcp,
            key_prefix=f"{plan.plan_id}/distcp/{self._batch_label()}", list_store=list_store,
            concurrency=self.concurrency, s3a_from_connection=self.distcp_s3a_from_connection,
            orphans_under=plan.path,
        )

    def on_kill(self) -> None:
        """Stop a running DistCp (its sources are kept: nothing is removed without a verified copy)."""
        if self._distcp is not None:
            self._distcp.terminate()

    # -- OpenLineage ----------------------------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs: the REMOVE members' physical path; outputs: the STORE members' (as FileTransferOperator)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage

        inputs, outputs = self._lineage or ([], [])
        return OperatorLineage(
            inputs=[Dataset(*openlineage_name(uri)) for uri in inputs],
            outputs=[Dataset(*openlineage_name(uri)) for uri in outputs],
        )


def openlineage_name(uri: str) -> tuple[str, str]:
    """OpenLineage ``(namespace, name)`` of a physical URI, per its naming conventions: ``s3://bucket`` +
    key, ``hdfs://namenode:port`` + absolute path, ``file`` + absolute path."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in ("s3", "s3a", "gs", "abfss", "wasbs"):
        return f"{'s3' if scheme == 's3a' else scheme}://{parsed.netloc}", parsed.path.lstrip("/")
    if scheme == "file" or not scheme:
        return "file", parsed.path or "/"
    return f"{scheme}://{parsed.netloc}" if parsed.netloc else scheme, parsed.path or "/"


def _try_label(context: Context) -> str:
    """``dag.task run map try``: names this task try in the claims other runs see."""
    ti = context.get("ti") or context.get("task_instance")
    if ti is None:
        return "UfsMigrateOperator"
    map_index = getattr(ti, "map_index", -1)
    mapped = f"[{map_index}]" if map_index is not None and map_index >= 0 else ""
    return f"{ti.dag_id}.{ti.task_id}{mapped} {ti.run_id} try {getattr(ti, 'try_number', '?')}"


def _is_deferral(error: BaseException) -> bool:
    from airflow.sdk.exceptions import TaskDeferred

    return isinstance(error, TaskDeferred)
