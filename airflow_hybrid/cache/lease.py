"""Leases: a holder (an engine's query, a step on EMR) keeps the cached copies under a logical path from being
physically deleted while it reads them in place (see :meth:`CacheManager.lease`).

A lease lives in the catalog, so it holds across processes: eviction in one worker skips the copies another
worker leased. It never keeps a copy *served*: :meth:`~CacheManager.free`, :meth:`~CacheManager.invalidate` and
stale drops still remove the catalog entry, and only the physical deletion waits in the trash until the lease
ends (released, or expired: a crashed holder cannot pin data forever).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def covers(lease_path: str, path: str) -> bool:
    """Whether a lease on ``lease_path`` (a file, a directory, ``""`` for the mount) covers logical ``path``."""
    return not lease_path or path == lease_path or path.startswith(lease_path + "/")


@dataclass(frozen=True)
class Lease:
    """An active lease on the copies under ``path`` of mount ``mount``, until ``expires_at`` (epoch seconds).

    Usable as a context manager: leaving the block releases it.
    """

    id: str
    mount: str
    path: str
    holder: str
    expires_at: float
    _release: Callable[[Lease], Any] | None = field(default=None, repr=False, compare=False)

    def covers(self, path: str) -> bool:
        return covers(self.path, path)

    def release(self) -> None:
        if self._release is not None:
            self._release(self)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
