"""Hook and connection type ``hybrid_mount``: a union mount of HDFS, S3 and local stores.

:class:`HybridMountHook` builds a mount from its connection; :class:`HybridMountMixin` is how operators,
sensors and triggers get theirs: ``with self.mount() as mount:`` builds it through the hook and closes it
(its cache manager, then its member stores) when the block ends.

The connection form is declared in the provider info (``conn-fields``, ``ui-field-behaviour``); Airflow 3 stores
each form field in the extras under its plain name (``members``, ``priority.read``, ...), Airflow 2's form as
``extra__hybrid_mount__<name>``: :func:`mount_extras` reads both.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.hooks.uri_spelling import spell_uri_scheme_with_dash
from airflow_hybrid.mount.options import MountConfigError, MountSpec, parse_mount_options
from airflow_hybrid.stores.factory import store_from_uri
from airflow_hybrid.values import format_bytes, shown

if TYPE_CHECKING:
    from airflow_hybrid.cache.config import CacheConfig
    from airflow_hybrid.mount.union import HybridMount

CONN_TYPE = "hybrid_mount"
#: How Airflow 2's connection form (and ``extra__<type>__<field>`` URIs) prefix a form field in the extras.
FORM_FIELD_PREFIX = f"extra__{CONN_TYPE}__"
#: Options whose value is an object; a form or an environment variable may give them as JSON text.
_OBJECT_OPTIONS = ("members", "cache")


def mount_extras(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The mount options of a connection's extras.

    Empty form fields (``null``, ``""``, ``{}`` for an object) are dropped, ``extra__hybrid_mount__<name>`` keys read as ``<name>``
    (a plain key wins), and ``members`` / ``cache`` given as JSON text are decoded.

    :raises MountConfigError: ``members`` or ``cache`` is text that is not JSON.
    """
    options: dict[str, Any] = {}
    for key, value in sorted(extra.items(), key=lambda kv: str(kv[0]).startswith(FORM_FIELD_PREFIX), reverse=True):
        name = key[len(FORM_FIELD_PREFIX) :] if isinstance(key, str) and key.startswith(FORM_FIELD_PREFIX) else key
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if name in _OBJECT_OPTIONS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError as err:
                raise MountConfigError(f"{name}: not valid JSON ({err}): {shown(value)}") from None
        if name in _OBJECT_OPTIONS and value in ({}, []):  # the form's object editor left at {}
            continue
        options[name] = value
    return options


class HybridMountHook(BaseHook):
    """
    Build a :class:`~airflow_hybrid.mount.HybridMount` from a ``hybrid_mount`` connection.

    The connection's extras hold the union options (``members``, ``priority.read``, ``collection.create``,
    ``cache``, ``catalog_url``) or Alluxio's ``alluxio-union.*`` mount options; member stores reach their
    systems through their own Airflow connections (``webhdfs``, ``aws``).

    :param hybrid_mount_conn_id: the ``hybrid_mount`` connection id.
    """

    conn_name_attr = "hybrid_mount_conn_id"
    default_conn_name = "hybrid_mount_default"
    conn_type = CONN_TYPE
    hook_name = "Hybrid Mount (HDFS + S3 union)"

    def __init__(self, hybrid_mount_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hybrid_mount_conn_id = hybrid_mount_conn_id

    @classmethod
    def get_connection(cls, conn_id: str):
        spell_uri_scheme_with_dash()  # no RFC 3986 warning from core's Connection.get_uri (see uri_spelling)
        return super().get_connection(conn_id)

    @cached_property
    def extras(self) -> dict[str, Any]:
        """The mount options of the connection (see :func:`mount_extras`)."""
        conn = self.get_connection(self.hybrid_mount_conn_id)
        if conn.conn_type and conn.conn_type != self.conn_type:
            raise MountConfigError(
                f"connection {self.hybrid_mount_conn_id!r} has type {conn.conn_type!r}, expected {self.conn_type!r}"
            )
        try:
            return mount_extras(conn.extra_dejson)
        except MountConfigError as err:
            raise MountConfigError(f"connection {self.hybrid_mount_conn_id!r}: {err}") from None

    @cached_property
    def spec(self) -> MountSpec:
        extras = self.extras
        try:
            return parse_mount_options(self.hybrid_mount_conn_id, extras)
        except MountConfigError as err:
            raise MountConfigError(f"connection {self.hybrid_mount_conn_id!r}: {err}") from None

    def get_conn(self) -> HybridMount:
        return self.get_mount()

    def get_mount(self) -> HybridMount:
        """Return the mount, with each member connected through its own Airflow connection."""
        self._check_member_connections()
        try:
            from airflow_hybrid.mount.union import HybridMount

            return HybridMount(self.spec)
        except HybridConfigError as err:  # a member's store options (S3Options, HdfsStore)
            raise MountConfigError(f"connection {self.hybrid_mount_conn_id!r}: {err}") from None

    def _member_connection_problem(self, name: str, conn_id: str) -> str | None:
        try:
            self.get_connection(conn_id)
        except Exception as err:
            return f"members.{name}.conn_id: connection {conn_id!r} not found ({type(err).__name__})"
        return None

    def _check_member_connections(self) -> None:
        for member in self.spec.members.values():
            if member.scheme in ("file", "") or not member.conn_id:
                continue
            if problem := self._member_connection_problem(member.name, member.conn_id):
                raise MountConfigError(f"connection {self.hybrid_mount_conn_id!r}: {problem}")

    def test_connection(self) -> tuple[bool, str]:
        """Check the whole mount: its options, each member's connection and root (listed), the cache tiers
        (parsed, each location written to and cleaned up) and the cache catalog (connected, schema read).

        :return: ``(True, summary)``, or ``(False, every problem found)``, each naming its option.
        """
        problems, checked = MountCheck(self).run()  # no connection id in the messages: the form's Test button
        if problems:  # tests a copy under a random id
            listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1)) if len(problems) > 1 else problems[0]
            return False, f"{len(problems)} problem{'s' if len(problems) > 1 else ''}: {listed}"
        return True, "; ".join(checked)


class MountCheck:
    """The checks of :meth:`HybridMountHook.test_connection`: ``run()`` gives ``(problems, checked)``."""

    def __init__(self, hook: HybridMountHook) -> None:
        self.hook = hook
        self.problems: list[str] = []
        self.checked: list[str] = []

    def run(self) -> tuple[list[str], list[str]]:
        try:
            extras = self.hook.extras
        except Exception as err:  # the connection itself: missing, of another type, a field not JSON
            return [_error_text(err)], []
        try:
            spec = parse_mount_options(self.hook.hybrid_mount_conn_id, extras)
        except MountConfigError as err:
            self.problems.append(str(err))
        else:
            self._members(spec)
        config = self._cache_config(extras)
        if config is not None and config.enabled:
            self._tiers(config)
        if config is not None and (config.enabled or config.catalog_url):
            self._catalog(config.resolved_catalog_url)
        return self.problems, self.checked

    def _members(self, spec: MountSpec) -> None:
        reachable = []
        for member in (spec.members[name] for name in spec.read_order):
            where = f"members.{member.name} ({member.uri})"
            problem = None
            if member.scheme not in ("file", "") and member.conn_id:
                problem = self.hook._member_connection_problem(member.name, member.conn_id)
            if problem:
                self.problems.append(problem)
                continue
            try:
                store = store_from_uri(member.uri, member.conn_id, member.options)
            except Exception as err:  # its store options (S3Options, HdfsStore)
                self.problems.append(f"{where}: {_error_text(err)}")
                continue
            try:
                next(iter(store.list("")), None)
            except Exception as err:
                self.problems.append(f"{where}: not reachable: {_error_text(err)}")
            else:
                reachable.append(member.name)
            finally:
                store.close()
        if reachable:
            self.checked.append(
                f"members {', '.join(reachable)} reachable (create in {', '.join(spec.create_members)})"
            )

    def _cache_config(self, extras: dict[str, Any]) -> CacheConfig | None:
        from airflow_hybrid.cache.config import CacheConfig

        try:
            return CacheConfig.from_options(extras, self.hook.hybrid_mount_conn_id)
        except HybridConfigError as err:  # names the option: cache.tiers[1].quota: ...
            self.problems.append(str(err))
            return None

    def _tiers(self, config: CacheConfig) -> None:
        usable = []
        for i, tier in enumerate(config.tiers):
            where = f"cache.tiers[{i}] ({tier.alias}, {tier.uri})"
            probe = f".hybrid-test-connection-{uuid.uuid4().hex}"
            try:
                store = store_from_uri(tier.uri, tier.conn_id, tier.options or None)
            except Exception as err:
                self.problems.append(f"{where}: {_error_text(err)}")
                continue
            try:
                store.write(probe, io.BytesIO(b"hybrid_mount test_connection\n"))
                store.delete(probe)
            except Exception as err:
                self.problems.append(f"{where}: not writable: {_error_text(err)}")
                continue
            finally:
                store.close()
            usable.append(
                f"{tier.alias} {format_bytes(tier.quota)} (evicts from {tier.high_watermark:.0%} "
                f"to {tier.low_watermark:.0%})"
            )
        if usable:
            self.checked.append(f"cache tiers {', '.join(usable)} writable")

    def _catalog(self, url: str) -> None:
        import sqlalchemy as sa

        from airflow_hybrid.cache.catalog import create_catalog_engine
        from airflow_hybrid.cache.schema import LATEST_VERSION, current_version

        try:
            parsed = sa.engine.make_url(url)
        except Exception as err:
            self.problems.append(f"catalog_url: not a SQLAlchemy URL ({_error_text(err)}): {shown(url)}")
            return
        shown_url = parsed.render_as_string(hide_password=True)
        where = f"catalog_url ({shown_url})"
        if parsed.get_backend_name() == "sqlite" and not _sqlite_file_exists(parsed):
            directory = _nearest_directory(Path(parsed.database or "").expanduser())
            if not os.access(directory, os.W_OK | os.X_OK):
                self.problems.append(f"{where}: no catalog yet and {directory} is not writable to create it")
            else:
                self.checked.append(f"catalog {shown_url} (created on first use)")
            return
        try:
            engine = create_catalog_engine(url, read_only=True)
        except Exception as err:  # a driver that is not installed, a bad option
            self.problems.append(f"{where}: {_error_text(err)}")
            return
        try:
            with engine.connect() as conn:
                version = current_version(conn)
        except Exception as err:
            self.problems.append(f"{where}: cannot open the catalog: {_error_text(err)}")
            return
        finally:
            engine.dispose()
        if version > LATEST_VERSION:
            self.problems.append(
                f"{where}: schema version {version} is newer than this airflow-hybrid supports "
                f"({LATEST_VERSION}); upgrade airflow-hybrid"
            )
        elif version == 0:
            self.checked.append(f"catalog {shown_url} reachable (tables created on first use)")
        elif version < LATEST_VERSION:
            self.checked.append(f"catalog {shown_url} at schema {version} (upgraded to {LATEST_VERSION} on first use)")
        else:
            self.checked.append(f"catalog {shown_url} at schema {version}")


def _error_text(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:500]}" if text else type(err).__name__


def _sqlite_file_exists(url: Any) -> bool:
    database = url.database or ""
    if database in ("", ":memory:") or "mode=memory" in str(url):
        return True  # in memory: nothing to create
    path = database.removeprefix("file:").split("?", 1)[0] if database.startswith("file:") else database
    return Path(path).expanduser().exists()


def _nearest_directory(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.is_dir():
            return parent
    return Path("/")


class HybridMountMixin:
    """Gives an operator, sensor or trigger its mount: ``with self.mount() as mount:``.

    The mount is that of the ``hybrid_mount`` connection ``mount_conn_id`` (or ``conn_id``), built by
    :class:`HybridMountHook` for each block and closed (cache and member stores) when it ends;
    :meth:`mounts` gives several by connection id.
    """

    mount_conn_id: str | None

    @contextmanager
    def mount(self, conn_id: str | None = None) -> Iterator[HybridMount]:
        conn_id = conn_id or self.mount_conn_id
        if not conn_id:
            raise MountConfigError(f"{type(self).__name__}: no mount_conn_id")
        with HybridMountHook(conn_id).get_mount() as mount:
            yield mount

    @contextmanager
    def mounts(self) -> Iterator[Callable[[str], HybridMount]]:
        """Mounts by connection id for one block (paths naming several mounts): each built once, when first
        asked for, and all closed when the block ends."""
        with ExitStack() as stack:
            opened: dict[str, HybridMount] = {}

            def mount_of(conn_id: str) -> HybridMount:
                if conn_id not in opened:
                    opened[conn_id] = stack.enter_context(self.mount(conn_id))
                return opened[conn_id]

            yield mount_of


spell_uri_scheme_with_dash()  # where this module is loaded in a server process
