"""Trigger that waits, on the triggerer, until a migration policy selects enough files."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_hybrid.policy.planner import CandidateCount, count_candidates


class UfsMigrateTrigger(BaseTrigger):
    """
    Fire when ``policy`` selects at least ``min_files`` files and ``min_bytes`` bytes below ``path``.

    Each check streams the listing of the policy's REMOVE members (stopping as soon as the thresholds
    are met) in a worker thread (``asyncio.to_thread``), so the triggerer's event loop never blocks on
    HTTP. Yields ``{"status": "success", "files", "bytes"}``, or ``{"status": "error", "message"}``
    when the mount cannot be listed.

    :param mount_conn_id: the ``hybrid_mount`` connection.
    :param path: logical path below which files are selected.
    :param policy: the policy text.
    :param min_files: files the policy must select.
    :param min_bytes: bytes the selected files must add up to.
    :param poke_interval: seconds between checks.
    """

    def __init__(
        self,
        mount_conn_id: str,
        path: str,
        policy: str,
        min_files: int = 1,
        min_bytes: int = 0,
        poke_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.mount_conn_id = mount_conn_id
        self.path = path
        self.policy = policy
        self.min_files = min_files
        self.min_bytes = min_bytes
        self.poke_interval = poke_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_hybrid.triggers.migrate.UfsMigrateTrigger",
            {
                "mount_conn_id": self.mount_conn_id,
                "path": self.path,
                "policy": self.policy,
                "min_files": self.min_files,
                "min_bytes": self.min_bytes,
                "poke_interval": self.poke_interval,
            },
        )

    def count(self) -> CandidateCount:
        """Count the selected files (blocking; run in a thread)."""
        from airflow_hybrid.hooks.hybrid_mount import HybridMountHook

        mount = HybridMountHook(self.mount_conn_id).get_mount()
        try:
            return count_candidates(
                mount, self.path, self.policy, min_files=self.min_files, min_bytes=self.min_bytes
            )
        finally:
            mount.close()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                count = await asyncio.to_thread(self.count)
            except Exception as err:
                yield TriggerEvent({"status": "error", "message": f"{type(err).__name__}: {err}"})
                return
            if count.reached:
                yield TriggerEvent({"status": "success", "files": count.files, "bytes": count.bytes})
                return
            self.log.info(
                "Policy selects %d files (%d bytes) below hybrid://%s/%s; waiting for %d files and %d bytes",
                count.files,
                count.bytes,
                self.mount_conn_id,
                self.path,
                self.min_files,
                self.min_bytes,
            )
            await asyncio.sleep(self.poke_interval)
