"""Executing a migration plan's batches over a mount: what ``UfsMigrateOperator`` does, without Airflow.

:meth:`PlanExecution.load` reads the plan (or plans inline) and checks it fits the mount; :meth:`~PlanExecution.start`
records the run in the migration state; the copy engines (:mod:`~airflow_hybrid.migration.distcp`,
:mod:`~airflow_hybrid.migration.s3distcp`) copy what lacks copies; :meth:`~PlanExecution.migrate` then runs
the per-file migration (copy with ``engine="local"``, else verify only), records every outcome and finishes
the run.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_hybrid.exceptions import HybridError
from airflow_hybrid.migration.claims import DEFAULT_CLAIM_LEASE, MigrationClaims, new_owner
from airflow_hybrid.migration.migrator import MigrationSummary, Migrator
from airflow_hybrid.migration.planner import (
    DEFAULT_BATCH_MAX_BYTES,
    DEFAULT_BATCH_MAX_FILES,
    Plan,
    PlanEntry,
    load_plan,
    plan_migration,
)
from airflow_hybrid.migration.state import FAILURE, SUCCESS, MigrationState, OutcomeRecorder
from airflow_hybrid.ops.progress import ProgressTracker
from airflow_hybrid.policy.model import validate_members

if TYPE_CHECKING:
    from airflow_hybrid.mount import HybridMount

log = logging.getLogger(__name__)

class MigrationRunError(HybridError):
    """A migration run cannot go on: no such batch, a plan made for another mount, a copy engine failed."""


@dataclass
class PlanStore:
    """Where plans live and how inline plans are cut into batches."""

    uri: str | None = None
    conn_id: str | None = None
    batch_max_files: int = DEFAULT_BATCH_MAX_FILES
    batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES


@dataclass
class MigrationOptions:
    """How files are migrated (see ``UfsMigrateOperator``'s parameters of the same names)."""

    concurrency: int = 8
    verify: bool | str = "auto"
    attempts: int = 3
    retry_delay: float = 1.0
    claim_lease: float = DEFAULT_CLAIM_LEASE
    progress_interval: float = 30.0


@dataclass
class PlanExecution:
    """The batches ``batches`` of ``plan`` executed over ``mount`` by ``engine``, recorded under ``policy_name``."""

    mount: HybridMount
    plan: Plan
    batch: int | None
    engine: str
    policy_name: str
    options: MigrationOptions = field(default_factory=MigrationOptions)
    #: Names this run in the claims other runs see.
    owner_label: str | None = None
    logger: logging.Logger | logging.LoggerAdapter = log
    #: The DAG run this execution belongs to (recorded with the run, linked from the UI page).
    dag_id: str | None = None
    dag_run_id: str | None = None

    @classmethod
    def load(
        cls,
        mount: HybridMount,
        plan_id: str | None,
        *,
        path: str | None = None,
        policy: str | None = None,
        plans: PlanStore | None = None,
        batch: int | None = None,
        engine: str = "local",
        policy_name: str | None = None,
        **kwargs: Any,
    ) -> PlanExecution:
        """Read plan ``plan_id`` (or plan ``path`` with ``policy`` now) and check it fits ``mount`` and ``batch``."""
        plans = plans or PlanStore()
        logger = kwargs.get("logger", log)
        if plan_id is None:
            summary = plan_migration(mount, path or "", policy or "", plan_store=plans.uri,
                                     plan_store_conn_id=plans.conn_id, batch_max_files=plans.batch_max_files,
                                     batch_max_bytes=plans.batch_max_bytes)
            logger.info("Planned %s inline: %d files, %d bytes, %d batches", summary.plan_id, summary.files,
                        summary.bytes, summary.batches)
            plan_id = summary.plan_id
        plan = load_plan(plans.uri, plan_id, plan_store_conn_id=plans.conn_id)
        if plan.mount not in (None, mount.name):
            raise MigrationRunError(f"plan {plan_id} was made for mount {plan.mount!r}, not {mount.name!r}")
        validate_members(plan.policy, mount.members, mount_name=mount.name)
        count = plan.summary.batches
        if batch is not None and not 0 <= int(batch) < count:
            raise MigrationRunError(f"plan {plan.plan_id} has {count} batches (0..{count - 1}); no batch {batch}")
        batch = None if batch is None else int(batch)
        return cls(mount, plan, batch, engine, policy_name or plan.policy.display_name(plan.path), **kwargs)

    # -- what the run covers ----------------------------------------------------------------------------
    @property
    def batches(self) -> list[int]:
        return list(range(self.plan.summary.batches)) if self.batch is None else [self.batch]

    @property
    def batch_label(self) -> str:
        return f"{self.batch:05d}" if self.batch is not None else "all"

    @property
    def concurrency(self) -> int:
        return self.options.concurrency

    def key_prefix(self, engine_dir: str) -> str:
        """Key prefix of this run's file lists: ``<plan>/<engine_dir>/<batch>``."""
        return f"{self.plan.plan_id}/{engine_dir}/{self.batch_label}"

    def entries(self) -> Iterator[PlanEntry]:
        return itertools.chain.from_iterable(self.plan.iter_batch(index) for index in self.batches)

    def lineage(self) -> tuple[list[str], list[str]]:
        """Physical URIs read from (the REMOVE members') and written to (the STORE members')."""
        policy, path = self.plan.policy, self.plan.path
        return ([self.mount.members[m].uri(path) for m in policy.remove_members],
                [self.mount.members[m].uri(path) for m in policy.store_members])

    def migrator(self, *, copy: bool, claims: bool = True) -> Migrator:
        """The per-file migrator (``copy=False``: the copies were made by an engine, only verify and remove);
        ``claims``: take a lease per file in the migration state."""
        file_claims = None
        if claims:
            file_claims = MigrationClaims(MigrationState.for_mount(self.mount), self.mount.name,
                                          new_owner(self.owner_label), lease=self.options.claim_lease)
        return Migrator(self.mount, self.plan.policy, copy=copy, verify=self.options.verify,
                        attempts=self.options.attempts, retry_delay=self.options.retry_delay, claims=file_claims)

    # -- the record -------------------------------------------------------------------------------------
    @property
    def state(self) -> MigrationState:
        return MigrationState.for_mount(self.mount)

    def start(self) -> int:
        """Record the run as running, with what its plan found pending when it was made; return its id."""
        plan = self.plan.summary
        return self.state.start_run(self.policy_name, self.mount.name, self.plan.path, plan_id=self.plan.plan_id,
                                    batch=self.batch, engine=self.engine, plan_files=plan.files,
                                    plan_bytes=plan.bytes, plan_created_at=self.plan.manifest.get("created_at"),
                                    dag_id=self.dag_id, dag_run_id=self.dag_run_id)

    def migrate(self, run_id: int, *, copy: bool, fail_on_error: bool = True) -> MigrationSummary:
        """Migrate every file, record each outcome and finish the run; raise :class:`MigrationRunError` when
        files failed and ``fail_on_error`` (kept files and files other runs hold never fail it)."""
        plan = self.plan
        files = sum(plan.batches[i].files for i in self.batches)
        size = sum(plan.batches[i].bytes for i in self.batches)
        label = f"Migration {plan.plan_id}" + (f" batch {self.batch}" if self.batch is not None else "")
        self.logger.info("%s: %d files, %d bytes from %s to %s (engine %s, concurrency %d)", label, files, size,
                         ",".join(plan.policy.remove_members), ",".join(plan.policy.store_members), self.engine,
                         self.concurrency)
        # Bytes written: each file once per STORE member. The migrator runs its timer and freezes its clock, so
        # the last line's rate is the summary's.
        progress = ProgressTracker(files, size * len(plan.policy.store_members), interval=self.options.progress_interval,
                                   logger=self.logger, label=label)
        recorder = OutcomeRecorder(self.state, self.policy_name, self.mount.name, plan.plan_id)
        try:
            summary = self.migrator(copy=copy).run(self.entries(), concurrency=self.concurrency,
                                                   on_outcome=recorder, progress=progress, prefix=plan.path)
        finally:
            recorder.flush()
        progress.maybe_log(force=True)
        failed = bool(summary.failed) and fail_on_error
        message = "; ".join(f"{f['path']}: {f['reason']}" for f in summary.failures[:5]) or None
        self.state.finish_run(run_id, summary, state=FAILURE if failed else SUCCESS, message=message)
        for failure in summary.failures:
            self.logger.warning("%s %s: %s", failure["status"], failure["path"], failure["reason"])
        if summary.claimed:
            self.logger.info("%d files were being migrated by other runs (they hold the claims) and were left to "
                             "them", summary.claimed)
        if failed:
            raise MigrationRunError(
                f"{summary.failed} of {summary.files} files failed to migrate (their sources were kept): {message}"
            )
        return summary
