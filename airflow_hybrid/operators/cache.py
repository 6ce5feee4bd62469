"""Operators over a hybrid mount's tiered cache: prefetch, pin, unpin, free and report.

They are thin over :mod:`airflow_hybrid.cache.ops` and :class:`~airflow_hybrid.cache.CacheManager`; the mount's
``hybrid_mount`` connection configures the cache (``cache.tiers``, catalog, freshness). Paths are logical
paths or globs under the mount (``/tpcds/store_sales/*.parquet``; a directory means every file below it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.exceptions import AirflowException
from airflow.sdk import BaseOperator

from airflow_hybrid.cache.config import parse_duration
from airflow_hybrid.cache.exceptions import CacheError
from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.hooks.hybrid_mount import HybridMountMixin
from airflow_hybrid.mount.globs import NoMatchError, parse_patterns
from airflow_hybrid.operators.lineage import hybrid_asset, operator_lineage
from airflow_hybrid.stores.base import PathEscapeError
from airflow_hybrid.values import parse_bool

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_hybrid.cache.ops import PrefetchSummary
    from airflow_hybrid.mount import HybridMount

T = TypeVar("T")

#: Errors that are the caller's input or the cache's limits; reported with their message only.
_CLEAR_ERRORS = (CacheError, NoMatchError, PathEscapeError, ValueError)


def _cache_ops() -> ModuleType:
    """:mod:`airflow_hybrid.cache.ops`, imported when a task runs, not when a DAG file is parsed."""
    from airflow_hybrid.cache import ops

    return ops


def _templated(*values: Any) -> bool:
    return any("{{" in str(v) for v in values if v is not None)


def _unset(value: Any) -> bool:
    """An option left empty, also as a template renders it (``{{ params.tier or '' }}``, ``None``)."""
    return value is None or (isinstance(value, str) and value.strip() in ("", "None"))


def _as_bool(value: Any, option: str) -> bool:
    """``pin`` given as a bool, or rendered from a template as ``True``/``False``; unset is ``False``."""
    return False if _unset(value) else parse_bool(value, option)


def _tier(tier: str | None) -> str | None:
    return None if _unset(tier) else tier


def _ttl_seconds(ttl: float | str | None) -> float | None:
    if _unset(ttl):
        return None
    seconds = parse_duration(ttl, "ttl")
    if seconds == 0:
        raise HybridConfigError("ttl: must be positive (None keeps the cache's default_ttl)")
    return seconds


def _paths_list(paths: str | Sequence[str]) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def _check_rendered_paths(paths: str | Sequence[str]) -> None:
    """A list parameter rendered by a template without native rendering arrives as its text."""
    if isinstance(paths, str) and paths.startswith(("['", '["')) and paths.endswith(("']", '"]')):
        raise ValueError(
            f"paths rendered to the text of a list ({paths}); set render_template_as_native_obj=True on the DAG "
            f"so that a list parameter renders as a list"
        )


class _MountCacheOperator(HybridMountMixin, BaseOperator):
    """Shared plumbing: the mount from its connection, input checks, clear errors, clean-up."""

    template_fields: Sequence[str] = ("mount_conn_id", "paths")
    ui_color = "#d6ecf3"

    def __init__(self, *, mount_conn_id: str, paths: str | Sequence[str] = "", **kwargs: Any) -> None:
        if not _templated(paths):
            parse_patterns(paths)  # a path escaping the mount fails when the DAG is parsed
        super().__init__(**kwargs)
        self.mount_conn_id = mount_conn_id
        self.paths = paths

    def _with_mount(self, action: Callable[[HybridMount], T]) -> T:
        """Run ``action`` on the mount; input and quota errors become AirflowException with their message."""
        try:
            _check_rendered_paths(self.paths)
        except ValueError as err:
            raise AirflowException(str(err)) from err
        with self.mount() as mount:
            try:
                return action(mount)
            except _CLEAR_ERRORS as err:
                raise AirflowException(f"{type(err).__name__}: {err}") from err


class HybridPrefetchOperator(_MountCacheOperator):
    """
    Load files of a hybrid mount into a cache tier ahead of reads, in parallel, skipping fresh copies.

    Globs are expanded against the merged namespace before anything is loaded (a glob matching nothing, or a
    path that does not exist, fails the task naming the pattern and the mount). Progress (files, bytes, rate,
    ETA) goes to the task log. Returns (XCom) a summary, never the file list: ``files``/``bytes`` matched,
    ``loaded``/``loaded_bytes``, ``fresh``/``fresh_bytes`` (already cached and current, skipped),
    ``busy``/``busy_bytes`` (being loaded by another worker), ``failed``/``failed_bytes``, ``pinned``,
    ``elapsed_seconds``, ``throughput_bytes_per_second`` and the first failures with reasons.

    Declares ``hybrid://<mount>/<path>`` Assets as outlets (a glob's static prefix), so query DAGs can be
    scheduled on warmed data.

    :param mount_conn_id: the ``hybrid_mount`` connection (its extras configure the cache).
    :param paths: a logical path or glob under the mount, or a list of them (templated; a list parameter
        needs ``render_template_as_native_obj=True`` on the DAG).
    :param tier: tier alias to load into (templated); default (also when empty): the cache's default tier.
    :param pin: pin the files too, all or nothing, before loading (over the tier's quota: the task fails and
        nothing is pinned or loaded); templated (``"True"``/``"False"`` accepted).
    :param ttl: lifetime of the new copies: seconds or a duration such as ``6h`` (templated); default: the
        cache's ``default_ttl``.
    :param concurrency: files loaded in parallel.
    :param fail_on_error: fail the task when some files failed to load (the others stay loaded).
    :param progress_interval: seconds between progress lines in the log.
    """

    template_fields: Sequence[str] = ("mount_conn_id", "paths", "tier", "pin", "ttl")

    def __init__(
        self,
        *,
        mount_conn_id: str,
        paths: str | Sequence[str],
        tier: str | None = None,
        pin: bool | str = False,
        ttl: float | str | None = None,
        concurrency: int = 8,
        fail_on_error: bool = True,
        progress_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency={concurrency} must be at least 1")
        if not _templated(ttl):
            _ttl_seconds(ttl)
        if not _templated(pin):
            _as_bool(pin, "pin")
        if "outlets" not in kwargs and not _templated(mount_conn_id, *_paths_list(paths)):
            prefixes = dict.fromkeys(p.static_prefix for p in parse_patterns(paths))
            kwargs["outlets"] = [hybrid_asset(mount_conn_id, prefix) for prefix in prefixes]
        super().__init__(mount_conn_id=mount_conn_id, paths=paths, **kwargs)
        self.tier = tier
        self.pin = pin
        self.ttl = ttl
        self.concurrency = concurrency
        self.fail_on_error = fail_on_error
        self.progress_interval = progress_interval
        #: Physical URIs read from and written to, for OpenLineage.
        self._lineage: tuple[list[str], list[str]] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self._with_mount(self._prefetch)
        if summary.failed and self.fail_on_error:
            reasons = "; ".join(f"{f['path']}: {f['error']}" for f in summary.failures[:5])
            raise AirflowException(
                f"{summary.failed} of {summary.files} files failed to load into {summary.mount}:{summary.tier} "
                f"({summary.loaded} loaded, {summary.fresh} already fresh): {reasons}"
            )
        return summary.to_dict()

    def _prefetch(self, mount: HybridMount) -> PrefetchSummary:
        summary = _cache_ops().prefetch(
            mount, self.paths, tier=_tier(self.tier), pin=_as_bool(self.pin, "pin"), ttl=_ttl_seconds(self.ttl),
            concurrency=self.concurrency, progress_interval=self.progress_interval, logger=self.log,
        )
        prefixes = dict.fromkeys(p.static_prefix for p in parse_patterns(self.paths))
        cache = _cache_ops().require_cache(mount)
        self._lineage = (
            [mount.members[m].uri(prefix) for m in mount.read_order if m in summary.source_members
             for prefix in prefixes],
            [cache.tiers[summary.tier].config.uri],
        )
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs: the source members' physical paths; output: the tier's location (as FileTransferOperator)."""
        return operator_lineage(*(self._lineage or ([], [])))


class HybridPinOperator(_MountCacheOperator):
    """
    Pin files so eviction never removes their cached copies; all or nothing.

    A cached file is pinned in its tier; one not cached yet reserves its size in ``tier`` until loaded (by
    :class:`HybridPrefetchOperator` or a read). When the pinned bytes would exceed a tier's quota the task
    fails with the tier, the bytes and the quota in the message, and nothing is pinned.
    Returns (XCom) ``files``/``bytes`` matched and ``pinned``/``pinned_bytes`` newly pinned.

    :param mount_conn_id: the ``hybrid_mount`` connection.
    :param paths: a logical path or glob, or a list of them (templated).
    :param tier: tier that holds the reservation of files not cached yet (templated).
    """

    template_fields: Sequence[str] = ("mount_conn_id", "paths", "tier")

    def __init__(
        self, *, mount_conn_id: str, paths: str | Sequence[str], tier: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(mount_conn_id=mount_conn_id, paths=paths, **kwargs)
        self.tier = tier

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self._with_mount(lambda mount: _cache_ops().pin(mount, self.paths, tier=_tier(self.tier)))
        self.log.info("Pinned %d new files (%d bytes) of %d matched in %s:%s", summary.pinned,
                      summary.pinned_bytes, summary.files, summary.mount, summary.tier)
        return summary.to_dict()


class HybridUnpinOperator(_MountCacheOperator):
    """
    Remove pins on files, directories or globs (matched against the cache catalog, so pins of files that left
    the source go too); their copies become evictable. Returns (XCom) ``{"mount", "unpinned"}``.

    :param mount_conn_id: the ``hybrid_mount`` connection.
    :param paths: a logical path, directory or glob, or a list of them (templated); ``/`` = every pin.
    """

    def execute(self, context: Context) -> dict[str, Any]:
        removed = self._with_mount(lambda mount: _cache_ops().unpin(mount, self.paths))
        self.log.info("Removed %d pins in mount %s", removed, self.mount_conn_id)
        return {"mount": self.mount_conn_id, "unpinned": removed}


class HybridFreeOperator(_MountCacheOperator):
    """
    Drop cached copies of files, directories or globs (matched against the cache catalog). The source is never
    touched. Pinned copies are kept unless ``force`` (which unpins them too).
    Returns (XCom) ``files``/``bytes`` dropped and ``skipped_pinned``.

    :param mount_conn_id: the ``hybrid_mount`` connection.
    :param paths: a logical path, directory or glob, or a list of them (templated); ``/`` = the whole cache.
    :param force: also drop (and unpin) pinned copies.
    """

    def __init__(self, *, mount_conn_id: str, paths: str | Sequence[str], force: bool = False, **kwargs: Any):
        super().__init__(mount_conn_id=mount_conn_id, paths=paths, **kwargs)
        self.force = force

    def execute(self, context: Context) -> dict[str, Any]:
        summary = self._with_mount(lambda mount: _cache_ops().free(mount, self.paths, force=self.force))
        self.log.info("Freed %d cached copies (%d bytes) in mount %s; %d pinned copies kept", summary.files,
                      summary.bytes, summary.mount, summary.skipped_pinned)
        return summary.to_dict()


class HybridCacheReportOperator(_MountCacheOperator):
    """
    Report a mount's cache like ``alluxio fsadmin report``: per tier capacity, used, pinned bytes, files, hit
    ratio and oldest entry. Logs the text report and returns (XCom) its JSON summary.

    :param mount_conn_id: the ``hybrid_mount`` connection.
    """

    template_fields: Sequence[str] = ("mount_conn_id",)

    def __init__(self, *, mount_conn_id: str, **kwargs: Any) -> None:
        super().__init__(mount_conn_id=mount_conn_id, **kwargs)

    def execute(self, context: Context) -> dict[str, Any]:
        report = self._with_mount(lambda mount: _cache_ops().require_cache(mount).report())
        self.log.info("%s", report.to_text())
        return report.to_dict()
