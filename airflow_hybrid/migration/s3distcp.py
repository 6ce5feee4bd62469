"""The bulk copy of a plan batch by S3DistCp on an existing EMR cluster (``engine="emr"``).

For a batch, the files that still need a copy are written, one source URI a line, to a manifest on S3
(S3DistCp's ``--srcPrefixesFile``) by the file-list writer it shares with DistCp
(:func:`airflow_hybrid.migration.manifest.write_file_lists`); one step per (REMOVE member, STORE member) pair
is submitted to the cluster (:class:`airflow_hybrid.aws.emr.EmrSteps`)::

    command-runner.jar s3-dist-cp --src hdfs://nn:8020/warehouse --dest s3://bucket/warehouse
                                  --srcPrefixesFile s3://bucket/manifests/<plan>/emr/00003-hdfs-s3.txt

S3DistCp keeps each file's path relative to ``--src`` under ``--dest``, so the copy lands at the same
logical path of the mount. When every step is COMPLETED the same verification and removal as the local
path runs (:class:`~airflow_hybrid.migration.migrator.Migrator` with ``copy=False``); a step that FAILED,
was CANCELLED or INTERRUPTED raises :class:`S3DistCpError` with its reason, and nothing is removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from airflow_hybrid.migration.execution import MigrationRunError
from airflow_hybrid.migration.manifest import CopyJob, write_file_lists
from airflow_hybrid.migration.planner import resolve_plan_store

if TYPE_CHECKING:
    from airflow_hybrid.aws.emr import EmrSteps, StepStatus
    from airflow_hybrid.migration.execution import PlanExecution
    from airflow_hybrid.stores.base import Store


class S3DistCpError(MigrationRunError):
    """S3DistCp cannot run here, or a step did not complete; no source was removed."""


def s3distcp_step(
    name: str,
    src: str,
    dest: str,
    manifest_uri: str,
    *,
    extra_args: Iterable[str] = (),
    action_on_failure: str = "CONTINUE",
) -> dict[str, Any]:
    """The ``AddJobFlowSteps`` step that runs S3DistCp over the files listed in ``manifest_uri``."""
    return {
        "Name": name,
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": ["s3-dist-cp", "--src", src, "--dest", dest, "--srcPrefixesFile", manifest_uri, *extra_args],
        },
    }


def manifest_store(
    prefix: str | None, conn_id: str | None, plan_store: str | None, plan_store_conn_id: str | None
) -> Store:
    """Where manifests go: ``prefix``, else the plan store when it is on S3 (the cluster must read them)."""
    if prefix:
        return resolve_plan_store(prefix, conn_id)
    store = resolve_plan_store(plan_store, plan_store_conn_id)
    if store.scheme != "s3":
        raise S3DistCpError(
            f"engine='emr' needs emr_manifest_prefix (an s3:// prefix the cluster can read): the plan "
            f"store {store.root_uri} is not on S3"
        )
    return store


class S3DistCp:
    """Copies plan batches with S3DistCp steps on one cluster, and tells how the steps ended.

    :param steps: the cluster's steps.
    :param manifests: where the manifests are written (see :func:`manifest_store`).
    :param extra_args: more S3DistCp arguments (e.g. ``["--s3ServerSideEncryption"]``).
    """

    def __init__(self, steps: EmrSteps, manifests: Store, extra_args: Sequence[str] = ()) -> None:
        self.steps = steps
        self.manifests = manifests
        self.extra_args = list(extra_args)

    def submit(self, run: PlanExecution) -> tuple[list[CopyJob], list[str]]:
        """Write the manifests of the files lacking copies and submit one step each; return the jobs and the
        step ids (none when every file already has its copies)."""
        for member in run.plan.policy.store_members:
            store = run.mount.members[member]
            if store.scheme != "s3":
                raise S3DistCpError(f"engine='emr' copies with S3DistCp into S3 only; STORE member {member!r} "
                                    f"is {store.root_uri}")
        jobs = write_file_lists(run.mount, run.migrator(copy=False, claims=False), run.entries(), self.manifests,
                                run.key_prefix("emr"), concurrency=run.concurrency, orphans_under=run.plan.path)
        if not jobs:
            return [], []
        steps = [
            s3distcp_step(f"airflow-hybrid {run.plan.plan_id} batch {run.batch_label} {job.source}->{job.store}",
                          job.src_root, job.dest_root, job.manifest_uri, extra_args=self.extra_args)
            for job in jobs
        ]
        return jobs, self.steps.submit(steps)

    def check(self, status: StepStatus, waited: str | None = None) -> None:
        """Raise :class:`S3DistCpError` unless the step COMPLETED (``waited``: why the wait ended early)."""
        where = f"S3DistCp step {status.step_id} on cluster {self.steps.job_flow_id}"
        if not status.terminal:
            raise S3DistCpError(f"{where} is still {status.state}: {waited}; no source was removed")
        if not status.completed:
            raise S3DistCpError(f"{where} ended {status.state}: {status.details()}; no source was removed")

    def next_running(self, step_ids: Sequence[str], index: int, waited: str | None) -> int | None:
        """After the wait on ``step_ids[index]`` ended: check it and the steps after it; return the position of
        the first of those still running (to wait on next), or ``None`` when all COMPLETED."""
        for position in range(index, len(step_ids)):
            status = self.steps.describe(step_ids[position])
            if status.terminal or position == index:
                self.check(status, waited)
            else:
                return position
        return None
