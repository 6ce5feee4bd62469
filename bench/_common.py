"""Shared set-up for the benchmarks: a temporary AIRFLOW_HOME and a devstack in a background process."""

from __future__ import annotations

import contextlib
import io
import os
import random
import resource
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def devstack(shaping: dict | None = None, **kwargs) -> Iterator:
    """A devstack in its own process (so it does not share our GIL), with AIRFLOW_CONN_* set."""
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-hybrid-bench-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow_hybrid.devstack.control import DevStackClient, devstack_down, devstack_up

    state_dir = Path(tempfile.mkdtemp(prefix="hybrid-bench-devstack-"))
    status = devstack_up(state_dir, shaping=shaping, **kwargs)
    client = DevStackClient(status)
    os.environ.update(client.airflow_env())
    try:
        yield client
    finally:
        devstack_down(state_dir)


def mib_s(nbytes: int, seconds: float) -> str:
    return f"{nbytes / 2**20 / seconds:8.1f} MiB/s"


class RepeatedBlock(io.RawIOBase):
    """``size`` bytes of one random MiB (``seed`` picks it), streamed: a large test file never held in memory."""

    def __init__(self, size: int, seed: int | None = None) -> None:
        self._block, self._left = random.Random(seed).randbytes(2**20), size

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = min(len(self._block) if n < 0 else n, len(self._block), self._left)
        self._left -= n
        return self._block[:n]
