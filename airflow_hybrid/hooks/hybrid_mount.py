"""Hook and connection type ``hybrid_mount``: a union mount of HDFS, S3 and local stores.

:class:`HybridMountHook` builds a mount from its connection; :class:`HybridMountMixin` is how operators,
sensors and triggers get theirs: ``with self.mount() as mount:`` builds it through the hook and closes it
(its cache manager, then its member stores) when the block ends.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

from airflow_hybrid.exceptions import HybridConfigError
from airflow_hybrid.mount import HybridMount
from airflow_hybrid.mount.options import MountConfigError, MountSpec, parse_mount_options


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
    conn_type = "hybrid_mount"
    hook_name = "Hybrid Mount (HDFS + S3 union)"

    def __init__(self, hybrid_mount_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hybrid_mount_conn_id = hybrid_mount_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["host", "schema", "port", "login", "password"],
            "relabeling": {},
            "placeholders": {
                "extra": json.dumps(
                    {
                        "members": {
                            "hdfs": {"uri": "hdfs:///tmp/tpcds", "conn_id": "webhdfs_default"},
                            "s3": {"uri": "s3://my-bucket/tpcds", "conn_id": "aws_default"},
                        },
                        "priority.read": "s3,hdfs",
                        "collection.create": "s3",
                    },
                    indent=1,
                ),
                "mount_options": "alluxio-union.hdfs.uri=hdfs://namenode:8020/tmp/tpcds\n"
                "alluxio-union.s3.uri=s3://my-bucket/tpcds\n"
                "alluxio-union.priority.read=s3,hdfs\nalluxio-union.collection.create=s3",
            },
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField, TextAreaField

        return {
            "mount_options": TextAreaField(
                lazy_gettext("Alluxio mount options (key=value per line)"), widget=BS3TextAreaFieldWidget()
            ),
            "priority.read": StringField(lazy_gettext("priority.read"), widget=BS3TextFieldWidget()),
            "collection.create": StringField(lazy_gettext("collection.create"), widget=BS3TextFieldWidget()),
        }

    @cached_property
    def spec(self) -> MountSpec:
        conn = self.get_connection(self.hybrid_mount_conn_id)
        if conn.conn_type and conn.conn_type != self.conn_type:
            raise MountConfigError(
                f"connection {self.hybrid_mount_conn_id!r} has type {conn.conn_type!r}, expected {self.conn_type!r}"
            )
        extras = {k: v for k, v in conn.extra_dejson.items() if v not in ("", None)}
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
            return HybridMount(self.spec)
        except HybridConfigError as err:  # a member's store options (S3Options, HdfsStore)
            raise MountConfigError(f"connection {self.hybrid_mount_conn_id!r}: {err}") from None

    def _check_member_connections(self) -> None:
        for member in self.spec.members.values():
            if member.scheme in ("file", "") or not member.conn_id:
                continue
            try:
                self.get_connection(member.conn_id)
            except Exception as err:
                raise MountConfigError(
                    f"connection {self.hybrid_mount_conn_id!r}: members.{member.name}.conn_id: "
                    f"connection {member.conn_id!r} not found ({type(err).__name__})"
                ) from None

    def test_connection(self) -> tuple[bool, str]:
        """Check every member answers a listing of its root."""
        try:
            with self.get_mount() as mount:
                for store in mount.members.values():
                    next(iter(store.list("")), None)
        except Exception as err:
            return False, f"{type(err).__name__}: {err}"
        return True, f"all members reachable: {', '.join(mount.read_order)}"


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
