"""Sensor that waits until a migration policy selects enough files, then writes the migration plan."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.configuration import conf
from airflow.exceptions import AirflowException
from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_hybrid.migration.planner import (
    DEFAULT_BATCH_MAX_BYTES,
    DEFAULT_BATCH_MAX_FILES,
    plan_migration,
)
from airflow_hybrid.policy.parser import as_policy
from airflow_hybrid.triggers.migrate import (
    NOTHING_TO_MIGRATE,
    SUCCESS,
    TIMEOUT,
    PolicyWaitMixin,
    UfsMigrateTrigger,
    source_is_empty,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

#: XCom key of the plan id (also in the ``return_value`` summary).
PLAN_ID_KEY = "plan_id"


class UfsMigrateSensor(PolicyWaitMixin, BaseSensorOperator):
    """
    Wait until ``policy`` selects at least ``min_files`` files and ``min_bytes`` bytes below ``path``
    of a hybrid mount, then write the migration plan.

    Returns (XCom ``return_value``) the plan id and totals, ``{"plan_id", "files", "bytes", "batches"}``,
    never file lists, and pushes the plan id alone as XCom ``plan_id``. Migrate tasks are mapped over the
    plan's batches with :func:`~airflow_hybrid.operators.migrate.plan_batches`::

        plan = UfsMigrateSensor(task_id="plan", mount_conn_id="lake", path="tpcds", policy=POLICY)
        UfsMigrateOperator.partial(task_id="migrate", mount_conn_id="lake", plan_id=plan.output["plan_id"]
                                   ).expand(batch=plan_batches(plan.output))

    **Nothing left to migrate** is a clear, finite outcome: when the policy selects no file and no file at all is
    left below ``path`` in its REMOVE member(s) (everything was moved, or the path is empty), waiting could never
    end, so the sensor raises :class:`~airflow.exceptions.AirflowSkipException` ("Nothing left to migrate: ...")
    at once, in poke and in deferrable mode alike; downstream tasks are then skipped. Files that exist but are
    not selected yet (too recent) are waited for, up to ``timeout``.

    ``timeout`` also holds while deferred: the trigger carries the deadline (epoch seconds) and fires a timeout
    event there, which becomes :class:`~airflow.exceptions.AirflowSensorTimeout` (a skip with ``soft_fail``), on
    the triggerer as under ``airflow dags test``, which runs triggers in line and never times them out.

    :param mount_conn_id: the ``hybrid_mount`` connection.
    :param path: logical path of the mount below which the policy selects files.
    :param policy: Alluxio-style policy, e.g. ``ufsMigrate(olderThan(30d), UFS[hdfs]:REMOVE, UFS[s3]:STORE)``.
    :param min_files: files the policy must select before the sensor succeeds.
    :param min_bytes: bytes the selected files must add up to.
    :param deferrable: wait on the triggerer (:class:`~airflow_hybrid.triggers.migrate.UfsMigrateTrigger`)
        instead of occupying a worker slot.
    :param plan_store: where the plan is written (a URI such as ``s3://bucket/plans``; default: the
        ``[hybrid] plan_store`` option, else ``$AIRFLOW_HOME/hybrid/plans``).
    :param plan_store_conn_id: connection for ``plan_store``.
    :param batch_max_files: most files in one plan batch (one mapped migrate task each).
    :param batch_max_bytes: most bytes in one plan batch.
    """

    template_fields: Sequence[str] = ("mount_conn_id", "path", "policy", "plan_store")
    ui_color = "#d9ecf5"

    def __init__(
        self,
        *,
        mount_conn_id: str,
        path: str,
        policy: str,
        min_files: int = 1,
        min_bytes: int = 0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        plan_store: str | None = None,
        plan_store_conn_id: str | None = None,
        batch_max_files: int = DEFAULT_BATCH_MAX_FILES,
        batch_max_bytes: int = DEFAULT_BATCH_MAX_BYTES,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if min_files < 0 or min_bytes < 0:
            raise ValueError(f"min_files={min_files} and min_bytes={min_bytes} must not be negative")
        if batch_max_files < 1 or batch_max_bytes < 1:
            raise ValueError(f"batch_max_files={batch_max_files} and batch_max_bytes={batch_max_bytes} "
                             "must be positive")
        if "{{" not in policy:
            as_policy(policy)  # a bad policy fails at DAG parse time, with its position
        self._set_wait(mount_conn_id, path, policy, min_files, min_bytes)
        self.deferrable = deferrable
        self.plan_store = plan_store
        self.plan_store_conn_id = plan_store_conn_id
        self.batch_max_files = batch_max_files
        self.batch_max_bytes = batch_max_bytes

    def poke(self, context: Context) -> PokeReturnValue | bool:
        with self.mount() as mount:
            count = self._count(mount)
            self.log.info("%s", self._waiting_message(count))
            if not count.reached:
                if count.files == 0 and source_is_empty(mount, self.path, self.policy):
                    raise AirflowSkipException(self._nothing_to_migrate_message())
                return False
            return PokeReturnValue(is_done=True, xcom_value=self._plan(mount, context))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        deadline = time.time() + self.timeout
        result = self.poke(context)
        if result:
            return result.xcom_value
        self.defer(
            trigger=UfsMigrateTrigger(**self.wait_args(), poke_interval=self.poke_interval, deadline=deadline),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: write the plan and return its id and totals."""
        if event is None:
            raise AirflowException("UfsMigrateTrigger returned no event")
        status = event.get("status")
        if status == TIMEOUT:
            if self.soft_fail:
                raise AirflowSkipException(f"{event.get('message')}; skipped (soft_fail)")
            raise AirflowSensorTimeout(event.get("message"))
        if status == NOTHING_TO_MIGRATE:
            raise AirflowSkipException(event.get("message"))
        if status != SUCCESS:
            raise AirflowException(f"Waiting for policy {self.policy} on hybrid://{self.mount_conn_id}/"
                                   f"{self.path} failed: {event.get('message', event)}")
        self.log.info("Trigger saw %s files (%s bytes) selected; planning", event.get("files"), event.get("bytes"))
        with self.mount() as mount:
            return self._plan(mount, context)

    def _plan(self, mount: Any, context: Context) -> dict[str, Any]:
        summary = plan_migration(
            mount, self.path, self.policy,
            plan_store=self.plan_store, plan_store_conn_id=self.plan_store_conn_id,
            batch_max_files=self.batch_max_files, batch_max_bytes=self.batch_max_bytes,
        )
        self.log.info("Plan %s: %d files, %d bytes in %d batches", summary.plan_id, summary.files,
                      summary.bytes, summary.batches)
        context["ti"].xcom_push(key=PLAN_ID_KEY, value=summary.plan_id)
        return summary.to_dict()
