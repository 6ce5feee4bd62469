"""``hybrid://<mount_conn_id>/<logical path>`` URLs, built and split in one place."""

from __future__ import annotations

from airflow_hybrid.stores.base import normalize_path

SCHEME = "hybrid"
PREFIX = f"{SCHEME}://"


def hybrid_url(mount_conn_id: str, path: str) -> str:
    """``hybrid://<mount_conn_id>/<path>`` with ``path`` normalized (``hybrid://lake/`` for the root)."""
    return f"{PREFIX}{mount_conn_id}/{normalize_path(path)}"


def is_hybrid_url(url: str) -> bool:
    """Whether ``url`` is a ``hybrid://`` URL (the scheme in any case)."""
    return url[: len(PREFIX)].lower() == PREFIX


def split_hybrid_url(url: str) -> tuple[str, str]:
    """``(mount_conn_id, logical path)`` of a ``hybrid://`` URL.

    :raises ValueError: ``url`` is not ``hybrid://<mount_conn_id>/...``.
    """
    if not is_hybrid_url(url):
        raise ValueError(f"{url!r}: expected {PREFIX}<mount_conn_id>/<path>")
    mount, _, rel = url[len(PREFIX) :].partition("/")
    if not mount:
        raise ValueError(f"{url!r}: expected {PREFIX}<mount_conn_id>/<path>")
    return mount, normalize_path(rel)
