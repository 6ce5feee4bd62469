"""``hybrid_mount`` connection extras over local directories, for tests that need a mount but no server."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def local_mount_extra(root: Path, read: str, create: str, tiers: dict[str, str] | None = None,
                      **cache: Any) -> dict[str, Any]:
    """The members of ``read`` (a read priority such as ``"s3,hdfs"``) as directories ``root/<member>``, new
    files in ``create``; with ``tiers`` (alias -> quota) a cache in ``root/tier-<alias>`` directories with the
    SQLite catalog ``root/catalog.db`` and the ``cache`` settings."""
    extra: dict[str, Any] = {
        "members": {member: {"uri": f"file://{root}/{member}"} for member in read.split(",")},
        "priority.read": read,
        "collection.create": create,
    }
    if tiers:
        extra["cache"] = {
            "tiers": [{"alias": alias, "uri": f"file://{root}/tier-{alias.lower()}", "quota": quota}
                      for alias, quota in tiers.items()],
            "catalog_url": f"sqlite:///{root}/catalog.db",
            **cache,
        }
    return extra
