"""Airflow core's ``Connection`` spells the ``hybrid_mount`` type ``hybrid-mount`` in URIs, without a warning.

Core's ``Connection.get_uri()`` (``airflow/models/connection.py`` in Airflow 3.3) logs "Connection schemes
(type: hybrid_mount) shall not contain '_' according to RFC3986" for any type with an underscore
(``google_cloud_platform`` too: apache/airflow#34419) unless the connection was read from a URI, whose scheme it
keeps in ``_prenormalized_conn_type``. Server-side lookups call it each time (to fill the secrets cache: the
Execution API serving a task's lookup, a lookup in the API server or the scheduler, the form's Test button), so
each lookup of a ``hybrid_mount`` connection logged it. The URI it writes is ``hybrid-mount://`` either way (RFC
3986 allows no ``_`` in a scheme; Airflow reads ``-`` back as ``_``), so recording that spelling on our
connections as they are loaded or built states what is true and silences only our type. The Task SDK's
``Connection`` never warns (apache/airflow#64345), nor does core from the release with apache/airflow#72855.

Called at provider discovery (``get_provider_info``) and by the hook; a no-op outside server processes.
"""

from __future__ import annotations

import os
import sys
from typing import Any

CONN_TYPE = "hybrid_mount"
URI_SCHEME = CONN_TYPE.replace("_", "-")
_CORE_CONNECTION = "airflow.models.connection"
_registered = False


def _on_load(target: Any, *_: Any) -> None:
    if target.conn_type == CONN_TYPE and not hasattr(target, "_prenormalized_conn_type"):
        target._prenormalized_conn_type = URI_SCHEME


def _on_init(target: Any, args: tuple, kwargs: dict) -> None:
    if kwargs.get("conn_type") == CONN_TYPE:
        target._prenormalized_conn_type = URI_SCHEME


def _listen(connection_class: type) -> None:
    from sqlalchemy import event

    global _registered
    if not _registered:
        event.listen(connection_class, "load", _on_load)
        event.listen(connection_class, "init", _on_init)
        _registered = True


def _on_mapper_configured(mapper: Any, class_: type) -> None:
    if class_.__module__ == _CORE_CONNECTION and class_.__name__ == "Connection":
        _listen(class_)


def spell_uri_scheme_with_dash() -> None:
    """Register the spelling on core's ``Connection``: now if it is imported, else when it is mapped (first
    used); only in server processes (``_AIRFLOW_PROCESS_CONTEXT=server``) or where core's ``Connection`` is
    already in use. Idempotent; never imports core's models itself."""
    module = sys.modules.get(_CORE_CONNECTION)
    if module is not None and hasattr(module, "Connection"):
        _listen(module.Connection)
        return
    if _registered or os.environ.get("_AIRFLOW_PROCESS_CONTEXT") != "server":
        return
    try:
        from sqlalchemy import event
        from sqlalchemy.orm import Mapper
    except ImportError:
        return
    if not event.contains(Mapper, "mapper_configured", _on_mapper_configured):
        event.listen(Mapper, "mapper_configured", _on_mapper_configured)
