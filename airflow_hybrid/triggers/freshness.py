"""Event trigger that fires when the data below a hybrid-mount path changes (Alluxio's Active Sync, the Airflow way).

:class:`HybridChangeTrigger` is a :class:`~airflow.triggers.base.BaseEventTrigger` for an
:class:`~airflow.sdk.AssetWatcher`: the triggerer runs it for as long as a DAG is scheduled on the watched Asset,
and each event it yields becomes an Asset event, so refresh and query DAGs run when the data changes, not on a
clock::

    source = Asset("lake_sales_source", uri="hybrid-source://lake/sales", watchers=[AssetWatcher(
        name="lake_sales_changes", trigger=HybridChangeTrigger(mount_conn_id="lake", path="/sales/*.parquet"))])
    with DAG("refresh_sales", schedule=[source], ...): ...

**Each poll** (every ``poll_interval`` seconds) takes the members' cheap fingerprint of the path (the static
prefix of a glob), :meth:`~airflow_hybrid.mount.HybridMount.tree_fingerprint`:

* HDFS: 2 namenode requests (``GETFILESTATUS`` + ``GETCONTENTSUMMARY``) whatever the number of files;
* S3: one ``ListObjectsV2`` per 1000 keys below the prefix (S3 has no directory metadata);
* a local directory: one ``scandir`` per directory (no network).

While it is unchanged nothing else is asked, so the cost per poll stays the same for an unchanged tree. When it
changed, the files the path or glob matches are listed in each member (the cost of a listing, once per change)
and digested (length, mtime, ETag of each; constant memory): an event fires only if that digest changed, so a
change outside the glob (a ``_SUCCESS`` marker, a temporary file of a write in progress) fires nothing.

**What HDFS's summary misses**: a rewrite to the same length inside a *subdirectory* of the path (HDFS changes
that subdirectory's mtime only) and a ``SETTIMES`` on a file. Those are caught by the rescan: every
``rescan_interval`` seconds (default an hour; ``None``: never) a poll lists and digests the matched files even
though the summary is unchanged. The trade-off is explicit: two requests per poll, plus one listing per
``rescan_interval``, instead of a listing per poll. Summaries of S3 and local members are exact (full listings),
so they never need the rescan.

**Restarts.** The first poll ever establishes the baseline (no event). The last fingerprint is kept in the
watched Asset's state store (Airflow's ``asset_state_store``, in the metadata database, under
:attr:`HybridChangeTrigger.state_key`), so a trigger re-created from its kwargs, after a triggerer restart or on
another triggerer, compares with what was seen before: a change made while no triggerer ran fires at its first
poll. After an event the new fingerprint is stored only at the next poll, once the event had a poll interval to
reach the metadata database: a triggerer killed in between fires the change again on restart (at least once,
never lost). Without a state store (the trigger run outside a triggerer, or one trigger watching several Assets)
the baseline is in memory only, and a change made while the trigger was not running is missed; it says so in its
log.

A failing poll (a store unreachable) is logged and retried at the next interval; the trigger never ends by itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.hooks.hybrid_mount import HybridMountHook
from airflow_hybrid.mount.globs import PathPattern
from airflow_hybrid.stores.base import FileSetDigest

if TYPE_CHECKING:
    from airflow_hybrid.mount import HybridMount

#: Prefix of the asset-state-store key of a watch (followed by a digest of the mount, path and members).
STATE_KEY_PREFIX = "hybrid_change_trigger"
#: Seconds a mount (its stores' sessions, connections read once) is reused before it is built again.
MOUNT_MAX_AGE = 600.0


@dataclass(frozen=True)
class WatchState:
    """What a poll saw: the members' summary, the digest of the matched files, and when they were listed."""

    summary: str
    digest: str
    files: int
    bytes: int
    listed_at: float

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "digest": self.digest, "files": self.files, "bytes": self.bytes,
                "listed_at": self.listed_at}

    @classmethod
    def from_json(cls, value: Any) -> WatchState | None:
        """The state stored, or ``None`` for anything else (nothing stored, another shape)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(str(value["summary"]), str(value["digest"]), int(value["files"]), int(value["bytes"]),
                       float(value["listed_at"]))
        except (KeyError, TypeError, ValueError):
            return None


class HybridChangeTrigger(BaseEventTrigger):
    """
    Fire an event each time the files below ``path`` of mount ``mount_conn_id`` change (added, removed, resized,
    rewritten); for an :class:`~airflow.sdk.AssetWatcher` (module doc: cost per poll, limits, restarts).

    The event's payload: ``mount``, ``path``, ``uri`` (``hybrid://<mount>/<path>``), ``files`` and ``bytes``
    matched now and ``previous_files``/``previous_bytes`` before (counted per member: a file in two members
    counts twice), ``digest``/``previous_digest``, ``detected_at`` (ISO 8601, UTC). A DAG scheduled on the
    Asset reads it from ``triggering_asset_events`` (``event.extra["payload"]``).

    :param mount_conn_id: the ``hybrid_mount`` connection.
    :param path: logical directory, file or glob (``/store_sales``, ``/store_sales/*.parquet``, ``/sales/**``).
    :param poll_interval: seconds between polls.
    :param members: the members to watch (e.g. ``["hdfs"]`` for on-prem data only); default: all of them.
    :param rescan_interval: seconds between listings of the matched files while the cheap summary is unchanged
        (catches what an inexact summary misses, see the module doc); ``None``: never.
    """

    #: The clock and the sleep the trigger uses (tests replace them).
    clock: Callable[[], float] = staticmethod(time.time)
    sleep: Callable[[float], Awaitable[Any]] = staticmethod(asyncio.sleep)

    def __init__(
        self,
        mount_conn_id: str,
        path: str,
        poll_interval: float = 60.0,
        members: Sequence[str] | None = None,
        rescan_interval: float | None = 3600.0,
    ) -> None:
        super().__init__()
        if not mount_conn_id:
            raise HybridConfigError("HybridChangeTrigger: mount_conn_id is empty")
        if not poll_interval > 0:
            raise HybridConfigError(f"HybridChangeTrigger: poll_interval={poll_interval!r} must be positive")
        if rescan_interval is not None and not rescan_interval > 0:
            raise HybridConfigError(
                f"HybridChangeTrigger: rescan_interval={rescan_interval!r} must be positive, or None for never"
            )
        if isinstance(members, str) or (members is not None and not members):
            raise HybridConfigError(f"HybridChangeTrigger: members={members!r}: expected a list of member names")
        self.mount_conn_id = mount_conn_id
        self.path = path
        self.pattern = PathPattern.parse(path)
        self.poll_interval = float(poll_interval)
        self.members = list(members) if members is not None else None
        self.rescan_interval = float(rescan_interval) if rescan_interval is not None else None
        self._mount: HybridMount | None = None
        self._mount_built = 0.0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"mount_conn_id": self.mount_conn_id, "path": self.path, "poll_interval": self.poll_interval,
             "members": self.members, "rescan_interval": self.rescan_interval},
        )

    @property
    def uri(self) -> str:
        return f"hybrid://{self.mount_conn_id}/{self.pattern.path}"

    @property
    def state_key(self) -> str:
        """The key of the last state in the watched Asset's state store: what is watched, not how often."""
        what = json.dumps([self.mount_conn_id, self.pattern.path, self.members], separators=(",", ":"))
        return f"{STATE_KEY_PREFIX}:{hashlib.sha256(what.encode()).hexdigest()[:32]}"

    # -- one poll (blocking; run in a thread) ---------------------------------------------------------------------
    def _open_mount(self, now: float) -> HybridMount:
        if self._mount is not None and now - self._mount_built > MOUNT_MAX_AGE:
            self.close_mount()  # pick up edits of the connection now and then
        if self._mount is None:
            self._mount = HybridMountHook(self.mount_conn_id).get_mount()
            self._mount_built = now
        return self._mount

    def close_mount(self) -> None:
        mount, self._mount = self._mount, None
        if mount is not None:
            mount.close()

    def _watched(self, mount: HybridMount) -> list[str]:
        if self.members is None:
            return list(mount.read_order)
        unknown = [m for m in self.members if m not in mount.members]
        if unknown:
            raise HybridConfigError(
                f"HybridChangeTrigger on {self.uri}: no member {', '.join(map(repr, unknown))} in mount "
                f"{self.mount_conn_id!r} (members: {', '.join(mount.read_order)})"
            )
        return list(self.members)

    def list_matched(self, mount: HybridMount) -> FileSetDigest:
        """Digest of the files the path or glob matches in each watched member (one listing of each)."""
        digest = FileSetDigest()
        for member in self._watched(mount):
            try:
                for info in mount.members[member].walk_files(self.pattern.static_prefix):
                    if self.pattern.matches(info.path):
                        digest.add(info, member)
            except (FileNotFoundError, NotADirectoryError):
                continue
        return digest

    def poll(self, previous: WatchState | None) -> tuple[WatchState, dict[str, Any] | None]:
        """One poll: the state now, and the event payload when the matched files changed since ``previous``."""
        now = self.clock()
        mount = self._open_mount(now)
        summary = mount.tree_fingerprint(self.pattern.static_prefix, self._watched(mount))
        if previous is not None and summary.value == previous.summary:
            rescan_due = self.rescan_interval is not None and now - previous.listed_at >= self.rescan_interval
            if summary.exact or not rescan_due:
                return previous, None
        digest = self.list_matched(mount)
        state = WatchState(summary.value, digest.value, digest.files, digest.bytes, now)
        if previous is None or digest.value == previous.digest:
            return state, None
        return state, {
            "mount": self.mount_conn_id, "path": self.path, "uri": self.uri,
            "files": digest.files, "bytes": digest.bytes,
            "previous_files": previous.files, "previous_bytes": previous.bytes,
            "digest": digest.value, "previous_digest": previous.digest,
            "detected_at": datetime.fromtimestamp(now, tz=timezone.utc).isoformat(),
        }

    # -- the watch ------------------------------------------------------------------------------------------------
    async def run(self) -> AsyncIterator[TriggerEvent]:
        state = await self._load_state()
        unsaved: WatchState | None = None  # the state after an event, stored one poll later
        first = True
        try:
            while True:
                if not first:
                    await self.sleep(self.poll_interval)
                first = False
                if unsaved is not None:
                    await self._save_state(unsaved)
                    unsaved = None
                try:
                    new, change = await asyncio.to_thread(self.poll, state)
                except Exception as err:
                    self.log.warning("Watching %s failed (%s: %s); next poll in %.0fs", self.uri,
                                     type(err).__name__, err, self.poll_interval)
                    await asyncio.to_thread(self.close_mount)
                    continue
                if state is None:
                    self.log.info("Watching %s: baseline of %d files (%d bytes)", self.uri, new.files, new.bytes)
                if change is not None:
                    self.log.info("%s changed: %d files (%d bytes), were %d files (%d bytes)", self.uri,
                                  change["files"], change["bytes"], change["previous_files"],
                                  change["previous_bytes"])
                    state, unsaved = new, new
                    yield TriggerEvent(change)
                elif new != state:
                    state = new
                    await self._save_state(new)
        finally:
            self.close_mount()

    async def cleanup(self) -> None:
        await asyncio.to_thread(self.close_mount)

    # -- the state, in the watched Asset's state store ------------------------------------------------------------
    def _no_store(self, why: str) -> None:
        self.log.warning("Watching %s: %s; the baseline is kept in memory only, so a change made while this "
                         "trigger is not running is missed", self.uri, why)
        self.asset_state_store = None

    async def _load_state(self) -> WatchState | None:
        store = self.asset_state_store
        if store is None:
            self._no_store("no asset state store (not run by a triggerer for one watched Asset)")
            return None
        try:
            value = await store.aget(self.state_key)
        except ValueError as err:  # the trigger watches several Assets: no single state
            self._no_store(f"no single asset state store ({err})")
            return None
        except Exception as err:
            self.log.warning("Watching %s: reading the last state failed (%s: %s); starting from a new baseline",
                             self.uri, type(err).__name__, err)
            return None
        state = WatchState.from_json(value)
        if state is not None:
            self.log.info("Watching %s: last seen %d files (%d bytes) at %s", self.uri, state.files, state.bytes,
                          datetime.fromtimestamp(state.listed_at, tz=timezone.utc).isoformat())
        return state

    async def _save_state(self, state: WatchState) -> None:
        store = self.asset_state_store
        if store is None:
            return
        try:
            await store.aset(self.state_key, state.to_json())
        except Exception as err:
            self.log.warning("Watching %s: storing the state failed (%s: %s)", self.uri, type(err).__name__, err)
