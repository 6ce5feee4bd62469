"""Trigger that waits, on the triggerer, until a migration policy selects enough files."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_hybrid.hooks.hybrid_mount import HybridMountMixin
from airflow_hybrid.migration.planner import CandidateCount, MountLike, count_candidates
from airflow_hybrid.policy.parser import as_policy
from airflow_hybrid.stores.base import normalize_path

#: Event statuses.
SUCCESS, ERROR, TIMEOUT, NOTHING_TO_MIGRATE = "success", "error", "timeout", "nothing_to_migrate"


def source_is_empty(mount: MountLike, path: str, policy: Any) -> bool:
    """Whether no file at all lies below ``path`` in the policy's REMOVE member(s): no candidate now, and none
    can ever become one (unless new files are written there). Stops at the first file found."""
    rel = normalize_path(path)
    for member in as_policy(policy).remove_members:
        store = mount.members[member]
        try:
            for info in store.walk_files(rel):
                if not info.is_dir:
                    return False
        except FileNotFoundError:
            if store.exists(rel):
                raise
    return True


def nothing_to_migrate_message(mount_conn_id: str, path: str, policy: Any) -> str:
    members = ", ".join(as_policy(policy).remove_members)
    return (f"Nothing left to migrate: no file below hybrid://{mount_conn_id}/{path} in the REMOVE member(s) "
            f"({members}) of policy {as_policy(policy).to_text()}; skipped")


class PolicyWaitMixin(HybridMountMixin):
    """What :class:`~airflow_hybrid.sensors.migrate.UfsMigrateSensor` and its trigger wait for: ``policy``
    selecting at least ``min_files`` files and ``min_bytes`` bytes below ``path`` of mount ``mount_conn_id``."""

    mount_conn_id: str
    path: str
    policy: str
    min_files: int
    min_bytes: int

    def _set_wait(self, mount_conn_id: str, path: str, policy: str, min_files: int, min_bytes: int) -> None:
        self.mount_conn_id, self.path, self.policy = mount_conn_id, path, policy
        self.min_files, self.min_bytes = min_files, min_bytes

    def wait_args(self) -> dict[str, Any]:
        """The five settings, as the trigger takes them."""
        return {"mount_conn_id": self.mount_conn_id, "path": self.path, "policy": self.policy,
                "min_files": self.min_files, "min_bytes": self.min_bytes}

    def _count(self, mount: MountLike) -> CandidateCount:
        return count_candidates(mount, self.path, self.policy, min_files=self.min_files, min_bytes=self.min_bytes)

    def _waiting_message(self, count: CandidateCount) -> str:
        at_least = "at least " if not count.complete else ""
        return (f"Policy {self.policy} selects {at_least}{count.files} files ({count.bytes} bytes) below "
                f"hybrid://{self.mount_conn_id}/{self.path}; waiting for {self.min_files} files, {self.min_bytes} bytes")

    def _nothing_to_migrate_message(self) -> str:
        return nothing_to_migrate_message(self.mount_conn_id, self.path, self.policy)


class UfsMigrateTrigger(PolicyWaitMixin, BaseTrigger):
    """
    Fire when ``policy`` selects at least ``min_files`` files and ``min_bytes`` bytes below ``path``.

    Each check streams the listing of the policy's REMOVE members (stopping as soon as the thresholds
    are met) in a worker thread (``asyncio.to_thread``), so the triggerer's event loop never blocks on
    HTTP. Yields one event:

    * ``{"status": "success", "files", "bytes"}`` when the thresholds are met;
    * ``{"status": "nothing_to_migrate", "message"}`` when nothing is selected and no file at all is left below
      ``path`` in the REMOVE member(s) (see :func:`source_is_empty`): waiting could never end;
    * ``{"status": "timeout", "message"}`` once ``deadline`` has passed (the sensor's timeout, carried by the
      trigger itself so it holds wherever the trigger runs: the triggerer, ``airflow dags test``, in process);
    * ``{"status": "error", "message"}`` when the mount cannot be listed.

    :param mount_conn_id: the ``hybrid_mount`` connection.
    :param path: logical path below which files are selected.
    :param policy: the policy text.
    :param min_files: files the policy must select.
    :param min_bytes: bytes the selected files must add up to.
    :param poke_interval: seconds between checks.
    :param deadline: when to give up, in epoch seconds (``None``: never). A check is made at least once.
    """

    #: The clock and the sleep the trigger uses (tests replace them).
    clock: Callable[[], float] = staticmethod(time.time)
    sleep: Callable[[float], Awaitable[Any]] = staticmethod(asyncio.sleep)

    def __init__(
        self,
        mount_conn_id: str,
        path: str,
        policy: str,
        min_files: int = 1,
        min_bytes: int = 0,
        poke_interval: float = 60.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self._set_wait(mount_conn_id, path, policy, min_files, min_bytes)
        self.poke_interval = poke_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_hybrid.triggers.migrate.UfsMigrateTrigger",
            {**self.wait_args(), "poke_interval": self.poke_interval, "deadline": self.deadline},
        )

    def count(self) -> CandidateCount:
        """Count the selected files (blocking; run in a thread)."""
        with self.mount() as mount:
            return self._count(mount)

    def source_is_empty(self) -> bool:
        """Whether no file is left below ``path`` in the REMOVE member(s) (blocking; run in a thread)."""
        with self.mount() as mount:
            return source_is_empty(mount, self.path, self.policy)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                count = await asyncio.to_thread(self.count)
                empty = not count.reached and count.files == 0 and await asyncio.to_thread(self.source_is_empty)
            except Exception as err:
                yield TriggerEvent({"status": ERROR, "message": f"{type(err).__name__}: {err}"})
                return
            if count.reached:
                yield TriggerEvent({"status": SUCCESS, "files": count.files, "bytes": count.bytes})
                return
            if empty:
                message = self._nothing_to_migrate_message()
                self.log.info("%s", message)
                yield TriggerEvent({"status": NOTHING_TO_MIGRATE, "message": message})
                return
            self.log.info("%s", self._waiting_message(count))
            now = self.clock()
            if self.deadline is not None and now >= self.deadline:
                yield TriggerEvent({"status": TIMEOUT, "message": self._timeout_message(count)})
                return
            wait = self.poke_interval if self.deadline is None else min(self.poke_interval, self.deadline - now)
            await self.sleep(wait)

    def _timeout_message(self, count: CandidateCount) -> str:
        at = datetime.fromtimestamp(self.deadline or 0, tz=timezone.utc).isoformat(timespec="seconds")
        return (f"Sensor has timed out: policy {self.policy} selects {count.files} files ({count.bytes} bytes) "
                f"below hybrid://{self.mount_conn_id}/{self.path}, not {self.min_files} files and {self.min_bytes} "
                f"bytes, at the deadline {at}")
